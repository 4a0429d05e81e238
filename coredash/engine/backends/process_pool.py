"""A ProcessPoolExecutor: long-lived worker processes, one interpreter and GIL each.

When a worker dies, CPython breaks the whole pool: every job in it raises
BrokenProcessPool, the culprit and its innocent neighbours alike. This backend
tells them apart (start reports say which job ran in which pid; exit codes say
who died how) and hands the engine one outcome per job: the culprit failed with
its reason, bystanders re-run.
"""

from __future__ import annotations

import asyncio
import contextlib
import pickle
import signal
import threading
import time
from concurrent.futures import BrokenExecutor, ProcessPoolExecutor
from dataclasses import dataclass
from multiprocessing.process import BaseProcess
from typing import TYPE_CHECKING, Any, Literal

from coredash.engine.backends._processes import (
    check_picklable,
    describe_exit,
    kill_process,
    stderr_with_fileno,
)
from coredash.engine.backends.base import Backend, BackendContext, NotStarted, Outcome, Unit, timeout_text
from coredash.engine.model import JobRecord
from coredash.engine.worker import WorkerResult, init_process_worker, run_pool_job, run_pool_jobs, warm_up

if TYPE_CHECKING:
    from coredash.engine.modes import ModeInfo

BREAK = "the process pool broke"


@dataclass(frozen=True, slots=True)
class _Verdict:
    """What a broken pool did to one job in it."""

    kind: Literal["failed", "cancelled", "rerun", "rerun-alone"]
    why: str | None = None


@dataclass(frozen=True, slots=True)
class _Judgement:
    verdicts: dict[int, _Verdict]
    explained: bool  # somebody (a culprit, a kill, a chunk) accounts for the break


