"""What each mode demonstrates, what every number means, and every key (from the live bindings)."""

from __future__ import annotations

from collections.abc import Iterable

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Markdown

from coredash.engine import REGISTRY
from coredash.engine.gil import GilState, expectation

INTRO = """\
# coredash: what you are looking at

coredash runs the jobs you pick on an executor chosen with one key, from its own
asyncio event loop, and shows what your cores do meanwhile.

"""

MODES_TAIL = """\
Switching mode mid-batch is fine: queued jobs go to the new mode, running jobs
finish where they are.

## The numbers

- **wait**: time queued for a free worker. **overhead**: dispatch → start
  (pickling, IPC, process start-up) plus finish → result seen by the loop (on
  threads: the loop winning the GIL back). **run**: measured inside the worker.
  wait + overhead + run = the job's whole life.
- **CPU÷wall**: the job's CPU time over its run time. ~1.0 means it had a core;
  pure-Python jobs on N threads show about 1/N while the GIL is on: the rest was
  waiting for it.
- **makespan**: first job dispatched → last job done. **parallelism**: Σ job CPU
  time ÷ makespan, the cores a batch really kept busy.
- **speedup**: a serial estimate ÷ makespan. Before the first batch of a task and
  size, coredash runs one *serial baseline* job alone in a fresh process, whatever
  the mode; jobs × its run time (the median, if measured more than once) is the
  serial estimate, shared by all modes.
  Never summed run times, which would count waiting for the GIL as work. `x`
  forgets baselines. **efficiency**: speedup ÷ min(workers, cores).
- **monitor (UI)**: the event loop's own CPU (sampling, drawing, scheduling);
  **executor threads**: the pool's helper threads (pickling, IPC).
- **event-loop lag**: how late the UI loop's timers fire (p50/p99, last 5 s).

## Keys
"""


KEY_NAMES = {"question_mark": "?", "equals_sign": "=", "plus": "+", "minus": "-"}
NUMBER_WORDS = ("no", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")


def modes_section() -> str:
    """One paragraph per registered mode, read from the registry now (with why, where it cannot run)."""
    count = len(REGISTRY)
    number = NUMBER_WORDS[count] if count < len(NUMBER_WORDS) else str(count)
    lines = [f"## The {number} mode{'s' if count != 1 else ''}", ""]
    for info in REGISTRY:
        reason = info.reason_unavailable
        missing = f" *(unavailable here: {reason})*" if reason is not None else ""
        lines += [f"**{info.key} · {info.label}**{missing}: {info.help}", ""]
    return "\n".join(lines) + "\n"


def build_section(gil: GilState) -> str:
    """What each mode should do on this build, from engine.gil.expectation (not an assumed GIL)."""
    if not gil.enabled:
        about = (
            "This is a **free-threaded build with the GIL off**: threads run pure Python in "
            "parallel, so threads scale with the cores here, like processes."
        )
    elif gil.free_threaded:
        about = (
            f"This is a free-threaded build, but **the GIL is on again** ({gil.because}): threads "
            "are back to one core's worth of pure Python."
        )
    else:
        about = (
            "This build has **the GIL**, which caps threads at one core's worth of pure Python. "
            "(On a free-threaded 3.13t/3.14t build with the GIL off, threads would scale; "
            "`PYTHON_GIL=1` switches it back on.)"
        )
    lines = [f"## What to expect on this build: {gil.label}", "", about, ""]
    for info in REGISTRY:
        pure = expectation(info.abilities, False, gil)
        line = f"- **{info.label}**: pure Python **{pure.outlook}** ({pure.why})"
        native = expectation(info.abilities, True, gil)
        if native.outlook is not pure.outlook:
            line += f"; C code that releases the GIL **{native.outlook}**"
        lines.append(line)
    return "\n".join(lines) + "\n\n"


CHUNKING = """\
## Chunks: why tiny jobs go several to a call

Every executor call costs a round trip: pickling, a pipe, a wake-up of the
loop. For a job of a few microseconds (`tiny`) that round trip *is* the job,
so with the chunk setting on **auto** coredash sends tiny jobs (measured under
2 ms) several to a call, about 10 ms of work each: one round trip per chunk
instead of one per job. Set **chunk** in the job picker (`j`) or with `--chunk`
to **off** (one job per call: the seed's caveat about inter-process
communication, made visible) or to a fixed **N**, then compare the jobs/s of
the two rows in *Threads vs processes*. What a chunk costs: one slow job
delays the rest of its chunk, and a cancel or `k` lands between chunks, not
inside one (a fixed N is capped at about a second of measured work per call
for that reason; jobs not measured yet go alone). A job with a timeout is
never chunked, nor are jobs on {no_chunks}.

"""


def chunking_section() -> str:
    labels = [f"*{info.label}*" for info in REGISTRY if not info.abilities.chunks]
    return CHUNKING.format(no_chunks=" or ".join(labels) if labels else "a mode that cannot chunk")


def explanation(gil: GilState | None = None) -> str:
    found = gil if gil is not None else GilState.now()
    return (
        INTRO
        + modes_section()
        + build_section(found)
        + MODES_TAIL.replace("## Keys", chunking_section() + "## Keys")
    )


def keys_table(bindings: Iterable[BindingType]) -> str:
    rows = ["| key | footer | does |", "|---|---|---|"]
    for binding in bindings:
        if not isinstance(binding, Binding) or not binding.description:
            continue
        keys = ", ".join(KEY_NAMES.get(key, key) for key in binding.key.split(","))
        rows.append(f"| `{keys}` | {binding.description} | {binding.tooltip or binding.description} |")
    rows.append("| `ctrl+p` | palette | every action, themes, screenshots |")
    rows.append("| `ctrl+q` | | quit, like `q` |")
    return "\n".join(rows)


class HelpScreen(ModalScreen[None]):
    AUTO_FOCUS = "*"  # the scroll view, so the arrow keys scroll
    BINDINGS = [
        Binding("escape,q,question_mark,f1", "dismiss", "Close", id="help.close"),
    ]

    DEFAULT_CSS = """
    HelpScreen {
        align: center middle;
    }
    HelpScreen > VerticalScroll {
        width: 96;
        max-width: 95%;
        height: 90%;
        border: round $accent;
        border-title-color: $text-accent;
        background: $surface;
        padding: 0 1;
    }
    """

    def __init__(self, bindings: Iterable[BindingType], gil: GilState | None = None) -> None:
        super().__init__()
        self.gil = gil if gil is not None else GilState.now()
        self._text = explanation(self.gil) + keys_table(bindings) + "\n\nPress **escape** to close."

    def compose(self) -> ComposeResult:
        with VerticalScroll() as scroll:
            scroll.border_title = "Help"
            yield Markdown(self._text)
