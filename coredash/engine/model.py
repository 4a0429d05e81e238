"""The engine's records: job and batch records, events, snapshots.

All timestamps are ``time.monotonic()`` seconds. That clock is system-wide on
every platform CPython supports, so "started" and "finished", taken inside a
worker process, line up with "submitted" and "completed", taken on the loop.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from coredash.engine.chunking import AUTO, ChunkPolicy
from coredash.engine.modes import Mode


class JobState(StrEnum):
    QUEUED = "queued"
    """Waiting in coredash's own queue for a free worker slot."""
    DISPATCHED = "dispatched"
    """Handed to an executor; no worker has reported starting it yet."""
    RUNNING = "running"
    """A worker reported that it started the job (pid, thread, core known)."""
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def terminal(self) -> bool:
        return self in TERMINAL_STATES


# Below this run time a CPU÷wall ratio is mostly clock granularity (it can read 1.6).
MIN_RATIO_RUN_S = 0.002

TERMINAL_STATES = frozenset({JobState.DONE, JobState.FAILED, JobState.CANCELLED})


@dataclass(slots=True)
class JobRecord:
    """One job, owned and mutated by the engine on the loop thread only.

    Readers must treat it as read-only. ``version`` grows on every change so a
    view can redraw just the rows that changed.
    """

    id: int
    task: str
    params: dict[str, Any]
    batch_id: int | None
    state: JobState = JobState.QUEUED
    # Runs alone in a fresh process (a serial baseline measurement); label says why.
    exclusive: bool = False
    label: str | None = None
    mode: Mode | None = None  # the mode it was dispatched in
    attempts: int = 0  # dispatches; > 1 when re-run after a pool broke beside it
    slot: int | None = None  # worker slot 0..workers-1 while active
    # Jobs sent to a worker together in one executor call (tiny jobs only; see
    # Engine._take_unit). 1 when it went alone.
    chunk: int = 1
    alone: bool = False  # never chunk it again (its chunk's worker died)
    timed_out: bool = False  # ran past the engine's job_timeout and was stopped
    # Timeline (monotonic seconds). started/finished come from inside the worker.
    submitted: float = 0.0
    dispatched: float | None = None
    started: float | None = None
    finished: float | None = None
    completed: float | None = None
    # Where it ran.
    pid: int | None = None
    thread_id: int | None = None  # native thread id (matches /proc/<pid>/task/<tid>)
    thread_name: str | None = None
    core: int | None = None  # CPU core when the job started
    end_core: int | None = None  # CPU core when it finished (jobs migrate)
    cpu_s: float | None = None  # thread CPU (thread mode) or process CPU (process modes)
    solo: bool | None = None  # baseline jobs: ran with no other job overlapping
    # Outcome.
    result_repr: str | None = None
    result: Any = None  # kept only when the engine was built with keep_results=True
    error: str | None = None  # one line: the reason shown for failed/cancelled jobs
    traceback: str | None = None
    cancel_requested: bool = False
    version: int = 0

    # wait + run + overhead = completed - submitted, with no part counted twice.

    @property
    def wait_s(self) -> float | None:
        """Submitted until dispatched: time in coredash's queue, waiting for a worker slot."""
        return None if self.dispatched is None else max(0.0, self.dispatched - self.submitted)

    @property
    def start_overhead_s(self) -> float | None:
        """Dispatched until started: pickling, IPC, process start-up."""
        if self.dispatched is None or self.started is None:
            return None
        return max(0.0, self.started - self.dispatched)

    @property
    def run_s(self) -> float | None:
        if self.started is None or self.finished is None:
            return None
        return max(0.0, self.finished - self.started)

    @property
    def return_overhead_s(self) -> float | None:
        """Finished in the worker until the loop saw the result: pickling, IPC, loop lag."""
        if self.finished is None or self.completed is None:
            return None
        return max(0.0, self.completed - self.finished)

    @property
    def overhead_s(self) -> float | None:
        start, back = self.start_overhead_s, self.return_overhead_s
        if start is None or back is None:
            return None
        return start + back

    @property
    def cpu_ratio(self) -> float | None:
        """CPU time / run time: ~1 when the job had a core to itself, less when it waited (GIL).

        None for runs shorter than the CPU clocks can resolve honestly.
        """
        run = self.run_s
        if self.cpu_s is None or run is None or run < MIN_RATIO_RUN_S:
            return None
        return self.cpu_s / run

    @property
    def where(self) -> str:
        if self.pid is None:
            return "-"
        if self.mode is not None and self.mode.abilities.placement == "thread":
            # "coredash-worker_0" -> "thread 0": the pool's own numbering, then the OS id.
            number = (self.thread_name or "").rpartition("_")[2]
            return f"thread {number} · tid {self.thread_id}" if number.isdigit() else f"tid {self.thread_id}"
        if self.mode is not None and self.mode.abilities.placement == "interpreter":
            # The worker names its thread "interpreter <id>" from inside (PEP 734's ids).
            name = self.thread_name if (self.thread_name or "").startswith("interpreter") else "interpreter"
            return f"{name} · tid {self.thread_id}"
        return f"pid {self.pid}"


