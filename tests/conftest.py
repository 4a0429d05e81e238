"""Shared helpers: real engines, real executors, and checks of the engine's promises."""

from __future__ import annotations

import asyncio
import threading
import time
from collections import defaultdict
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import psutil
import pytest

from coredash.engine import REGISTRY, Engine, EngineEvent, JobChanged, JobRecord, JobState, Mode

if TYPE_CHECKING:
    from tests.terminal import TmuxPane

# From the registry, as it is when the tests are collected: every mode that runs here.
ALL_MODES: list[Mode] = list(REGISTRY.available())
PROCESS_MODES: list[Mode] = [mode for mode in ALL_MODES if not mode.abilities.in_process]
# Modes whose running jobs the loop can watch: a test that awaits a job being RUNNING
# cannot work where the job blocks the loop (blocking join); those promises are
# checked there from another thread (WorkerWatch) or once the job is over.
LOOP_FREE_MODES: list[Mode] = [mode for mode in ALL_MODES if not mode.abilities.blocks_loop]
LOOP_FREE_PROCESS_MODES: list[Mode] = [mode for mode in PROCESS_MODES if not mode.abilities.blocks_loop]

# multiprocessing's own helpers live until the interpreter exits; they are not
# workers, and they end when their parent does (checked in test_cli's quit test).
HELPER_MARKERS = ("multiprocessing.resource_tracker", "multiprocessing.forkserver")


async def until(condition: Callable[[], bool], timeout: float = 20.0, what: str = "condition") -> None:
    """Poll a condition on the loop without blocking it."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(0.01)


class EventLog:
    """Records every JobChanged event so tests can check the terminal-state promise."""

    def __init__(self, engine: Engine) -> None:
        self.events: list[EngineEvent] = []
        self.states: dict[int, list[JobState]] = defaultdict(list)
        self.max_running = 0
        self._running: set[int] = set()
        # What a job's record said at the moment it was reported RUNNING.
        self.when_running: dict[int, tuple[int | None, float | None]] = {}
        engine.subscribe(self._on_event)

    def _on_event(self, event: EngineEvent) -> None:
        self.events.append(event)
        if isinstance(event, JobChanged):
            self.states[event.job.id].append(event.state)
            if event.state is JobState.RUNNING:
                self._running.add(event.job.id)
                self.when_running[event.job.id] = (event.job.pid, event.job.started)
            else:
                self._running.discard(event.job.id)
            self.max_running = max(self.max_running, len(self._running))

    def terminal_states(self, job_id: int) -> list[JobState]:
        return [state for state in self.states[job_id] if state.terminal]


def check_job_invariants(log: EventLog, jobs: Iterable[JobRecord]) -> None:
    """Every job ended exactly once; its timeline is ordered."""
    for job in jobs:
        ended = log.terminal_states(job.id)
        assert len(ended) == 1, f"job {job.id} ended {len(ended)} times: {log.states[job.id]}"
        assert job.state is ended[0]
        assert job.completed is not None
        if job.state is JobState.DONE:
            assert job.dispatched is not None
            assert job.started is not None
            assert job.finished is not None
            assert job.submitted <= job.dispatched <= job.started <= job.finished <= job.completed, job
            assert job.pid is not None
            assert job.cpu_s is not None
        if job.state in (JobState.FAILED, JobState.CANCELLED):
            assert job.error, f"job {job.id} {job.state} without a reason"


def helper_processes(parent: psutil.Process | None = None) -> set[int]:
    """multiprocessing's resource tracker and forkserver: direct children with their marker.

    Forkserver *workers* are forked from the forkserver without exec, so they share
    its command line; they are told apart by being its children, not ours.
    """
    helpers = set()
    for child in (parent or psutil.Process()).children():
        try:
            cmdline = " ".join(child.cmdline())
        except psutil.Error:
            continue
        if any(marker in cmdline for marker in HELPER_MARKERS):
            helpers.add(child.pid)
    return helpers


def worker_children(parent: psutil.Process | None = None) -> list[psutil.Process]:
    """Live descendants of this test process other than multiprocessing's helpers."""
    parent = parent or psutil.Process()
    helpers = helper_processes(parent)
    found = []
    for child in parent.children(recursive=True):
        try:
            if child.pid in helpers or child.status() == psutil.STATUS_ZOMBIE:
                continue
        except psutil.NoSuchProcess:
            continue
        found.append(child)
    return found


class WorkerWatch:
    """Notes each worker process as it appears, from a thread of its own.

    While a job blocks the event loop only another thread can see it run. With
    ``then``, the first worker found is handed to it ``delay`` seconds later (to
    kill it, say, as ``kill -9`` from another terminal would).
    """

    def __init__(self, then: Callable[[psutil.Process], object] | None = None, delay: float = 0.2) -> None:
        self.found: list[psutil.Process] = []
        self.then, self.delay = then, delay
        self.acted: list[object] = []  # what ``then`` returned
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="test-worker-watch", daemon=True)

    def _watch(self) -> None:
        seen: set[int] = set()
        while not self._stop.is_set():
            for child in worker_children():
                if child.pid not in seen:
                    seen.add(child.pid)
                    self.found.append(child)
            if self.found and self.then is not None and not self.acted:
                time.sleep(self.delay)
                try:
                    self.acted.append(self.then(self.found[0]))
                except psutil.Error as exc:
                    self.acted.append(exc)
            time.sleep(0.01)

    def __enter__(self) -> WorkerWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join()


@pytest.fixture
async def make_engine() -> AsyncIterator[Callable[..., Engine]]:
    """Build engines that are always closed, even when a test fails."""
    engines: list[Engine] = []

    def make(**kwargs: object) -> Engine:
        kwargs.setdefault("workers", 2)
        kwargs.setdefault("keep_results", True)
        engine = Engine(**kwargs)  # type: ignore[arg-type]
        engines.append(engine)
        return engine

    yield make
    for engine in engines:
        await engine.close()


@pytest.fixture
def pane(tmp_path: Path) -> Iterator[TmuxPane]:
    """coredash's terminal: a tmux pane on a server of its own, closed after the test."""
    from tests.terminal import TmuxPane

    pane = TmuxPane(tmp_path)
    try:
        yield pane
    finally:
        pane.close()
