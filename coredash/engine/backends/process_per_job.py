"""One multiprocessing.Process per job, awaited through fds, never join() on the loop."""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import os
from multiprocessing.process import BaseProcess
from typing import TYPE_CHECKING, Any

from coredash.engine.backends._processes import WorkerDied, kill_process, load_result, start_job_process
from coredash.engine.backends.base import (
    Backend,
    BackendContext,
    NotStarted,
    Outcome,
    Unit,
    timeout_text,
)
from coredash.engine.model import JobRecord
from coredash.engine.worker import JobSpec, WorkerResult

if TYPE_CHECKING:
    from coredash.engine.modes import ModeInfo

# How long to wait for a child whose sentinel fired to become reapable: 200 x 5 ms.
REAP_TRIES = 200
REAP_INTERVAL_S = 0.005


class ProcessPerJobBackend(Backend):
    def __init__(self, info: ModeInfo, ctx: BackendContext) -> None:
        super().__init__(info, ctx)
        self._processes: dict[int, BaseProcess] = {}
        self._exiting: set[BaseProcess] = set()  # delivered their result, still shutting down

    async def _call(self, unit: Unit) -> list[WorkerResult]:
        # Never chunked (abilities.chunks is False): one job, one process.
        return [
            await self._run_one(spec, cancel) for spec, cancel in zip(unit.specs, unit.cancels, strict=True)
        ]

    def _judge_exception(self, unit: Unit, exc: Exception) -> list[Outcome] | None:
        if not isinstance(exc, WorkerDied):
            return None
        return [self._judge_death(record, exc) for record in unit.records]

    def _judge_death(self, record: JobRecord, exc: WorkerDied) -> Outcome:
        if record.timed_out:
            return Outcome.failed(
                f"{timeout_text(self.ctx.job_timeout)}: its process pid {exc.pid} was killed"
            )
        if record.cancel_requested:
            return Outcome.cancelled(f"cancelled while running: worker pid {exc.pid} was ended")
        return Outcome.failed(f"worker died: {exc}")

    async def _run_one(self, spec: JobSpec, cancel: Any) -> WorkerResult:
        if self.closed:
            raise NotStarted("coredash closed before it started")
        if cancel is not None and cancel.is_set():
            raise NotStarted("cancelled before it started")
        loop = asyncio.get_running_loop()
        result_reader, result_writer = multiprocessing.Pipe(duplex=False)
        try:
            process = start_job_process(self.ctx, spec, result_writer)
        except BaseException:
            result_reader.close()
            raise
        finally:
            result_writer.close()  # else the parent never sees end-of-file
        self._processes[spec.job_id] = process
        if self.closed or (cancel is not None and cancel.is_set()):
            kill_process(process)  # cancelled while it was being started
        try:
            data, exited = await _collect(loop, result_reader, process.sentinel)
        except asyncio.CancelledError:
            kill_process(process)
            self._reap_later(loop, spec.job_id, process)
            raise
        finally:
            result_reader.close()
        result = load_result(data)
        if result is not None:
            # The whole result is here: the job is over. The child may still be
            # tearing its interpreter down; reap it in the background rather than
            # bill that to the job.
            self._reap_later(loop, spec.job_id, process)
            return result
        try:
            if not exited:
                await _wait_readable(loop, process.sentinel)  # no result: how did it end?
        finally:
            self._processes.pop(spec.job_id, None)
        # The sentinel fired: the child is exiting. Its exit status can take a few
        # milliseconds more to be readable (seen with spawn); wait for it, briefly.
        for _ in range(REAP_TRIES):
            process.join(0)
            if process.exitcode is not None:
                break
            await asyncio.sleep(REAP_INTERVAL_S)
        exitcode, pid = process.exitcode, process.pid
        if exitcode is not None:
            process.close()
        raise WorkerDied(pid, exitcode)

    def _reap_later(self, loop: asyncio.AbstractEventLoop, job_id: int, process: BaseProcess) -> None:
        self._processes.pop(job_id, None)
        self._exiting.add(process)

        def gone(tries: int = 0) -> None:
            if tries == 0:
                loop.remove_reader(process.sentinel)
            process.join(0)
            if process.exitcode is None and tries < REAP_TRIES:
                loop.call_later(REAP_INTERVAL_S, gone, tries + 1)  # not reapable yet (spawn)
                return
            self._exiting.discard(process)
            with contextlib.suppress(ValueError):  # still running after all: leave it to exit
                process.close()

        loop.add_reader(process.sentinel, gone)

    def kill(self, record: JobRecord) -> bool:
        process = self._processes.get(record.id)
        if process is None:
            return False  # not started yet: run() sees the cancel flag before it starts one
        kill_process(process)
        return True

    def shutdown(self) -> None:
        pass  # nothing long-lived to release

    def close(self) -> None:
        self.closed = True
        for process in [*self._processes.values(), *self._exiting]:
            kill_process(process)

    def live_pids(self) -> list[int]:
        pids = []
        for process in [*self._processes.values(), *self._exiting]:
            with contextlib.suppress(ValueError):
                if process.pid is not None:
                    pids.append(process.pid)
        return pids


async def _wait_readable(loop: asyncio.AbstractEventLoop, fd: int) -> None:
    done = loop.create_future()

    def ready() -> None:
        if not done.done():
            done.set_result(None)

    loop.add_reader(fd, ready)
    try:
        await done
    finally:
        loop.remove_reader(fd)


async def _collect(loop: asyncio.AbstractEventLoop, conn: Any, sentinel: int) -> tuple[bytes, bool]:
    """Read a child's result until end-of-file, or until the child itself has exited.

    Waiting for end-of-file alone is not enough: a job that forks leaves copies of
    the pipe in its own children, and the file would stay open after the job's
    process is gone. Returns the bytes and whether the child is known to have exited.
    """
    fd = conn.fileno()
    os.set_blocking(fd, False)
    chunks: list[bytes] = []
    done: asyncio.Future[bool] = loop.create_future()

    def drain() -> bool:
        """Read what is there; True at end-of-file."""
        while True:
            try:
                chunk = os.read(fd, 1 << 20)
            except BlockingIOError:
                return False
            except OSError:
                return True
            if not chunk:
                return True
            chunks.append(chunk)

    def readable() -> None:
        if drain() and not done.done():
            done.set_result(False)

    def exited() -> None:
        drain()  # a child that exited has written all it ever will
        if not done.done():
            done.set_result(True)

    loop.add_reader(fd, readable)
    loop.add_reader(sentinel, exited)
    try:
        child_exited = await done
    finally:
        loop.remove_reader(fd)
        loop.remove_reader(sentinel)
    return b"".join(chunks), child_exited
