"""The one registry of executor modes: everything that lists modes reads it.

A mode is a name plus what its executor can do (``Abilities``), how a person
picks it (key, label, aliases, colour, a help paragraph), whether it can run
here, and which backend class builds it. The CLI's choices, the key bindings,
the footer, the status line, the help screen, the palette, the comparison panel
and the contract tests are all built from ``REGISTRY``; nothing else names a mode.

Backend classes are named by import path and loaded on first use, so listing
modes (``coredash --help``) imports no executor.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

CpuClock = Literal["thread", "process"]
"""Which clock a job's CPU time is read from: its own thread's, or its whole process's."""
Placement = Literal["thread", "pid", "interpreter", "host"]
"""How to say where a job runs."""
StartCost = Literal["none", "per pool", "per job"]
"""When a worker is started: never (threads exist in-process), once per pool, or for every job."""


class Mode(str):
    """A registered mode's name. Canonical instances come from ``REGISTRY``."""

    __slots__ = ()
    THREAD: ClassVar[Mode]
    PROCESS: ClassVar[Mode]
    PROCESS_PER_JOB: ClassVar[Mode]
    INTERPRETERS: ClassVar[Mode]
    BLOCKING: ClassVar[Mode]

    @property
    def value(self) -> str:
        return str(self)

    @property
    def info(self) -> ModeInfo:
        return REGISTRY.info(self)

    @property
    def label(self) -> str:
        return self.info.label

    @property
    def abilities(self) -> Abilities:
        return self.info.abilities

    @classmethod
    def parse(cls, text: str) -> Mode:
        return REGISTRY.parse(text).mode

    def __repr__(self) -> str:
        return f"Mode({str(self)!r})"


@dataclass(frozen=True, slots=True)
class Abilities:
    """What an executor can do, as data: the engine and the views read these, never the mode's name."""

    in_process: bool  # jobs run inside coredash's own process
    shares_ui_gil: bool  # a running job competes with the dashboard for one GIL
    pickles: bool  # arguments and results cross a process boundary
    can_kill: bool  # a running job can be stopped by force (else only at checkpoints)
    chunks: bool  # several tiny jobs can go in one executor call
    timeouts: Literal["kill", "checkpoint"]  # how a job past the job timeout is stopped
    memory_limit: bool  # --memory-limit applies to its workers
    cpu_clock: CpuClock
    start_cost: StartCost
    placement: Placement
    # Runs each job on the event loop's own thread, blocking it (the seed's process.join()):
    # one job at a time whatever the worker count, and nothing is drawn meanwhile.
    blocks_loop: bool = False


_MODES: dict[str, Mode] = {}


@dataclass(frozen=True, slots=True)
class ModeInfo:
    name: str
    key: str  # the dashboard's key for it
    label: str  # how the views name it
    short: str  # where room is short (the footer)
    aliases: tuple[str, ...]
    colour: str  # a Textual theme colour: "warning" -> "$warning" bars, "$text-warning" text
    help: str  # a paragraph for the help screen, after "**key · label**: " (so it starts lowercase)
    abilities: Abilities
    # A backends.base.Backend subclass, or its "module:Class" path (loaded on first
    # use). Typed loosely so this module needs no backend, not even for typing.
    backend: str | type[Any]
    # Why this mode cannot run here (and what to do), or None when it can.
    unavailable: Callable[[], str | None] = field(default=lambda: None)
    mode: Mode = field(init=False)

    def __post_init__(self) -> None:
        # One Mode object per name, so `engine.mode is Mode.PROCESS` holds even
        # after an entry is replaced (a test swapping in another backend, say).
        object.__setattr__(self, "mode", _MODES.setdefault(self.name, Mode(self.name)))

    @property
    def reason_unavailable(self) -> str | None:
        return self.unavailable()

    @property
    def available(self) -> bool:
        return self.unavailable() is None

    def backend_class(self) -> type[Any]:
        if not isinstance(self.backend, str):
            return self.backend
        module, _, name = self.backend.partition(":")
        found: type[Any] = getattr(importlib.import_module(module), name)
        return found


