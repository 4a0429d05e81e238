"""The engine end to end: real thread pools, real process pools, real processes."""

from __future__ import annotations

import asyncio
import gc
import os
import textwrap
import threading
import time
from pathlib import Path

import psutil
import pytest

from coredash.engine import (
    BatchFinished,
    Catalog,
    ConfigChanged,
    Engine,
    EngineError,
    JobChanged,
    JobState,
    Mode,
    PoolNotice,
)
from tests.conftest import (
    ALL_MODES,
    LOOP_FREE_MODES,
    LOOP_FREE_PROCESS_MODES,
    PROCESS_MODES,
    EventLog,
    check_job_invariants,
    until,
    worker_children,
)

SMALL_PRIMES = {"n": 3000}  # a few ms of pure-Python work; 430 primes below 3000


@pytest.mark.parametrize("mode", ALL_MODES)
async def test_batch_runs_and_is_measured_in_each_mode(make_engine, mode: Mode) -> None:
    engine = make_engine(mode=mode)
    log = EventLog(engine)
    batch = engine.submit_batch("count_primes", 6, SMALL_PRIMES)
    summary = await asyncio.wait_for(engine.wait_batch(batch), 60)

    jobs = [engine.job(job_id) for job_id in batch.job_ids]
    assert all(job is not None for job in jobs)
    check_job_invariants(log, jobs)  # type: ignore[arg-type]
    for job in jobs:
        assert job is not None
        assert job.state is JobState.DONE
        assert job.result == 430
        assert job.mode is mode
        assert job.cpu_s is not None and job.cpu_s > 0
        assert job.core is not None and 0 <= job.core < (os.cpu_count() or 1)
        if mode.abilities.in_process:
            assert job.pid == os.getpid()
            # A thread of the pool, or the interpreter it runs ("interpreter 3") on one.
            name = "interpreter " if mode.abilities.placement == "interpreter" else "coredash-worker"
            assert job.thread_name is not None and job.thread_name.startswith(name)
            assert job.thread_id != threading.get_native_id()
        else:
            assert job.pid != os.getpid()
    assert summary.mode == mode.value
    assert summary.jobs == summary.done == 6
    assert summary.makespan_s > 0
    assert summary.parallelism == pytest.approx(summary.sum_cpu_s / summary.makespan_s)
    assert log.max_running <= 2  # the visible queue never lets more than `workers` run
    if mode is Mode.PROCESS_PER_JOB:
        assert len({job.pid for job in jobs if job}) == 6  # a fresh process each time


@pytest.mark.parametrize("mode", ALL_MODES)
async def test_a_raising_job_fails_with_its_traceback(make_engine, mode: Mode) -> None:
    engine = make_engine(mode=mode)
    log = EventLog(engine)
    bad = engine.submit("fail", {"ms": 1})
    good = engine.submit("tiny", {"n": 41})
    await asyncio.wait_for(engine.wait_idle(), 60)
    check_job_invariants(log, [bad, good])
    assert bad.state is JobState.FAILED
    assert bad.error == "ValueError: deliberate failure after 1 ms of work"
    assert bad.traceback is not None and "raise ValueError" in bad.traceback
    assert good.state is JobState.DONE and good.result == 42


# (Waits on the loop for a job to run. In blocking join the fault matrix's crash rows keep this promise.)
@pytest.mark.parametrize("mode", LOOP_FREE_PROCESS_MODES)
async def test_a_dying_worker_fails_only_its_own_job(make_engine, mode: Mode) -> None:
    engine = make_engine(mode=mode)
    log = EventLog(engine)
    sleepers = [engine.submit("sleep", {"ms": 400}) for _ in range(2)]
    await until(lambda: any(job.state is JobState.RUNNING for job in sleepers), what="a sleeper to run")
    crash = engine.submit("crash", {"ms": 1})
    more = [engine.submit("sleep", {"ms": 50}) for _ in range(3)]
    await asyncio.wait_for(engine.wait_idle(), 60)

    check_job_invariants(log, [*sleepers, crash, *more])
    assert crash.state is JobState.FAILED
    assert crash.error is not None and "SIGKILL" in crash.error
    for job in [*sleepers, *more]:
        assert job.state is JobState.DONE, job
    # The pool carries on after being rebuilt.
    after = engine.submit("tiny")
    await asyncio.wait_for(engine.wait_idle(), 30)
    assert after.state is JobState.DONE
    if mode is Mode.PROCESS:
        notices = [event for event in log.events if isinstance(event, PoolNotice)]
        assert notices and "SIGKILL" in notices[0].message


