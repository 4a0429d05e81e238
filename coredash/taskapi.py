"""What a job function may use: the ``@task`` decorator and cooperative cancellation.

Job functions stay plain top-level functions (picklable by reference, callable
without coredash); ``@task`` only attaches metadata. This module imports nothing
heavy because every worker process imports it.

Threads cannot be killed, so a job running on a thread worker stops early only if
it calls :func:`checkpoint` now and then; the engine sets the flag it checks.
Process workers are stopped by ending the process, so there ``checkpoint()``
costs one attribute lookup and never raises. Interpreter workers (PEP 734) cannot be
killed either; their flag is a byte of coredash's memory (:class:`SharedCancelFlag`).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

F = TypeVar("F", bound=Callable[..., Any])

ATTRIBUTE = "__coredash_task__"

# Kinds group the catalogue in listings and pickers.
KINDS = ("cpu", "gil-free", "io", "tiny", "payload", "error", "crash", "fault", "other")


class JobCancelled(Exception):
    """Raised by :func:`checkpoint` inside a job whose cancellation was requested."""


@dataclass(frozen=True, slots=True)
class TaskMeta:
    """Metadata ``@task`` attaches to a job function."""

    description: str
    size_param: str
    default_size: int
    size_unit: str = ""
    releases_gil: bool | None = None
    kind: str = "other"
    max_size: int | None = None  # larger sizes are refused (e.g. memory-hungry payloads)
    # Name of a function in the same module that turns the user-facing parameters
    # into the call's keyword arguments, run in the coredash process at dispatch
    # (the payload job uses it to build megabytes that must cross to the worker).
    prepare: str | None = None


def task(
    *,
    description: str,
    size: str,
    default: int,
    unit: str = "",
    releases_gil: bool | None = None,
    kind: str = "other",
    prepare: str | None = None,
    max_size: int | None = None,
) -> Callable[[F], F]:
    """Mark a function as a coredash job; returns the function unchanged."""
    if kind not in KINDS:
        raise ValueError(f"unknown task kind {kind!r}; expected one of {', '.join(KINDS)}")

    def mark(func: F) -> F:
        setattr(
            func,
            ATTRIBUTE,
            TaskMeta(
                description=description,
                size_param=size,
                default_size=default,
                size_unit=unit,
                releases_gil=releases_gil,
                kind=kind,
                prepare=prepare,
                max_size=max_size,
            ),
        )
        return func

    return mark


def task_meta(func: Callable[..., Any]) -> TaskMeta | None:
    meta = getattr(func, ATTRIBUTE, None)
    return meta if isinstance(meta, TaskMeta) else None


class CancelFlag:
    """Set once to ask a job to stop; read by checkpoint() on the job's thread.

    A bare attribute rather than a threading.Event: nothing ever waits on it, and
    one is made per job, thousands a second for tiny jobs (an Event costs a
    Condition and a lock each).
    """

    __slots__ = ("_set",)

    def __init__(self) -> None:
        self._set = False

    def set(self) -> None:
        self._set = True

    def is_set(self) -> bool:
        return self._set


class SharedCancelFlag(CancelFlag):
    """A CancelFlag that the other interpreters of this process can read (PEP 684/734 workers).

    No object can be shared between interpreters, but memory can: the flag is also one
    byte owned by this object, and it pickles to a view of that byte's address. Whoever
    ships it must keep this object alive until the interpreter is done with the job,
    or the view would read freed memory.
    """

    __slots__ = ("_byte",)

    def __init__(self) -> None:
        import ctypes  # here, not at the top: process workers import this module and never need it

        super().__init__()
        self._byte = (ctypes.c_uint8 * 1)()

    def set(self) -> None:
        self._set = True
        self._byte[0] = 1

    def __reduce__(self) -> tuple[Any, ...]:
        import ctypes
        import os

        return (_CancelView, (ctypes.addressof(self._byte), os.getpid()))


class _CancelView(CancelFlag):
    """A SharedCancelFlag as seen from inside an interpreter: the same byte, read in place."""

    __slots__ = ("_view",)

    def __init__(self, address: int, pid: int) -> None:
        import ctypes
        import os

        if pid != os.getpid():  # an address means nothing in another process
            raise RuntimeError("a shared cancel flag can only be read inside the process that made it")
        super().__init__()
        # A memoryview indexes about 30 ns faster than ctypes' .value (checkpoint() reads it).
        self._view = memoryview((ctypes.c_uint8 * 1).from_address(address)).cast("B")

    def set(self) -> None:
        self._view[0] = 1

    def is_set(self) -> bool:
        return self._view[0] != 0


class _JobContext(threading.local):
    cancel: CancelFlag | None = None
    in_thread_worker: bool = False


_context = _JobContext()


def checkpoint() -> None:
    """Raise :class:`JobCancelled` if this job was asked to stop (thread workers)."""
    cancel = _context.cancel
    if cancel is not None and cancel.is_set():
        raise JobCancelled("cancelled while running (stopped at a checkpoint)")


def in_thread_worker() -> bool:
    """True inside a job that runs on a thread of the coredash process itself."""
    return _context.in_thread_worker


def _enter_job(cancel: CancelFlag | None, thread_worker: bool) -> None:
    _context.cancel = cancel
    _context.in_thread_worker = thread_worker


def _leave_job() -> None:
    _context.cancel = None
    _context.in_thread_worker = False
