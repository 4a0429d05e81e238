"""A tiny job that crashes its worker once, when the test arms it (for chunk tests)."""

from __future__ import annotations

import os
import signal

from coredash.taskapi import task


@task(
    description="Return n; if the file `armed` exists, claim it and SIGKILL the worker", size="n", default=1
)
def crash_when(n: int = 1, armed: str = "") -> int:
    if armed:
        try:
            os.unlink(armed)  # only one job, in one process, can win this
        except FileNotFoundError:
            return n
        os.kill(os.getpid(), signal.SIGKILL)
    return n
