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
import time
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
    WorkerLimits,
    WorkerResult,
    init_process_worker,
    lower_priority,
    one_line_error,
    run_child_job,
    run_job,
    run_jobs,
    run_pool_job,
    run_pool_jobs,
    warm_up,
)
from coredash.taskapi import CancelFlag

THREAD_NAME_PREFIX = "coredash-worker"
# How long to wait for a child whose sentinel fired to become reapable: 200 x 5 ms.
REAP_TRIES = 200
REAP_INTERVAL_S = 0.005


class NotStarted(Exception):
    """The job was never handed to a worker (cancelled, or the executor closed first)."""


class WorkerDied(Exception):
    """A per-job process ended without handing back a result."""

    def __init__(self, pid: int | None, exitcode: int | None) -> None:
        self.pid = pid
        self.exitcode = exitcode
        super().__init__(f"worker pid {pid} {describe_exit(exitcode)}")


# What a person should read into the signal that ended a worker.
_SIGNAL_MEANINGS = {
    signal.SIGSEGV: "segmentation fault: native code touched memory it does not own",
    signal.SIGBUS: "bus error: bad memory access in native code",
    signal.SIGABRT: "aborted, e.g. by a failed assertion in native code",
    signal.SIGFPE: "arithmetic fault in native code",
    signal.SIGILL: "illegal instruction in native code",
    signal.SIGKILL: "killed: from outside, or by the kernel when memory ran out",
    signal.SIGTERM: "asked to terminate, from outside",
}


def describe_exit(exitcode: int | None) -> str:
    if exitcode is None:
        return "vanished (exit status unknown)"
    if exitcode < 0:
        try:
            sig = signal.Signals(-exitcode)
        except ValueError:
            return f"was killed by signal {-exitcode}"
        meaning = _SIGNAL_MEANINGS.get(sig)
        return f"was killed by {sig.name}" + (f" ({meaning})" if meaning else "")
    return f"exited with code {exitcode}" + (" (os._exit or sys.exit in native code)" if exitcode else "")


class SendError(Exception):
    """The job could not be handed to its worker (its arguments would not pickle, say)."""


def _is_pickling_error(exc: BaseException) -> bool:
    text = str(exc)
    return isinstance(exc, pickle.PicklingError) or (
        isinstance(exc, TypeError | AttributeError) and ("pickle" in text or "Can't get local object" in text)
    )


def describe_call_error(exc: BaseException) -> tuple[str, str | None]:
    """A reason a person understands for an executor call that raised, and a traceback.

    A process pool pickles arguments on its feeder thread and results in the worker;
    both come back as the same TypeError, told apart by where it was raised.
    """
    remote = exc.__cause__
    trace = str(remote) if remote is not None else None
    if isinstance(exc, SendError):
        return (str(exc), trace)
    if _is_pickling_error(exc):
        if trace and "_sendback_result" in trace:
            return (f"its result could not be pickled to send back: {one_line_error(exc)}", trace)
        if trace and "_feed" in trace:
            return (f"its arguments could not be pickled to send to the worker: {one_line_error(exc)}", trace)
        return (f"could not be pickled: {one_line_error(exc)}", trace)
    return (one_line_error(exc), trace)


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
    async def run(self, spec: JobSpec, cancel: CancelFlag | None) -> WorkerResult: ...

    async def run_chunk(self, specs: list[JobSpec], cancels: list[CancelFlag]) -> list[WorkerResult]:
        """Run several tiny jobs in one executor call (modes that cannot: one by one)."""
        return [await self.run(spec, cancel) for spec, cancel in zip(specs, cancels, strict=True)]

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

    def __init__(self, size: int, report: Reporter, nice: int = 0) -> None:
        super().__init__(size)
        # Never the loop's default executor: Textual's own thread workers use that one.
        self.executor = ThreadPoolExecutor(
            max_workers=size,
            thread_name_prefix=THREAD_NAME_PREFIX,
            initializer=lower_priority,
            initargs=(nice,),
        )
        self._report = report

    async def run(self, spec: JobSpec, cancel: CancelFlag | None) -> WorkerResult:
        if self.closed:
            raise NotStarted("coredash closed before it started")
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.executor, run_job, spec, self._report, cancel)

    async def run_chunk(self, specs: list[JobSpec], cancels: list[CancelFlag]) -> list[WorkerResult]:
        if self.closed:
            raise NotStarted("coredash closed before it started")
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.executor, run_jobs, specs, self._report, cancels)

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

    def __init__(
        self, size: int, context: BaseContext, report_conn: Any, limits: WorkerLimits | None = None
    ) -> None:
        super().__init__(size)
        with stderr_with_fileno():
            self.executor = ProcessPoolExecutor(
                max_workers=size,
                mp_context=context,
                initializer=init_process_worker,
                initargs=(report_conn, True, limits),
            )
        # The pool's pid -> Process map (private, present in 3.11-3.14). Holding the
        # dict itself keeps it readable after shutdown() drops the attribute; it is
        # how a dead worker's exit code is found when the pool breaks.
        processes = getattr(self.executor, "_processes", None)
        self._processes: dict[int, BaseProcess] = processes if processes is not None else {}
        self.killed_pids: set[int] = set()  # workers the engine ended on purpose
        # Set when the pool breaks: which jobs to blame, and whether anyone was.
        self.judgement: asyncio.Future[tuple[dict[int, tuple[str, str | None]], bool]] | None = None
        self._ready: asyncio.Future[None] | None = None
        self._manager_thread: threading.Thread | None = None

    async def run(self, spec: JobSpec, cancel: CancelFlag | None) -> WorkerResult:
        if not self.closed:
            await self.warm_up()
        if self.closed:
            raise NotStarted("coredash closed before it started")
        if cancel is not None and cancel.is_set():
            raise NotStarted("cancelled before it started")
        loop = asyncio.get_running_loop()
        with stderr_with_fileno():
            future = loop.run_in_executor(self.executor, run_pool_job, spec)
        return await future

    async def run_chunk(self, specs: list[JobSpec], cancels: list[CancelFlag]) -> list[WorkerResult]:
        if not self.closed:
            await self.warm_up()
        if self.closed:
            raise NotStarted("coredash closed before it started")
        loop = asyncio.get_running_loop()
        with stderr_with_fileno():
            future = loop.run_in_executor(self.executor, run_pool_jobs, specs)
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
        # Kept now: shutdown() drops the attribute, and a broken pool's verdict
        # waits for this thread to finish reaping the workers.
        self._manager_thread = getattr(self.executor, "_executor_manager_thread", None)
        await asyncio.gather(*futures)

    async def wait_for_manager(self, timeout: float) -> None:
        """Until the pool's manager thread has reaped its workers (their exit codes are settled)."""
        thread = self._manager_thread or getattr(self.executor, "_executor_manager_thread", None)
        deadline = time.monotonic() + timeout
        while thread is not None and thread.is_alive() and time.monotonic() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.005)  # a thread to poll, not an event to await

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
        process = self._processes.get(pid) if pid is not None else None
        if pid is None or process is None:
            return False
        self.killed_pids.add(pid)
        _kill(process)
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
            _kill(process)
        self.executor.shutdown(wait=False, cancel_futures=True)


