"""Jobs for the interpreters tests: where a job runs, one that never checkpoints, a spoiled entry point.

Loaded with ``--tasks`` / ``Catalog.load_file``; imports nothing an interpreter cannot.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from typing import Any

from coredash import taskapi
from coredash.taskapi import task


@task(description="Say where it ran: pid, thread id, interpreter id, in_thread_worker()", size="n", default=1)
def probe(n: int = 1) -> tuple[int, int, int | None, bool]:
    import _interpreters

    current = _interpreters.get_current()
    ident = current[0] if isinstance(current, tuple) else current
    return (os.getpid(), threading.get_native_id(), int(ident), taskapi.in_thread_worker())


@task(
    description="Spin for s seconds and never call checkpoint()",
    size="s",
    default=3600,
    unit="s",
    kind="fault",
)
def stubborn(s: int = 3600) -> None:
    deadline = time.monotonic() + s
    while time.monotonic() < deadline:
        for _ in range(5000):
            pass


@task(
    description="Ignore the cancel flag for ms, then stop at the first checkpoint",
    size="ms",
    default=500,
    kind="fault",
)
def deaf_then_listens(ms: int = 500) -> None:
    deadline = time.monotonic() + ms / 1000
    while time.monotonic() < deadline:
        pass
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        taskapi.checkpoint()  # reads the flag's byte in coredash's memory: it must still be there


def psutil_args(n: int = 1) -> dict[str, Any]:
    """Runs in coredash's process: an argument whose class lives in psutil."""
    import psutil

    return {"n": n, "usage": psutil.cpu_times()}


@task(description="Take a psutil object as argument", size="n", default=1, prepare="psutil_args")
def takes_psutil(n: int = 1, usage: object = None) -> int:
    return n


def checkpoint_cost(calls: int = 1_000_000) -> float:
    """Nanoseconds per checkpoint() call in this worker (compare threads and interpreters)."""
    began = time.perf_counter_ns()
    for _ in range(calls):
        taskapi.checkpoint()
    return (time.perf_counter_ns() - began) / calls


@task(description="Measure checkpoint()'s cost here, in ns per call", size="calls", default=1_000_000)
def checkpoint_ns(calls: int = 1_000_000) -> float:
    return checkpoint_cost(calls)


def spoiled_entry(*args: Any) -> Iterator[int]:
    """An interpreter entry point that runs the job, then returns what cannot cross back."""
    from coredash.engine.worker import run_interpreter_job

    run_interpreter_job(*args)
    return (n for n in range(3))