class ProcessPoolBackend(Backend):
    def __init__(self, info: ModeInfo, ctx: BackendContext) -> None:
        super().__init__(info, ctx)
        with stderr_with_fileno():
            self.executor = ProcessPoolExecutor(
                max_workers=ctx.size,
                mp_context=ctx.mp_context,
                initializer=init_process_worker,
                initargs=(ctx.report_conn, True, ctx.limits),
            )
        # The pool's pid -> Process map (private, present in 3.11-3.14). Holding the
        # dict itself keeps it readable after shutdown() drops the attribute; it is
        # how a dead worker's exit code is found when the pool breaks.
        processes = getattr(self.executor, "_processes", None)
        self._processes: dict[int, BaseProcess] = processes if processes is not None else {}
        self.killed_pids: set[int] = set()  # workers ended on purpose
        self._judgement: asyncio.Future[_Judgement] | None = None
        self._ready: asyncio.Future[None] | None = None
        self._manager_thread: threading.Thread | None = None

    @property
    def reusable(self) -> bool:
        # A SIGKILLed worker may die holding the pool's queue locks, and a broken
        # pool takes no jobs: never send such a pool another job.
        return not self.closed and not self.killed_pids and self._judgement is None

    async def _call(self, unit: Unit) -> list[WorkerResult]:
        if not self.closed:
            await self.warm_up()
        if self.closed:
            raise NotStarted("coredash closed before it started")
        specs = unit.specs
        if len(specs) == 1 and unit.cancels[0].is_set():
            raise NotStarted("cancelled before it started")
        check_picklable(
            [spec.kwargs for spec in specs], "its arguments could not be pickled to send to the worker"
        )
        loop = asyncio.get_running_loop()
        with stderr_with_fileno():
            if len(specs) == 1:
                future = loop.run_in_executor(self.executor, run_pool_job, specs[0])
            else:
                future = loop.run_in_executor(self.executor, run_pool_jobs, specs)
        results: WorkerResult | list[WorkerResult] = pickle.loads(await future)
        return results if isinstance(results, list) else [results]

    async def _judge_exception_async(self, unit: Unit, exc: Exception) -> list[Outcome] | None:
        if not isinstance(exc, BrokenExecutor):
            return None
        if self._judgement is None:
            self._judgement = asyncio.ensure_future(self._judge_break())
        judgement = await asyncio.shield(self._judgement)
        return [self._outcome(record, judgement) for record in unit.records]

    def _outcome(self, record: JobRecord, judgement: _Judgement) -> Outcome:
        verdict = judgement.verdicts.get(record.id, _Verdict("rerun"))
        if verdict.kind == "rerun-alone":
            return Outcome.rerun(alone=True)  # its chunk's worker died: one by one, to find out
        if verdict.kind == "cancelled":
            return Outcome.cancelled(verdict.why or "cancelled")
        if verdict.kind == "failed":
            return Outcome.failed(verdict.why or "its worker died")
        if self.ctx.engine_closed():
            return Outcome.cancelled("coredash closed while its pool was breaking")
        if judgement.explained:
            return Outcome.rerun()  # somebody else's crash or cancel: no mark against this job
        return Outcome.rerun(unexplained=BREAK)

    async def _judge_break(self) -> _Judgement:
        self.ctx.read_reports()  # start reports tell which job ran in which pid
        # The pool's manager thread is reaping the workers right now; reading an exit
        # status at the same time can steal it (forkserver) or find none yet (spawn).
        await self.wait_closed(timeout=2.0)
        verdicts = {job_id: self._verdict(record) for job_id, record in self.inflight.items()}
        culprits = [v.why for v in verdicts.values() if v.kind == "failed" and v.why]
        chunked = any(v.kind == "rerun-alone" for v in verdicts.values())
        explained = bool(culprits) or bool(self.killed_pids) or chunked
        if culprits:
            what = culprits[0]
        elif chunked:
            what = "a worker running a chunk of tiny jobs died; they re-run one at a time"
        else:
            what = "a worker was ended" if self.killed_pids else "a worker died"
        rerun = sum(1 for v in verdicts.values() if v.kind in ("rerun", "rerun-alone"))
        if not self.ctx.engine_closed():
            self.ctx.notice(f"process pool broke ({what}); {rerun} job(s) beside it re-queued")
        return _Judgement(verdicts, explained)

    def _verdict(self, record: JobRecord) -> _Verdict:
        pid = record.pid
        if record.chunk > 1:
            # Which of the chunk's jobs ended its worker is not known: unless the
            # worker was a bystander the pool ended, run them again one at a time.
            code = self.exitcode(pid) if pid is not None else None
            bystander = pid is not None and pid not in self.killed_pids and code == -signal.SIGTERM
            if record.cancel_requested:
                return _Verdict("cancelled", "cancelled; its chunk's worker had ended")
            return _Verdict("rerun") if bystander else _Verdict("rerun-alone")
        if record.timed_out:
            return _Verdict("failed", f"{timeout_text(self.ctx.job_timeout)}: worker pid {pid} was killed")
        if record.cancel_requested:
            why = (
                f"cancelled while running: worker pid {pid} was ended"
                if pid
                else "cancelled before it started"
            )
            return _Verdict("cancelled", why)
        if pid is None or pid in self.killed_pids:
            return _Verdict("rerun")
        code = self.exitcode(pid)
        # Survivors of a broken pool are ended by the pool itself with SIGTERM;
        # a worker that died any other way is the one its job killed.
        if code is not None and code != -signal.SIGTERM:
            return _Verdict("failed", f"worker pid {pid} {describe_exit(code)}")
        return _Verdict("rerun")

    async def warm_up(self) -> None:
        # Start every worker before the first job. Spawn and forkserver pools
        # otherwise start workers on demand, and CPython's pool manager only
        # learns a new worker's sentinel the next time it wakes: a worker that
        # dies before then goes unnoticed for as long as its neighbours run.
        # Once all workers exist and each has answered, the manager watches
        # every one of them.
        if self._ready is None:
            self._ready = asyncio.ensure_future(self._start_workers())
        await asyncio.shield(self._ready)

    async def _start_workers(self) -> None:
        loop = asyncio.get_running_loop()
        with stderr_with_fileno():
            futures = [loop.run_in_executor(self.executor, warm_up, 0.0) for _ in range(self.size)]
        # Kept now: shutdown() drops the attribute, and a broken pool's verdict
        # waits for this thread to finish reaping the workers.
        self._manager_thread = getattr(self.executor, "_executor_manager_thread", None)
        await asyncio.gather(*futures)

    async def wait_closed(self, timeout: float) -> None:
        """Until the pool's manager thread has reaped its workers (their exit codes are settled)."""
        thread = self._manager_thread or getattr(self.executor, "_executor_manager_thread", None)
        deadline = time.monotonic() + timeout
        while thread is not None and thread.is_alive() and time.monotonic() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.005)  # a thread to poll, not an event to await

    def live_pids(self) -> list[int]:
        return list(self._processes)

    def exitcode(self, pid: int) -> int | None:
        process = self._processes.get(pid)
        if process is None:
            return None
        try:
            return process.exitcode
        except (ValueError, OSError):
            return None

    def kill(self, record: JobRecord) -> bool:
        pid = record.pid
        process = self._processes.get(pid) if pid is not None else None
        if pid is None or process is None:
            return False  # not started yet: killed when its start report arrives
        self.killed_pids.add(pid)
        kill_process(process)
        return True

    def shutdown(self) -> None:
        # Nothing is in flight, so ending the workers costs nothing, and it is the
        # only safe way out for a pool whose worker was SIGKILLed: that worker may
        # have died holding a queue lock a graceful shutdown would wait on forever.
        self.close()

    def close(self) -> None:
        self.closed = True
        if self._ready is not None:
            # Workers still starting break with the pool now; no one waits to hear it.
            self._ready.add_done_callback(_forget_outcome)
        kill_workers = getattr(self.executor, "kill_workers", None)  # Python 3.14+
        if kill_workers is not None:
            with contextlib.suppress(Exception):
                kill_workers()
        for pid, process in list(self._processes.items()):
            self.killed_pids.add(pid)
            kill_process(process)
        self.executor.shutdown(wait=False, cancel_futures=True)


def _forget_outcome(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()  # retrieved: asyncio does not log it at exit
