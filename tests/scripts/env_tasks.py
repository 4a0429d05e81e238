"""A job that reports what its worker's interpreter was started with (for the GIL tests)."""

from __future__ import annotations

import os
import sys

from coredash.taskapi import task


@task(description="What PYTHON_GIL and -X gil say in this worker", size="n", default=1)
def gil_settings(n: int = 1) -> str:
    return repr((os.environ.get("PYTHON_GIL"), sys._xoptions.get("gil"), os.getpid()))
