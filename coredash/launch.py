"""Launching the dashboard: the engine first, then the app, then a clean way out."""

from __future__ import annotations

import atexit
import contextlib
import os
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from coredash.app import CoredashApp
from coredash.engine import Engine
from coredash.engine.backends import THREAD_NAME_PREFIX
from coredash.lifecycle import (
    QUIT_SIGNALS,
    StopRequests,
    detach_if_hung_up,
    helpers_immune_to_ctrl_c,
    ignore_stop_signals,
)
from coredash.records import Recorder

if TYPE_CHECKING:
    from coredash.engine import Catalog, Mode
    from coredash.engine.chunking import ChunkPolicy

STRAY_GRACE_S = 0.8  # how long quitting waits for cancelled thread jobs to stop


@dataclass(frozen=True)
class AppOptions:
    """What ``run_app`` needs: the command line's choices, checked (``coredash.engine.limits``)."""

    mode: Mode
    workers: int | None
    task: str
    size: int | None
    jobs: int
    refresh: float
    start_method: str | None
    catalog: Catalog
    job_timeout: float | None = None
    memory_limit_mb: int | None = None
    worker_nice: int = 0
    chunk: ChunkPolicy | None = None  # None: auto
    record: Path | None = None  # write jobs.csv, trace.json and session.json here as jobs end


def stray_job_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith(THREAD_NAME_PREFIX) and t.is_alive()]


def run_app(options: AppOptions) -> int:
    StopRequests().install()
    # The engine is built before the app runs: multiprocessing's helper processes
    # must start while sys.stderr is still the real one (Textual replaces it).
    with helpers_immune_to_ctrl_c():
        engine = Engine(
            mode=options.mode,
            workers=options.workers,
            start_method=options.start_method,
            catalog=options.catalog,
            job_timeout=options.job_timeout,
            memory_limit_mb=options.memory_limit_mb,
            worker_nice=options.worker_nice,
            chunk=options.chunk,
        )
    app = CoredashApp(
        engine,
        task=options.task,
        size=options.size,
        jobs=options.jobs,
        refresh=options.refresh,
        recorder=Recorder(options.record) if options.record is not None else None,
    )
    # Thread jobs share this process: a job calling input() must not read the keys
    # the UI reads (Textual reads the real stdin through sys.__stdin__).
    sys.stdin = open(os.devnull)  # noqa: SIM115  (lives as long as the process)
    code = app.run()
    # From here on the quit is under way: a further stop signal must not cut the
    # clean-up short, nor turn exit status 0 into "Terminated" as Python's
    # own handlers are reset at exit (an ignored signal stays ignored).
    ignore_stop_signals(QUIT_SIGNALS)
    detach_if_hung_up()
    # Cancelled thread jobs stop at their next checkpoint(): usually a moment away.
    deadline = time.monotonic() + STRAY_GRACE_S
    for thread in stray_job_threads():
        thread.join(max(0.0, deadline - time.monotonic()))
    strays = stray_job_threads()
    if strays:
        # A thread cannot be killed, and Python waits for executor threads at exit.
        # The terminal is restored by now; do not keep the user waiting on a job
        # that ignores the cancel flag.
        sys.stderr.write(
            f"coredash: {len(strays)} thread job(s) ignored the cancel request; exiting without them\n"
        )
        sys.stderr.flush()
        sys.stdout.flush()
        # os._exit skips the exit handlers: run them first (multiprocessing's
        # remove its temporary folder and stop its helper processes).
        with contextlib.suppress(Exception):
            atexit._run_exitfuncs()
        os._exit(code or 0)
    return code or 0
