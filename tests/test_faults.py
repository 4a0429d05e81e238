"""The fault matrix: every way a job can go wrong, in every executor mode.

For each fault: that job ends failed with a reason a person understands, the
innocent jobs beside it complete (re-run, not failed, when a broken process pool
took them down), and the executor recovers by itself for the next batch. Faults
that are not faults in a mode (threads pickle nothing) are checked to succeed.
"""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Callable
from typing import Any

import pytest

from coredash.engine import Abilities, Engine, JobRecord, JobState, Mode, PoolNotice
from tests.conftest import (
    ALL_MODES,
    PROCESS_MODES,
    EventLog,
    WorkerWatch,
    check_job_invariants,
    until,
    worker_children,
)

INNOCENTS = 4
INNOCENT = ("sleep", {"ms": 300})  # long enough to share the pool with the fault


async def run_with_innocents(
    engine: Engine, task: str, params: dict[str, Any]
) -> tuple[JobRecord, list[JobRecord], EventLog]:
    """The fault job first, innocents beside it; wait until all have ended."""
    log = EventLog(engine)
    await engine.warm_up()
    fault = engine.submit(task, params)
    innocents = [engine.submit(*INNOCENT) for _ in range(INNOCENTS)]
    await asyncio.wait_for(engine.wait_idle(), 60)
    check_job_invariants(log, [fault, *innocents])
    return fault, innocents, log


async def still_works(engine: Engine) -> None:
    """The executor recovered: a fresh batch completes in full."""
    batch = engine.submit_batch("count_primes", 3, {"n": 20_000})
    summary = await asyncio.wait_for(engine.wait_batch(batch), 60)
    assert summary.done == 3, summary


def expect(state: JobState, *fragments: str) -> Callable[[JobRecord], None]:
    def check(job: JobRecord) -> None:
        assert job.state is state, (job.state, job.error)
        text = job.error if state is not JobState.DONE else job.result_repr
        for fragment in fragments:
            assert text is not None and fragment in text, f"{fragment!r} not in {text!r}"

    return check


# (task, params, what that job must end as, given what its executor can do). The
# expectations read the registry's abilities, never a mode's name: a backend
# registered tomorrow is held to them the day it is registered.
Check = Callable[[JobRecord], None]


def _pickling(fragment: str, otherwise: Check) -> Callable[[Abilities], Check]:
    return lambda can: expect(JobState.FAILED, fragment) if can.pickles else otherwise


def _crash(fragments: tuple[str, ...]) -> Callable[[Abilities], Check]:
    # In coredash's own process a crash would end coredash itself: refused, not run.
    return lambda can: (
        expect(JobState.FAILED, "crash refused") if can.in_process else expect(JobState.FAILED, *fragments)
    )


def _failed_with(fragment: str, *alternatives: str) -> Check:
    def check(job: JobRecord) -> None:
        assert job.state is JobState.FAILED, (job.state, job.error)
        assert fragment in (job.error or ""), job.error
        assert any(alt in (job.error or "") for alt in alternatives), job.error

    return check


FAULTS: dict[str, tuple[str, dict[str, Any], Callable[[Abilities], Check]]] = {
    "raises": ("fail", {"ms": 20}, lambda can: expect(JobState.FAILED, "ValueError: deliberate failure")),
    "unpicklable result": (
        "unpicklable_result",
        {"n": 3},
        lambda can: (
            expect(JobState.FAILED, "result could not be pickled", "generator")
            if can.pickles
            else expect(JobState.DONE, "generator")  # nothing is pickled between threads
        ),
    ),
    "unpicklable argument": (
        "unpicklable_arg",
        {"n": 1},
        lambda can: (
            _failed_with("lock", "arguments could not be pickled", "could not be sent to its process")
            if can.pickles
            else expect(JobState.DONE, "1")
        ),
    ),
    "os._exit": ("crash", {"ms": 30, "how": "exit"}, _crash(("exited with code 3",))),
    "segfault": ("crash", {"ms": 30, "how": "segv"}, _crash(("SIGSEGV", "segmentation fault"))),
    "floods stdout and stderr": ("flood", {"mb": 4}, lambda can: expect(JobState.DONE)),
}


