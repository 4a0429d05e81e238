"""Jobs that misbehave on purpose, for demos and for coredash's own fault tests.

Each one is a thing real jobs do by accident: never return, return (or take)
something that cannot be pickled, print megabytes, or eat memory. coredash must
end each of them with a reason a person understands and carry on.
(Crashing the worker outright is ``crash``, in tasks.misc.)
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Iterator

from coredash.taskapi import checkpoint, task

MIB = 1 << 20


@task(
    description="Hang: spin for s seconds (an hour by default) unless cancelled or timed out",
    size="s",
    default=3600,
    unit="s",
    releases_gil=False,
    kind="fault",
)
def hang(s: int = 3600) -> None:
    if s < 0:
        raise ValueError("s must be >= 0")
    deadline = time.monotonic() + s
    while time.monotonic() < deadline:
        checkpoint()  # a thread job can only be stopped here
        for _ in range(5000):
            pass


def _numbers(n: int) -> Iterator[int]:
    yield from range(n)


@task(
    description="Return a generator: fine on a thread, cannot be pickled back from a process",
    size="n",
    default=3,
    unit="",
    releases_gil=None,
    kind="fault",
)
def unpicklable_result(n: int = 3) -> Iterator[int]:
    return _numbers(n)


def lock_args(n: int = 1) -> dict[str, object]:
    """Runs in the coredash process: hands the job a lock, which no process can receive."""
    return {"n": n, "lock": threading.Lock()}


@task(
    description="Take a lock as argument: fine on a thread, cannot be pickled to a process",
    size="n",
    default=1,
    unit="",
    releases_gil=None,
    kind="fault",
    prepare="lock_args",
)
def unpicklable_arg(n: int = 1, lock: object = None) -> int:
    return n


@task(
    description="Write mb MiB of text to stdout and to stderr (output is discarded, never drawn)",
    size="mb",
    default=8,
    unit="MiB",
    releases_gil=None,
    kind="fault",
    max_size=1024,
)
def flood(mb: int = 8) -> int:
    if mb < 0:
        raise ValueError("mb must be >= 0")
    line = "flood " * 16 + "\n"  # 97 bytes
    lines = mb * MIB // len(line)
    for stream in (sys.stdout, sys.stderr):
        for start in range(0, lines, 1000):
            checkpoint()
            stream.write(line * min(1000, lines - start))
        stream.flush()
    return 2 * lines * len(line)


@task(
    description="Allocate mb MiB, 16 MiB at a time, and hold it (against --memory-limit)",
    size="mb",
    default=1024,
    unit="MiB",
    releases_gil=None,
    kind="fault",
    max_size=1 << 20,
)
def hog(mb: int = 1024) -> int:
    if mb < 0:
        raise ValueError("mb must be >= 0")
    held = []
    for _ in range(0, mb, 16):
        checkpoint()
        held.append(bytearray(16 * MIB))  # zero-filled as it is made: really committed
    return len(held) * 16
