"""Code that runs inside workers: the job wrapper and the process entry points.

The wrapper is the only source of truth for when a job really ran: it stamps
start and finish inside the worker, measures the job's CPU time, samples the
core, and reports "started" the moment it begins (a future's ``running()`` is
not the truth for a process pool: jobs sitting in the pool's call queue already
count as running).

Start reports travel over a pipe shared by all worker processes. Each report is
one ``os.write`` of far less than PIPE_BUF bytes, which POSIX makes atomic, so
writers need no lock: a worker killed mid-job can never leave the pipe locked or
half-written.
"""

from __future__ import annotations

import contextlib
import ctypes
import importlib
import os
import pickle
import reprlib
import signal
import struct
import sys
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, NamedTuple

from coredash import taskapi
from coredash.engine.catalog import TaskRef, resolve
from coredash.engine.modes import CpuClock
from coredash.engine.platform import current_core
from coredash.taskapi import CancelFlag

if TYPE_CHECKING:
    # Annotations only: importing it costs every interpreter worker ~15 ms (sockets, tempfile).
    from multiprocessing.connection import Connection


class StartReport(NamedTuple):
    """A worker's word that it began a job: where, and when (monotonic seconds)."""

    job_id: int
    attempt: int
    pid: int
    thread_id: int
    thread_name: str
    core: int | None
    started: float


Reporter = Callable[[StartReport], None]
JobEnd = Literal["done", "failed", "cancelled"]

_FRAME_HEADER = struct.Struct("<I")
MAX_REPORT_BYTES = 2048  # well under PIPE_BUF (4096 on Linux, 512 minimum by POSIX)


@dataclass(frozen=True, slots=True)
class JobSpec:
    """What a worker needs to run one job (picklable)."""

    job_id: int
    attempt: int
    ref: TaskRef
    kwargs: dict[str, Any]
    cpu_clock: CpuClock  # the mode's: its own thread's CPU time, or its process's
    in_process: bool  # runs in coredash's process (a thread): taskapi checkpoints apply


@dataclass(slots=True)
class WorkerResult:
    """What the wrapper measured, and how the job ended."""

    job_id: int
    attempt: int
    pid: int
    thread_id: int
    thread_name: str
    core: int | None
    end_core: int | None
    started: float
    finished: float
    cpu_s: float
    outcome: JobEnd
    value: Any = None
    value_repr: str | None = None
    error: str | None = None
    traceback: str | None = None


_repr = reprlib.Repr()
_repr.maxstring = 60
_repr.maxother = 60


def describe_value(value: Any) -> str:
    if isinstance(value, bytes | bytearray | memoryview) and len(value) > 48:
        return f"<{type(value).__name__}, {len(value):,} bytes>"
    return _repr.repr(value)


