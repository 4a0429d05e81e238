"""Executors behind the three modes, each awaited from the caller's asyncio loop.

A backend has a fixed size. Changing the mode or the worker count retires the
current backend (it finishes what it is running, then shuts down) and builds a
new one, so a pool's size always equals the worker count it was built for.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import os
import pickle
import signal
import sys
import threading
from abc import ABC, abstractmethod
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from multiprocessing.context import BaseContext
from multiprocessing.process import BaseProcess
from typing import Any

from coredash.engine.model import Mode
from coredash.engine.worker import (
    JobSpec,
    Reporter,
    WorkerResult,
    init_process_worker,
    run_child_job,
    run_job,
    run_pool_job,
    warm_up,
)

THREAD_NAME_PREFIX = "coredash-worker"


class WorkerDied(Exception):
    """A per-job process ended without handing back a result."""

    def __init__(self, pid: int | None, exitcode: int | None) -> None:
        self.pid = pid
        self.exitcode = exitcode
        super().__init__(f"worker pid {pid} {describe_exit(exitcode)}")


def describe_exit(exitcode: int | None) -> str:
    if exitcode is None:
        return "vanished (exit status unknown)"
    if exitcode < 0:
        try:
            name = signal.Signals(-exitcode).name
        except ValueError:
            name = f"signal {-exitcode}"
        return f"was killed by {name}"
    return f"exited with code {exitcode}"


@contextlib.contextmanager
def stderr_with_fileno() -> Iterator[None]:
    """Let multiprocessing start helpers while Textual has replaced sys.stderr.

    Textual swaps sys.stderr for an object whose fileno() is -1; multiprocessing's
    resource tracker hands that fd to the child it spawns and fails with
    "bad value(s) in fds_to_keep". The engine starts the tracker early; this
    guard covers a tracker that has to be restarted later.
    """
    current = sys.stderr
    try:
        usable = current is not None and current.fileno() >= 0
    except (AttributeError, OSError, ValueError):
        usable = False
    if usable or sys.__stderr__ is None:
        yield
        return
    sys.stderr = sys.__stderr__
    try:
        yield
    finally:
        sys.stderr = current


def prepare_multiprocessing(context: BaseContext) -> None:
    """Start multiprocessing's helper processes now, before any UI takes over stdio."""
    from multiprocessing import resource_tracker

    with stderr_with_fileno():
        resource_tracker.ensure_running()
        if context.get_start_method() == "forkserver":
            from multiprocessing import forkserver

            forkserver.ensure_running()


class Backend(ABC):
    mode: Mode

    def __init__(self, size: int) -> None:
        self.size = size
        self.inflight: set[int] = set()  # job ids dispatched here and not yet returned
        self.retired = False
        self.closed = False

    @abstractmethod
    async def run(self, spec: JobSpec, cancel: threading.Event | None) -> WorkerResult: ...

    def kill(self, job_id: int, pid: int | None) -> bool:
        """End the worker running this job, if this mode can. Returns True if it tried."""
        return False

    async def warm_up(self) -> None:  # noqa: B027  (optional hook: nothing to warm by default)
        """Start every worker now so the first batch does not pay for it."""

    @abstractmethod
    def shutdown(self) -> None:
        """Release the executor once nothing is in flight (running jobs are not touched)."""

    @abstractmethod
    def close(self) -> None:
        """Stop everything now: cancel what waits, end process workers."""


class ThreadBackend(Backend):
    mode = Mode.THREAD

    def __init__(self, size: int, report: Reporter) -> None:
        super().__init__(size)
        # Never the loop's default executor: Textual's own thread workers use that one.
        self.executor = ThreadPoolExecutor(max_workers=size, thread_name_prefix=THREAD_NAME_PREFIX)
        self._report = report

    async def run(self, spec: JobSpec, cancel: threading.Event | None) -> WorkerResult:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.executor, run_job, spec, self._report, cancel)

    async def warm_up(self) -> None:
        loop = asyncio.get_running_loop()
        await asyncio.gather(*(loop.run_in_executor(self.executor, warm_up, 0.01) for _ in range(self.size)))

    def shutdown(self) -> None:
        self.executor.shutdown(wait=False)

    def close(self) -> None:
        self.closed = True
        self.executor.shutdown(wait=False, cancel_futures=True)


