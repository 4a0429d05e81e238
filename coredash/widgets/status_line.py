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
        parts: list[tuple[str, str] | str] = [("coredash ", "bold $text-accent")]
        for mode in (Mode.THREAD, Mode.PROCESS, Mode.PROCESS_PER_JOB):
            label = f" {MODE_KEYS[mode]} {mode.label} "
            if mode is data.mode:
                parts.append((label, "bold reverse $accent"))
            else:
                parts.append((label, f"$foreground 80% @click=app.set_mode('{mode.value}')"))
            parts.append(" ")
        draining = f" (+{data.draining} draining)" if data.draining else ""
        gil = "GIL on" if data.gil_enabled else "GIL off (free-threaded)"
        separator = (" │ ", "$foreground 40%")
        # Most important first: a narrow terminal crops from the right.
        parts += [
            ("│ ", "$foreground 40%"),
            (f"{data.workers} worker{'s' if data.workers != 1 else ''}", "bold"),
            (draining, "$text-warning"),
            (f" · {data.usable_cpus} core{'s' if data.usable_cpus != 1 else ''}", ""),
        ]
        if data.task:
            params = format_params(dict(data.params))
            parts += [separator, (f"{data.task} {params} ×{data.jobs}", "bold")]
        parts += [
            separator,
            (gil, "bold $text-warning" if data.gil_enabled else "bold $text-success"),
            (f" · {data.python}", ""),
            separator,
            (f"{data.refresh_hz:g} Hz", ""),
        ]
        return Content.assemble(*parts)
