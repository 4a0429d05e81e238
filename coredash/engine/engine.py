"""The scheduling engine: a visible queue in front of thread and process executors.

The engine runs on the caller's asyncio loop (Textual's in the app,
``asyncio.run`` in the CLI) and never blocks it. It keeps its own queue and
hands at most ``workers`` jobs to the executors at a time, so what waits and what
runs is known at every moment. Every job ends in exactly one of done, failed or
cancelled, whatever happens to the executors underneath.

Everything here runs on the loop thread; records are mutated only there.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import multiprocessing
import signal
import statistics
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from concurrent.futures import BrokenExecutor
from typing import Any, Self

from coredash.engine.backends import (
    Backend,
    NotStarted,
    ProcessPerJobBackend,
    ProcessPoolBackend,
    ThreadBackend,
    WorkerDied,
    describe_call_error,
    describe_exit,
    prepare_multiprocessing,
)
from coredash.engine.catalog import Catalog, TaskInfo
from coredash.engine.model import (
    BatchFinished,
    BatchRecord,
    BatchSummary,
    ConfigChanged,
    EngineEvent,
    EngineSnapshot,
    HistoryCleared,
    JobChanged,
    JobRecord,
    JobState,
    Mode,
    PoolNotice,
)
from coredash.engine.platform import START_METHODS, default_start_method, usable_cpus
from coredash.engine.worker import (
    MAX_MEMORY_LIMIT_MB,
    MAX_NICE,
    MIN_MEMORY_LIMIT_MB,
    JobSpec,
    ReportReader,
    StartReport,
    WorkerLimits,
    WorkerResult,
)
from coredash.taskapi import CancelFlag
from coredash.units import format_seconds

log = logging.getLogger(__name__)

Listener = Callable[[EngineEvent], None]
# How a job ended: state, what the worker measured, reason, traceback.
_Outcome = tuple[JobState, WorkerResult | None, str | None, str | None]

# Process jobs that a broken pool took down beside the culprit are run again, but
# not forever: a pool that keeps breaking (a worker that cannot even start, say)
# must still end every job.
DEFAULT_MAX_ATTEMPTS = 3

# Tiny jobs go to workers in chunks: one executor call (one pickle, one IPC round
# trip, one loop wake-up) for many jobs, so coredash's bookkeeping costs less than
# the executor call it wraps. Only a task (and size) whose measured run time is
# under TINY_JOB_S is chunked, into units of about CHUNK_TARGET_S of work: short
# enough that the dashboard still sees workers change jobs several times a frame.
TINY_JOB_S = 0.002
CHUNK_TARGET_S = 0.01
# A batch's job records are made this many at a time, and only when the queue
# runs low: queueing 100,000 jobs at once froze the dashboard for half a second,
# and 100,000 live records made every full garbage collection take ~100 ms.
SUBMIT_SLICE = 2000
MAX_CHUNK = 256  # the loop digests a chunk's results in one go: keep that a few ms


def max_workers_allowed(cpus: int | None = None) -> int:
    """More workers than this is a typo, not an experiment."""
    return max(32, 16 * (cpus or usable_cpus()))


class EngineError(Exception):
    """A request the engine cannot take; the message is for the user."""


def _params_key(params: dict[str, Any]) -> tuple[tuple[str, str], ...]:
    return tuple(sorted((key, repr(value)) for key, value in params.items()))


class Engine:
    def __init__(
        self,
        *,
        mode: Mode | str = Mode.THREAD,
        workers: int | None = None,
        start_method: str | None = None,
        catalog: Catalog | None = None,
        keep_results: bool = False,
        history: int = 500,
        max_attempts: int = DEFAULT_MAX_ATTEMPTS,
        job_timeout: float | None = None,
        memory_limit_mb: int | None = None,
        worker_nice: int = 0,
        chunking: bool = True,
    ) -> None:
        self.catalog = catalog if catalog is not None else Catalog.builtin()
        self.usable_cpus = usable_cpus()
        self._mode = mode if isinstance(mode, Mode) else Mode.parse(mode)
        self._workers = self._check_workers(workers if workers is not None else self.usable_cpus)
        method = start_method or default_start_method()
        if method not in START_METHODS or method not in multiprocessing.get_all_start_methods():
            available = ", ".join(m for m in START_METHODS if m in multiprocessing.get_all_start_methods())
            raise EngineError(f"unknown start method {method!r}; choose from {available}")
        self.start_method = method
        self._context = multiprocessing.get_context(method)
        if method == "forkserver":
            # Workers then start with the catalogue already imported. (Children
            # still re-run a __main__ *script* on 3.11: keep entry scripts light.)
            import tasks

            # The whole engine, not just the worker module: whatever a child would
            # import itself costs every per-job process ~15 ms (measured).
            self._context.set_forkserver_preload(["coredash.engine.engine", *tasks.MODULES])
        # Before any UI replaces sys.stderr (see backends.stderr_with_fileno).
        prepare_multiprocessing(self._context)
        self._report_reader_conn, self._report_writer_conn = multiprocessing.Pipe(duplex=False)
        self._reports = ReportReader(self._report_reader_conn)
        self.keep_results = keep_results
        self.history = history
        self.max_attempts = max_attempts
        if job_timeout is not None and not job_timeout > 0:
            raise EngineError(f"job_timeout must be a number of seconds above 0, not {job_timeout!r}")
        self.job_timeout = job_timeout
        if memory_limit_mb is not None and not MIN_MEMORY_LIMIT_MB <= memory_limit_mb <= MAX_MEMORY_LIMIT_MB:
            raise EngineError(
                f"memory_limit_mb must be from {MIN_MEMORY_LIMIT_MB} (a Python worker needs that much "
                f"address space to start) to {MAX_MEMORY_LIMIT_MB}, not {memory_limit_mb!r}"
            )
        self.memory_limit_mb = memory_limit_mb
        if not isinstance(worker_nice, int) or not 0 <= worker_nice <= MAX_NICE:
            raise EngineError(f"worker_nice must be a whole number from 0 to {MAX_NICE}, not {worker_nice!r}")
        self.limits = WorkerLimits(memory_limit_mb, worker_nice)
        self.chunking = chunking

        self._loop: asyncio.AbstractEventLoop | None = None
        self._next_job_id = 1
        self._next_batch_id = 1
        self._jobs: dict[int, JobRecord] = {}
        self._queue: deque[JobRecord] = deque()
        # What waits behind the queue, first come first served: batches whose job
        # records are not made yet, and single jobs submitted after them.
        self._unmade: deque[_UnmadeBatch | JobRecord] = deque()
        self._unmade_count = 0
        self._pump_scheduled = False
        self._active: dict[int, JobRecord] = {}
        self._slots: set[int] = set()  # worker slots in use: one per executor call in flight
        self._timers: dict[int, asyncio.TimerHandle] = {}  # job_timeout timers of running jobs
        # Measured run time per task and parameters, to decide what is tiny enough to chunk.
        self._run_estimates: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
        self._key_cache: dict[int, tuple[dict[str, Any], tuple[str, tuple[tuple[str, str], ...]]]] = {}
        self._recent: deque[JobRecord] = deque()
        self._batches: dict[int, BatchRecord] = {}
        self._batch_waiters: dict[int, asyncio.Future[BatchSummary]] = {}
        self._batch_stats: dict[int, _BatchStats] = {}
        self._backend: Backend | None = None
        self._retiring: list[Backend] = []
        self._job_backend: dict[int, Backend] = {}
        self._cancel_events: dict[int, CancelFlag] = {}
        self._unexplained_breaks: dict[int, int] = {}  # pool breaks no culprit explained, per job
        self._job_tasks: dict[int, asyncio.Task[None]] = {}
        self._listeners: list[Listener] = []
        self._event_queues: list[asyncio.Queue[EngineEvent | None]] = []
        # The serial baseline: run times of baseline jobs, per task and parameters.
        # A baseline job runs alone, in a fresh process whatever the mode (on a
        # thread it would share the GIL with the UI and read slow), so one baseline
        # serves every mode and their speedups compare.
        self._baselines: dict[tuple[str, tuple[tuple[str, str], ...]], deque[tuple[float, float]]] = {}
        self._baseline_backend: ProcessPerJobBackend | None = None
        self._ended_intervals: deque[tuple[float, float]] = deque(maxlen=64)
        self._ended_counts = {JobState.DONE: 0, JobState.FAILED: 0, JobState.CANCELLED: 0}
        self._idle: asyncio.Event | None = None
        self._closed = False

    # --- configuration ---------------------------------------------------

    @property
    def mode(self) -> Mode:
        return self._mode

    @property
    def workers(self) -> int:
        return self._workers

    @property
    def closed(self) -> bool:
        return self._closed

    def _check_workers(self, workers: int) -> int:
        limit = max_workers_allowed(self.usable_cpus)
        if not isinstance(workers, int) or isinstance(workers, bool) or not 1 <= workers <= limit:
            raise EngineError(f"workers must be a whole number from 1 to {limit}, not {workers!r}")
        return workers

    def set_mode(self, mode: Mode | str) -> None:
        """Switch executors: queued jobs go to the new mode, running ones finish where they are."""
        new = mode if isinstance(mode, Mode) else Mode.parse(mode)
        if new is self._mode:
            return
        self._mode = new
        self._retire_backend()
        self._emit(ConfigChanged(self._mode, self._workers))
        self._pump()

    def set_workers(self, workers: int) -> None:
        """Change how many jobs may run at once; running jobs are never interrupted."""
        workers = self._check_workers(workers)
        if workers == self._workers:
            return
        self._workers = workers
        self._retire_backend()  # pools have a fixed size: build one of the new size
        self._emit(ConfigChanged(self._mode, self._workers))
        self._pump()

    # --- observers ----------------------------------------------------------

    def subscribe(self, listener: Listener) -> Callable[[], None]:
        """Call ``listener(event)`` on the loop thread for every change; returns an unsubscribe."""
        self._listeners.append(listener)

        def unsubscribe() -> None:
            with contextlib.suppress(ValueError):
                self._listeners.remove(listener)

        return unsubscribe

    async def events(self) -> AsyncIterator[EngineEvent]:
        """Every event from now on, until the engine closes."""
        queue: asyncio.Queue[EngineEvent | None] = asyncio.Queue()
        if self._closed:
            return
        unsubscribe = self.subscribe(queue.put_nowait)
        self._event_queues.append(queue)
        try:
            while (event := await queue.get()) is not None:
                yield event
        finally:
            unsubscribe()
            with contextlib.suppress(ValueError):
                self._event_queues.remove(queue)

    def _emit(self, event: EngineEvent) -> None:
        for listener in list(self._listeners):
            try:
                listener(event)
            except Exception:  # a broken view must not break the engine
                log.exception("engine listener failed")

    def _changed(self, record: JobRecord) -> None:
        record.version += 1
        if self._listeners:
            self._emit(JobChanged(record, record.state))

    def snapshot(self, recent: int = 200, batches: int = 50, queued: int = 50) -> EngineSnapshot:
        """Cheap enough for every redraw, even with a huge queue."""
        counts = dict(self._ended_counts)
        counts[JobState.QUEUED] = len(self._queue) + self._unmade_count
        counts[JobState.DISPATCHED] = counts[JobState.RUNNING] = 0
        for record in self._active.values():
            counts[record.state] += 1
        recent_jobs = tuple(itertools.islice(reversed(self._recent), recent))[::-1]
        batch_list = tuple(self._batches.values())[-batches:] if batches else ()
        return EngineSnapshot(
            mode=self._mode,
            workers=self._workers,
            usable_cpus=self.usable_cpus,
            queued=tuple(itertools.islice(self._queue, queued)),
            active=tuple(self._active.values()),
            recent=recent_jobs,
            batches=batch_list,
            counts=counts,
            draining=len(self._retiring),
        )

    def job(self, job_id: int) -> JobRecord | None:
        return self._jobs.get(job_id)

    def batch(self, batch_id: int) -> BatchRecord | None:
        return self._batches.get(batch_id)

    # --- submitting -----------------------------------------------------------

    def _ensure_started(self) -> asyncio.AbstractEventLoop:
        if self._closed:
            raise EngineError("the engine is closed")
        if self._loop is None:
            self._loop = asyncio.get_running_loop()
            self._loop.add_reader(self._reports.fd, self._read_reports)
            self._idle = asyncio.Event()
            self._idle.set()
        return self._loop

    async def start(self) -> None:
        """Bind to the running loop now (submitting does this too)."""
        self._ensure_started()

    async def warm_up(self) -> bool:
        """Build the current mode's executor and start all its workers.

        Returns False, instead of raising, if that could not be done (the engine
        closed, the mode changed, or the pool broke meanwhile); jobs then meet
        the problem themselves and end with its reason.
        """
        self._ensure_started()
        mode = self._mode
        try:
            backend = self._current_backend()
        except Exception as exc:
            self._emit(PoolNotice(mode, f"could not start the {mode.label} executor: {exc}"))
            return False
        try:
            await backend.warm_up()
        except (Exception, asyncio.CancelledError) as exc:
            if self._closed or backend.closed or backend.retired:
                return False  # replaced (mode or worker change) or closed while warming up
            if isinstance(exc, asyncio.CancelledError):
                raise
            self._emit(PoolNotice(mode, f"could not start the {mode.label} workers: {exc}"))
            return False
        return True

    def submit(
        self,
        task: str,
        params: dict[str, Any] | None = None,
        *,
        exclusive: bool = False,
        label: str | None = None,
    ) -> JobRecord:
        """Queue one job. ``params`` are the function's keyword arguments.

        An ``exclusive`` job waits until nothing runs, then runs alone in a fresh
        process: its run time is a serial baseline sample (what speedups are
        measured against).
        """
        info = self.catalog.get(task)
        params = dict(params) if params is not None else info.params_for()
        info.check_params(params)
        self._ensure_started()
        record = self._new_job(info, params, batch_id=None)
        record.exclusive, record.label = exclusive, label
        self._pump()
        return record

    def submit_baseline(self, task: str, params: dict[str, Any] | None = None) -> JobRecord:
        """Queue one job that runs alone, so later batches of it can report a speedup."""
        return self.submit(task, params, exclusive=True, label="serial baseline")

    def has_baseline(self, task: str, params: dict[str, Any]) -> bool:
        return bool(self._baselines.get((task, _params_key(params))))

    def baseline_pending(self, task: str, params: dict[str, Any]) -> bool:
        """A baseline job for this task and size is queued or running."""
        key = _params_key(params)
        return any(
            record.exclusive and record.task == task and _params_key(record.params) == key
            for record in (*self._active.values(), *self._queue, *self._unmade)
            if isinstance(record, JobRecord)
        )

    def baseline(self, task: str, params: dict[str, Any]) -> tuple[float, float] | None:
        """(median run time of one job alone, when it was last measured), if measured."""
        runs = self._baselines.get((task, _params_key(params)))
        if not runs:
            return None
        return statistics.median(run for run, _ in runs), runs[-1][1]

    def submit_batch(self, task: str, count: int, params: dict[str, Any] | None = None) -> BatchRecord:
        """Queue ``count`` identical jobs as one batch, measured as a whole."""
        info = self.catalog.get(task)
        if not isinstance(count, int) or count < 1:
            raise EngineError(f"a batch needs at least one job, not {count!r}")
        params = dict(params) if params is not None else info.params_for()
        info.check_params(params)
        self._ensure_started()
        batch = BatchRecord(
            id=self._next_batch_id,
            task=info.name,
            params=params,
            count=count,
            mode=self._mode,
            workers=self._workers,
            submitted=time.monotonic(),
        )
        self._next_batch_id += 1
        self._batches[batch.id] = batch
        self._batch_stats[batch.id] = _BatchStats()
        batch.job_ids = list(range(self._next_job_id, self._next_job_id + count))
        self._next_job_id += count
        self._unmade.append(_UnmadeBatch(batch, info))
        self._unmade_count += count
        if self._idle is not None:
            self._idle.clear()
        self._trim_batches()
        self._pump()
        return batch

    def _make_slice(self) -> None:
        """Move the next waiting job(s) into the queue: a parked job, or a slice of a batch."""
        entry = self._unmade[0]
        if isinstance(entry, JobRecord):
            self._unmade.popleft()
            self._unmade_count -= 1
            self._queue.append(entry)
            return
        batch, start = entry.batch, entry.next
        end = min(batch.count, start + SUBMIT_SLICE)
        entry.next = end
        self._unmade_count -= end - start
        if end == batch.count:
            self._unmade.popleft()
        for job_id in batch.job_ids[start:end]:
            record = JobRecord(
                id=job_id,
                task=entry.info.name,
                params=batch.params,
                batch_id=batch.id,
                submitted=batch.submitted,
            )
            self._jobs[job_id] = record
            self._changed(record)
            if entry.cancelled is None:
                self._queue.append(record)
            else:
                self._finish(record, JobState.CANCELLED, error=entry.cancelled)

    def _refill_queue(self) -> None:
        made = 0
        while self._unmade and len(self._queue) < SUBMIT_SLICE and made < 2 * SUBMIT_SLICE:
            made += SUBMIT_SLICE
            self._make_slice()
        if self._unmade and len(self._queue) < SUBMIT_SLICE and not self._pump_scheduled:
            # Cancelled slices add nothing to the queue: finish the rest a slice at a time.
            assert self._loop is not None
            self._pump_scheduled = True
            self._loop.call_soon(self._scheduled_pump)

    def _scheduled_pump(self) -> None:
        self._pump_scheduled = False
        self._pump()

    def _make_all(self) -> None:
        """Every submitted job gets its record now (closing, or a job picked by id)."""
        while self._unmade:
            self._make_slice()

    def _new_job(self, info: TaskInfo, params: dict[str, Any], batch_id: int | None) -> JobRecord:
        record = JobRecord(
            id=self._next_job_id,
            task=info.name,
            params=params,
            batch_id=batch_id,
            submitted=time.monotonic(),
        )
        self._next_job_id += 1
        self._jobs[record.id] = record
        if self._unmade:  # behind the batches still waiting to be made
            self._unmade.append(record)
            self._unmade_count += 1
        else:
            self._queue.append(record)
        if self._idle is not None:
            self._idle.clear()
        self._changed(record)
        return record

    async def wait_batch(self, batch: BatchRecord | int) -> BatchSummary:
        batch_id = batch if isinstance(batch, int) else batch.id
        record = self._batches.get(batch_id)
        if record is None:
            raise EngineError(f"no batch {batch_id}")
        if record.summary is not None:
            return record.summary
        loop = self._ensure_started()
        waiter = self._batch_waiters.get(batch_id)
        if waiter is None:
            waiter = self._batch_waiters[batch_id] = loop.create_future()
        return await asyncio.shield(waiter)

    async def wait_idle(self) -> None:
        """Until nothing is queued or running."""
        self._ensure_started()
        assert self._idle is not None
        await self._idle.wait()

    # --- dispatching ------------------------------------------------------------

    def _current_backend(self) -> Backend:
        """The executor new jobs go to, built on first use (may raise)."""
        if self._backend is None:
            size = self._workers
            if self._mode is Mode.THREAD:
                self._backend = ThreadBackend(size, self._thread_report, self.limits.nice)
            elif self._mode is Mode.PROCESS:
                self._backend = ProcessPoolBackend(size, self._context, self._report_writer_conn, self.limits)
            else:
                self._backend = ProcessPerJobBackend(
                    size, self._context, self._report_writer_conn, self.limits
                )
        return self._backend

    def _baseline_runner(self) -> Backend:
        """Where baseline jobs run: a fresh process each, alone, whatever the mode."""
        if self._baseline_backend is None:
            self._baseline_backend = ProcessPerJobBackend(
                1, self._context, self._report_writer_conn, self.limits
            )
        return self._baseline_backend

    def _detach_backend(self, backend: Backend) -> None:
        """Send no new jobs to ``backend``; release it once its jobs are back."""
        if backend is self._backend:
            self._backend = None
        backend.retired = True
        if backend.inflight:
            if backend not in self._retiring:
                self._retiring.append(backend)
        else:
            backend.shutdown()

    def _retire_backend(self) -> None:
        if self._backend is not None:
            self._detach_backend(self._backend)

    def _free_slot(self) -> int:
        return next(slot for slot in itertools.count() if slot not in self._slots)

    def _pump(self) -> None:
        """Dispatch queued jobs while worker slots are free."""
        if self._closed or self._loop is None:
            return
        if self._unmade:
            self._refill_queue()
        while self._queue and len(self._slots) < self._workers:
            if self._queue[0].exclusive and self._active:
                break  # an exclusive job waits for the workers to empty
            if any(record.exclusive for record in self._active.values()):
                break  # and nothing runs beside it
            try:
                backend = self._baseline_runner() if self._queue[0].exclusive else self._current_backend()
            except Exception as exc:  # no executor (out of fds, no /dev/shm...): fail, visibly
                why = f"could not start the {self._mode.label} executor: {type(exc).__name__}: {exc}"
                self._emit(PoolNotice(self._mode, why))
                self._finish(self._queue.popleft(), JobState.FAILED, error=why)
                continue
            self._dispatch(self._take_unit(backend), backend)
        if not self._queue and not self._active and not self._unmade and self._idle is not None:
            self._idle.set()

    def _estimate_key(self, record: JobRecord) -> tuple[str, tuple[tuple[str, str], ...]]:
        # A batch's jobs share one params dict: compute its key once, not per job.
        entry = self._key_cache.get(id(record.params))
        if entry is None or entry[0] is not record.params:
            if len(self._key_cache) > 256:
                self._key_cache.clear()
            entry = (record.params, (record.task, _params_key(record.params)))
            self._key_cache[id(record.params)] = entry
        return entry[1]

    def _chunk_size(self, head: JobRecord, backend: Backend) -> int:
        """How many jobs like ``head`` to send in one executor call (1: no chunking)."""
        if not self.chunking or head.exclusive or head.alone or backend.mode is Mode.PROCESS_PER_JOB:
            return 1
        if self.job_timeout is not None:
            return 1  # every job gets its own timer; a chunk would hide which one hung
        estimate = self._run_estimates.get(self._estimate_key(head))
        if estimate is None or estimate >= TINY_JOB_S:
            return 1  # not measured yet, or big enough to be worth its own call
        # Enough work to amortise the call, spread so every worker gets a share.
        fair_share = -(-len(self._queue) // max(1, self._workers))
        return max(1, min(MAX_CHUNK, int(CHUNK_TARGET_S / max(estimate, 1e-6)), fair_share))

    def _take_unit(self, backend: Backend) -> list[JobRecord]:
        """The next executor call's jobs: the queue's head, plus like jobs if they are tiny."""
        head = self._queue.popleft()
        unit = [head]
        size = self._chunk_size(head, backend)
        key = self._estimate_key(head) if size > 1 else None
        while len(unit) < size and self._queue:
            record = self._queue[0]
            if (
                record.exclusive
                or record.alone
                or record.cancel_requested
                or record.task != head.task
                or (record.params is not head.params and self._estimate_key(record) != key)
            ):
                break
            unit.append(self._queue.popleft())
        return unit

    def _dispatch(self, unit: list[JobRecord], backend: Backend) -> None:
        """Hand one executor call to ``backend``: one job, or a chunk of tiny ones."""
        assert self._loop is not None
        now = time.monotonic()
        specs: list[JobSpec] = []
        cancels: list[CancelFlag] = []
        records: list[JobRecord] = []
        slot = self._free_slot()
        prepared: tuple[dict[str, Any], TaskInfo, dict[str, Any]] | None = None
        for record in unit:
            if prepared is not None and prepared[0] is record.params:
                info, kwargs = prepared[1], prepared[2]  # a chunk's jobs share their batch's params
            else:
                info = self.catalog.get(record.task)
                try:
                    kwargs = info.call_kwargs(record.params)
                except Exception as exc:
                    self._finish(record, JobState.FAILED, error=f"could not prepare arguments: {exc}")
                    continue
                prepared = (record.params, info, kwargs)
            record.state = JobState.DISPATCHED
            record.mode = backend.mode
            if record.batch_id is not None:
                batch = self._batches.get(record.batch_id)
                if batch is not None and batch.first_dispatched is None:
                    batch.first_dispatched = now
            record.slot = slot
            record.dispatched = now
            record.attempts += 1
            record.pid = record.thread_id = record.core = None
            record.thread_name = None
            record.started = None
            record.timed_out = False
            # Every mode gets a flag: thread jobs check it at checkpoints, the other
            # backends check it before they start the job.
            cancel = self._cancel_events[record.id] = CancelFlag()
            if record.cancel_requested:
                cancel.set()
            specs.append(JobSpec(record.id, record.attempts, info.ref, kwargs, backend.mode.value))
            cancels.append(cancel)
            records.append(record)
        if not records:
            return
        for record in records:
            record.chunk = len(records)
            self._active[record.id] = record
            self._job_backend[record.id] = backend
            backend.inflight.add(record.id)
            self._changed(record)
        self._slots.add(slot)
        task = self._loop.create_task(
            self._run(records, backend, specs, cancels, slot), name=f"coredash-job-{records[0].id}"
        )
        for record in records:
            self._job_tasks[record.id] = task

    async def _run(
        self,
        records: list[JobRecord],
        backend: Backend,
        specs: list[JobSpec],
        cancels: list[CancelFlag],
        slot: int,
    ) -> None:
        outcomes: list[_Outcome | None]
        try:
            if len(specs) == 1:
                results = [await backend.run(specs[0], cancels[0])]
            else:
                results = await backend.run_chunk(specs, cancels)
        except BrokenExecutor as exc:
            outcomes = [await self._judge_break(record, backend, exc) for record in records]
        except NotStarted as exc:
            outcomes = [(JobState.CANCELLED, None, str(exc), None)] * len(records)
        except WorkerDied as exc:
            outcomes = [self._judge_death(record, exc) for record in records]
        except asyncio.CancelledError:
            why = "still running when coredash closed"
            if backend.mode is Mode.THREAD:
                why += " (a thread cannot be stopped; it ignored the cancel flag)"
            outcomes = [(JobState.CANCELLED, None, why, None)] * len(records)
        except Exception as exc:  # e.g. arguments or a result that cannot be pickled
            outcomes = self._judge_call_error(records, backend, exc)
        else:
            outcomes = [
                self._judge_result(record, result) for record, result in zip(records, results, strict=True)
            ]
        finally:
            self._slots.discard(slot)
            for record in records:
                self._active.pop(record.id, None)
                self._job_backend.pop(record.id, None)
                self._job_tasks.pop(record.id, None)
                self._cancel_events.pop(record.id, None)
                timer = self._timers.pop(record.id, None)
                if timer is not None:
                    timer.cancel()
                backend.inflight.discard(record.id)
            if backend.retired and not backend.inflight and backend in self._retiring:
                self._retiring.remove(backend)
                backend.shutdown()
        for record, outcome in zip(records, outcomes, strict=True):
            if outcome is None:  # taken down beside the culprit, or its chunk failed: run it again
                self._requeue(record)
            else:
                state, result_or_none, error, trace = outcome
                self._finish(record, state, result_or_none, error, trace)
        self._pump()

    def _judge_death(self, record: JobRecord, exc: WorkerDied) -> _Outcome:
        """A per-job process ended without a result."""
        if record.timed_out:
            why = f"{self._timeout_text()}: its process pid {exc.pid} was killed"
            return (JobState.FAILED, None, why, None)
        if record.cancel_requested:
            why = f"cancelled while running: worker pid {exc.pid} was ended"
            return (JobState.CANCELLED, None, why, None)
        return (JobState.FAILED, None, f"worker died: {exc}", None)

    def _judge_call_error(
        self, records: list[JobRecord], backend: Backend, exc: Exception
    ) -> list[_Outcome | None]:
        if self._closed or all(record.cancel_requested for record in records):
            return [(JobState.CANCELLED, None, "cancelled before it started", None)] * len(records)
        if len(records) > 1:
            # One job in the chunk spoiled the call (its result would not pickle, say):
            # run them one at a time, so only that job fails, with its own reason.
            for record in records:
                record.alone = True
            self._emit(
                PoolNotice(
                    backend.mode,
                    f"a chunk of {len(records)} {records[0].task} jobs failed as a whole "
                    f"({type(exc).__name__}); re-running them one at a time",
                )
            )
            return [None] * len(records)
        why, trace = describe_call_error(exc)
        return [(JobState.FAILED, None, why, trace)]

    def _timeout_text(self) -> str:
        return f"timed out after {format_seconds(self.job_timeout or 0.0)} (the job timeout)"

    def _judge_result(self, record: JobRecord, result: WorkerResult) -> _Outcome:
        if result.outcome == "done":
            if record.cancel_requested:
                late = (
                    f"it was already in a worker, in a chunk of {record.chunk} tiny jobs"
                    if record.chunk > 1
                    else "finished before the cancel took effect"
                )
                result.value_repr = f"{result.value_repr or ''}  ({late})"
            return (JobState.DONE, result, None, None)
        if result.outcome == "cancelled":
            if record.timed_out:  # the timeout, not a person, set the flag it stopped at
                return (JobState.FAILED, result, f"{self._timeout_text()}: stopped at a checkpoint", None)
            return (JobState.CANCELLED, result, result.error or "cancelled", None)
        return (JobState.FAILED, result, result.error or "failed", result.traceback)

    async def _judge_break(self, record: JobRecord, backend: Backend, exc: BaseException) -> _Outcome | None:
        """A worker died and broke its pool: blame the job it ran, re-run the others."""
        if not isinstance(backend, ProcessPoolBackend):
            return (JobState.FAILED, None, f"executor broke: {exc}", None)
        if backend.judgement is None:
            self._detach_backend(backend)  # the next dispatch builds a fresh pool
            backend.judgement = asyncio.ensure_future(self._judge_pool(backend))
        verdicts, explained = await asyncio.shield(backend.judgement)
        kind, why = verdicts.get(record.id, ("rerun", None))
        if kind == "rerun-alone":
            record.alone = True
            return None  # its chunk's worker died: run the chunk's jobs one by one to find out
        if kind == "cancelled":
            return (JobState.CANCELLED, None, why, None)
        if kind == "failed":
            return (JobState.FAILED, None, why, None)
        if not self._closed and explained:
            return None  # somebody else's crash or cancel: no mark against this job
        breaks = self._unexplained_breaks[record.id] = self._unexplained_breaks.get(record.id, 0) + 1
        if self._closed:
            return (JobState.CANCELLED, None, "coredash closed while its pool was breaking", None)
        if breaks >= self.max_attempts:
            return (
                JobState.FAILED,
                None,
                f"the process pool broke {breaks} times while this job was in it, cause unknown",
                None,
            )
        return None

    async def _judge_pool(
        self, backend: ProcessPoolBackend
    ) -> tuple[dict[int, tuple[str, str | None]], bool]:
        self._read_reports()  # start reports tell which job ran in which pid
        # The pool's manager thread is reaping the workers right now; reading an exit
        # status at the same time can steal it (forkserver) or find none yet (spawn).
        await backend.wait_for_manager(timeout=2.0)
        verdicts = self._verdicts_for_break(backend)
        culprits = [why for kind, why in verdicts.values() if kind == "failed" and why]
        chunked = any(kind == "rerun-alone" for kind, _ in verdicts.values())
        explained = bool(culprits) or bool(backend.killed_pids) or chunked
        if culprits:
            what = culprits[0]
        elif chunked:
            what = "a worker running a chunk of tiny jobs died; they re-run one at a time"
        else:
            what = "a worker was ended" if backend.killed_pids else "a worker died"
        rerun = sum(1 for kind, _ in verdicts.values() if kind.startswith("rerun"))
        if not self._closed:
            self._emit(
                PoolNotice(Mode.PROCESS, f"process pool broke ({what}); {rerun} job(s) beside it re-queued")
            )
        return verdicts, explained

    def _verdicts_for_break(self, backend: ProcessPoolBackend) -> dict[int, tuple[str, str | None]]:
        verdicts: dict[int, tuple[str, str | None]] = {}
        for job_id in backend.inflight:
            record = self._jobs.get(job_id)
            if record is None:
                continue
            pid = record.pid
            if record.chunk > 1:
                # Which of the chunk's jobs ended its worker is not known: unless the
                # worker was a bystander the pool ended, run them again one at a time.
                code = backend.exitcode(pid) if pid is not None else None
                bystander = pid is not None and pid not in backend.killed_pids and code == -signal.SIGTERM
                if record.cancel_requested:
                    verdicts[job_id] = ("cancelled", "cancelled; its chunk's worker had ended")
                else:
                    verdicts[job_id] = ("rerun", None) if bystander else ("rerun-alone", None)
                continue
            if record.timed_out:
                verdicts[job_id] = ("failed", f"{self._timeout_text()}: worker pid {pid} was killed")
                continue
            if record.cancel_requested:
                why = (
                    f"cancelled while running: worker pid {pid} was ended"
                    if pid
                    else "cancelled before it started"
                )
                verdicts[job_id] = ("cancelled", why)
                continue
            if pid is None or pid in backend.killed_pids:
                verdicts[job_id] = ("rerun", None)
                continue
            code = backend.exitcode(pid)
            # Survivors of a broken pool are ended by the pool itself with SIGTERM;
            # a worker that died any other way is the one its job killed.
            if code is not None and code != -signal.SIGTERM:
                verdicts[job_id] = ("failed", f"worker pid {pid} {describe_exit(code)}")
            else:
                verdicts[job_id] = ("rerun", None)
        return verdicts

    def _requeue(self, record: JobRecord) -> None:
        record.state = JobState.QUEUED
        record.slot = None
        record.chunk = 1
        record.timed_out = False
        record.dispatched = record.started = None
        record.pid = record.thread_id = record.core = None
        record.thread_name = None
        self._queue.appendleft(record)  # it already waited its turn once
        if self._idle is not None:
            self._idle.clear()
        self._changed(record)

    def _thread_report(self, report: StartReport) -> None:
        loop = self._loop
        if loop is None:
            return
        with contextlib.suppress(RuntimeError):  # loop closed during shutdown
            loop.call_soon_threadsafe(self._on_started, report)

    def _read_reports(self) -> None:
        for report in self._reports.read_available():
            self._on_started(report)

    def _on_started(self, report: StartReport) -> None:
        job_id, attempt, pid, thread_id, thread_name, core, started = report
        record = self._jobs.get(job_id)
        if record is None or record.attempts != attempt or record.state is not JobState.DISPATCHED:
            return  # a late report for a job that already ended or was re-queued
        record.state = JobState.RUNNING
        record.pid, record.thread_id, record.thread_name = pid, thread_id, thread_name
        record.core, record.started = core, started
        self._changed(record)
        if record.chunk > 1:
            # A chunk reports once, for its first job; the rest run after it on the
            # same worker (their own times come back with the results).
            for other_id in self._backend_inflight_of(record):
                other = self._jobs.get(other_id)
                if other is not None and other is not record and other.slot == record.slot:
                    other.pid, other.thread_id, other.thread_name = pid, thread_id, thread_name
            return
        if record.cancel_requested and record.mode is not Mode.THREAD:
            self._kill_worker(record)  # cancelled before it reported in: end it now
        elif self.job_timeout is not None and self._loop is not None:
            self._timers[record.id] = self._loop.call_later(
                self.job_timeout, self._time_out, record.id, record.attempts
            )

    def _backend_inflight_of(self, record: JobRecord) -> list[int]:
        backend = self._job_backend.get(record.id)
        return list(backend.inflight) if backend is not None else []

    def _time_out(self, job_id: int, attempt: int) -> None:
        """The job ran past job_timeout: stop it as its mode allows; it ends failed."""
        self._timers.pop(job_id, None)
        record = self._jobs.get(job_id)
        if record is None or record.attempts != attempt or record.state is not JobState.RUNNING:
            return
        record.timed_out = True
        self._changed(record)
        event = self._cancel_events.get(job_id)
        if event is not None:
            event.set()  # a thread stops at its next checkpoint; a thread cannot be killed
        if record.mode is not Mode.THREAD:
            self._kill_worker(record)

    def _finish(
        self,
        record: JobRecord,
        state: JobState,
        result: WorkerResult | None = None,
        error: str | None = None,
        trace: str | None = None,
    ) -> None:
        if record.state.terminal:  # exactly one terminal state, ever
            log.error("job %s ended twice (%s, then %s)", record.id, record.state, state)
            return
        record.completed = time.monotonic()
        if result is not None:
            record.pid, record.thread_id, record.thread_name = (
                result.pid,
                result.thread_id,
                result.thread_name,
            )
            record.core, record.end_core = result.core, result.end_core
            record.started, record.finished = result.started, result.finished
            record.cpu_s = result.cpu_s
            record.result_repr = result.value_repr
            if self.keep_results:
                record.result = result.value
        record.state = state
        record.error = error
        record.traceback = trace
        record.slot = None
        if record.started is not None and record.finished is not None:
            if record.exclusive:  # only a baseline job's solitude matters
                record.solo = self._ran_alone(record)
            self._ended_intervals.append((record.started, record.finished))
            run = record.run_s
            if state is JobState.DONE and record.exclusive and record.solo and run is not None:
                key = (record.task, _params_key(record.params))
                self._baselines.setdefault(key, deque(maxlen=5)).append((run, record.completed or 0.0))
            if state is JobState.DONE and run is not None and not record.exclusive:
                key = self._estimate_key(record)
                previous = self._run_estimates.get(key)
                # Smoothed, so one slow job (the machine got busy) does not flip the choice.
                self._run_estimates[key] = run if previous is None else 0.8 * previous + 0.2 * run
        self._ended_counts[state] += 1
        self._unexplained_breaks.pop(record.id, None)
        self._recent.append(record)
        if len(self._recent) > self.history:
            self._trim_history()
        self._changed(record)
        if record.batch_id is not None:
            self._job_ended_in_batch(record)

    def _ran_alone(self, record: JobRecord) -> bool:
        """No other job overlapped this one: its run time is a serial baseline sample."""
        start, end = record.started, record.finished
        if start is None or end is None:
            return False
        for other in self._active.values():
            if other is not record and (other.started is None or other.started < end):
                return False
        return not any(s < end and f > start for s, f in self._ended_intervals)

    def serial_estimate(self, task: str, params: dict[str, Any], jobs: int) -> float | None:
        """jobs x the median run time of this task's baseline jobs (alone, in a process)."""
        found = self.baseline(task, params)
        return None if found is None else jobs * found[0]

    def _job_ended_in_batch(self, record: JobRecord) -> None:
        assert record.batch_id is not None
        batch = self._batches.get(record.batch_id)
        stats = self._batch_stats.get(record.batch_id)
        if batch is None or stats is None:
            return
        stats.add(record)
        batch.ended += 1
        if batch.ended < batch.count:
            return
        batch.summary = stats.summarize(batch, self)
        self._batch_stats.pop(batch.id, None)
        waiter = self._batch_waiters.pop(batch.id, None)
        if waiter is not None and not waiter.done():
            waiter.set_result(batch.summary)
        self._emit(BatchFinished(batch, batch.summary))

    def clear_history(self) -> None:
        """Forget ended jobs, finished batches and serial baselines."""
        for record in self._recent:
            self._jobs.pop(record.id, None)
        self._recent.clear()
        self._baselines.clear()  # the machine may be busier or quieter now: measure again
        for batch_id in [b.id for b in self._batches.values() if b.finished]:
            del self._batches[batch_id]
        self._ended_counts = dict.fromkeys(self._ended_counts, 0)
        self._emit(HistoryCleared())

    def _trim_history(self) -> None:
        while len(self._recent) > self.history:
            self._jobs.pop(self._recent.popleft().id, None)  # _recent holds ended jobs only

    def _trim_batches(self, keep: int = 200) -> None:
        finished = [batch.id for batch in self._batches.values() if batch.finished]
        for batch_id in finished[: max(0, len(self._batches) - keep)]:
            del self._batches[batch_id]

    # --- cancelling ---------------------------------------------------------------

    def cancel(self, job_id: int) -> bool:
        """Cancel one job: at once if queued; running ones are stopped as their mode allows."""
        record = self._jobs.get(job_id)
        if record is None and self._unmade:
            self._make_all()
            record = self._jobs.get(job_id)
        if record is None or record.state.terminal:
            return False
        if record.state is JobState.QUEUED:
            try:
                self._queue.remove(record)
            except ValueError:  # parked behind an unmade batch
                self._unmade.remove(record)
                self._unmade_count -= 1
            self._finish(record, JobState.CANCELLED, error="cancelled while queued")
            self._pump()
            return True
        if record.cancel_requested:
            return True
        record.cancel_requested = True
        self._changed(record)
        event = self._cancel_events.get(job_id)
        if event is not None:
            event.set()  # threads stop at their next checkpoint(); nothing starts after this
        if record.chunk > 1:
            return True  # a chunk of tiny jobs is over in milliseconds: not worth a worker
        if record.mode is Mode.PROCESS_PER_JOB or (record.mode is Mode.PROCESS and record.pid is not None):
            self._kill_worker(record)
        # A process-pool job not yet started is killed when its start report arrives.
        return True

    def _kill_worker(self, record: JobRecord) -> None:
        backend = self._job_backend.get(record.id)
        if backend is None or not backend.kill(record.id, record.pid):
            return
        if isinstance(backend, ProcessPoolBackend):
            # A SIGKILLed worker may die holding the pool's queue locks: never send
            # that pool another job, and end all of its workers once it drains.
            self._detach_backend(backend)

    def cancel_queued(self) -> int:
        queued = list(self._queue)
        self._queue.clear()
        cancelled = len(queued) + self._unmade_count
        for entry in self._unmade:
            if isinstance(entry, JobRecord):
                queued.append(entry)
            else:  # their records are made, cancelled, a slice at a time
                entry.cancelled = "cancelled while queued"
        batches = [entry for entry in self._unmade if isinstance(entry, _UnmadeBatch)]
        self._unmade = deque(batches)
        self._unmade_count = sum(entry.batch.count - entry.next for entry in batches)
        for record in queued:
            self._finish(record, JobState.CANCELLED, error="cancelled while queued")
        self._pump()
        return cancelled

    def kill_running(self) -> int:
        """Stop every dispatched or running job (threads: cooperatively)."""
        return sum(self.cancel(job_id) for job_id in list(self._active))

    def cancel_batch(self, batch_id: int) -> int:
        batch = self._batches.get(batch_id)
        if batch is None:
            return 0
        unmade = 0
        for entry in self._unmade:
            if not isinstance(entry, JobRecord) and entry.batch is batch and entry.cancelled is None:
                entry.cancelled = "cancelled while queued"
                unmade = batch.count - entry.next
        made = sum(self.cancel(job_id) for job_id in batch.job_ids if job_id in self._jobs)
        self._pump()
        return made + unmade

    # --- shutting down ----------------------------------------------------------

    async def close(self, grace: float = 1.5) -> None:
        """Cancel what is queued, end process workers, and return promptly."""
        if self._closed:
            return
        self.cancel_queued()
        self._make_all()  # every job gets its record and its end, even unmade ones
        self._closed = True
        for record in list(self._active.values()):
            record.cancel_requested = True
        for event in self._cancel_events.values():
            event.set()
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()
        backends = [*self._retiring, *([self._backend] if self._backend else [])]
        if self._baseline_backend is not None:
            backends.append(self._baseline_backend)
        for backend in backends:
            backend.close()
        pending = list(self._job_tasks.values())
        if pending:
            _, still_running = await asyncio.wait(pending, timeout=grace)
            for job_task in still_running:
                job_task.cancel()  # thread jobs that ignore the flag: stop waiting for them
            if still_running:
                await asyncio.wait(still_running, timeout=0.5)
        for record in list(self._jobs.values()):  # belt and braces: nothing left open
            if not record.state.terminal:
                self._finish(record, JobState.CANCELLED, error="coredash closed")
        # CPython's exit hook wakes each pool's manager thread through a pipe that
        # the thread closes as it ends; racing it printed "Bad file descriptor"
        # at exit. The workers are dead, so a manager is done within milliseconds.
        for backend in backends:
            if isinstance(backend, ProcessPoolBackend):
                await backend.wait_for_manager(0.5)
        self._backend = None
        self._retiring.clear()
        if self._loop is not None:
            with contextlib.suppress(Exception):
                self._loop.remove_reader(self._reports.fd)
        self._reports.close()
        self._report_writer_conn.close()
        if self._idle is not None:
            self._idle.set()
        for waiter in self._batch_waiters.values():
            if not waiter.done():
                waiter.cancel()
        for queue in self._event_queues:
            queue.put_nowait(None)  # ends every events() iterator

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    def live_worker_pids(self) -> list[int]:
        """Worker processes coredash started that may still be alive (for views and tests)."""
        pids: list[int] = []
        for backend in [*self._retiring, *([self._backend] if self._backend else [])]:
            if isinstance(backend, ProcessPoolBackend):
                pids.extend(backend.worker_pids())
            elif isinstance(backend, ProcessPerJobBackend):
                pids.extend(backend.live_pids())
        if self._baseline_backend is not None:
            pids.extend(self._baseline_backend.live_pids())
        pids.extend(r.pid for r in self._active.values() if r.pid is not None and r.mode is not Mode.THREAD)
        return sorted(set(pids))


