"""Interpreters: an InterpreterPoolExecutor (PEP 734), one interpreter and one GIL per worker thread.

The workers are threads of coredash's own process, so pure-Python jobs fill every
core while the pid stays coredash's. Python 3.14 has the executor built in; 3.13
gets it from the interpreters-pep-734 backport (``coredash[interpreters]``).

What may cross into an interpreter is narrow on purpose. The 3.13 executor never
reports a failure outside the job function (unpickling what it was sent, pickling
what comes back): its thread spins forever and the future never completes. So the
callable is always ``worker.run_interpreter_job``, whose module each interpreter
imports in its initializer before any job; its arguments are bytes and ints; the
jobs' specs and cancel flags are pickled here and unpickled inside the entry point,
where a failure is the job's own; the results come back as bytes pickled in there.
A watchdog bounds the wait anyway.

Cancel flags are bytes of this process's memory (``taskapi.SharedCancelFlag``) that
the interpreter reads in place, so they must outlive its use of them: each call
pins its flags to its concurrent future, which completes only after the
interpreter has returned. Start reports: file descriptors are the process's, so
interpreters ``os.write`` framed reports to the start-report pipe that process
workers use (through a duplicate this backend closes once no job can still write).
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import functools
import importlib
import logging
import os
import pickle
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import BrokenExecutor, Future
from typing import TYPE_CHECKING, Any

from coredash.engine.backends import THREAD_NAME_PREFIX
from coredash.engine.backends._processes import check_picklable
from coredash.engine.backends.base import Backend, BackendContext, NotStarted, Outcome, SendError, Unit
from coredash.engine.worker import WorkerResult, one_line_error, run_interpreter_job
from coredash.taskapi import CancelFlag, SharedCancelFlag

if TYPE_CHECKING:
    from coredash.engine.modes import ModeInfo

# Runs in each new interpreter before its first job (as ``exec(script, names)``: a
# builtin unpickles anywhere). Failures become a plain RuntimeError, which pickles
# back; the executor then reports the pool broken instead of spinning.
_INIT_SCRIPT = """
import sys
sys.path[:] = path  # the host's, so every interpreter imports what coredash imported
try:
    from coredash.engine.worker import init_interpreter_worker
    init_interpreter_worker(nice)
except BaseException as exc:
    raise RuntimeError(f"{type(exc).__name__}: {exc}") from None
