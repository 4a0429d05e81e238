"""Pick the batch: which task, what size, how many jobs, how they are chunked.

Bad input is explained, not accepted."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.content import Content
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, OptionList, Static
from textual.widgets.option_list import Option

from coredash.engine import Catalog, TaskInfo
from coredash.engine.chunking import AUTO, ChunkPolicy
from coredash.engine.limits import LimitError, check_jobs, check_size, parse_chunk


@dataclass(frozen=True)
class JobChoice:
    task: str
    size: int
    jobs: int
    run_now: bool
    chunk: ChunkPolicy = AUTO  # for the batches from now on


# int() reads no more digits than this; any such number is past every limit anyway.
LONGEST_NUMBER = 4000


def parse_count(text: str, what: str, check: Callable[[int], int]) -> int:
    """A whole number the field's limit allows (``check``), or ValueError with a message for the user."""
    cleaned = text.strip().replace("_", "").replace(",", "")
    if not cleaned:
        raise ValueError(f"{what}: enter a whole number")
    digits = cleaned.lstrip("0") or "0"
    try:
        if digits.isdigit() and len(digits) > LONGEST_NUMBER:
            value = 10 ** (len(digits) - 1)  # as many digits: the check says "at most …"
        else:
            value = int(cleaned)
    except ValueError:
        raise ValueError(f"{what}: {text.strip()!r} is not a whole number") from None
    try:
        return check(value)
    except LimitError as exc:
        raise ValueError(f"{what}: {exc.problem}") from None


def task_option(info: TaskInfo) -> Option:
    gil = {True: "releases GIL", False: "holds GIL", None: "GIL: ?"}[info.releases_gil]
    prompt = Content.assemble(
        (f"{info.name:<15}", "bold"),
        (f"{info.kind:<9}", "$text-accent"),
        (f"{gil:<13}", "$text-warning" if info.releases_gil is False else "$text-success"),
        (info.description if len(info.description) <= 64 else info.description[:63] + "…", "$foreground 75%"),
    )
    return Option(prompt, id=info.name)