class _UnmadeBatch:
    """A batch whose job records from ``next`` on are not made yet."""

    __slots__ = ("batch", "cancelled", "info", "next")

    def __init__(self, batch: BatchRecord, info: TaskInfo) -> None:
        self.batch = batch
        self.info = info
        self.next = 0
        self.cancelled: str | None = None  # made straight into this end


class _BatchStats:
    """Running totals for a batch, so summaries survive the job-history cap."""

    def __init__(self) -> None:
        self.states: dict[JobState, int] = {JobState.DONE: 0, JobState.FAILED: 0, JobState.CANCELLED: 0}
        self.modes: set[Mode] = set()
        self.sum_run = self.sum_cpu = self.sum_wait = self.sum_overhead = 0.0
        self.timed = 0
        self.last_completed = 0.0

    def add(self, record: JobRecord) -> None:
        self.states[record.state] += 1
        if record.mode is not None:
            self.modes.add(record.mode)
        self.last_completed = max(self.last_completed, record.completed or 0.0)
        # CPU burned by any job counts towards how busy the cores were; the means
        # describe finished work only (a job stopped at a checkpoint ran short).
        self.sum_cpu += record.cpu_s or 0.0
        run, wait, overhead = record.run_s, record.wait_s, record.overhead_s
        if record.state is JobState.DONE and run is not None and wait is not None and overhead is not None:
            self.timed += 1
            self.sum_run += run
            self.sum_wait += wait
            self.sum_overhead += overhead

    def summarize(self, batch: BatchRecord, engine: Engine) -> BatchSummary:
        # From the first dispatch, not from submission: time spent queued behind
        # earlier work (another batch, a baseline job) is not this batch's doing.
        began = batch.first_dispatched if batch.first_dispatched is not None else batch.submitted
        makespan = max(1e-9, self.last_completed - began)
        done = self.states[JobState.DONE]
        mode = (
            next(iter(self.modes)).value
            if len(self.modes) == 1
            else ("mixed" if self.modes else batch.mode.value)
        )
        serial = None
        if done == batch.count and len(self.modes) == 1:
            serial = engine.serial_estimate(batch.task, batch.params, batch.count)
        speedup = serial / makespan if serial is not None else None

        def mean(total: float) -> float | None:
            return total / self.timed if self.timed else None

        return BatchSummary(
            batch_id=batch.id,
            task=batch.task,
            params=dict(batch.params),
            mode=mode,
            workers=batch.workers,
            jobs=batch.count,
            done=done,
            failed=self.states[JobState.FAILED],
            cancelled=self.states[JobState.CANCELLED],
            makespan_s=makespan,
            sum_run_s=self.sum_run,
            sum_cpu_s=self.sum_cpu,
            parallelism=self.sum_cpu / makespan,
            mean_wait_s=mean(self.sum_wait),
            mean_run_s=mean(self.sum_run),
            mean_overhead_s=mean(self.sum_overhead),
            serial_s=serial,
            speedup=speedup,
            efficiency=speedup / min(batch.workers, engine.usable_cpus) if speedup is not None else None,
        )
