"""The top line: executor mode, workers, cores, Python and its GIL, refresh rate, the batch."""

from __future__ import annotations

from dataclasses import dataclass

from textual.app import RenderResult
from textual.content import Content
from textual.reactive import reactive
from textual.widget import Widget

from coredash.engine import Mode
from coredash.view_model import format_params

MODE_KEYS = {Mode.THREAD: "t", Mode.PROCESS: "p", Mode.PROCESS_PER_JOB: "s"}


@dataclass(frozen=True)
class StatusData:
    mode: Mode = Mode.THREAD
    workers: int = 1
    usable_cpus: int = 1
    python: str = ""
    gil_enabled: bool = True
    refresh_hz: float = 4.0
    task: str = ""
    params: tuple[tuple[str, object], ...] = ()
    jobs: int = 0
    draining: int = 0
    start_method: str = ""


class StatusLine(Widget):
    """Mode chips are clickable; everything else is a fact about this run."""

    DEFAULT_CSS = """
    StatusLine {
        height: 1;
        background: $panel;
        color: $foreground;
        padding: 0 1;
    }
    """

    data: reactive[StatusData] = reactive(StatusData, layout=False)

    def render(self) -> RenderResult:
        data = self.data
        parts: list[tuple[str, str] | str] = [("coredash ", "bold $accent")]
        for mode in (Mode.THREAD, Mode.PROCESS, Mode.PROCESS_PER_JOB):
            label = f" {MODE_KEYS[mode]} {mode.label} "
            if mode is data.mode:
                parts.append((label, "bold reverse $accent"))
            else:
                parts.append((label, f"$foreground 70% @click=app.set_mode('{mode.value}')"))
            parts.append(" ")
        draining = f" (+{data.draining} draining)" if data.draining else ""
        gil = "GIL on" if data.gil_enabled else "GIL off (free-threaded)"
        parts += [
            ("│ ", "$foreground 30%"),
            (f"{data.workers} worker{'s' if data.workers != 1 else ''}", "bold"),
            (draining, "$warning"),
            (f" · {data.usable_cpus} usable core{'s' if data.usable_cpus != 1 else ''} ", ""),
            ("│ ", "$foreground 30%"),
            (f"{data.python} · ", ""),
            (gil, "bold $warning" if data.gil_enabled else "bold $success"),
            (" │ ", "$foreground 30%"),
            (f"{data.refresh_hz:g} Hz", ""),
        ]
        if data.task:
            params = format_params(dict(data.params))
            parts += [(" │ ", "$foreground 30%"), (f"{data.task} {params} ×{data.jobs}", "$foreground 80%")]
        return Content.assemble(*parts)
