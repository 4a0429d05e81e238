"""What the backends that run jobs in other processes share: start-up guards, exits, kills."""

from __future__ import annotations

import contextlib
import pickle
import signal
import sys
from collections.abc import Iterator
from multiprocessing.context import BaseContext
from multiprocessing.process import BaseProcess
from typing import Any

from coredash.engine.backends.base import BackendContext, SendError
from coredash.engine.worker import JobSpec, WorkerResult, one_line_error, run_child_job


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


def is_pickling_error(exc: BaseException) -> bool:
    text = str(exc)
    return isinstance(exc, pickle.PicklingError) or (
        isinstance(exc, TypeError | AttributeError) and ("pickle" in text or "Can't get local object" in text)
    )


def check_picklable(kwargs_list: list[dict[str, Any]], what: str) -> None:
    """Pickle each distinct argument dict now, so a failure names the job, not the executor's thread."""
    seen: set[int] = set()
    for kwargs in kwargs_list:
        if id(kwargs) in seen:
            continue  # a chunk's jobs share their batch's arguments
        seen.add(id(kwargs))
        try:
            pickle.dumps(kwargs, protocol=pickle.HIGHEST_PROTOCOL)
        except Exception as exc:
            raise SendError(f"{what}: {one_line_error(exc)}") from exc


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


def kill_process(process: BaseProcess) -> None:
    """SIGKILL through the Process object: it knows whether its pid was already reaped."""
    with contextlib.suppress(ProcessLookupError, PermissionError, ValueError, AttributeError, OSError):
        process.kill()


def start_job_process(ctx: BackendContext, spec: JobSpec, result_writer: Any) -> BaseProcess:
    """One job's own process, started: run_child_job writes its result to ``result_writer``.

    Arguments that will not pickle (forkserver and spawn pickle them) raise SendError
    with the reason; the caller closes its end of the writer either way.
    """
    process: BaseProcess = ctx.mp_context.Process(  # type: ignore[attr-defined]
        target=run_child_job,
        args=(spec, ctx.report_conn, result_writer, ctx.limits),
        name=f"coredash-job-{spec.job_id}",
        daemon=True,  # multiprocessing ends daemons at exit: a last safety net
    )
    try:
        with stderr_with_fileno():
            process.start()
    except Exception as exc:
        if is_pickling_error(exc):
            raise SendError(f"the job could not be sent to its process: {one_line_error(exc)}") from exc
        raise
    return process


def load_result(data: bytes) -> WorkerResult | None:
    """The WorkerResult a child wrote, or None (nothing, or a truncated pickle from a kill mid-write)."""
    if not data:
        return None
    try:
        result = pickle.loads(data)
    except Exception:
        return None
    return result if isinstance(result, WorkerResult) else None
