"""The engine's public face: submit jobs and batches, watch them, measure them.

The engine runs on the caller's asyncio loop (Textual's in the app,
``asyncio.run`` in the CLI) and never blocks it. It keeps its own queue and
hands at most ``workers`` jobs to a backend at a time, so what waits and what
runs is known at every moment. Every job ends in exactly one of done, failed or
cancelled, whatever happens to the executors underneath.

The engine is policy only: queue, dispatch, attempts, finish. What an executor
can do it reads from the mode registry's ``Abilities``; what an executor's
failures mean its backend says (``backends.base.Outcome``).

Everything here runs on the loop thread; records are mutated only there.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from typing import Any, Self

from coredash.engine import limits
from coredash.engine.backends.base import Outcome
from coredash.engine.catalog import Catalog
from coredash.engine.chunking import AUTO, ChunkPolicy
from coredash.engine.jobqueue import SUBMIT_SLICE
from coredash.engine.model import (
    BatchFinished,
    BatchRecord,
    BatchSummary,
    EngineEvent,
    EngineSnapshot,
    HistoryCleared,
    JobChanged,
    JobRecord,
    JobState,
    PoolNotice,
)
from coredash.engine.modes import DEFAULT_MODE, Mode
from coredash.engine.scheduler import EngineError, Scheduler
from coredash.engine.stats import Baseline, Baselines, BatchStats
from coredash.engine.worker import WorkerResult

__all__ = ["SUBMIT_SLICE", "Engine", "EngineError", "max_workers_allowed"]

log = logging.getLogger(__name__)

Listener = Callable[[EngineEvent], None]
max_workers_allowed = limits.max_workers_allowed

# Jobs that a broken executor took down beside the culprit are run again, but not
# forever: an executor that keeps breaking (a worker that cannot even start, say)
# must still end every job.
DEFAULT_MAX_ATTEMPTS = 3


class Engine(Scheduler):
    def __init__(
        self,
        *,
        mode: Mode | str = DEFAULT_MODE,
        workers: int | None = None,
        start_method: str | None = None,
        catalog: Catalog | None = None,
        keep_results: bool = False,
        history: int = 500,
        max_attempts: int = DEFAULT_MAX_ATTEMPTS,
        job_timeout: float | None = None,
        memory_limit_mb: int | None = None,
        worker_nice: int = 0,
        chunk: ChunkPolicy | str | int | None = AUTO,
    ) -> None:
        self._listeners: list[Listener] = []
        self._event_queues: list[asyncio.Queue[EngineEvent | None]] = []
        self._next_job_id = 1
        self._next_batch_id = 1
        self._recent: deque[JobRecord] = deque()
        self._batches: dict[int, BatchRecord] = {}
        self._batch_waiters: dict[int, asyncio.Future[BatchSummary]] = {}
        self._batch_stats: dict[int, BatchStats] = {}
        self._baselines = Baselines()
        self._ended_counts = {JobState.DONE: 0, JobState.FAILED: 0, JobState.CANCELLED: 0}
        super().__init__(
            mode=mode,
            workers=workers,
            start_method=start_method,
            catalog=catalog if catalog is not None else Catalog.builtin(),
            max_attempts=max_attempts,
            job_timeout=job_timeout,
            memory_limit_mb=memory_limit_mb,
            worker_nice=worker_nice,
            chunk=chunk,
        )
        self.keep_results = keep_results
        self.history = history

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
        counts[JobState.QUEUED] = len(self._queue)
        counts[JobState.DISPATCHED] = counts[JobState.RUNNING] = 0
        for flight in self._flights.values():
            counts[flight.record.state] += 1
        recent_jobs = tuple(itertools.islice(reversed(self._recent), recent))[::-1]
        batch_list = tuple(self._batches.values())[-batches:] if batches else ()
        return EngineSnapshot(
            mode=self._mode,
            workers=self._workers,
            usable_cpus=self.usable_cpus,
            queued=self._queue.head(queued),
            active=tuple(flight.record for flight in self._flights.values()),
            recent=recent_jobs,
            batches=batch_list,
            counts=counts,
            draining=len(self._retiring),
            chunk=self._chunk,
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
        if not exclusive:  # (a baseline runs in a fresh process whatever the mode)
            self._refuse_long_blocking(info.name, params)
        self._ensure_started()
        record = JobRecord(
            id=self._next_job_id, task=info.name, params=params, batch_id=None, submitted=time.monotonic()
        )
        self._next_job_id += 1
        record.exclusive, record.label = exclusive, label
        self._register(record)
        self._queue.add(record)
        self._busy()
        self._pump()
        return record

    def submit_baseline(self, task: str, params: dict[str, Any] | None = None) -> JobRecord:
        """Queue one job that runs alone, so later batches of it can report a speedup."""
        return self.submit(task, params, exclusive=True, label="serial baseline")

    def has_baseline(self, task: str, params: dict[str, Any]) -> bool:
        return self._baselines.has(task, params)

    def baseline_pending(self, task: str, params: dict[str, Any]) -> bool:
        """A baseline job for this task and size is queued or running."""
        key = self._estimates.key
        probe = JobRecord(id=0, task=task, params=params, batch_id=None)
        waiting = itertools.chain((flight.record for flight in self._flights.values()), self._queue.waiting())
        return any(record.exclusive and key(record) == key(probe) for record in waiting)

    def baseline(self, task: str, params: dict[str, Any]) -> Baseline | None:
        """(median run time of one job alone, when it was last measured), if measured."""
        return self._baselines.get(task, params)

    def serial_estimate(self, task: str, params: dict[str, Any], jobs: int) -> float | None:
        """jobs x the median run time of this task's baseline jobs (alone, in a process)."""
        found = self._baselines.get(task, params)
        return None if found is None else jobs * found.run_s

    def expected_run_s(self, task: str, params: dict[str, Any]) -> float | None:
        """How long one job of this task and size runs, as measured here, else as its size says.

        The serial baseline first (a job alone, as blocking join runs them), then what
        batches measured (in any mode: beside others it may read slower).
        """
        baseline = self._baselines.get(task, params)
        if baseline is not None:
            return baseline.run_s
        measured = self._estimates.get(JobRecord(id=0, task=task, params=params, batch_id=None))
        return measured if measured is not None else self.catalog.get(task).expected_run_s(params)

    def blocking_refusal(self, task: str, params: dict[str, Any]) -> str | None:
        """Why jobs of this task and size may not run in the current mode (None: they may).

        Only a mode that blocks the event loop refuses, and only jobs expected to
        block it past limits.MAX_BLOCKING_JOB_S; one that runs longer all the same
        is killed there.
        """
        if not self._mode.abilities.blocks_loop:
            return None
        why = limits.blocking_refusal(self.expected_run_s(task, params), self.job_timeout)
        if why is None:
            return None
        info = self.catalog.get(task)
        return f"{info.name} {info.size_param}={limits.shown(params.get(info.size_param))}: {why}"

    def _refuse_long_blocking(self, task: str, params: dict[str, Any]) -> None:
        why = self.blocking_refusal(task, params)
        if why is not None:
            raise EngineError(f"{why}; choose a smaller size, or a mode that does not block the loop")

    def submit_batch(self, task: str, count: int, params: dict[str, Any] | None = None) -> BatchRecord:
        """Queue ``count`` identical jobs as one batch, measured as a whole."""
        info = self.catalog.get(task)
        if not isinstance(count, int) or count < 1:
            raise EngineError(f"a batch needs at least one job, not {count!r}")
        params = dict(params) if params is not None else info.params_for()
        info.check_params(params)
        self._refuse_long_blocking(info.name, params)
        self._ensure_started()
        batch = BatchRecord(
            id=self._next_batch_id,
            task=info.name,
            params=params,
            count=count,
            mode=self._mode,
            workers=self._workers,
            submitted=time.monotonic(),
            chunk=self._chunk,
        )
        self._next_batch_id += 1
        self._batches[batch.id] = batch
        self._batch_stats[batch.id] = BatchStats()
        batch.job_ids = list(range(self._next_job_id, self._next_job_id + count))
        self._next_job_id += count
        self._queue.add_batch(batch, info)
        self._busy()
        self._trim_batches()
        self._pump()
        return batch

    def _first_dispatch(self, batch_id: int, now: float) -> None:
        batch = self._batches.get(batch_id)
        if batch is not None and batch.first_dispatched is None:
            batch.first_dispatched = now

    def _chunk_policy_for(self, record: JobRecord) -> ChunkPolicy:
        batch = self._batches.get(record.batch_id) if record.batch_id is not None else None
        return batch.chunk if batch is not None else self._chunk

    def _register(self, record: JobRecord) -> None:
        self._jobs[record.id] = record
        self._changed(record)

    def _made_cancelled(self, record: JobRecord, why: str) -> None:
        self._finish(record, Outcome.cancelled(why))

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

    # --- ending -----------------------------------------------------------------

    def _finish(self, record: JobRecord, outcome: Outcome) -> None:
        if record.state.terminal:  # exactly one terminal state, ever
            log.error("job %s ended twice (%s, then %s)", record.id, record.state, outcome.verdict)
            return
        record.completed = time.monotonic()
        result = outcome.result
        if result is not None:
            self._take_result(record, result)
        record.state = JobState(outcome.verdict.value)
        record.error = outcome.reason
        record.traceback = outcome.traceback
        record.slot = None
        if record.started is not None and record.finished is not None:
            self._baselines.ended(record, (flight.record for flight in self._flights.values()))
            run = record.run_s
            if record.state is JobState.DONE and run is not None and not record.exclusive:
                self._estimates.learn(record, run)
        self._ended_counts[record.state] += 1
        self._unexplained_breaks.pop(record.id, None)
        self._recent.append(record)
        if len(self._recent) > self.history:
            self._trim_history()
        self._changed(record)
        if record.batch_id is not None:
            self._job_ended_in_batch(record)

    def _take_result(self, record: JobRecord, result: WorkerResult) -> None:
        record.pid, record.thread_id, record.thread_name = result.pid, result.thread_id, result.thread_name
        record.core, record.end_core = result.core, result.end_core
        record.started, record.finished = result.started, result.finished
        record.cpu_s = result.cpu_s
        record.result_repr = result.value_repr
        if self.keep_results:
            record.result = result.value

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
        batch.summary = stats.summarize(
            batch, self._baselines.get(batch.task, batch.params), self.usable_cpus
        )
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
        if record is None and self._queue.has_unmade:
            self._queue.make_all()
            record = self._jobs.get(job_id)
        if record is None or record.state.terminal:
            return False
        if record.state is JobState.QUEUED:
            self._queue.remove(record)
            self._finish(record, Outcome.cancelled("cancelled while queued"))
            self._pump()
            return True
        if record.cancel_requested:
            return True
        record.cancel_requested = True
        self._changed(record)
        self._cancel_in_flight(record)
        return True

    def cancel_queued(self) -> int:
        cancelled = len(self._queue)
        for record in self._queue.cancel_all("cancelled while queued"):
            self._finish(record, Outcome.cancelled("cancelled while queued"))
        self._pump()
        return cancelled

    def kill_running(self) -> int:
        """Stop every dispatched or running job (in-process ones: cooperatively)."""
        return sum(self.cancel(job_id) for job_id in list(self._flights))

    def cancel_batch(self, batch_id: int) -> int:
        batch = self._batches.get(batch_id)
        if batch is None:
            return 0
        unmade = self._queue.cancel_unmade_of(batch, "cancelled while queued")
        made = sum(self.cancel(job_id) for job_id in batch.job_ids if job_id in self._jobs)
        self._pump()
        return made + unmade

    # --- shutting down ----------------------------------------------------------

    async def close(self, grace: float = 1.5) -> None:
        """Cancel what is queued, end process workers, and return promptly."""
        if self._closed:
            return
        self.cancel_queued()
        self._queue.make_all()  # every job gets its record and its end, even unmade ones
        self._closed = True
        for flight in self._flights.values():
            flight.record.cancel_requested = True
            flight.cancel.set()
            if flight.timer is not None:
                flight.timer.cancel()
        backends = self._backends()
        for backend in backends:
            backend.close()
        pending = list({flight.task for flight in self._flights.values()})
        if pending:
            _, still_running = await asyncio.wait(pending, timeout=grace)
            for job_task in still_running:
                job_task.cancel()  # in-process jobs that ignore the flag: stop waiting for them
            if still_running:
                await asyncio.wait(still_running, timeout=0.5)
        for record in list(self._jobs.values()):  # belt and braces: nothing left open
            if not record.state.terminal:
                self._finish(record, Outcome.cancelled("coredash closed"))
        # CPython's exit hook wakes each pool's manager thread through a pipe that
        # the thread closes as it ends; racing it printed "Bad file descriptor"
        # at exit. The workers are dead, so a manager is done within milliseconds.
        for backend in backends:
            await backend.wait_closed(0.5)
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
