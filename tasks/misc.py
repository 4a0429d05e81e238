"""Jobs that show the costs and failure modes around the work itself.

sleep: waiting, not computing (the I/O case). tiny: microseconds of work, so
dispatch and IPC cost dominate. payload: megabytes in and out, so pickling
dominates. fail and crash: what each executor mode does when a job goes wrong.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import time

from coredash.taskapi import checkpoint, task

MIB = 1 << 20
CRASH_METHODS = ("kill", "term", "exit", "segv")


def _spin(ms: int) -> None:
    """Burn about ``ms`` milliseconds of CPU in pure Python."""
    deadline = time.perf_counter() + ms / 1000
    while time.perf_counter() < deadline:
        checkpoint()
        for _ in range(2000):
            pass


@task(
    description="Sleep for ms milliseconds (like waiting on I/O: no CPU, GIL released)",
    size="ms",
    default=200,
    unit="ms",
    releases_gil=True,
    kind="io",
)
def sleep(ms: int = 200) -> float:
    if ms < 0:
        raise ValueError("ms must be >= 0")
    deadline = time.monotonic() + ms / 1000
    while (left := deadline - time.monotonic()) > 0:
        checkpoint()
        time.sleep(min(left, 0.05))
    return ms / 1000


@task(
    description="Return n + 1: microseconds of work, so dispatch and IPC cost dominate",
    size="n",
    default=1,
    unit="",
    releases_gil=False,
    kind="tiny",
)
def tiny(n: int = 1) -> int:
    return n + 1


def payload_args(mb: int = 8) -> dict[str, object]:
    """Build the megabytes the payload job receives (runs in the coredash process)."""
    if mb < 0:
        raise ValueError("mb must be >= 0")
    return {"mb": mb, "data": bytes(mb * MIB)}


@task(
    description="Echo mb MiB back: the data is pickled both ways in process modes",
    size="mb",
    default=8,
    unit="MiB",
    releases_gil=None,
    kind="payload",
    prepare="payload_args",
    max_size=2048,  # each job holds the data three times over while it is pickled
)
def payload(mb: int = 8, data: bytes | None = None) -> bytes:
    if data is None:
        data = bytes(mb * MIB)
    return data


@task(
    description="Work for ms milliseconds, then raise ValueError (a failing job)",
    size="ms",
    default=50,
    unit="ms",
    releases_gil=False,
    kind="error",
)
def fail(ms: int = 50) -> None:
    _spin(ms)
    raise ValueError(f"deliberate failure after {ms} ms of work")


@task(
    description="Work for ms milliseconds, then end its own worker (how: kill, term, exit, segv)",
    size="ms",
    default=50,
    unit="ms",
    releases_gil=False,
    kind="crash",
)
def crash(ms: int = 50, how: str = "kill") -> None:
    if multiprocessing.parent_process() is None:
        # An in-process worker (a thread, or a serial run) lives inside coredash
        # itself: ending "its worker" would end coredash. Refuse, visibly.
        raise RuntimeError(
            "crash refused: this job runs inside the coredash process, "
            "where killing the worker would kill coredash"
        )
    if how not in CRASH_METHODS:
        raise ValueError(f"unknown crash method {how!r}; use one of {', '.join(CRASH_METHODS)}")
    _spin(ms)
    if how == "exit":
        os._exit(3)
    if how == "segv":
        import ctypes

        ctypes.string_at(0)  # reads address 0: the kernel sends SIGSEGV
    os.kill(os.getpid(), signal.SIGKILL if how == "kill" else signal.SIGTERM)