class JobPickerScreen(ModalScreen[JobChoice | None]):
    BINDINGS = [
        Binding("escape", "dismiss(None)", "Cancel", id="picker.cancel"),
        Binding("ctrl+s", "save", "Save", id="picker.save"),
    ]

    DEFAULT_CSS = """
    JobPickerScreen {
        align: center middle;
    }
    JobPickerScreen > Vertical {
        width: 110;
        max-width: 98%;
        height: auto;
        max-height: 95%;
        border: round $accent;
        border-title-color: $text-accent;
        background: $surface;
        padding: 0 1;
    }
    JobPickerScreen OptionList {
        height: auto;
        max-height: 12;
        margin-bottom: 1;
    }
    JobPickerScreen .fields {
        height: auto;
    }
    JobPickerScreen .fields Label {
        padding: 1 1 0 0;
    }
    JobPickerScreen .fields Input {
        width: 18;
        margin-right: 2;
    }
    JobPickerScreen .fields Input#chunk {
        width: 10;
    }
    JobPickerScreen #unit {
        padding: 1 2 0 0;
        color: $foreground 60%;
    }
    JobPickerScreen #about {
        color: $foreground 70%;
        height: auto;
    }
    JobPickerScreen #error {
        color: $error;
        text-style: bold;
        height: auto;
    }
    JobPickerScreen .buttons {
        height: auto;
        align-horizontal: right;
    }
    JobPickerScreen .buttons Button {
        margin-left: 1;
    }
    """

    def __init__(
        self,
        catalog: Catalog,
        task: str,
        size: int | None,
        jobs: int,
        chunk: ChunkPolicy = AUTO,
        *,
        refuse: Callable[[str, int], str | None] | None = None,
    ) -> None:
        super().__init__()
        self._catalog = catalog
        # Why the current mode will not run this task at this size (one that blocks the
        # event loop refuses jobs that would freeze it too long); None: it will.
        self._refuse = refuse
        self._task_name = task
        self._size_value = size if size is not None else catalog.get(task).default_size
        self._job_count = jobs
        self._chunk = chunk

    def compose(self) -> ComposeResult:
        with Vertical() as box:
            box.border_title = "Pick a job"
            box.border_subtitle = "enter: run · ctrl+s: save · escape: cancel"
            yield OptionList(*(task_option(info) for info in self._catalog), id="tasks")
            with Horizontal(classes="fields"):
                yield Label("size")
                yield Input(str(self._size_value), id="size", restrict=r"[0-9_,]*")
                yield Label("", id="unit")
                yield Label("jobs")
                yield Input(str(self._job_count), id="jobs", restrict=r"[0-9_,]*")
                yield Label("chunk")
                yield Input(
                    str(self._chunk),
                    id="chunk",
                    restrict=r"[0-9_a-zA-Z]*",
                    tooltip="jobs per executor call: auto, off (one IPC round trip per job) or N",
                )
            yield Static("", id="about")
            yield Static("", id="error")
            with Horizontal(classes="buttons"):
                yield Button("Run", id="run", variant="primary")
                yield Button("Save", id="save")
                yield Button("Cancel", id="cancel")

    def on_mount(self) -> None:
        tasks = self.query_one("#tasks", OptionList)
        tasks.highlighted = self._catalog.names().index(self._task_name)
        self._describe(self._catalog.get(self._task_name))
        tasks.focus()

    def _describe(self, info: TaskInfo) -> None:
        unit = info.meta.size_unit
        shown = info.size_param if not unit or unit == info.size_param else f"{info.size_param} ({unit})"
        self.query_one("#unit", Label).update(shown)
        self.query_one("#about", Static).update(
            Content.assemble(
                (info.name, "bold"),
                f": {info.description}. Default size {info.default_size:,}.",
            )
        )

    @on(OptionList.OptionHighlighted, "#tasks")
    def _task_highlighted(self, event: OptionList.OptionHighlighted) -> None:
        name = event.option.id
        if name is None or name == self._task_name:
            return
        self._task_name = name
        info = self._catalog.get(name)
        self.query_one("#size", Input).value = str(info.default_size)
        self._describe(info)

    @on(OptionList.OptionSelected, "#tasks")
    def _task_chosen(self) -> None:
        self.query_one("#size", Input).focus()

    def _choice(self, run_now: bool) -> JobChoice | None:
        error = self.query_one("#error", Static)
        try:
            info = self._catalog.get(self._task_name)
            size = parse_count(
                self.query_one("#size", Input).value, "size", lambda n: check_size(n, info.meta.max_size)
            )
            jobs = parse_count(self.query_one("#jobs", Input).value, "jobs", check_jobs)
            chunk = parse_chunk(self.query_one("#chunk", Input).value)
        except LimitError as exc:  # parse_chunk's (parse_count raises plain ValueErrors)
            error.update(Content(f"chunk: {exc.problem}"))
            return None
        except ValueError as exc:
            error.update(Content(str(exc)))
            return None
        why = self._refuse(self._task_name, size) if self._refuse is not None else None
        if why is not None:
            error.update(Content(f"size: {why}"))
            return None
        error.update("")
        return JobChoice(self._task_name, size, jobs, run_now, chunk)

    def _finish(self, run_now: bool) -> None:
        choice = self._choice(run_now)
        if choice is not None:
            self.dismiss(choice)

    @on(Input.Submitted)
    def _submitted(self) -> None:
        self._finish(run_now=True)

    @on(Button.Pressed, "#run")
    def _run(self) -> None:
        self._finish(run_now=True)

    @on(Button.Pressed, "#save")
    def action_save(self) -> None:
        self._finish(run_now=False)

    @on(Button.Pressed, "#cancel")
    def _cancel(self) -> None:
        self.dismiss(None)
