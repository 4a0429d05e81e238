"""A task module that imports psutil, a C extension no subinterpreter can load."""

from __future__ import annotations

import psutil

from coredash.taskapi import task


@task(description="Count the CPUs with psutil", size="n", default=1)
def psutil_cpus(n: int = 1) -> int:
    return int(psutil.cpu_count() or 0) * n