async def check_fault(engine: Engine, fault: str) -> list[JobRecord]:
    """One row of the matrix on one engine: the fault job ends as its abilities say, innocents complete."""
    task, params, outcome = FAULTS[fault]
    job, innocents, _ = await run_with_innocents(engine, task, params)
    outcome(engine.mode.abilities)(job)
    assert all(other.state is JobState.DONE for other in innocents), [
        (other.id, other.state, other.error) for other in innocents
    ]
    await still_works(engine)
    return innocents


@pytest.mark.parametrize("mode", ALL_MODES, ids=str)
@pytest.mark.parametrize("fault", list(FAULTS))
async def test_a_faulty_job_fails_alone_and_the_executor_recovers(
    make_engine, fault: str, mode: Mode
) -> None:
    innocents = await check_fault(make_engine(mode=mode), fault)
    if mode is Mode.PROCESS and fault in ("os._exit", "segfault"):
        # The pool broke under the innocent running beside the fault: it ran again.
        assert any(other.attempts == 2 for other in innocents), [other.attempts for other in innocents]


@pytest.mark.parametrize("mode", PROCESS_MODES, ids=str)
async def test_a_worker_killed_from_outside_fails_its_job_only(make_engine, mode: Mode) -> None:
    engine = make_engine(mode=mode)
    log = EventLog(engine)
    await engine.warm_up()
    if mode.abilities.blocks_loop:
        # The loop is blocked while the victim runs: a thread watches for its process.
        with WorkerWatch(then=lambda process: process.send_signal(signal.SIGKILL)) as watch:
            victim = engine.submit("hang", {"s": 8})  # (under blocking join's cap)
            innocents = [engine.submit(*INNOCENT) for _ in range(INNOCENTS)]
            await asyncio.wait_for(engine.wait_idle(), 60)
        assert watch.acted and victim.pid == watch.found[0].pid
    else:
        victim = engine.submit("hang", {"s": 30})
        innocents = [engine.submit(*INNOCENT) for _ in range(INNOCENTS)]
        await until(
            lambda: victim.state is JobState.RUNNING and victim.pid is not None, what="the victim to run"
        )
        assert victim.pid is not None
        os.kill(victim.pid, signal.SIGKILL)  # as `kill -9` from another terminal would
        await asyncio.wait_for(engine.wait_idle(), 60)
    check_job_invariants(log, [victim, *innocents])
    expect(JobState.FAILED, f"pid {victim.pid}", "SIGKILL")(victim)
    assert all(other.state is JobState.DONE for other in innocents)
    await still_works(engine)


@pytest.mark.parametrize("mode", ALL_MODES, ids=str)
async def test_a_hung_job_is_failed_by_the_job_timeout(make_engine, mode: Mode) -> None:
    engine = make_engine(mode=mode, job_timeout=0.5)
    job, innocents, _ = await run_with_innocents(engine, "hang", {"s": 3600})
    expect(JobState.FAILED, "timed out after 500 ms")(job)
    if mode.abilities.timeouts == "checkpoint":
        assert "stopped at a checkpoint" in (job.error or "")
    else:
        assert f"pid {job.pid}" in (job.error or "") and "killed" in (job.error or "")
    assert job.run_s is None or job.run_s < 5
    assert all(other.state is JobState.DONE for other in innocents)
    await still_works(engine)


async def test_no_timeout_by_default(make_engine) -> None:
    engine = make_engine(mode=Mode.PROCESS)
    assert engine.job_timeout is None
    job = engine.submit("hang", {"s": 1})  # gives up by itself after 1 s
    await asyncio.wait_for(engine.wait_idle(), 30)
    assert job.state is JobState.DONE


@pytest.mark.parametrize("mode", PROCESS_MODES, ids=str)
async def test_a_job_over_the_memory_limit_fails_with_memory_error(make_engine, mode: Mode) -> None:
    engine = make_engine(mode=mode, memory_limit_mb=400)
    job, innocents, _ = await run_with_innocents(engine, "hog", {"mb": 2048})
    expect(JobState.FAILED, "MemoryError", "memory limit of 400 MiB")(job)
    assert all(other.state is JobState.DONE for other in innocents)
    await still_works(engine)


async def test_bad_engine_limits_are_refused_clearly() -> None:
    from coredash.engine import EngineError

    with pytest.raises(EngineError, match="job_timeout"):
        Engine(job_timeout=0)
    with pytest.raises(EngineError, match="from 256"):
        Engine(memory_limit_mb=10)


# --- chunks of tiny jobs: the fast path must keep every promise the slow one does ---


