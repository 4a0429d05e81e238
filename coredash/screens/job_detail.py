"""Everything recorded about one job: timeline, where it ran, and its traceback."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.content import Content
from textual.screen import ModalScreen
from textual.widgets import Static

from coredash.engine import JobRecord
from coredash.units import format_seconds
from coredash.view_model import format_params


def job_detail_text(job: JobRecord) -> Content:
    def at(value: float | None) -> str:
        return "–" if value is None else f"+{format_seconds(value - job.submitted)}"

    rows: list[tuple[str, str]] = [
        ("job", f"#{job.id}" + (f" ({job.label})" if job.label else "")),
        ("task", f"{job.task} {format_params(job.params)}"),
        ("batch", "–" if job.batch_id is None else str(job.batch_id)),
        ("state", job.state.value),
        ("mode", job.mode.label if job.mode else "–"),
        ("attempts", str(job.attempts)),
        ("worker", job.where),
        ("core", f"{job.core} at start, {job.end_core} at end" if job.core is not None else "–"),
        ("submitted", "+0"),
        ("dispatched", at(job.dispatched)),
        ("started", at(job.started)),
        ("finished", at(job.finished)),
        ("completed", at(job.completed)),
        ("queue wait", format_seconds(job.wait_s)),
        ("run time", format_seconds(job.run_s)),
        ("overhead", format_seconds(job.overhead_s)),
        ("CPU time", format_seconds(job.cpu_s)),
        ("CPU÷wall", "–" if job.cpu_ratio is None else f"{job.cpu_ratio:.2f}"),
        ("result", job.result_repr or "–"),
        ("reason", job.error or "–"),
    ]
    parts: list[tuple[str, str] | str] = []
    for name, value in rows:
        parts += [(f"{name:>11}  ", "bold $text-accent"), f"{value}\n"]
    if job.traceback:
        parts += [("\ntraceback (from the worker)\n", "bold $text-error"), (job.traceback, "$foreground 85%")]
    return Content.assemble(*parts)


class JobDetailScreen(ModalScreen[None]):
    AUTO_FOCUS = "*"
    BINDINGS = [Binding("escape,q,enter", "dismiss", "Close", id="detail.close")]

    DEFAULT_CSS = """
    JobDetailScreen {
        align: center middle;
    }
    JobDetailScreen > VerticalScroll {
        width: 100;
        max-width: 95%;
        height: auto;
        max-height: 90%;
        border: round $accent;
        border-title-color: $text-accent;
        background: $surface;
        padding: 0 1;
    }
    """

    def __init__(self, job: JobRecord) -> None:
        super().__init__()
        self._job = job

    def compose(self) -> ComposeResult:
        with VerticalScroll() as scroll:
            scroll.border_title = f"Job #{self._job.id}: {self._job.state.value}"
            scroll.border_subtitle = "escape to close"
            yield Static(job_detail_text(self._job))