class ModeRegistry:
    def __init__(self) -> None:
        self._modes: dict[str, ModeInfo] = {}

    def register(self, info: ModeInfo) -> Mode:
        clash = [
            other.name
            for other in self._modes.values()
            if other.name != info.name
            and (other.key == info.key or {other.name, *other.aliases} & {info.name, *info.aliases})
        ]
        if clash:
            raise ValueError(f"mode {info.name!r} clashes with {', '.join(clash)} (key or alias)")
        self._modes[info.name] = info
        return info.mode

    def unregister(self, name: str) -> None:
        self._modes.pop(name, None)

    def __iter__(self) -> Iterator[ModeInfo]:
        return iter(list(self._modes.values()))

    def __len__(self) -> int:
        return len(self._modes)

    def __contains__(self, name: object) -> bool:
        return name in self._modes

    def modes(self) -> tuple[Mode, ...]:
        return tuple(info.mode for info in self._modes.values())

    def available(self) -> tuple[Mode, ...]:
        return tuple(info.mode for info in self._modes.values() if info.available)

    def info(self, mode: str) -> ModeInfo:
        found = self._modes.get(str(mode))
        if found is None:
            raise ValueError(f"unknown mode {str(mode)!r}; choose from {self.names()}")
        return found

    def names(self) -> str:
        return ", ".join(self._modes)

    def parse(self, text: str) -> ModeInfo:
        """The mode a user means (name or alias, any case); ValueError with the choices otherwise."""
        key = text.strip().lower().replace("_", "-")
        for info in self._modes.values():
            if key == info.name or key in info.aliases:
                return info
        raise ValueError(f"unknown mode {text!r}; choose from {self.names()}")


REGISTRY = ModeRegistry()

Mode.THREAD = REGISTRY.register(
    ModeInfo(
        name="thread",
        key="t",
        label="threads",
        short="Threads",
        aliases=("threads",),
        colour="warning",
        help=(
            "jobs run on a `ThreadPoolExecutor` *inside coredash's own process*. While the GIL is on "
            "(every build but a free-threaded one with it off: see *What to expect on this build*), "
            "pure-Python jobs (count_primes, mandelbrot) hold it, so however many worker threads there "
            "are, only one runs Python at a time: the core bars share about one core between them, *coredash "
            "process* sits near **1.0 cores**, and the event-loop lag rises because the UI has to win "
            "the GIL too. Jobs that release the GIL (sha256, zlib_compress, sleep) do run in parallel "
            "on threads."
        ),
        abilities=Abilities(
            in_process=True,
            shares_ui_gil=True,
            pickles=False,
            can_kill=False,
            chunks=True,
            timeouts="checkpoint",
            memory_limit=False,
            cpu_clock="thread",
            start_cost="none",
            placement="thread",
        ),
        backend="coredash.engine.backends.threads:ThreadBackend",
    )
)
Mode.PROCESS = REGISTRY.register(
    ModeInfo(
        name="process",
        key="p",
        label="process pool",
        short="Pool",
        aliases=("processes", "pool"),
        colour="success",
        help=(
            "a `ProcessPoolExecutor`: long-lived worker processes, each with its own interpreter and "
            "its own GIL. Pure-Python jobs fill every core. The price is pickling arguments and results "
            "through pipes: run `tiny` or `payload` and watch the overhead column."
        ),
        abilities=Abilities(
            in_process=False,
            shares_ui_gil=False,
            pickles=True,
            can_kill=True,
            chunks=True,
            timeouts="kill",
            memory_limit=True,
            cpu_clock="process",
            start_cost="per pool",
            placement="pid",
        ),
        backend="coredash.engine.backends.process_pool:ProcessPoolBackend",
    )
)
Mode.PROCESS_PER_JOB = REGISTRY.register(
    ModeInfo(
        name="process-per-job",
        key="s",
        label="process per job",
        short="Per job",
        aliases=("per-job", "spawn-per-job"),
        colour="secondary",
        help=(
            "a fresh `multiprocessing.Process` for every job, awaited without blocking the loop. It "
            "shows what starting a process costs (the overhead column), and that killing one job never "
            "harms another."
        ),
        abilities=Abilities(
            in_process=False,
            shares_ui_gil=False,
            pickles=True,
            can_kill=True,
            chunks=False,
            timeouts="kill",
            memory_limit=True,
            cpu_clock="process",
            start_cost="per job",
            placement="pid",
        ),
        backend="coredash.engine.backends.process_per_job:ProcessPerJobBackend",
    )
)


