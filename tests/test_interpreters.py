"""The interpreters mode: one process, one GIL per interpreter (PEP 684/734).

Real interpreters, real jobs. Where the mode cannot run (3.11, 3.12, or 3.13
without the backport) only the "unavailable, and why" tests run; on 3.13 with the
``dev`` extra the mode must be available, so CI never skips the rest there.
"""

from __future__ import annotations

import asyncio
import json
import os
import pickle
import subprocess
import sys
import time
from pathlib import Path

import pytest

from coredash.engine import REGISTRY, Engine, JobState, Mode, PoolNotice
from coredash.taskapi import CancelFlag, SharedCancelFlag
from tests.conftest import EventLog, check_job_invariants, until

INFO = REGISTRY.info("interpreters")
AVAILABLE = INFO.available
needs_interpreters = pytest.mark.skipif(not AVAILABLE, reason=f"interpreters: {INFO.reason_unavailable}")
SCRIPTS = Path(__file__).parent / "scripts"
ROOT = Path(__file__).resolve().parents[1]


def test_the_mode_is_available_exactly_where_it_can_run() -> None:
    if sys.version_info >= (3, 13):
        # 3.13 gets the backport from the dev extra: a missing one must fail here, not skip.
        assert AVAILABLE, INFO.reason_unavailable
    else:
        assert not AVAILABLE
        assert INFO.reason_unavailable == "needs Python 3.13 with coredash[interpreters], or 3.14"
        assert Mode.INTERPRETERS in REGISTRY.modes() and Mode.INTERPRETERS not in REGISTRY.available()


@pytest.mark.skipif(AVAILABLE, reason="the mode runs here")
@pytest.mark.parametrize("argv", [["--mode", "interpreters"], ["bench", "--modes", "interpreters"]])
def test_asking_for_the_mode_where_it_cannot_run_says_why_in_one_line(argv: list[str]) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "coredash", *argv], capture_output=True, text=True, timeout=60, cwd=ROOT
    )
    assert proc.returncode == 2, proc
    assert proc.stderr.startswith("coredash: error: ") and proc.stderr.count("\n") == 1, proc.stderr
    assert "needs Python 3.13 with coredash[interpreters], or 3.14" in proc.stderr
    assert "Traceback" not in proc.stderr and proc.stdout == ""


def test_a_shared_cancel_flag_is_one_byte_that_a_pickled_copy_reads_in_place() -> None:
    flag = SharedCancelFlag()
    view = pickle.loads(pickle.dumps(flag))  # what an interpreter gets
    assert isinstance(view, CancelFlag) and type(view) is not SharedCancelFlag
    assert not flag.is_set() and not view.is_set()
    flag.set()
    assert view.is_set()  # the same byte, no message passed
    reduce = flag.__reduce__()
    with pytest.raises(RuntimeError, match="inside the process that made it"):
        reduce[0](reduce[1][0], os.getpid() + 1)  # an address means nothing in another process


# --- the mode itself ---------------------------------------------------------------------


@needs_interpreters
async def test_pure_python_jobs_run_in_parallel_inside_coredash_itself(make_engine) -> None:
    engine: Engine = make_engine(mode=Mode.INTERPRETERS, workers=2)
    await engine.warm_up()
    log = EventLog(engine)
    batch = engine.submit_batch("count_primes", 6, {"n": 300_000})  # ~0.25 s of pure Python each
    summary = await asyncio.wait_for(engine.wait_batch(batch), 120)
    jobs = [job for job_id in batch.job_ids if (job := engine.job(job_id)) is not None]
    check_job_invariants(log, jobs)
    assert summary.done == 6, summary
    # One GIL per interpreter: two cores' worth of Python in one process (threads: ~1.0).
    assert summary.parallelism > 1.3, summary  # room for a busy CI machine; threads stay near 1.0
    assert {job.pid for job in jobs} == {os.getpid()}
    assert len({job.thread_id for job in jobs}) == 2
    assert all(job.where.startswith("interpreter ") and f"tid {job.thread_id}" in job.where for job in jobs)


@needs_interpreters
async def test_a_job_knows_it_runs_in_coredash_and_in_an_interpreter_of_its_own(make_engine) -> None:
    engine: Engine = make_engine(mode=Mode.INTERPRETERS, workers=2)
    engine.catalog.load_file(SCRIPTS / "interp_tasks.py")
    jobs = [engine.submit("probe", {"n": 1}) for _ in range(4)]
    await asyncio.wait_for(engine.wait_idle(), 60)
    for job in jobs:
        assert job.state is JobState.DONE, job.error
        pid, tid, interpreter, in_thread_worker = job.result
        assert pid == os.getpid() and tid == job.thread_id
        assert interpreter != 0  # never the main interpreter
        assert job.thread_name == f"interpreter {interpreter}"
        assert in_thread_worker  # so `crash` refuses, as on threads