async def test_innocent_jobs_in_a_broken_pool_are_run_again(make_engine) -> None:
    engine = make_engine(mode=Mode.PROCESS, workers=2)
    log = EventLog(engine)
    sleeper = engine.submit("sleep", {"ms": 600})
    await until(lambda: sleeper.state is JobState.RUNNING, what="the sleeper to run")
    crash = engine.submit("crash", {"ms": 1})
    await asyncio.wait_for(engine.wait_idle(), 60)
    check_job_invariants(log, [sleeper, crash])
    assert crash.state is JobState.FAILED
    assert sleeper.state is JobState.DONE
    assert sleeper.attempts == 2  # taken down beside the crash, then run again
    assert JobState.QUEUED in log.states[sleeper.id][1:]  # it was visibly re-queued


async def test_a_worker_exit_code_is_reported(make_engine) -> None:
    engine = make_engine(mode=Mode.PROCESS_PER_JOB)
    job = engine.submit("crash", {"ms": 1, "how": "exit"})
    await asyncio.wait_for(engine.wait_idle(), 30)
    assert job.state is JobState.FAILED
    assert job.error is not None and "exited with code 3" in job.error


async def test_a_pool_that_keeps_breaking_still_ends_every_job(make_engine) -> None:
    # SIGTERM is what a broken pool sends its survivors, so this crash cannot be
    # pinned on its job: it is re-run until the attempt limit fails it.
    engine = make_engine(mode=Mode.PROCESS, workers=1, max_attempts=2)
    log = EventLog(engine)
    job = engine.submit("crash", {"ms": 1, "how": "term"})
    await asyncio.wait_for(engine.wait_idle(), 60)
    check_job_invariants(log, [job])
    assert job.state is JobState.FAILED
    assert job.attempts == 2


async def test_crash_in_thread_mode_is_refused_not_fatal(make_engine) -> None:
    engine = make_engine(mode=Mode.THREAD)
    job = engine.submit("crash", {"ms": 1})
    await asyncio.wait_for(engine.wait_idle(), 30)
    assert job.state is JobState.FAILED
    assert job.error is not None and "crash refused" in job.error
    assert psutil.pid_exists(os.getpid())


# (Two jobs at once, killed from the loop: not in a mode that blocks it; no_job_lost cancels there.)
@pytest.mark.parametrize("mode", LOOP_FREE_MODES)
async def test_cancel_queued_and_kill_running(make_engine, mode: Mode) -> None:
    engine = make_engine(mode=mode)
    log = EventLog(engine)
    batch = engine.submit_batch("sleep", 6, {"ms": 5000})
    jobs = [engine.job(job_id) for job_id in batch.job_ids]
    await until(
        lambda: sum(job.state is JobState.RUNNING for job in jobs if job) == 2, what="two running jobs"
    )
    running_pids = {job.pid for job in jobs if job and job.state is JobState.RUNNING}

    assert engine.cancel_queued() == 4
    began = time.monotonic()
    assert engine.kill_running() == 2
    summary = await asyncio.wait_for(engine.wait_batch(batch), 10)
    assert time.monotonic() - began < 3.0  # nobody waited for a 5 s sleep to finish

    check_job_invariants(log, jobs)  # type: ignore[arg-type]
    assert summary.cancelled == 6
    reasons = sorted(job.error or "" for job in jobs if job)
    assert sum("while queued" in reason for reason in reasons) == 4
    assert sum("while running" in reason or "was ended" in reason for reason in reasons) == 2
    if not mode.abilities.in_process:
        await until(lambda: not any(psutil.pid_exists(pid) for pid in running_pids), 5, "workers to die")


