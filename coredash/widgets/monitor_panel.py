"""coredash's own footprint: its process CPU in cores, the workers', the UI's, and loop lag.

In thread mode with pure-Python jobs "coredash process" sits near 1.0 core however
many workers there are: the GIL, visible (unless the build is free-threaded with the
GIL off: engine.gil decides). The UI line is what the monitor itself
costs (sampling + drawing), so nobody mistakes it for job load.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from textual.app import RenderResult
from textual.reactive import reactive
from textual.widget import Widget

from coredash.engine import Mode
from coredash.engine.gil import GilState, expectation
from coredash.engine.modes import DEFAULT_MODE
from coredash.loop_lag import LagStats
from coredash.sampling import ProcessLoad
from coredash.widgets._parts import FAINT, MUTED, Row, cell, content, hbar

LABEL_WIDTH = 17


@dataclass(frozen=True)
class MonitorData:
    load: ProcessLoad | None = None
    lag: LagStats | None = None
    mode: Mode = DEFAULT_MODE
    usable_cpus: int = 1
    running: int = 0
    gil: GilState = field(default_factory=GilState.now)


def _cores_row(label: str, cores: float, usable: int, width: int, note: str = "") -> Row:
    room = width - LABEL_WIDTH - 11 - (len(note) + 2 if note else 0)
    if room < 6:
        note, room = "", width - LABEL_WIDTH - 11
    bar_width = max(4, min(24, room))
    level = "$error" if cores >= usable * 0.8 else "$warning" if cores >= usable * 0.4 else "$success"
    row: Row = [cell(label, LABEL_WIDTH, "bold"), cell(f"{cores:4.2f} cores", 11, "bold")]
    row += hbar(cores / max(1, usable), bar_width, level)
    if note:
        row.append((f"  {note}", MUTED))
    return row


def monitor_rows(data: MonitorData, width: int) -> list[Row]:
    sample = data.load
    if sample is None:
        return [[("measuring… (the first CPU sample needs a moment)", MUTED)]]
    rows: list[Row] = []
    abilities = data.mode.abilities
    in_threads = abilities.in_process
    process_note = ""
    if in_threads and data.running:
        process_note = "the jobs run in here"
    rows.append(_cores_row("coredash process", sample.process_cores, data.usable_cpus, width, process_note))
    worker_note = "threads in coredash" if in_threads else "worker processes"
    rows.append(_cores_row("job workers", sample.workers_cores, data.usable_cpus, width, worker_note))
    rows.append(
        [
            cell("monitor (UI)", LABEL_WIDTH, "bold"),
            (f"{sample.ui_cores * 100:5.1f}% of a core", "bold"),
            (f"  UI + scheduling, {sample.window_s:.0f} s avg", MUTED),
        ]
    )
    rows.append(
        [
            cell("executor threads", LABEL_WIDTH, "bold"),
            (f"{sample.plumbing_cores * 100:5.1f}% of a core", "bold"),
            ("  pickling, IPC" if abilities.pickles else "  none on threads", MUTED),
        ]
    )
    lag = data.lag
    if lag is None:
        rows.append([cell("event-loop lag", LABEL_WIDTH, "bold"), ("measuring…", MUTED)])
    else:
        style = (
            "$text-error" if lag.p99_ms >= 100 else "$text-warning" if lag.p99_ms >= 25 else "$text-success"
        )
        row: Row = [
            cell("event-loop lag", LABEL_WIDTH, "bold"),
            (f"p50 {lag.p50_ms:3.0f} ms", f"bold {style}"),
            (" · ", FAINT),
            (f"p99 {lag.p99_ms:3.0f} ms", f"bold {style}"),
        ]
        waits = expectation(abilities, None, data.gil).ui_waits_for_gil
        if lag.p99_ms >= 25 and waits and data.running:
            row.append(("  UI waits for the GIL", MUTED))
        rows.append(row)
    return rows


class MonitorPanel(Widget):
    DEFAULT_CSS = """
    MonitorPanel {
        height: auto;
    }
    """

    data: reactive[MonitorData] = reactive(MonitorData)

    def render(self) -> RenderResult:
        return content(monitor_rows(self.data, self.size.width))