@needs_interpreters
async def test_cancel_and_kill_stop_a_running_job_at_its_next_checkpoint(make_engine) -> None:
    engine: Engine = make_engine(mode=Mode.INTERPRETERS, workers=2)
    first, second = engine.submit("hang", {"s": 3600}), engine.submit("hang", {"s": 3600})
    await until(lambda: first.state is JobState.RUNNING and second.state is JobState.RUNNING, 60)
    began = time.monotonic()
    engine.cancel(first.id)  # the job's `c`...
    await until(lambda: first.state.terminal, 5, "the cancelled job to stop")
    engine.kill_running()  # ...and `k`
    await until(lambda: second.state.terminal, 5, "the killed job to stop")
    assert time.monotonic() - began < 3
    for job in (first, second):
        assert job.state is JobState.CANCELLED and "stopped at a checkpoint" in (job.error or ""), job.error
    batch = engine.submit_batch("count_primes", 2, {"n": 20_000})  # the same interpreters carry on
    assert (await asyncio.wait_for(engine.wait_batch(batch), 60)).done == 2


@needs_interpreters
async def test_the_job_timeout_stops_a_hung_job_at_a_checkpoint(make_engine) -> None:
    engine: Engine = make_engine(mode=Mode.INTERPRETERS, workers=2, job_timeout=0.5)
    job = engine.submit("hang", {"s": 3600})
    await asyncio.wait_for(engine.wait_idle(), 30)
    assert job.state is JobState.FAILED
    assert "timed out after 500 ms" in (job.error or "") and "stopped at a checkpoint" in (job.error or "")
    assert job.run_s is not None and job.run_s < 3


@needs_interpreters
async def test_a_failing_job_shows_the_traceback_from_inside_the_interpreter(make_engine) -> None:
    engine: Engine = make_engine(mode=Mode.INTERPRETERS)
    job = engine.submit("fail", {"ms": 5})
    await asyncio.wait_for(engine.wait_idle(), 30)
    assert job.state is JobState.FAILED and job.error is not None
    assert job.error.startswith("ValueError: deliberate failure")
    assert job.traceback is not None
    assert "Traceback (most recent call last)" in job.traceback
    assert f"tasks{os.sep}misc.py" in job.traceback and "in fail" in job.traceback


@needs_interpreters
async def test_a_job_needing_an_extension_without_subinterpreter_support_says_so(make_engine) -> None:
    engine: Engine = make_engine(mode=Mode.INTERPRETERS)
    engine.catalog.load_file(SCRIPTS / "psutil_tasks.py")  # imports psutil at the top
    engine.catalog.load_file(SCRIPTS / "interp_tasks.py")
    module_needs_it = engine.submit("psutil_cpus", {"n": 1})
    argument_needs_it = engine.submit("takes_psutil", {"n": 1})  # a psutil object as argument
    fine = engine.submit("tiny", {"n": 1})
    await asyncio.wait_for(engine.wait_idle(), 60)
    for job in (module_needs_it, argument_needs_it):
        assert job.state is JobState.FAILED, (job.state, job.result_repr)
        assert "does not support subinterpreters: run it on the process pool" in (job.error or ""), job.error
        assert "psutil" in (job.error or "")
    assert "could not be unpickled in the interpreter" in (argument_needs_it.error or "")
    assert fine.state is JobState.DONE
    # The same module runs on the process pool.
    engine.set_mode(Mode.PROCESS)
    again = engine.submit("psutil_cpus", {"n": 1})
    await asyncio.wait_for(engine.wait_idle(), 60)
    assert again.state is JobState.DONE, again.error


@needs_interpreters
async def test_the_memory_limit_is_said_not_to_apply(make_engine) -> None:
    engine: Engine = make_engine(mode=Mode.INTERPRETERS, memory_limit_mb=512)
    notices: list[str] = []
    engine.subscribe(lambda event: notices.append(event.message) if isinstance(event, PoolNotice) else None)
    job = engine.submit("tiny", {"n": 1})
    await asyncio.wait_for(engine.wait_idle(), 30)
    assert job.state is JobState.DONE
    assert any("memory limit (512 MiB) does not apply to interpreters" in text for text in notices), notices


@needs_interpreters
async def test_the_core_marks_find_interpreter_threads_in_coredash(make_engine) -> None:
    from coredash.sampling import PsutilSampler
    from coredash.view_model import core_marks, worker_load

    engine: Engine = make_engine(mode=Mode.INTERPRETERS, workers=2)
    sampler = PsutilSampler()
    sampler.prime()
    jobs = [engine.submit("hang", {"s": 3600}) for _ in range(2)]
    await until(lambda: all(job.state is JobState.RUNNING for job in jobs), 60)
    sampler.sample(engine.live_worker_pids())  # the job threads' CPU baseline
    await asyncio.sleep(0.5)
    sample = sampler.sample(engine.live_worker_pids())
    assert engine.live_worker_pids() == []  # no worker process: the jobs run in here
    for job in jobs:
        load = worker_load(job, sample)
        assert load is not None and load.cores is not None and load.cores > 0.3, (job.where, load)
    marked = {mark.job_id for marks in core_marks(engine.snapshot(), sample).values() for mark in marks}
    assert marked == {job.id for job in jobs}
    engine.kill_running()
    await asyncio.wait_for(engine.wait_idle(), 10)