async def test_cancel_one_running_thread_job_cooperatively(make_engine) -> None:
    engine = make_engine(mode=Mode.THREAD, workers=1)
    job = engine.submit("count_primes", {"n": 50_000_000})
    await until(lambda: job.state is JobState.RUNNING, what="the job to run")
    assert engine.cancel(job.id)
    await asyncio.wait_for(engine.wait_idle(), 10)
    assert job.state is JobState.CANCELLED
    assert job.error is not None and "checkpoint" in job.error
    assert job.cpu_s is not None  # it was measured up to where it stopped


async def test_cancel_a_dispatched_process_job_before_it_reports(make_engine) -> None:
    engine = make_engine(mode=Mode.PROCESS, workers=1)
    job = engine.submit("sleep", {"ms": 5000})
    assert job.state is JobState.DISPATCHED
    assert engine.cancel(job.id)  # not started yet: killed as soon as it reports in
    await asyncio.wait_for(engine.wait_idle(), 20)
    assert job.state is JobState.CANCELLED


async def test_mode_switch_mid_batch(make_engine) -> None:
    engine = make_engine(mode=Mode.THREAD, workers=1)
    log = EventLog(engine)
    batch = engine.submit_batch("sleep", 4, {"ms": 150})
    first = engine.job(batch.job_ids[0])
    assert first is not None
    await until(lambda: first.state is JobState.RUNNING, what="the first job to run")
    engine.set_mode(Mode.PROCESS)
    summary = await asyncio.wait_for(engine.wait_batch(batch), 60)
    jobs = [engine.job(job_id) for job_id in batch.job_ids]
    check_job_invariants(log, jobs)  # type: ignore[arg-type]
    assert first.mode is Mode.THREAD  # the running job finished where it was
    assert [job.mode for job in jobs[1:] if job] == [Mode.PROCESS] * 3  # the queue moved over
    assert summary.mode == "mixed"
    assert summary.speedup is None  # a batch split between modes measures neither
    assert any(isinstance(event, ConfigChanged) and event.mode is Mode.PROCESS for event in log.events)


async def test_worker_count_changes_live(make_engine) -> None:
    engine = make_engine(mode=Mode.THREAD, workers=1)
    log = EventLog(engine)
    batch = engine.submit_batch("sleep", 8, {"ms": 300})
    await until(lambda: log.max_running == 1, what="one running job")
    engine.set_workers(4)
    await until(lambda: log.max_running == 4, what="four running jobs")
    engine.set_workers(1)  # shrinking never interrupts a running job
    summary = await asyncio.wait_for(engine.wait_batch(batch), 60)
    assert summary.done == 8
    check_job_invariants(log, [engine.job(i) for i in batch.job_ids])  # type: ignore[misc]


async def test_process_pool_start_reports_are_the_truth(make_engine) -> None:
    # With 2 workers and 6 queued jobs, concurrent.futures would call 4 "running".
    engine = make_engine(mode=Mode.PROCESS, workers=2)
    log = EventLog(engine)
    batch = engine.submit_batch("sleep", 6, {"ms": 200})
    await asyncio.wait_for(engine.wait_batch(batch), 60)
    assert log.max_running == 2
    pids = {engine.job(i).pid for i in batch.job_ids}  # type: ignore[union-attr]
    assert len(pids) == 2  # a pool reuses its two workers
    # RUNNING comes from the worker's own report: it already knows the pid and
    # the start time stamped inside the worker, before the result is back.
    for job_id in batch.job_ids:
        pid, started = log.when_running[job_id]
        job = engine.job(job_id)
        assert job is not None
        assert pid == job.pid
        assert pid != os.getpid()
        assert started is not None and job.dispatched is not None and started >= job.dispatched


async def test_per_job_processes_do_not_block_the_loop(make_engine) -> None:
    engine = make_engine(mode=Mode.PROCESS_PER_JOB, workers=2)
    batch = engine.submit_batch("sleep", 2, {"ms": 600})
    ticks = 0
    worst_gap = 0.0
    last = time.monotonic()
    while not batch.finished:
        await asyncio.sleep(0.01)
        now = time.monotonic()
        worst_gap = max(worst_gap, now - last)
        last = now
        ticks += 1
    # join() on the loop would freeze it for the whole 600 ms sleep.
    assert worst_gap < 0.4
    assert ticks > 20