def one_line_error(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


def run_job(spec: JobSpec, report: Reporter, cancel: CancelFlag | None = None) -> WorkerResult:
    """Run one job in this worker and measure it. Never raises for job errors."""
    thread_worker = spec.in_process
    cpu_clock = time.thread_time if spec.cpu_clock == "thread" else time.process_time
    pid, tid, name = os.getpid(), threading.get_native_id(), threading.current_thread().name

    def ended(outcome: JobEnd, started: float, cpu0: float, core: int | None, **rest: Any) -> WorkerResult:
        finished = time.monotonic()
        return WorkerResult(
            job_id=spec.job_id,
            attempt=spec.attempt,
            pid=pid,
            thread_id=tid,
            thread_name=name,
            core=core,
            end_core=current_core(),
            started=started,
            finished=finished,
            cpu_s=max(0.0, cpu_clock() - cpu0),
            outcome=outcome,
            **rest,
        )

    core = current_core()
    cpu0 = cpu_clock()
    started = time.monotonic()
    try:
        func = resolve(spec.ref)
    except BaseException as exc:
        return ended(
            "failed",
            started,
            cpu0,
            core,
            error=f"could not load {spec.ref.module}.{spec.ref.function}: {one_line_error(exc)}",
            traceback=traceback.format_exc(),
        )
    if cancel is not None and cancel.is_set():
        return ended("cancelled", started, cpu0, core, error="cancelled before it started")

    taskapi._enter_job(cancel, thread_worker)
    core = current_core()
    cpu0 = cpu_clock()
    started = time.monotonic()
    # A lost start report only delays what the UI shows; the result carries it too.
    with contextlib.suppress(Exception):
        report(StartReport(spec.job_id, spec.attempt, pid, tid, name, core, started))
    try:
        value = func(**spec.kwargs)
    except taskapi.JobCancelled as exc:
        return ended("cancelled", started, cpu0, core, error=str(exc))
    except BaseException as exc:  # SystemExit from a job is a failure too
        error = one_line_error(exc)
        if isinstance(exc, MemoryError) and _memory_limit_mb is not None:
            error += f" (over the worker memory limit of {_memory_limit_mb} MiB)"
        return ended("failed", started, cpu0, core, error=error, traceback=traceback.format_exc())
    finally:
        taskapi._leave_job()
    return ended("done", started, cpu0, core, value=value, value_repr=describe_value(value))


def _no_report(report: StartReport) -> None:
    pass


def run_jobs(
    specs: list[JobSpec], report: Reporter, cancels: list[CancelFlag] | None = None
) -> list[WorkerResult]:
    """Run a chunk of tiny jobs one after another: one executor call, one start report."""
    results = []
    for index, spec in enumerate(specs):
        cancel = cancels[index] if cancels is not None else None
        results.append(run_job(spec, report if index == 0 else _no_report, cancel))
    return results


# --- process workers -------------------------------------------------------

_report_conn: Connection | None = None
_memory_limit_mb: int | None = None


@dataclass(frozen=True, slots=True)
class WorkerLimits:
    """What every worker process (and thread, where it can) is started with."""

    memory_limit_mb: int | None = None  # address space per process; None: unlimited
    # Added niceness: under full load the dashboard (and the machine's other work)
    # still gets a core when it wakes up. It costs the jobs nothing on a core nobody
    # else wants.
    nice: int = 0


def lower_priority(nice: int) -> None:
    """Make the calling worker thread (on Linux, threads have their own niceness) nicer."""
    if nice > 0:
        with contextlib.suppress(OSError, AttributeError):
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), nice)


def _pipe_report(report: StartReport) -> None:
    if _report_conn is None:
        return
    write_report(_report_conn.fileno(), report)


def write_report(fd: int, report: StartReport) -> None:
    """One framed start report, in one os.write (atomic: far below PIPE_BUF)."""
    payload = pickle.dumps(report, protocol=pickle.HIGHEST_PROTOCOL)
    if len(payload) > MAX_REPORT_BYTES:
        return  # would not be atomic; the result still carries the same facts
    os.write(fd, _FRAME_HEADER.pack(len(payload)) + payload)


def init_process_worker(
    report_conn: Connection, quiet: bool = True, limits: WorkerLimits | None = None
) -> None:
    """Initializer for every worker process (pool workers and per-job processes)."""
    global _report_conn, _memory_limit_mb
    _report_conn = report_conn
    limits = limits or WorkerLimits()
    if limits.nice > 0:
        with contextlib.suppress(OSError):
            os.nice(limits.nice)
    memory_limit_mb = limits.memory_limit_mb
    if memory_limit_mb is not None:
        # Address space, not RSS: allocations past it fail with MemoryError in the
        # job (a clear failure) instead of the kernel's OOM killer picking a victim.
        import resource

        limit = memory_limit_mb << 20
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
        _memory_limit_mb = memory_limit_mb
    # Ctrl+C belongs to the coredash process, which shuts workers down itself.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if quiet:
        # A job that prints must not scribble over the terminal the UI draws on.
        devnull = os.open(os.devnull, os.O_WRONLY)
        for stream, fd in ((sys.stdout, 1), (sys.stderr, 2)):
            try:
                if stream is not None:
                    stream.flush()
            except (OSError, ValueError):
                pass
            os.dup2(devnull, fd)
        os.close(devnull)


