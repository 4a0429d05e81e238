"""The top line: executor mode, workers, cores, Python and its GIL, refresh rate, the batch."""

from __future__ import annotations

from dataclasses import dataclass, field

from textual.app import RenderResult
from textual.content import Content
from textual.reactive import reactive
from textual.widget import Widget

from coredash.engine import REGISTRY, Mode
from coredash.engine.gil import Expectation, GilState
from coredash.engine.modes import DEFAULT_MODE
from coredash.view_model import capacity_note, format_params


@dataclass(frozen=True)
class StatusData:
    mode: Mode = DEFAULT_MODE
    workers: int = 1
    usable_cpus: int = 1
    python: str = ""
    gil: GilState = field(default_factory=GilState.now)
    # What the current mode does with the current task on this build (engine.gil.expectation).
    expect: Expectation | None = None
    chunk: str = "auto"  # the chunk setting new batches get (auto, off or N)
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
        modes = list(REGISTRY)  # read now: a mode registered at run time gets a chip too
        # Leave about 90 cells for the facts after the chips (workers, task, what to
        # expect, GIL, Python): long labels, else short ones (160 columns), else keys.
        room = self.size.width - 9 - 90 if self.size.width else 10_000
        labels = [info.label for info in modes]
        if sum(len(label) + 4 for label in labels) > room:
            labels = [info.short.lower() for info in modes]
            if sum(len(label) + 4 for label in labels) > room:
                labels = ["" for _ in modes]
        for info, text in zip(modes, labels, strict=True):
            label = f" {info.key} {text} " if text else f" {info.key} "
            click = f"@click=app.set_mode('{info.name}')"
            if info.mode == data.mode:
                parts.append((label, "bold reverse $accent"))
            elif not info.available:  # still clickable: the click says why not
                parts.append((label, f"$foreground 40% strike {click}"))
            else:
                parts.append((label, f"$foreground 80% {click}"))
            parts.append(" ")
        draining = f" (+{data.draining} draining)" if data.draining else ""
        note = capacity_note(data.mode, data.workers, short=True)  # a mode that blocks the loop
        gil = data.gil.label
        separator = (" │ ", "$foreground 40%")
        # Most important first: a narrow terminal crops from the right.
        parts += [
            ("│ ", "$foreground 40%"),
            (f"{data.workers} worker{'s' if data.workers != 1 else ''}", "bold"),
            (f", {note}" if note else "", "bold $text-error"),
            (draining, "$text-warning"),
            (f" · {data.usable_cpus} core{'s' if data.usable_cpus != 1 else ''}", ""),
        ]
        if data.task:
            params = format_params(dict(data.params))
            parts += [separator, (f"{data.task} {params} ×{data.jobs}", "bold")]
            if data.chunk != "auto":
                parts.append((f" · chunk {data.chunk}", "$text-accent"))
        if data.expect is not None:
            # What to expect, from the build and not from an assumed GIL: "threads: one core".
            style = "$text-success" if data.expect.scales else "$text-warning"
            parts += [separator, (f"{data.mode.label}: {data.expect.outlook}", style)]
        parts += [
            separator,
            (gil, "bold $text-warning" if data.gil.enabled else "bold $text-success"),
            (f" · {data.python}", ""),
            separator,
            (f"{data.refresh_hz:g} Hz", ""),
        ]
        return Content.assemble(*parts)