async def test_user_task_file_runs_in_every_mode(tmp_path: Path) -> None:
    module = tmp_path / "my_jobs.py"
    module.write_text(
        textwrap.dedent(
            '''
            from dataclasses import dataclass

            @dataclass
            class Answer:
                value: int

            def fib(n: int = 20) -> Answer:
                """Naive Fibonacci."""
                return Answer(n if n < 2 else fib(n - 1).value + fib(n - 2).value)

            def _helper():
                pass
            '''
        )
    )
    catalog = Catalog.builtin()
    added = catalog.load_file(module)
    assert [info.name for info in added] == ["fib"]
    assert catalog.get("fib").description == "Naive Fibonacci."
    for mode in ALL_MODES:
        async with Engine(mode=mode, workers=2, catalog=catalog, keep_results=True) as engine:
            job = engine.submit("fib", {"n": 15})
            await asyncio.wait_for(engine.wait_idle(), 60)
            assert job.state is JobState.DONE, (mode, job.error)
            assert job.result.value == 610
            assert type(job.result).__name__ == "Answer"


async def test_bad_requests_get_clear_errors(make_engine) -> None:
    engine = make_engine()
    with pytest.raises(Exception, match="unknown task 'nope'"):
        engine.submit("nope")
    with pytest.raises(Exception, match="bad parameters"):
        engine.submit("tiny", {"bogus": 1})
    with pytest.raises(EngineError, match="at least one job"):
        engine.submit_batch("tiny", 0)
    with pytest.raises(EngineError, match="workers must be"):
        engine.set_workers(0)
    with pytest.raises(ValueError, match="unknown mode"):
        engine.set_mode("fibers")
    with pytest.raises(EngineError, match="start method"):
        Engine(start_method="teleport")


async def test_events_iterator_and_snapshot(make_engine) -> None:
    engine = make_engine(mode=Mode.THREAD, workers=1)
    seen: list[str] = []

    async def consume() -> None:
        async for event in engine.events():
            if isinstance(event, BatchFinished):
                seen.append(f"batch {event.summary.done}")
                return
            if isinstance(event, JobChanged):
                seen.append(event.state.value)

    consumer = asyncio.create_task(consume())
    await asyncio.sleep(0)
    batch = engine.submit_batch("sleep", 3, {"ms": 100})
    snapshot = engine.snapshot()
    assert len(snapshot.queued) + len(snapshot.active) == 3
    assert snapshot.counts[JobState.QUEUED] == len(snapshot.queued)
    await asyncio.wait_for(consumer, 30)
    assert seen[-1] == "batch 3"
    assert seen.count("done") == 3
    after = engine.snapshot()
    assert [job.id for job in after.recent] == batch.job_ids
    assert after.batches[-1].summary is not None


async def test_speedup_needs_a_measured_serial_baseline(make_engine) -> None:
    engine = make_engine(mode=Mode.THREAD, workers=2)
    params = {"n": 20_000}
    # No baseline yet: no speedup is claimed (summing run times instead would
    # count waiting for the GIL as work).
    first = await asyncio.wait_for(engine.wait_batch(engine.submit_batch("count_primes", 4, params)), 60)
    assert first.serial_s is None
    assert first.speedup is None
    assert first.efficiency is None

    baseline = engine.submit_baseline("count_primes", params)
    batch = engine.submit_batch("count_primes", 4, params)  # waits for the baseline to finish
    second = await asyncio.wait_for(engine.wait_batch(batch), 60)
    # The baseline ran alone, in a fresh process, whatever the mode.
    assert baseline.state is JobState.DONE
    assert baseline.mode is Mode.PROCESS_PER_JOB
    assert baseline.pid != os.getpid()
    assert baseline.solo is True
    found = engine.baseline("count_primes", params)
    assert found is not None
    assert found[0] == baseline.run_s
    assert second.serial_s == pytest.approx(4 * baseline.run_s)  # type: ignore[operator]
    assert second.speedup == pytest.approx(second.serial_s / second.makespan_s)  # type: ignore[operator]
    assert second.efficiency == pytest.approx(second.speedup / min(2, engine.usable_cpus))  # type: ignore[operator]
    # More workers than cores cannot make a core do more: efficiency uses the cores.
    engine.set_workers(4 * engine.usable_cpus)
    crowded = await asyncio.wait_for(engine.wait_batch(engine.submit_batch("count_primes", 8, params)), 60)
    assert crowded.efficiency == pytest.approx(crowded.speedup / engine.usable_cpus)  # type: ignore[operator]
    engine.set_workers(2)
    # Makespan starts at the batch's first dispatch, not behind the baseline.
    assert engine.batch(batch.id).first_dispatched >= baseline.completed  # type: ignore[union-attr,operator]

    engine.clear_history()  # and clearing forgets it: the machine may have changed
    assert not engine.has_baseline("count_primes", params)