class ProcessPoolBackend(Backend):
    mode = Mode.PROCESS

    def __init__(self, size: int, context: BaseContext, report_conn: Any) -> None:
        super().__init__(size)
        with stderr_with_fileno():
            self.executor = ProcessPoolExecutor(
                max_workers=size,
                mp_context=context,
                initializer=init_process_worker,
                initargs=(report_conn,),
            )
        # The pool's pid -> Process map (private, present in 3.11-3.14). Holding the
        # dict itself keeps it readable after shutdown() drops the attribute; it is
        # how a dead worker's exit code is found when the pool breaks.
        processes = getattr(self.executor, "_processes", None)
        self._processes: dict[int, BaseProcess] = processes if processes is not None else {}
        self.killed_pids: set[int] = set()  # workers the engine ended on purpose
        self.broken = False
        self.verdicts: dict[int, tuple[str, str | None]] | None = None  # set when a break is judged
        self._ready: asyncio.Future[None] | None = None

    async def run(self, spec: JobSpec, cancel: threading.Event | None) -> WorkerResult:
        await self.warm_up()
        loop = asyncio.get_running_loop()
        with stderr_with_fileno():
            future = loop.run_in_executor(self.executor, run_pool_job, spec)
        return await future

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
        await asyncio.gather(*futures)

    def worker_pids(self) -> list[int]:
        return list(self._processes)

    def exitcode(self, pid: int) -> int | None:
        process = self._processes.get(pid)
        if process is None:
            return None
        try:
            return process.exitcode
        except (ValueError, OSError):
            return None

    def kill(self, job_id: int, pid: int | None) -> bool:
        if pid is None or pid not in self._processes:
            return False
        self.killed_pids.add(pid)
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        return True

    def shutdown(self) -> None:
        self.executor.shutdown(wait=False)

    def close(self) -> None:
        self.closed = True
        kill_workers = getattr(self.executor, "kill_workers", None)  # Python 3.14+
        if kill_workers is not None:
            with contextlib.suppress(Exception):
                kill_workers()
        for pid in self.worker_pids():
            self.killed_pids.add(pid)
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        self.executor.shutdown(wait=False, cancel_futures=True)


class ProcessPerJobBackend(Backend):
    """One multiprocessing.Process per job, awaited through fds, never join() on the loop."""

    mode = Mode.PROCESS_PER_JOB

    def __init__(self, size: int, context: BaseContext, report_conn: Any) -> None:
        super().__init__(size)
        self._context = context
        self._report_conn = report_conn
        self._processes: dict[int, BaseProcess] = {}

    async def run(self, spec: JobSpec, cancel: threading.Event | None) -> WorkerResult:
        loop = asyncio.get_running_loop()
        result_reader, result_writer = multiprocessing.Pipe(duplex=False)
        process = self._context.Process(  # type: ignore[attr-defined]
            target=run_child_job,
            args=(spec, self._report_conn, result_writer),
            name=f"coredash-job-{spec.job_id}",
            daemon=True,  # multiprocessing ends daemons at exit: a last safety net
        )
        try:
            with stderr_with_fileno():
                process.start()
        finally:
            result_writer.close()  # else the parent never sees end-of-file
        self._processes[spec.job_id] = process
        try:
            data = await _read_until_eof(loop, result_reader)
            await _wait_readable(loop, process.sentinel)
        except asyncio.CancelledError:
            process.kill()
            raise
        finally:
            self._processes.pop(spec.job_id, None)
            result_reader.close()
        process.join(0)  # the sentinel fired: the child is gone, this only reaps it
        exitcode = process.exitcode
        pid = process.pid
        process.close()
        if data:
            try:
                result = pickle.loads(data)
            except Exception:
                result = None  # a child killed mid-write leaves a truncated pickle
            if isinstance(result, WorkerResult) and exitcode == 0:
                return result
        raise WorkerDied(pid, exitcode)

    def kill(self, job_id: int, pid: int | None) -> bool:
        process = self._processes.get(job_id)
        if process is None:
            return False
        with contextlib.suppress(Exception):
            process.kill()
        return True

    def shutdown(self) -> None:
        pass  # nothing long-lived to release

    def close(self) -> None:
        self.closed = True
        for process in list(self._processes.values()):
            with contextlib.suppress(Exception):
                process.kill()


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


async def _read_until_eof(loop: asyncio.AbstractEventLoop, conn: Any) -> bytes:
    fd = conn.fileno()
    os.set_blocking(fd, False)
    chunks: list[bytes] = []
    done = loop.create_future()

    def readable() -> None:
        while True:
            try:
                chunk = os.read(fd, 1 << 20)
            except BlockingIOError:
                return
            except OSError:
                chunk = b""
            if not chunk:
                if not done.done():
                    done.set_result(None)
                return
            chunks.append(chunk)

    loop.add_reader(fd, readable)
    try:
        await done
    finally:
        loop.remove_reader(fd)
    return b"".join(chunks)
