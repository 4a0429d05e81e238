"""Dispatch policy: which queued job goes to which executor, and what happens when it comes back.

::

    JobQueue ──_pump──▶ take_unit (chunking) ──_dispatch──▶ Backend.run(unit) in a task
       ▲                                                         │
       └──── _rerun (RERUN, attempts) ◀── list[Outcome] ─────────┤
                                         _finish (DONE/FAILED/CANCELLED) ◀┘
    start reports (pipe or call_soon_threadsafe) ──_on_started──▶ RUNNING, timers, late kills

The scheduler reads what an executor can do from the registry's ``Abilities``
and never names a mode; what an executor's failures mean its backend says.
The ``Engine`` (engine.py) adds the public API, batches, baselines and history.
Everything here runs on the loop thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import multiprocessing
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any

from coredash.engine import limits
from coredash.engine.backends._processes import prepare_multiprocessing
from coredash.engine.backends.base import Backend, BackendContext, Outcome, Unit, Verdict
from coredash.engine.catalog import Catalog
from coredash.engine.chunking import ChunkPolicy, RunEstimates, chunk_size, take_unit
from coredash.engine.jobqueue import JobQueue
from coredash.engine.model import ConfigChanged, EngineEvent, JobRecord, JobState, PoolNotice
from coredash.engine.modes import BASELINE_MODE, REGISTRY, Mode, ModeInfo
from coredash.engine.platform import START_METHODS, default_start_method, usable_cpus
from coredash.engine.worker import JobSpec, ReportReader, StartReport, WorkerLimits
from coredash.taskapi import CancelFlag


class EngineError(Exception):
    """A request the engine cannot take; the message is for the user."""


@dataclass(slots=True)
class InFlight:
    """One dispatched job: everything the scheduler holds for it until it comes back."""

    record: JobRecord
    backend: Backend
    task: asyncio.Task[None]
    cancel: CancelFlag
    timer: asyncio.TimerHandle | None = None


class Scheduler(ABC):
    def __init__(
        self,
        *,
        mode: Mode | str,
        workers: int | None,
        start_method: str | None,
        catalog: Catalog,
        max_attempts: int,
        job_timeout: float | None,
        memory_limit_mb: int | None,
        worker_nice: int,
        chunk: ChunkPolicy | str | int | None,
    ) -> None:
        self.catalog = catalog
        self.usable_cpus = usable_cpus()
        self._mode = self._check_mode(mode)
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
        # Before any UI replaces sys.stderr (see backends._processes.stderr_with_fileno).
        prepare_multiprocessing(self._context)
        self._report_reader_conn, self._report_writer_conn = multiprocessing.Pipe(duplex=False)
        self._reports = ReportReader(self._report_reader_conn)
        self.max_attempts = max_attempts
        try:
            self.job_timeout = None if job_timeout is None else limits.check_job_timeout(job_timeout)
            self.memory_limit_mb = (
                None if memory_limit_mb is None else limits.check_memory_limit(memory_limit_mb)
            )
            nice = limits.check_nice(worker_nice)
            self._chunk = limits.check_chunk(chunk)
        except limits.LimitError as exc:
            raise EngineError(str(exc)) from None
        self.limits = WorkerLimits(self.memory_limit_mb, nice)

        self._loop: asyncio.AbstractEventLoop | None = None
        self._closed = False
        self._jobs: dict[int, JobRecord] = {}
        self._queue = JobQueue(made=self._register, cancelled=self._made_cancelled)
        self._pump_scheduled = False
        self._flights: dict[int, InFlight] = {}  # dispatched or running, oldest first
        self._slots: set[int] = set()  # worker slots in use: one per executor call in flight
        self._estimates = RunEstimates()  # to decide what is tiny enough to chunk
        self._backend: Backend | None = None
        self._retiring: list[Backend] = []
        self._baseline_backend: Backend | None = None
        self._unexplained_breaks: dict[int, int] = {}  # re-runs no culprit explained, per job
        self._idle: asyncio.Event | None = None

    # --- what the engine provides ---------------------------------------------

    @abstractmethod
    def _emit(self, event: EngineEvent) -> None: ...

    @abstractmethod
    def _changed(self, record: JobRecord) -> None: ...

    @abstractmethod
    def _register(self, record: JobRecord) -> None: ...

    @abstractmethod
    def _made_cancelled(self, record: JobRecord, why: str) -> None: ...

    @abstractmethod
    def _finish(self, record: JobRecord, outcome: Outcome) -> None: ...

    def _busy(self) -> None:
        if self._idle is not None:
            self._idle.clear()

    @abstractmethod
    def _first_dispatch(self, batch_id: int, now: float) -> None: ...

    @abstractmethod
    def _chunk_policy_for(self, record: JobRecord) -> ChunkPolicy:
        """The chunk setting of the job's batch (set when it was submitted), else the current one."""

    # --- configuration ---------------------------------------------------

    @property
    def mode(self) -> Mode:
        return self._mode

    @property
    def workers(self) -> int:
        return self._workers

    @property
    def chunk(self) -> ChunkPolicy:
        """The chunk setting batches submitted from now on get."""
        return self._chunk

    @property
    def closed(self) -> bool:
        return self._closed

    @staticmethod
    def _check_mode(mode: Mode | str) -> Mode:
        info = REGISTRY.parse(str(mode))  # ValueError naming the choices
        why = info.reason_unavailable
        if why is not None:
            raise EngineError(f"{info.label} is not available here: {why}")
        return info.mode

    def _check_workers(self, workers: int) -> int:
        try:
            return limits.check_workers(workers, self.usable_cpus)
        except limits.LimitError as exc:
            raise EngineError(str(exc)) from None

    def set_mode(self, mode: Mode | str) -> None:
        """Switch executors: queued jobs go to the new mode, running ones finish where they are."""
        new = self._check_mode(mode)
        if new is self._mode:
            return
        self._mode = new
        self._retire_backend()
        self._emit(ConfigChanged(self._mode, self._workers, self._chunk))
        self._pump()

    def set_workers(self, workers: int) -> None:
        """Change how many jobs may run at once; running jobs are never interrupted."""
        workers = self._check_workers(workers)
        if workers == self._workers:
            return
        self._workers = workers
        self._retire_backend()  # pools have a fixed size: build one of the new size
        self._emit(ConfigChanged(self._mode, self._workers, self._chunk))
        self._pump()

    def set_chunk(self, chunk: ChunkPolicy | str | int | None) -> None:
        """Chunk setting for the next batches (auto, off or N); queued batches keep theirs."""
        try:
            policy = limits.check_chunk(chunk)
        except limits.LimitError as exc:
            raise EngineError(str(exc)) from None
        if policy == self._chunk:
            return
        self._chunk = policy
        self._emit(ConfigChanged(self._mode, self._workers, self._chunk))

    def _build(self, info: ModeInfo, size: int) -> Backend:
        context = BackendContext(
            size=size,
            mp_context=self._context,
            report_conn=self._report_writer_conn,
            report_in_process=self._thread_report,
            limits=self.limits,
            job_timeout=self.job_timeout,
            notice=lambda message: self._emit(PoolNotice(info.mode, message)),
            read_reports=self._read_reports,
            engine_closed=lambda: self._closed,
        )
        backend: Backend = info.backend_class()(info, context)
        mb = self.limits.memory_limit_mb
        if mb is not None and not info.abilities.memory_limit:
            # Said where it bites: the limit is per process, and these jobs share coredash's.
            context.notice(
                f"the memory limit ({mb} MiB) does not apply to {info.label}: "
                "its jobs run inside coredash's own process"
            )
        return backend

    def _current_backend(self) -> Backend:
        """The executor new jobs go to, built on first use (may raise)."""
        if self._backend is not None and not self._backend.reusable:
            self._detach_backend(self._backend)  # broken, or a worker was killed: a fresh one
        if self._backend is None:
            self._backend = self._build(self._mode.info, self._workers)
        return self._backend

    def _baseline_runner(self) -> Backend:
        """Where baseline jobs run: alone, in a fresh process each, whatever the mode."""
        if self._baseline_backend is None:
            self._baseline_backend = self._build(BASELINE_MODE.info, 1)
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
        if self._queue.has_unmade and self._queue.refill() and not self._pump_scheduled:
            self._pump_scheduled = True  # finish cancelled slices a slice at a time
            self._loop.call_soon(self._scheduled_pump)
        ready = self._queue.ready
        while ready and len(self._slots) < self._workers:
            if ready[0].exclusive and self._flights:
                break  # an exclusive job waits for the workers to empty
            if any(flight.record.exclusive for flight in self._flights.values()):
                break  # and nothing runs beside it
            try:
                backend = self._baseline_runner() if ready[0].exclusive else self._current_backend()
            except Exception as exc:  # no executor (out of fds, no /dev/shm...): fail, visibly
                why = f"could not start the {self._mode.label} executor: {type(exc).__name__}: {exc}"
                self._emit(PoolNotice(self._mode, why))
                self._finish(ready.popleft(), Outcome.failed(why))
                continue
            if backend.info.abilities.blocks_loop and backend.inflight:
                # One job at a time whatever the worker count: while it runs the loop is
                # blocked and could not start another. Dispatching more would only show
                # jobs "starting" that wait their turn.
                break
            self._dispatch(take_unit(ready, self._unit_size(ready[0], backend), self._estimates), backend)
        if not self._queue and not self._flights and self._idle is not None:
            self._idle.set()

    def _scheduled_pump(self) -> None:
        self._pump_scheduled = False
        self._pump()

    def _unit_size(self, head: JobRecord, backend: Backend) -> int:
        if not backend.info.abilities.chunks:
            return 1
        if self.job_timeout is not None:
            return 1  # every job gets its own timer; a chunk would hide which one hung
        policy = self._chunk_policy_for(head)
        return chunk_size(head, self._estimates.get(head), len(self._queue.ready), self._workers, policy)

    def _dispatch(self, unit: list[JobRecord], backend: Backend) -> None:
        """Hand one executor call to ``backend``: one job, or a chunk of tiny ones."""
        assert self._loop is not None
        now = time.monotonic()
        abilities = backend.info.abilities
        specs: list[JobSpec] = []
        cancels: list[CancelFlag] = []
        records: list[JobRecord] = []
        slot = self._free_slot()
        prepared: tuple[dict[str, Any], Any, dict[str, Any]] | None = None
        for record in unit:
            if prepared is not None and prepared[0] is record.params:
                info, kwargs = prepared[1], prepared[2]  # a chunk's jobs share their batch's params
            else:
                info = self.catalog.get(record.task)
                try:
                    kwargs = info.call_kwargs(record.params)
                except Exception as exc:
                    self._finish(record, Outcome.failed(f"could not prepare arguments: {exc}"))
                    continue
                prepared = (record.params, info, kwargs)
            record.state = JobState.DISPATCHED
            record.mode = backend.info.mode
            if record.batch_id is not None:
                self._first_dispatch(record.batch_id, now)
            record.slot = slot
            record.dispatched = now
            record.attempts += 1
            record.pid = record.thread_id = record.core = None
            record.thread_name = None
            record.started = None
            record.timed_out = False
            # Every mode gets a flag: in-process jobs check it at checkpoints, the
            # other backends check it before they start the job. The backend makes it:
            # an interpreter cannot read a plain object of this one.
            cancel = backend.new_cancel_flag()
            if record.cancel_requested:
                cancel.set()
            specs.append(
                JobSpec(
                    record.id, record.attempts, info.ref, kwargs, abilities.cpu_clock, abilities.in_process
                )
            )
            cancels.append(cancel)
            records.append(record)
        if not records:
            return
        self._slots.add(slot)
        task = self._loop.create_task(
            self._run(Unit(records, specs, cancels), backend, slot), name=f"coredash-job-{records[0].id}"
        )
        for record, cancel in zip(records, cancels, strict=True):
            record.chunk = len(records)
            self._flights[record.id] = InFlight(record, backend, task, cancel)
            backend.inflight[record.id] = record
            self._changed(record)

    async def _run(self, unit: Unit, backend: Backend, slot: int) -> None:
        try:
            outcomes = await backend.run(unit)
        finally:
            self._slots.discard(slot)
            for record in unit.records:
                flight = self._flights.pop(record.id, None)
                if flight is not None and flight.timer is not None:
                    flight.timer.cancel()
                backend.inflight.pop(record.id, None)
            if backend.retired and not backend.inflight and backend in self._retiring:
                self._retiring.remove(backend)
                backend.shutdown()
        for record, outcome in zip(unit.records, outcomes, strict=True):
            if outcome.verdict is Verdict.RERUN:
                self._rerun(record, outcome)
            else:
                self._finish(record, outcome)
        self._pump()

    def _rerun(self, record: JobRecord, outcome: Outcome) -> None:
        if outcome.alone:
            record.alone = True
        if outcome.unexplained is not None:
            breaks = self._unexplained_breaks[record.id] = self._unexplained_breaks.get(record.id, 0) + 1
            if breaks >= self.max_attempts:
                why = f"{outcome.unexplained} {breaks} times while this job was in it, cause unknown"
                self._finish(record, Outcome.failed(why))
                return
        if self._closed:
            self._finish(record, Outcome.cancelled("coredash closed before it could run again"))
            return
        record.state = JobState.QUEUED
        record.slot = None
        record.chunk = 1
        record.timed_out = False
        record.dispatched = record.started = None
        record.pid = record.thread_id = record.core = None
        record.thread_name = None
        self._queue.put_back(record)
        self._busy()
        self._changed(record)

    # --- start reports, timeouts ---------------------------------------------------

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
        flight = self._flights.get(report.job_id)
        if flight is None or flight.record.attempts != report.attempt:
            return  # a late report for a job that already ended or was re-queued
        record = flight.record
        if record.state is not JobState.DISPATCHED:
            return
        record.state = JobState.RUNNING
        record.pid, record.thread_id, record.thread_name = report.pid, report.thread_id, report.thread_name
        record.core, record.started = report.core, report.started
        self._changed(record)
        if record.chunk > 1:
            # A chunk reports once, for its first job; the rest run after it on the
            # same worker (their own times come back with the results).
            for other in flight.backend.inflight.values():
                if other is not record and other.slot == record.slot:
                    other.pid, other.thread_id, other.thread_name = (
                        report.pid,
                        report.thread_id,
                        report.thread_name,
                    )
            return
        if record.cancel_requested:
            self._kill_worker(flight)  # cancelled before it reported in: end it now
        elif self.job_timeout is not None and self._loop is not None:
            flight.timer = self._loop.call_later(self.job_timeout, self._time_out, record.id, record.attempts)

    def _time_out(self, job_id: int, attempt: int) -> None:
        """The job ran past job_timeout: stop it as its mode allows; it ends failed."""
        flight = self._flights.get(job_id)
        if flight is None or flight.record.attempts != attempt or flight.record.state is not JobState.RUNNING:
            return
        flight.timer = None
        flight.record.timed_out = True
        self._changed(flight.record)
        flight.cancel.set()  # an in-process job stops at its next checkpoint
        self._kill_worker(flight)

    def _kill_worker(self, flight: InFlight) -> None:
        backend = flight.backend
        if not backend.info.abilities.can_kill or not backend.kill(flight.record):
            return
        if not backend.reusable:
            self._detach_backend(backend)  # e.g. a pool whose worker may have died holding its locks

    def _cancel_in_flight(self, record: JobRecord) -> None:
        flight = self._flights.get(record.id)
        if flight is None:
            return
        flight.cancel.set()  # in-process jobs stop at their next checkpoint(); nothing starts after this
        if record.chunk > 1:
            # A chunk is tiny jobs (auto) or at most about a second of measured work (a
            # fixed N, chunking.MAX_CHUNK_WORK_S): not worth a worker; it lands after it.
            return
        # A job not yet started is killed when its start report arrives (if its backend cannot tell).
        self._kill_worker(flight)

    def _backends(self) -> list[Backend]:
        found = [*self._retiring, *([self._backend] if self._backend else [])]
        if self._baseline_backend is not None:
            found.append(self._baseline_backend)
        return found

    def live_worker_pids(self) -> list[int]:
        """Worker processes coredash started that may still be alive (for views and tests)."""
        pids = [pid for backend in self._backends() for pid in backend.live_pids()]
        pids.extend(
            flight.record.pid
            for flight in self._flights.values()
            if flight.record.pid is not None and not flight.backend.info.abilities.in_process
        )
        return sorted(set(pids))