# (A close during a blocking join waits for the job: tests/test_shutdown.py checks that one.)
@pytest.mark.parametrize("mode", LOOP_FREE_PROCESS_MODES)
async def test_close_ends_workers_promptly(mode: Mode) -> None:
    engine = Engine(mode=mode, workers=2)
    batch = engine.submit_batch("sleep", 5, {"ms": 10_000})
    jobs = [engine.job(i) for i in batch.job_ids]
    await until(lambda: sum(job.state is JobState.RUNNING for job in jobs if job) == 2, what="two running")
    began = time.monotonic()
    await engine.close()
    assert time.monotonic() - began < 2.5
    assert all(job.state is JobState.CANCELLED for job in jobs if job)
    await until(lambda: not worker_children(), 5, "worker processes to go")
    with pytest.raises(EngineError, match="closed"):
        engine.submit("tiny")


def pool_manager_threads() -> list[threading.Thread]:
    return [thread for thread in threading.enumerate() if "ExecutorManager" in type(thread).__name__]


@pytest.mark.parametrize("while_", ["starting workers", "idle"])
async def test_close_leaves_no_pool_manager_thread(while_: str) -> None:
    # At interpreter exit CPython wakes each live pool manager thread through a
    # pipe the thread closes as it ends: "Bad file descriptor" printed after
    # coredash had said goodbye. close() returns once the manager is done.
    unheard: list[dict[str, object]] = []
    asyncio.get_running_loop().set_exception_handler(lambda loop, context: unheard.append(context))
    engine = Engine(mode=Mode.PROCESS, workers=2)
    warming = asyncio.ensure_future(engine.warm_up())
    if while_ == "idle":
        await warming
    else:  # and the warm-up is cancelled, as ctrl+c in `coredash bench` does
        await until(lambda: bool(pool_manager_threads()), what="the pool to start")
        warming.cancel()
    await engine.close()
    assert not pool_manager_threads()
    await asyncio.wait([warming], timeout=5)
    assert warming.done()
    await until(lambda: not worker_children(), 5, "worker processes to go")
    del engine, warming
    gc.collect()  # a task whose failure no one retrieved is logged when collected
    assert not unheard, unheard