def _forget_outcome(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()  # retrieved: asyncio does not log it at exit


class ProcessPerJobBackend(Backend):
    """One multiprocessing.Process per job, awaited through fds, never join() on the loop."""

    mode = Mode.PROCESS_PER_JOB

    def __init__(
        self, size: int, context: BaseContext, report_conn: Any, limits: WorkerLimits | None = None
    ) -> None:
        super().__init__(size)
        self._context = context
        self._report_conn = report_conn
        self._limits = limits
        self._processes: dict[int, BaseProcess] = {}
        self._exiting: set[BaseProcess] = set()  # delivered their result, still shutting down

    async def run(self, spec: JobSpec, cancel: CancelFlag | None) -> WorkerResult:
        if self.closed:
            raise NotStarted("coredash closed before it started")
        if cancel is not None and cancel.is_set():
            raise NotStarted("cancelled before it started")
        loop = asyncio.get_running_loop()
        result_reader, result_writer = multiprocessing.Pipe(duplex=False)
        process = self._context.Process(  # type: ignore[attr-defined]
            target=run_child_job,
            args=(spec, self._report_conn, result_writer, self._limits),
            name=f"coredash-job-{spec.job_id}",
            daemon=True,  # multiprocessing ends daemons at exit: a last safety net
        )
        try:
            with stderr_with_fileno():
                process.start()
        except BaseException as exc:
            result_reader.close()
            if isinstance(exc, Exception) and _is_pickling_error(exc):
                raise SendError(f"the job could not be sent to its process: {one_line_error(exc)}") from exc
            raise
        finally:
            result_writer.close()  # else the parent never sees end-of-file
        self._processes[spec.job_id] = process
        if self.closed or (cancel is not None and cancel.is_set()):
            _kill(process)  # cancelled while it was being started
        try:
            data, exited = await _collect(loop, result_reader, process.sentinel)
        except asyncio.CancelledError:
            _kill(process)
            self._reap_later(loop, spec.job_id, process)
            raise
        finally:
            result_reader.close()
        result = None
        if data:
            try:
                result = pickle.loads(data)
            except Exception:
                result = None  # a child killed mid-write leaves a truncated pickle
        if isinstance(result, WorkerResult):
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

    def kill(self, job_id: int, pid: int | None) -> bool:
        process = self._processes.get(job_id)
        if process is None:
            return False  # not started yet: run() sees the cancel flag before it starts one
        _kill(process)
        return True

    def shutdown(self) -> None:
        pass  # nothing long-lived to release

    def close(self) -> None:
        self.closed = True
        for process in [*self._processes.values(), *self._exiting]:
            _kill(process)

    def live_pids(self) -> list[int]:
        pids = []
        for process in [*self._processes.values(), *self._exiting]:
            with contextlib.suppress(ValueError):
                if process.pid is not None:
                    pids.append(process.pid)
        return pids


def _kill(process: BaseProcess) -> None:
    """SIGKILL through the Process object: it knows whether its pid was already reaped."""
    with contextlib.suppress(ProcessLookupError, PermissionError, ValueError, AttributeError, OSError):
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