def _unpicklable(result: WorkerResult, exc: Exception) -> WorkerResult:
    result.value = None
    result.outcome = "failed"
    result.error = f"its result could not be pickled to send back: {one_line_error(exc)}"
    result.traceback = traceback.format_exc()
    return result


def pickle_results(results: WorkerResult | list[WorkerResult]) -> bytes:
    """Pickle here, in the worker, so a result that cannot travel fails its own job by name."""
    try:
        return pickle.dumps(results, protocol=pickle.HIGHEST_PROTOCOL)
    except Exception as exc:
        if isinstance(results, WorkerResult):
            return pickle.dumps(_unpicklable(results, exc), protocol=pickle.HIGHEST_PROTOCOL)
    fixed = []
    for result in results:
        try:
            pickle.dumps(result.value, protocol=pickle.HIGHEST_PROTOCOL)
        except Exception as exc:
            result = _unpicklable(result, exc)
        fixed.append(result)
    return pickle.dumps(fixed, protocol=pickle.HIGHEST_PROTOCOL)


def run_pool_job(spec: JobSpec) -> bytes:
    """ProcessPoolExecutor entry point: the pickled WorkerResult."""
    return pickle_results(run_job(spec, _pipe_report))


def run_pool_jobs(specs: list[JobSpec]) -> bytes:
    """ProcessPoolExecutor entry point for a chunk of tiny jobs: the pickled results."""
    return pickle_results(run_jobs(specs, _pipe_report))


def run_child_job(
    spec: JobSpec, report_conn: Connection, result_conn: Connection, limits: WorkerLimits | None = None
) -> None:
    """multiprocessing.Process target for the process-per-job mode.

    The result goes back as one pickle over ``result_conn``; the parent reads it
    without blocking and treats end-of-file as "the child is done writing".
    """
    init_process_worker(report_conn, limits=limits)
    data = pickle_results(run_job(spec, _pipe_report))
    view = memoryview(data)
    fd = result_conn.fileno()
    while view:
        written = os.write(fd, view)
        view = view[written:]
    result_conn.close()


# --- interpreter workers (PEP 734) --------------------------------------------
#
# An InterpreterPoolExecutor pickles the callable and its arguments here and
# unpickles them inside the worker interpreter. The 3.13 backport never reports a
# failure in that step, nor one pickling the result back (measured): its worker
# thread spins forever and the future never completes. So all that ever crosses is
# this module's entry point, bytes and ints; the jobs' own arguments are unpickled
# inside the entry point, where a failure is the job's; and it returns bytes
# whatever happens.

_NO_SUBINTERPRETERS = "does not support loading in subinterpreters"
INTERPRETER_HINT = "a C extension that does not support subinterpreters: run it on the process pool"


def init_interpreter_worker(nice: int) -> None:
    """Initializer inside each worker interpreter: it has its own sys and its own stdio objects.

    The catalogue is not preloaded: each job's module is imported by its first job in
    each interpreter (tasks.native alone takes ~0.1 s), which its start overhead shows.
    """
    lower_priority(nice)
    # Fresh sys.std* objects on fds 0-2, the terminal the UI draws on: a job that prints
    # or reads must not touch it.
    sys.stdin = open(os.devnull)  # noqa: SIM115  (lives as long as the interpreter)
    sys.stdout = sys.stderr = open(os.devnull, "w")  # noqa: SIM115


def interpreter_id() -> int | None:
    """This interpreter's id (0 is the main one), as PEP 734 numbers them."""
    try:
        current = importlib.import_module("_interpreters").get_current()
        return int(current[0] if isinstance(current, tuple) else current)
    except Exception:
        return None