async def test_jobs_that_print_do_not_reach_the_terminal(
    capfd: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    module = tmp_path / "noisy.py"
    module.write_text(
        "import sys\n"
        "def noisy(n: int = 1) -> int:\n"
        "    print('NOISE-OUT'); print('NOISE-ERR', file=sys.stderr)\n"
        "    return n\n"
    )
    catalog = Catalog.builtin()
    catalog.load_file(module)
    for mode in PROCESS_MODES:
        async with Engine(mode=mode, workers=1, catalog=catalog) as engine:
            job = engine.submit("noisy")
            await asyncio.wait_for(engine.wait_idle(), 30)
            assert job.state is JobState.DONE
    captured = capfd.readouterr()
    assert "NOISE" not in captured.out + captured.err


# --- regressions found in review -------------------------------------------------


async def test_a_pool_whose_worker_was_killed_never_leaves_workers_behind(make_engine) -> None:
    # A cancel SIGKILLs a worker that may hold the pool's queue locks; a graceful
    # shutdown of that pool would then wait forever on a sibling.
    for _ in range(3):
        engine = make_engine(mode=Mode.PROCESS, workers=3)
        await engine.warm_up()
        old_pids = engine.live_worker_pids()
        jobs = [engine.submit("tiny") for _ in range(3)]
        engine.cancel(jobs[2].id)  # still dispatched: killed when it reports in
        engine.set_workers(2)  # the old pool retires once its jobs are back
        await asyncio.wait_for(engine.wait_idle(), 20)
        assert all(job.state.terminal for job in jobs)
        await until(lambda pids=old_pids: not any(psutil.pid_exists(pid) for pid in pids), 5, "old workers")


async def test_cancelling_neighbours_never_fails_an_innocent_job(make_engine) -> None:
    engine = make_engine(mode=Mode.PROCESS, workers=2, max_attempts=2)
    long = engine.submit("sleep", {"ms": 1500})
    for _ in range(3):  # each cancel breaks the pool under the long job
        other = engine.submit("sleep", {"ms": 5000})
        await until(lambda o=other: o.state is JobState.RUNNING and long.state is JobState.RUNNING)
        engine.cancel(other.id)
        await until(lambda o=other: o.state.terminal)
        assert other.state is JobState.CANCELLED
    await asyncio.wait_for(engine.wait_idle(), 30)
    assert long.state is JobState.DONE  # re-run each time, never blamed
    assert long.attempts == 4


@pytest.mark.parametrize("mode", ALL_MODES)
async def test_cancel_right_after_submit_never_runs_the_job(make_engine, mode: Mode) -> None:
    engine = make_engine(mode=mode)
    job = engine.submit("sleep", {"ms": 3000})
    assert engine.cancel(job.id)
    began = time.monotonic()
    await asyncio.wait_for(engine.wait_idle(), 20)
    assert job.state is JobState.CANCELLED
    assert time.monotonic() - began < 2.0


@pytest.mark.parametrize("mode", ALL_MODES)
async def test_close_right_after_submit_cancels_rather_than_fails(mode: Mode) -> None:
    engine = Engine(mode=mode, workers=2)
    jobs = [engine.submit("sleep", {"ms": 3000}) for _ in range(3)]
    began = time.monotonic()
    await engine.close()
    assert time.monotonic() - began < 1.0
    assert [job.state for job in jobs] == [JobState.CANCELLED] * 3
    assert all(job.error for job in jobs)
    await until(lambda: not worker_children(), 5, "no workers")


async def test_an_executor_that_cannot_start_fails_its_jobs_visibly(make_engine) -> None:
    import dataclasses

    from coredash.engine.backends.process_pool import ProcessPoolBackend
    from coredash.engine.modes import REGISTRY

    class NoPool(ProcessPoolBackend):
        def __init__(self, *args: object, **kwargs: object) -> None:
            raise OSError(24, "Too many open files")

    real = REGISTRY.info(Mode.PROCESS)
    REGISTRY.register(dataclasses.replace(real, backend=NoPool))
    try:
        await _fails_visibly(make_engine)
    finally:
        REGISTRY.register(real)


async def _fails_visibly(make_engine) -> None:  # type: ignore[no-untyped-def]
    engine = make_engine(mode=Mode.PROCESS)
    log = EventLog(engine)
    job = engine.submit("tiny")
    await asyncio.wait_for(engine.wait_idle(), 5)
    assert job.state is JobState.FAILED
    assert job.error is not None and "Too many open files" in job.error
    assert any(isinstance(event, PoolNotice) for event in log.events)
    engine.set_mode(Mode.THREAD)  # and the engine carries on
    after = engine.submit("tiny")
    await asyncio.wait_for(engine.wait_idle(), 5)
    assert after.state is JobState.DONE


async def test_a_per_job_process_that_leaves_a_helper_behind_still_ends(make_engine, tmp_path: Path) -> None:
    module = tmp_path / "helpers.py"
    module.write_text(
        "import os, time\n"
        "def fork_helper(secs: int = 3) -> str:\n"
        "    if os.fork() == 0:\n"
        "        time.sleep(secs); os._exit(0)\n"
        "    return 'forked'\n"
    )
    catalog = Catalog.builtin()
    catalog.load_file(module)
    engine = make_engine(mode=Mode.PROCESS_PER_JOB, catalog=catalog)
    job = engine.submit("fork_helper", {"secs": 3})
    began = time.monotonic()
    await asyncio.wait_for(engine.wait_idle(), 10)
    assert job.state is JobState.DONE
    assert time.monotonic() - began < 2.0  # not held open by the helper's copy of the pipe


async def test_warm_up_reports_instead_of_raising(make_engine) -> None:
    engine = make_engine(mode=Mode.PROCESS)
    log = EventLog(engine)
    assert await engine.warm_up() is True
    engine.set_workers(3)
    warming = asyncio.ensure_future(engine.warm_up())
    await asyncio.sleep(0)  # the new pool is starting its workers...
    engine.set_mode(Mode.THREAD)  # ...when it is replaced
    assert await asyncio.wait_for(warming, 5) is False
    engine.set_mode(Mode.PROCESS)
    warming = asyncio.ensure_future(engine.warm_up())
    await asyncio.sleep(0)
    await engine.close()  # or when the engine closes
    assert await asyncio.wait_for(warming, 5) is False
    assert not [event for event in log.events if isinstance(event, PoolNotice)]  # neither is a failure


async def test_cancel_a_job_that_started_before_the_loop_heard_of_it(make_engine) -> None:
    """The worker has started the job, but its start report is still in the pipe."""
    engine = make_engine(mode=Mode.PROCESS, workers=1)
    await engine.warm_up()
    loop = asyncio.get_running_loop()
    loop.remove_reader(engine._reports.fd)  # hold the start reports back
    try:
        job = engine.submit("sleep", {"ms": 5000})
        await asyncio.sleep(0.5)  # long enough for the worker to have started it
        assert job.state is JobState.DISPATCHED
        assert engine.cancel(job.id)
        assert job.state is JobState.DISPATCHED  # no pid known yet: nothing to kill
    finally:
        loop.add_reader(engine._reports.fd, engine._read_reports)
    await asyncio.wait_for(engine.wait_idle(), 10)  # the report arrives and the worker is ended
    assert job.state is JobState.CANCELLED
    assert job.error is not None and "worker pid" in job.error and "ended" in job.error


async def test_cancel_batch(make_engine) -> None:
    engine = make_engine(mode=Mode.THREAD, workers=1)
    batch = engine.submit_batch("sleep", 4, {"ms": 2000})
    await until(lambda: engine.snapshot().counts[JobState.RUNNING] == 1, what="one running")
    assert engine.cancel_batch(batch.id) == 4
    summary = await asyncio.wait_for(engine.wait_batch(batch), 10)
    assert summary.cancelled == 4
    assert summary.mean_run_s is None  # nothing finished: no made-up means
    assert summary.speedup is None


# --- huge batches are made in slices, so queueing them never freezes the loop ---


async def test_a_huge_batch_is_queued_in_slices_first_come_first_served(make_engine) -> None:
    from coredash.engine.engine import SUBMIT_SLICE

    engine = make_engine(mode=Mode.THREAD, history=20_000)
    log = EventLog(engine)
    count = 3 * SUBMIT_SLICE + 7
    batch = engine.submit_batch("tiny", count, {"n": 1})
    assert len(log.states) <= SUBMIT_SLICE  # only the first slice exists yet...
    assert (
        engine.snapshot().counts[JobState.QUEUED] + engine.snapshot().counts[JobState.DISPATCHED] >= count - 2
    )
    late = engine.submit("tiny", {"n": 2})  # ...but a later job still queues behind all of them
    assert late.state is JobState.QUEUED
    await asyncio.wait_for(engine.wait_idle(), 60)
    jobs = [engine.job(job_id) for job_id in batch.job_ids]
    assert all(job is not None and job.state is JobState.DONE for job in jobs)
    check_job_invariants(log, [*jobs, late])  # type: ignore[list-item]
    assert late.dispatched is not None
    assert all(job.dispatched <= late.dispatched for job in jobs)  # type: ignore[union-attr,operator]


async def test_a_huge_batch_cancelled_or_closed_at_once_loses_no_job(make_engine) -> None:
    from coredash.engine.engine import SUBMIT_SLICE

    engine = make_engine(mode=Mode.PROCESS, history=50_000)
    log = EventLog(engine)
    first = engine.submit_batch("tiny", 4 * SUBMIT_SLICE, {"n": 1})
    engine.cancel_batch(first.id)  # before most of its records were made
    summary = await asyncio.wait_for(engine.wait_batch(first), 60)
    assert summary.done + summary.cancelled == first.count and summary.cancelled > 0
    second = engine.submit_batch("tiny", 4 * SUBMIT_SLICE, {"n": 1})
    await engine.close()  # likewise
    assert second.summary is not None
    assert second.summary.done + second.summary.cancelled == second.count
    ended = [engine.job(job_id) for job_id in [*first.job_ids, *second.job_ids]]
    check_job_invariants(log, ended)  # type: ignore[arg-type]


async def test_jobs_parked_behind_a_huge_batch_can_be_cancelled_one_by_one(make_engine) -> None:
    from coredash.engine.engine import SUBMIT_SLICE

    engine = make_engine(mode=Mode.PROCESS, history=50_000)
    log = EventLog(engine)
    batch = engine.submit_batch("sleep", 3 * SUBMIT_SLICE, {"ms": 1})
    parked = [engine.submit("tiny", {"n": n}) for n in range(3)]
    assert engine.cancel(parked[1].id)  # a job waiting behind the batch's unmade slices
    assert engine.cancel(batch.job_ids[-1])  # a job whose record was not made yet
    assert engine.snapshot().counts[JobState.CANCELLED] == 2
    cancelled = engine.cancel_queued()
    assert cancelled > SUBMIT_SLICE
    await asyncio.wait_for(engine.wait_idle(), 60)
    jobs = [engine.job(job_id) for job_id in batch.job_ids]
    check_job_invariants(log, [*jobs, *parked])  # type: ignore[list-item]
    assert parked[1].state is JobState.CANCELLED and parked[0].state is JobState.CANCELLED
    assert batch.summary is not None and batch.summary.done + batch.summary.cancelled == batch.count
    counts = engine.snapshot().counts
    assert counts[JobState.DONE] + counts[JobState.CANCELLED] == batch.count + 3


def _thread_nice(tid: int) -> int:
    fields = open(f"/proc/self/task/{tid}/stat").read().rpartition(")")[2].split()  # noqa: SIM115
    return int(fields[16])  # field 19 of stat: nice


# (Looked at while the job runs: tests/test_blocking.py looks from a thread in blocking join.)
@pytest.mark.parametrize("mode", LOOP_FREE_MODES, ids=str)
async def test_workers_run_nicer_when_asked(make_engine, mode: Mode) -> None:
    """The dashboard runs its workers at a lower priority, so it still gets a core under full load."""
    engine = make_engine(mode=mode, worker_nice=7)
    job = engine.submit("sleep", {"ms": 2000})
    await until(lambda: job.state is JobState.RUNNING, what="the job to start")
    assert job.pid is not None and job.thread_id is not None
    if mode.abilities.in_process:  # threads, and the threads interpreters run on
        assert _thread_nice(job.thread_id) == 7
        assert psutil.Process().nice() == 0  # the UI's own threads keep their priority
    else:
        assert psutil.Process(job.pid).nice() == 7
    engine.cancel(job.id)


async def test_workers_keep_their_priority_by_default(make_engine) -> None:
    engine = make_engine(mode=Mode.PROCESS)
    job = engine.submit("sleep", {"ms": 1000})
    await until(lambda: job.state is JobState.RUNNING, what="the job to start")
    assert job.pid is not None and psutil.Process(job.pid).nice() == 0


async def test_spawned_per_job_processes_are_reaped_without_loop_errors(make_engine) -> None:
    """With spawn, a child's sentinel can fire a moment before it can be reaped."""
    loop = asyncio.get_running_loop()
    errors: list[dict[str, object]] = []
    loop.set_exception_handler(lambda _loop, context: errors.append(context))
    try:
        engine = make_engine(mode=Mode.PROCESS_PER_JOB, start_method="spawn")
        batch = engine.submit_batch("tiny", 8, {"n": 1})
        crash = engine.submit("crash", {"ms": 1, "how": "exit"})
        assert (await asyncio.wait_for(engine.wait_batch(batch), 60)).done == 8
        await asyncio.wait_for(engine.wait_idle(), 60)
        assert crash.state is JobState.FAILED and "exited with code 3" in (crash.error or "")
        await asyncio.sleep(0.3)  # the reaping of the last children
        assert not errors, errors
    finally:
        loop.set_exception_handler(None)
