"""The scaling sweep's screen: which point runs, the ETA, and the chart as points arrive.

It only draws what the app hands it (``progress``, ``result``) and says what the
user asked for with messages; the sweep itself runs in the app, on the engine.
"""

from __future__ import annotations

from collections.abc import Sequence

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.css.query import NoMatches
from textual.message import Message
from textual.reactive import reactive
from textual.screen import ModalScreen
from textual.widgets import Static

from coredash.engine.sweep import SweepCurve, SweepProgress, SweepResult
from coredash.plot import sweep_chart


class SweepScreen(ModalScreen[None]):
    AUTO_FOCUS = "*"
    BINDINGS = [
        Binding("c", "stop", "Stop sweep", id="sweep.stop", tooltip="Stop, keeping the points measured"),
        Binding("escape,q", "close", "Close", id="sweep.close", tooltip="Close (stops a running sweep)"),
    ]

    DEFAULT_CSS = """
    SweepScreen {
        align: center middle;
    }
    SweepScreen > VerticalScroll {
        width: 96;
        max-width: 98%;
        height: auto;
        max-height: 95%;
        border: round $accent;
        border-title-color: $text-accent;
        background: $surface;
        padding: 0 1;
    }
    """

    class StopRequested(Message):
        """The user asked to stop the sweep (c, or closing the screen while it runs)."""

    progress: reactive[SweepProgress | None] = reactive(None, always_update=True)
    result: reactive[SweepResult | None] = reactive(None, always_update=True)

    def __init__(self, title: str, cores: int) -> None:
        super().__init__()
        self._title = title
        self._cores = cores

    def compose(self) -> ComposeResult:
        with VerticalScroll() as scroll:
            scroll.border_title = f"Scaling sweep: {self._title}"
            scroll.border_subtitle = "c stops (keeps the points) · escape closes"
            yield Static("starting…", id="sweep-progress")
            yield Static("", id="sweep-chart")

    def _chart_width(self) -> int:
        return max(min(self.size.width - 16, 72), 20)

    def _show(self, line: str, curves: Sequence[SweepCurve]) -> None:
        try:
            self.query_one("#sweep-progress", Static).update(line)
            if curves:
                self.query_one("#sweep-chart", Static).update(
                    sweep_chart(curves, self._cores, width=self._chart_width())
                )
        except NoMatches:
            pass  # closed meanwhile: nothing left to draw on

    def watch_progress(self, progress: SweepProgress | None) -> None:
        if progress is not None and self.result is None:
            self._show(progress.text, progress.curves)

    def watch_result(self, result: SweepResult | None) -> None:
        if result is not None:
            points = sum(len(curve.points) for curve in result.curves)
            how = "stopped: kept" if result.stopped else "done:"
            self._show(f"{how} {points} point(s) in {result.elapsed_s:.0f} s · escape closes", result.curves)

    def action_stop(self) -> None:
        if self.result is None:
            self._show("stopping: the point running now is cancelled, the points before it kept…", ())
            self.app.post_message(self.StopRequested())

    def action_close(self) -> None:
        if self.result is None:
            # To the app itself: this screen is gone before its own queue would be read.
            self.app.post_message(self.StopRequested())
        self.dismiss()
