"""The top line: executor mode, workers, cores, Python and its GIL, refresh rate, the batch."""

from __future__ import annotations

from dataclasses import dataclass

from textual.app import RenderResult
from textual.content import Content
from textual.reactive import reactive
from textual.widget import Widget

from coredash.engine import REGISTRY, Mode
from coredash.engine.modes import DEFAULT_MODE
from coredash.view_model import format_params


@dataclass(frozen=True)
class StatusData:
    mode: Mode = DEFAULT_MODE
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
        for info in REGISTRY:  # read now: a mode registered at run time gets a chip too
            label = f" {info.key} {info.label} "
            click = f"@click=app.set_mode('{info.name}')"
            if info.mode == data.mode:
                parts.append((label, "bold reverse $accent"))
            elif not info.available:  # still clickable: the click says why not
                parts.append((label, f"$foreground 40% strike {click}"))
            else:
                parts.append((label, f"$foreground 80% {click}"))
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
