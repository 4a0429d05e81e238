"""Facts about the machine and interpreter that the engine and the UI both show."""

from __future__ import annotations

import ctypes
import os
import sys
import sysconfig
import threading
from collections.abc import Callable

START_METHODS = ("forkserver", "spawn", "fork")


def usable_cpus() -> int:
    """CPUs this process may run on (affinity/cpuset aware where the OS says)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def default_start_method() -> str:
    # forkserver on Linux (the 3.14 default; fork is unsafe once the UI has
    # threads), spawn elsewhere.
    return "forkserver" if sys.platform.startswith("linux") else "spawn"


def gil_enabled() -> bool:
    """Whether the GIL is on right now (always True before 3.13)."""
    check = getattr(sys, "_is_gil_enabled", None)
    return bool(check()) if check is not None else True


def free_threaded_build() -> bool:
    # Py_GIL_DISABLED is None on 3.11/3.12 and 0 on 3.13 with the GIL: use bool().
    return bool(sysconfig.get_config_var("Py_GIL_DISABLED"))


def python_label() -> str:
    version = ".".join(str(part) for part in sys.version_info[:3])
    build = "t" if free_threaded_build() else ""
    return f"Python {version}{build}"


def _load_sched_getcpu() -> Callable[[], int] | None:
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        func = libc.sched_getcpu
    except (OSError, AttributeError):
        return None
    func.restype = ctypes.c_int
    func.argtypes = []
    return func


_sched_getcpu = _load_sched_getcpu()


# Indexes into task_stat()'s fields: proc(5) numbers fields from 1, and the
# first two (pid and the command name, which may contain spaces) are cut off.
STAT_UTIME, STAT_STIME, STAT_PROCESSOR = 14 - 3, 15 - 3, 39 - 3


def task_stat(pid: int | str, tid: int | str) -> list[bytes] | None:
    """The fields of /proc/<pid>/task/<tid>/stat after the command name (Linux)."""
    try:
        with open(f"/proc/{pid}/task/{tid}/stat", "rb") as stat:
            text = stat.read()
    except OSError:
        return None
    return text[text.rfind(b")") + 2 :].split()


def thread_core(pid: int | str, tid: int | str) -> int | None:
    """The core a thread runs on, or last ran on (field 39, "processor")."""
    fields = task_stat(pid, tid)
    try:
        return int(fields[STAT_PROCESSOR]) if fields is not None else None
    except (IndexError, ValueError):
        return None


def _core_from_proc() -> int | None:
    return thread_core("self", threading.get_native_id())


def current_core() -> int | None:
    """The CPU core the calling thread is running on right now (a sample: threads migrate)."""
    if _sched_getcpu is not None:
        core = _sched_getcpu()
        if core >= 0:
            return core
    return _core_from_proc()