@dataclass(frozen=True, slots=True)
class BatchSummary:
    """Aggregates for a batch once every job in it has ended."""

    batch_id: int
    task: str
    params: dict[str, Any]
    mode: str  # a Mode value, or "mixed" if a mode switch split the batch
    workers: int
    jobs: int
    done: int
    failed: int
    cancelled: int
    makespan_s: float  # first job dispatched until the last job completed
    sum_run_s: float
    sum_cpu_s: float
    parallelism: float  # sum_cpu_s / makespan_s: cores kept busy on average
    mean_wait_s: float | None  # means over the jobs that finished (None: none did)
    mean_run_s: float | None
    mean_overhead_s: float | None
    serial_s: float | None  # jobs x the baseline: one job alone in a fresh process
    speedup: float | None  # serial_s / makespan_s
    efficiency: float | None  # speedup / min(workers, usable cores)
    chunk: ChunkPolicy = AUTO  # the batch's chunk setting
    mean_chunk: float | None = None  # jobs per executor call, as dispatched (None: none was)

    @property
    def complete(self) -> bool:
        return self.done == self.jobs

    @property
    def jobs_per_s(self) -> float:
        """Finished jobs per second of makespan: what chunking (or its absence) changes most."""
        return self.done / self.makespan_s

    @property
    def chunk_text(self) -> str:
        """How its jobs went to the workers: "chunk 1", "chunk auto (≈40)"."""
        return self.chunk.describe(self.mean_chunk)


@dataclass(slots=True)
class BatchRecord:
    id: int
    task: str
    params: dict[str, Any]
    count: int
    mode: Mode  # mode when submitted
    workers: int  # worker count when submitted
    submitted: float
    chunk: ChunkPolicy = AUTO  # its jobs are dispatched with this chunk setting, whatever comes later
    first_dispatched: float | None = None  # makespan runs from here to the last completion
    job_ids: list[int] = field(default_factory=list)
    ended: int = 0  # jobs in a terminal state
    summary: BatchSummary | None = None

    @property
    def finished(self) -> bool:
        return self.summary is not None


@dataclass(frozen=True, slots=True)
class JobChanged:
    job: JobRecord
    state: JobState  # the state this event reports (the record may have moved on)


@dataclass(frozen=True, slots=True)
class BatchFinished:
    batch: BatchRecord
    summary: BatchSummary


@dataclass(frozen=True, slots=True)
class ConfigChanged:
    mode: Mode
    workers: int
    chunk: ChunkPolicy = AUTO  # for batches submitted from now on


@dataclass(frozen=True, slots=True)
class PoolNotice:
    """Something happened to an executor that a user should see (a worker died...)."""

    mode: Mode
    message: str


@dataclass(frozen=True, slots=True)
class HistoryCleared:
    """Ended jobs, finished batches and serial baselines were forgotten."""


EngineEvent = JobChanged | BatchFinished | ConfigChanged | PoolNotice | HistoryCleared


@dataclass(frozen=True, slots=True)
class EngineSnapshot:
    """A cheap view of the engine for a periodic redraw. Records are shared, not copied."""

    mode: Mode
    workers: int
    usable_cpus: int
    queued: tuple[JobRecord, ...]  # the head of the queue (capped); counts has the total
    active: tuple[JobRecord, ...]  # dispatched or running, oldest first
    recent: tuple[JobRecord, ...]  # ended jobs, newest last (capped)
    batches: tuple[BatchRecord, ...]  # newest last (capped)
    counts: dict[JobState, int]  # queued/dispatched/running now; ended ones since the last clear
    draining: int  # retired executors still finishing jobs after a mode/worker change
    chunk: ChunkPolicy = AUTO  # the chunk setting new batches get