_NEEDS_INTERPRETERS = "needs Python 3.13 with coredash[interpreters], or 3.14"


def _interpreters_unavailable() -> str | None:
    import sys

    if sys.version_info >= (3, 14):
        return None
    if sys.version_info >= (3, 13):
        try:
            import interpreters_backport.concurrent.futures.interpreter  # noqa: F401
        except ImportError:
            return f"{_NEEDS_INTERPRETERS} (pip install 'coredash[interpreters]')"
        return None
    # (3.12's backport, interpreters-3-12, segfaults on import: it is not offered.)
    return _NEEDS_INTERPRETERS


Mode.INTERPRETERS = REGISTRY.register(
    ModeInfo(
        name="interpreters",
        key="i",
        label="interpreters",
        short="Interp",
        aliases=("interpreter", "subinterpreters", "interp"),
        colour="accent",
        help=(
            "an `InterpreterPoolExecutor` (PEP 734): worker threads *inside coredash's own process*, "
            "each running its own interpreter with **its own GIL**. Pure-Python jobs fill every core "
            "while *coredash process* reads about N cores. What it costs: every interpreter imports its "
            "own modules (the first batch pays for that), arguments and results are pickled between "
            "interpreters, and C extensions must support it (psutil and numpy do not). A crash in a job "
            "would end coredash itself, so `crash` is refused; a running job stops only at a checkpoint."
        ),
        abilities=Abilities(
            in_process=True,
            shares_ui_gil=False,
            pickles=True,
            can_kill=False,
            chunks=True,
            timeouts="checkpoint",
            memory_limit=False,
            cpu_clock="thread",
            start_cost="per pool",
            placement="interpreter",
        ),
        backend="coredash.engine.backends.interpreters:InterpreterBackend",
        unavailable=_interpreters_unavailable,
    )
)
Mode.BLOCKING = REGISTRY.register(
    ModeInfo(
        name="blocking",
        key="b",
        label="blocking join",
        short="Join",
        aliases=("join", "process-join"),
        colour="error",
        help=(
            "the seed's third example, run as written: `process.start()` then `process.join()` inside a "
            "coroutine on coredash's own event loop. The loop is blocked while the job runs: nothing is "
            "drawn, no key is read, and only one job runs at a time whatever the worker count. When the "
            "loop is free again the keys pressed meanwhile are handled, and the lag meter and a notice "
            "show the stall. One job may block it for at most 10 s: larger sizes are refused, and a job "
            "that runs longer is killed. *Process per job* (`s`) awaits the same process without blocking."
        ),
        abilities=Abilities(
            in_process=False,
            shares_ui_gil=False,
            pickles=True,
            can_kill=True,
            chunks=False,
            timeouts="kill",
            memory_limit=True,
            cpu_clock="process",
            start_cost="per job",
            placement="pid",
            blocks_loop=True,
        ),
        backend="coredash.engine.backends.blocking:BlockingBackend",
    )
)

# Serial baselines run here whatever the current mode: alone, in a fresh process,
# so one baseline serves every mode and their speedups compare.
BASELINE_MODE = Mode.PROCESS_PER_JOB
# What coredash starts in when nobody says: the GIL's story begins with threads.
DEFAULT_MODE = Mode.THREAD