def _hinted(error: str) -> str:
    return f"{error} ({INTERPRETER_HINT})" if _NO_SUBINTERPRETERS in error else error


def _failed_here(job_id: int, attempt: int, error: str, trace: str | None) -> WorkerResult:
    now, core = time.monotonic(), current_core()
    return WorkerResult(
        job_id=job_id,
        attempt=attempt,
        pid=os.getpid(),
        thread_id=threading.get_native_id(),
        thread_name=threading.current_thread().name,
        core=core,
        end_core=core,
        started=now,
        finished=now,
        cpu_s=0.0,
        outcome="failed",
        error=error,
        traceback=trace,
    )


def _run_in_interpreter(
    payload: bytes, heads: tuple[tuple[int, int], ...], report_fd: int
) -> list[WorkerResult]:
    try:
        specs, cancels = pickle.loads(payload)
    except BaseException as exc:  # e.g. an argument of a class this interpreter cannot import
        why = _hinted(f"its arguments could not be unpickled in the interpreter: {one_line_error(exc)}")
        trace = traceback.format_exc()
        return [_failed_here(job_id, attempt, why, trace) for job_id, attempt in heads]
    # The interpreter sees its own dummy thread object: name it for the views.
    threading.current_thread().name = f"interpreter {interpreter_id()}"

    def report(start: StartReport) -> None:
        # fds are the process's, so the start-report pipe is open in here too.
        write_report(report_fd, start)

    results = run_jobs(specs, report, cancels)
    for result in results:
        if result.error is not None:
            result.error = _hinted(result.error)
    return results


def run_interpreter_job(
    payload: bytes, heads: tuple[tuple[int, int], ...], status: int, report_fd: int
) -> bytes:
    """InterpreterPoolExecutor entry point: the pickled list of WorkerResults, always bytes.

    ``payload`` is ``(specs, cancels)`` pickled by the host; ``heads`` the jobs' (id,
    attempt), so that even arguments that will not unpickle here fail their own jobs;
    ``status`` the address of two host-owned bytes, "entered" and "returned", which
    the host's watchdog reads.
    """
    flags = memoryview((ctypes.c_uint8 * 2).from_address(status)).cast("B")
    flags[0] = 1
    try:
        data = pickle_results(_run_in_interpreter(payload, heads, report_fd))
    except BaseException as exc:  # nothing may escape: the executor would never report it
        why = f"coredash failed inside the interpreter: {one_line_error(exc)}"
        data = pickle.dumps([_failed_here(job_id, attempt, why, None) for job_id, attempt in heads])
    flags[1] = 1
    return data


def warm_up(seconds: float) -> int:
    """A no-op job used to make a pool start all of its workers."""
    time.sleep(seconds)
    return os.getpid()


class ReportReader:
    """Parent side of the start-report pipe: framed pickles read without blocking."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn
        self._fd = conn.fileno()
        os.set_blocking(self._fd, False)
        self._buffer = bytearray()

    @property
    def fd(self) -> int:
        return self._fd

    def read_available(self) -> list[StartReport]:
        while True:
            try:
                chunk = os.read(self._fd, 65536)
            except BlockingIOError:
                break
            except OSError:
                break
            if not chunk:
                break
            self._buffer += chunk
        reports: list[StartReport] = []
        header = _FRAME_HEADER.size
        while len(self._buffer) >= header:
            (size,) = _FRAME_HEADER.unpack_from(self._buffer)
            if len(self._buffer) < header + size:
                break
            payload = bytes(self._buffer[header : header + size])
            del self._buffer[: header + size]
            try:
                reports.append(pickle.loads(payload))
            except Exception:
                continue  # a garbled report is dropped; the result carries the same facts
        return reports

    def close(self) -> None:
        self._conn.close()