@needs_interpreters
async def test_a_cancel_flag_outlives_the_engine_while_its_interpreter_still_runs_the_job() -> None:
    """The flag is host memory an interpreter reads in place: freed early, the job could not see it."""
    import ctypes
    import gc
    import threading

    from coredash.engine.backends import THREAD_NAME_PREFIX

    engine = Engine(mode=Mode.INTERPRETERS, workers=1)
    engine.catalog.load_file(SCRIPTS / "interp_tasks.py")
    job = engine.submit("deaf_then_listens", {"ms": 1500})
    await until(lambda: job.state is JobState.RUNNING, 60)
    await engine.close(grace=0.1)  # gives up on the job, which is deaf for a while yet
    assert job.state is JobState.CANCELLED
    del engine  # nothing of the scheduler's holds the flag now
    gc.collect()
    churn = [(ctypes.c_uint8 * 1)() for _ in range(200_000)]  # zeroed bytes where a freed flag was
    began = time.monotonic()
    workers = [t for t in threading.enumerate() if t.name.startswith(THREAD_NAME_PREFIX)]
    await until(lambda: not any(t.is_alive() for t in workers), 10, "the job to stop at its checkpoint")
    assert time.monotonic() - began < 5
    del churn


@needs_interpreters
def test_a_lost_call_is_failed_by_the_watchdog_never_a_hang() -> None:
    """The executor's spin trap, tripped on purpose in a child process (it ends with os._exit)."""
    proc = subprocess.run(
        [sys.executable, str(SCRIPTS / "interp_trap.py")],
        capture_output=True,
        text=True,
        timeout=90,
        cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    lost = report["spoiled result"]
    assert lost["state"] == "failed" and "its result never came back from the interpreter" in lost["error"]
    never = report["entry in __main__"]
    assert never["state"] == "failed" and "no interpreter began it within 1.5 s" in never["error"]
    for case in (lost, never):
        assert case["took"] < 10, case
        assert case["after"] == "done" and case["after_result"] == "3", case  # a fresh pool took over
        assert any("a fresh pool takes the next jobs" in text for text in case["notices"]), case
    assert "Traceback" not in proc.stderr, proc.stderr


@needs_interpreters
async def test_i_switches_the_dashboard_to_interpreters_and_a_batch_runs_there() -> None:
    from coredash.app import CoredashApp
    from coredash.widgets.jobs_table import JobsTable
    from coredash.widgets.status_line import StatusLine
    from coredash.widgets.workers_panel import WorkersPanel

    engine = Engine(mode=Mode.THREAD, workers=2)
    # Jobs of ~0.7 s: a worker row is drawn running before they end, even on a busy machine.
    app = CoredashApp(engine, task="count_primes", size=600_000, jobs=4, refresh=10)
    app.auto_baseline = False
    async with app.run_test(size=(160, 45)) as pilot:
        await pilot.press("i")
        assert engine.mode is Mode.INTERPRETERS
        await until(lambda: app.query_one(StatusLine).data.mode is Mode.INTERPRETERS, what="the status line")
        await pilot.press("r")
        seen: set[str] = set()

        def running_where() -> bool:
            seen.update(row.where for row in app.query_one(WorkersPanel).data.rows if row.job is not None)
            return any(where.startswith("interpreter ") for where in seen)

        try:
            await until(running_where, 60, "a worker row saying which interpreter runs its job")
        except AssertionError as exc:
            jobs = [engine.job(i) for b in engine.snapshot().batches for i in b.job_ids]
            states = [(j.id, j.state.value, j.where, j.error) for j in jobs if j is not None]
            raise AssertionError(f"{exc}; seen {seen}; jobs {states}") from None
        batches = engine.snapshot().batches
        await until(lambda: bool(batches) and engine.snapshot().batches[-1].finished, 60, "the batch")
        summary = engine.snapshot().batches[-1].summary
        assert summary is not None and summary.done == 4 and summary.mode == "interpreters", summary
        table = app.query_one(JobsTable)
        job_id = engine.snapshot().batches[-1].job_ids[0]
        await until(lambda: str(job_id) in table.rows, what="the job's row")
        assert any("interpreter" in cell.plain for cell in table.get_row(str(job_id))), table.get_row(
            str(job_id)
        )