"""

WATCH_S = 0.5  # how often a waiting call looks at its status bytes
START_CAP_S = 60.0  # an idle interpreter that has not begun a call in this long never will
RESULT_GRACE_S = 10.0  # the interpreter returned, yet its result has not arrived in this long


def executor_class() -> Any:
    """InterpreterPoolExecutor: the standard library's (3.14+) or the PEP 734 backport's (3.13)."""
    if sys.version_info >= (3, 14):
        from concurrent.futures import InterpreterPoolExecutor

        return InterpreterPoolExecutor
    # By name: the backport has no type hints, and is absent where the mode is unavailable.
    backport = importlib.import_module("interpreters_backport.concurrent.futures.interpreter")
    return backport.InterpreterPoolExecutor


class _CallStatus:
    """Two bytes the interpreter sets: it began the call, it returned from it."""

    __slots__ = ("_bytes", "address", "since")

    def __init__(self) -> None:
        self._bytes = (ctypes.c_uint8 * 2)()
        self.address = ctypes.addressof(self._bytes)
        self.since = time.monotonic()

    @property
    def entered(self) -> bool:
        return self._bytes[0] != 0

    @property
    def returned(self) -> bool:
        return self._bytes[1] != 0


class _InitializerFailures(logging.Filter):
    """Keeps concurrent.futures from printing a failed initializer's traceback over the UI.

    Only for coredash's own worker threads; the backend says what failed instead, in a
    notice and in each job's reason (the one-line cause is kept here for that).
    """

    def __init__(self) -> None:
        super().__init__()
        self.last: str | None = None
        self._installed = False

    def install(self) -> None:
        if not self._installed:
            self._installed = True
            logging.getLogger("concurrent.futures").addFilter(self)

    def filter(self, record: logging.LogRecord) -> bool:
        ours = (record.threadName or "").startswith(THREAD_NAME_PREFIX)
        if not ours or record.msg != "Exception in initializer:" or not record.exc_info:
            return True
        error = record.exc_info[1]
        if error is not None:  # the init script's RuntimeError says what it caught
            self.last = str(error).strip().splitlines()[0] if str(error).strip() else one_line_error(error)
        return False


_initializer_failures = _InitializerFailures()


class Stuck(Exception):
    """The executor lost a call (it never began, or its result never came back)."""


class InterpreterBackend(Backend):
    # The entry point shipped to interpreters (tests swap in a faulty one, in a child process).
    entry: Callable[..., bytes] = staticmethod(run_interpreter_job)
    start_cap_s = START_CAP_S
    result_grace_s = RESULT_GRACE_S

    def __init__(self, info: ModeInfo, ctx: BackendContext) -> None:
        super().__init__(info, ctx)
        self._broken: str | None = None  # it lost a call: retired
        self._start_failed = False  # an interpreter could not start (said once)
        _initializer_failures.install()
        self._ready: asyncio.Future[None] | None = None
        # Jobs write start reports here from inside their interpreters. A duplicate of
        # the engine's pipe end, so that a job still starting when the engine closes
        # its end never writes into whatever file reuses that number.
        self._report_fd: int | None = os.dup(ctx.report_conn.fileno())
        self._calls = 0  # submitted and not yet finished in their interpreter
        self._released = False  # shut down: the fd goes when the last call finishes
        self._lock = threading.Lock()  # _calls is counted down on the executor's threads
        names = {"path": list(sys.path), "nice": ctx.limits.nice}
        self.executor = executor_class()(
            max_workers=ctx.size,
            thread_name_prefix=THREAD_NAME_PREFIX,  # samplers and the quit path find them by it
            initializer=exec,
            initargs=(_INIT_SCRIPT, names),
        )

    @property
    def reusable(self) -> bool:
        return not self.closed and self._broken is None

    def new_cancel_flag(self) -> CancelFlag:
        return SharedCancelFlag()

    async def _call(self, unit: Unit) -> list[WorkerResult]:
        if self.closed:
            raise NotStarted("coredash closed before it started")
        specs = unit.specs
        if len(specs) == 1 and unit.cancels[0].is_set():
            raise NotStarted("cancelled before it started")
        check_picklable(
            [spec.kwargs for spec in specs], "its arguments could not be pickled to send to the interpreter"
        )
        try:
            payload = pickle.dumps((specs, unit.cancels), protocol=pickle.HIGHEST_PROTOCOL)
        except Exception as exc:
            why = f"it could not be pickled to send to the interpreter: {one_line_error(exc)}"
            raise SendError(why) from exc
        heads = tuple((spec.job_id, spec.attempt) for spec in specs)
        status = _CallStatus()
        future = self._submit(payload, heads, status, unit.cancels)
        data = await self._wait(future, status)
        try:
            results: list[WorkerResult] = pickle.loads(data)
        except Exception as exc:  # not what run_interpreter_job returns
            why = f"its result could not be read back from the interpreter: {one_line_error(exc)}"
            raise SendError(why) from exc
        return results

    def _submit(
        self,
        payload: bytes,
        heads: tuple[tuple[int, int], ...],
        status: _CallStatus,
        cancels: list[CancelFlag],
    ) -> Future[bytes]:
        with self._lock:
            fd = self._report_fd
            if fd is None or self.closed:
                raise NotStarted("coredash closed before it started")
            self._calls += 1
        try:
            future: Future[bytes] = self.executor.submit(self.entry, payload, heads, status.address, fd)
        except BaseException:
            self._finished((), None)
            if self.closed:
                raise NotStarted("coredash closed before it started") from None
            raise
        # The memory the interpreter reads (flags, status) lives as long as this callback,
        # which the future holds until it is done: after the interpreter has returned.
        future.add_done_callback(functools.partial(self._finished, (cancels, status)))
        return future

    def _finished(self, pinned: object, future: Future[bytes] | None) -> None:
        with self._lock:
            self._calls -= 1
        self._close_fd_if_idle()

    def _close_fd_if_idle(self) -> None:
        with self._lock:
            fd = self._report_fd
            if fd is None or not self._released or self._calls > 0:
                return
            self._report_fd = None
        with contextlib.suppress(OSError):
            os.close(fd)

    async def _wait(self, future: Future[bytes], status: _CallStatus) -> bytes:
        waiting = asyncio.wrap_future(future)
        returned_at: float | None = None
        try:
            while True:
                done, _ = await asyncio.wait({waiting}, timeout=WATCH_S)
                if done:
                    if waiting.cancelled():  # the executor dropped it, queued, as it shut down
                        raise NotStarted("coredash closed before it started")
                    return waiting.result()
                now = time.monotonic()
                if status.returned:
                    returned_at = returned_at or now
                    if now - returned_at > self.result_grace_s:
                        raise Stuck(
                            "its result never came back from the interpreter "
                            f"({self.result_grace_s:g} s after the job returned)"
                        )
                elif not status.entered and now - status.since > self.start_cap_s:
                    raise Stuck(f"no interpreter began it within {self.start_cap_s:g} s")
        finally:
            if not waiting.done():
                # Cancels only the wrapper (a running call cannot be): its result, if it
                # ever comes, is then dropped instead of being set on a closed loop.
                waiting.cancel()

    def _judge_exception(self, unit: Unit, exc: Exception) -> list[Outcome] | None:
        if isinstance(exc, Stuck):
            why = f"the interpreter pool lost it: {exc}"
            if self._broken is None:  # no new job goes here: a fresh pool takes the next ones
                self._broken = why
                self._notice(
                    f"{why}; a fresh pool takes the next jobs (its thread may stay busy until you quit)"
                )
            return [Outcome.failed(why)] * len(unit.records)
        if isinstance(exc, BrokenExecutor):
            # Only a failed initializer breaks this pool, and a fresh one would fail the same
            # way: the pool is kept, and every job sent to it fails at once with this reason.
            cause = _initializer_failures.last or one_line_error(exc)
            why = f"the interpreter pool is broken: an interpreter could not start ({cause})"
            if not self._start_failed:
                self._start_failed = True
                self._notice(f"{why}; use another mode")
            return [Outcome.failed(why)] * len(unit.records)
        return None

    def _notice(self, message: str) -> None:
        if not self.ctx.engine_closed():
            self.ctx.notice(message)

    async def warm_up(self) -> None:
        # Each worker thread makes its interpreter and imports coredash on its first call.
        if self._ready is None:
            self._ready = asyncio.ensure_future(self._start_workers())
        await asyncio.shield(self._ready)

    async def _start_workers(self) -> None:
        loop = asyncio.get_running_loop()
        # os.getpid: a builtin, which unpickles in any interpreter and returns a shareable int.
        calls = [loop.run_in_executor(self.executor, os.getpid) for _ in range(self.size)]
        with contextlib.suppress(BrokenExecutor):  # each job sent here then fails with the reason
            await asyncio.gather(*calls)

    async def wait_closed(self, timeout: float) -> None:
        """Until the worker threads have ended (and destroyed their interpreters)."""
        threads = list(getattr(self.executor, "_threads", ()))
        deadline = time.monotonic() + timeout
        while any(thread.is_alive() for thread in threads) and time.monotonic() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.005)  # threads to poll, not an event to await

    def _release(self) -> None:
        with self._lock:
            self._released = True
        self._close_fd_if_idle()

    def shutdown(self) -> None:
        self.executor.shutdown(wait=False)
        self._release()

    def close(self) -> None:
        self.closed = True
        if self._ready is not None:
            self._ready.add_done_callback(_forget_outcome)
        # Queued calls are cancelled; running ones stop at their next checkpoint (the
        # engine has set their flags).
        self.executor.shutdown(wait=False, cancel_futures=True)
        self._release()


def _forget_outcome(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()