@pytest.mark.parametrize("mode", [mode for mode in ALL_MODES if mode.abilities.chunks], ids=str)
async def test_tiny_jobs_go_in_chunks_and_each_is_still_accounted_for(make_engine, mode: Mode) -> None:
    engine = make_engine(mode=mode, history=5000)
    log = EventLog(engine)
    first = engine.submit_batch("tiny", 20, {"n": 5})  # measured one by one: tiny
    await engine.wait_batch(first)
    assert engine.job(first.job_ids[0]).chunk == 1  # type: ignore[union-attr]  # not measured yet: alone
    batch = engine.submit_batch("tiny", 3000, {"n": 5})
    summary = await asyncio.wait_for(engine.wait_batch(batch), 60)
    assert summary.done == 3000
    chunks = [r.chunk for r in engine.snapshot(recent=3000).recent if r.batch_id == batch.id]
    assert max(chunks) > 1, "tiny jobs were not chunked"
    ended = [engine.job(job_id) for job_id in batch.job_ids[-400:]]
    check_job_invariants(log, [job for job in ended if job is not None])
    for job in ended:
        assert job is not None and job.result_repr == "6" and job.run_s is not None


async def test_a_chunk_whose_worker_dies_is_rerun_one_by_one(make_engine, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """A worker dies in the middle of a chunk: which job did it is unknown, so the
    chunk's jobs run again one at a time rather than all being failed."""
    from tests.scripts import chunk_tasks

    engine = make_engine(mode=Mode.PROCESS, history=5000)
    engine.catalog.load_file(chunk_tasks.__file__)
    log = EventLog(engine)
    notices: list[str] = []
    engine.subscribe(lambda event: notices.append(event.message) if isinstance(event, PoolNotice) else None)
    armed = tmp_path / "armed"
    params = {"n": 1, "armed": str(armed)}
    await engine.wait_batch(engine.submit_batch("crash_when", 50, params))  # measured: tiny
    armed.touch()  # the next job to run kills its worker, once
    batch = engine.submit_batch("crash_when", 2000, params)
    summary = await asyncio.wait_for(engine.wait_batch(batch), 60)
    jobs = [job for job_id in batch.job_ids if (job := engine.job(job_id)) is not None]
    check_job_invariants(log, jobs)
    assert not armed.exists(), "no job crashed"
    assert summary.done == 2000, summary  # the crash was a one-off: every job succeeds on its re-run
    rerun = [job for job in jobs if job.attempts == 2]
    alone = [job for job in rerun if job.alone]  # the dead worker's chunk, one job at a time
    assert alone and all(job.chunk == 1 for job in alone), rerun
    # (The other worker's chunk, a bystander the pool ended, may be re-run chunked.)
    assert any("chunk" in text for text in notices), notices


@pytest.mark.parametrize("mode", [mode for mode in ALL_MODES if mode.abilities.chunks], ids=str)
async def test_cancelling_chunked_jobs_ends_each_exactly_once(make_engine, mode: Mode) -> None:
    engine = make_engine(mode=mode)
    log = EventLog(engine)
    await engine.wait_batch(engine.submit_batch("tiny", 20, {"n": 1}))
    batch = engine.submit_batch("tiny", 20_000, {"n": 1})
    await until(lambda: engine.snapshot().counts[JobState.DONE] > 2000, what="some chunks to finish")
    engine.cancel_batch(batch.id)
    summary = await asyncio.wait_for(engine.wait_batch(batch), 60)
    assert summary.done + summary.failed + summary.cancelled == 20_000
    assert summary.cancelled > 0 and summary.failed == 0
    check_job_invariants(log, [job for job_id in batch.job_ids if (job := engine.job(job_id)) is not None])


async def test_no_worker_outlives_the_faults(make_engine) -> None:
    engine = make_engine(mode=Mode.PROCESS)
    await engine.warm_up()
    for how in ("kill", "exit", "segv"):
        engine.submit("crash", {"ms": 1, "how": how})
    engine.submit("hang", {"s": 3600})
    await asyncio.sleep(0.5)
    await engine.close()
    await until(lambda: not worker_children(), timeout=5, what="every worker to be gone")


# --- the dashboard's side: faults are shown, and it keeps running ---


async def test_the_dashboard_shows_a_crash_mid_batch_and_carries_on() -> None:
    """A worker crashes in the middle of a process batch: the crash is a failed
    row with its reason, the pool's notice is shown, the batch beside it finishes,
    and the keys still work."""
    from coredash.app import CoredashApp
    from coredash.widgets.jobs_table import JobsTable
    from coredash.widgets.status_line import StatusLine

    engine = Engine(mode=Mode.PROCESS, workers=2)
    app = CoredashApp(engine, task="sleep", size=300, jobs=6, refresh=10)
    app.auto_baseline = False
    async with app.run_test(size=(160, 45), notifications=True) as pilot:
        await pilot.press("r")
        await until(lambda: any(job.state is JobState.RUNNING for job in engine.snapshot().active))
        crash = engine.submit("crash", {"ms": 20, "how": "segv"})
        await until(lambda: bool(engine.snapshot().batches) and engine.snapshot().batches[-1].finished, 60)
        await until(lambda: crash.state.terminal)
        summary = engine.snapshot().batches[-1].summary
        assert summary is not None and summary.done == 6, summary
        assert crash.state is JobState.FAILED and "SIGSEGV" in (crash.error or "")
        table = app.query_one(JobsTable)
        await until(lambda: str(crash.id) in table.rows, what="the crash's row")
        row = [cell.plain for cell in table.get_row(str(crash.id))]
        assert "failed" in row and any("SIGSEGV" in cell for cell in row), row
        notices = [note.message for note in app._notifications]  # the toasts on screen
        assert any("process pool broke" in notice for notice in notices), notices
        await pilot.press("t")  # still answering keys
        await until(lambda: engine.mode is Mode.THREAD, what="the mode key")
        assert "thread" in str(app.query_one(StatusLine).render()).lower()


def test_the_cli_passes_the_limits_to_the_engine(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """`coredash bench --job-timeout`: hung jobs end failed and the bench finishes."""
    import json

    from coredash.cli import run

    out = tmp_path / "bench.json"
    argv = ["bench", "--task", "hang", "--jobs", "2", "--modes", "process", "--workers", "2"]
    code = run([*argv, "--job-timeout", "0.3", "--memory-limit", "512", "--no-serial", "--json", str(out)])
    assert code == 0
    runs = json.loads(out.read_text())["runs"]
    assert runs and all(run["failed"] == 2 and run["makespan_s"] < 5 for run in runs), runs


@pytest.mark.parametrize(
    ("source", "message"),
    [
        (None, "task file not found"),
        ("raise RuntimeError('boom at import')\n", "importing it raised RuntimeError: boom at import"),
        ("import no_such_module_xyz\n", "No module named 'no_such_module_xyz'"),
        ("def f(n:\n", "syntax error"),
        ("X = 1\n", "no public function with a size argument"),
        ("def f(n: int) -> int:\n    return n\n", "unknown task 'missing'"),
    ],
    ids=["missing file", "raises on import", "missing dependency", "syntax error", "no jobs", "no such task"],
)
def test_a_bad_task_module_gets_one_line_and_starts_nothing(
    tmp_path, source: str | None, message: str
) -> None:  # type: ignore[no-untyped-def]
    import subprocess
    import sys

    path = tmp_path / "user_jobs.py"
    if source is not None:
        path.write_text(source)
    for argv in (
        ["--tasks", str(path), "--task", "missing"],
        ["bench", "--tasks", str(path), "--task", "missing"],
    ):
        proc = subprocess.run(
            [sys.executable, "-m", "coredash", *argv],
            capture_output=True,
            text=True,
            timeout=60,
            cwd=tmp_path,
        )
        assert proc.returncode == 2, proc
        assert proc.stderr.startswith("coredash: error: ") and message in proc.stderr, proc.stderr
        assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
        assert proc.stdout == ""  # nothing drawn, nothing run


async def test_with_a_job_timeout_every_job_goes_alone(make_engine) -> None:
    """A chunk would hide which of its jobs hung: with a timeout, tiny jobs are not chunked."""
    engine = make_engine(mode=Mode.PROCESS, job_timeout=5, history=1000)
    await engine.wait_batch(engine.submit_batch("tiny", 20, {"n": 1}))
    batch = engine.submit_batch("tiny", 500, {"n": 1})
    summary = await asyncio.wait_for(engine.wait_batch(batch), 60)
    assert summary.done == 500
    assert all(engine.job(job_id).chunk == 1 for job_id in batch.job_ids)  # type: ignore[union-attr]
