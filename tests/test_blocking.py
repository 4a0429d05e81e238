"""The blocking join mode: the seed's ``process.join()`` on coredash's own event loop, made safe.

What it must show: the dashboard freezes while a job runs, then the lag meter,
the comparison row and a notice say so with the measured figure. What it must
never do: run two jobs at once, deadlock on a big result, block past its cap,
lose a job or leave a child behind. The fault matrix, the contract tests and
the no-job-lost property run over this mode too (tests/test_faults.py and co.);
quitting during a freeze is in tests/test_shutdown.py.
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator

import psutil
import pytest
from textual import events
from textual.widgets import Input, OptionList

from coredash.app import CoredashApp
from coredash.engine import ConfigChanged, Engine, EngineError, JobState, Mode, PoolNotice
from coredash.engine.backends.blocking import BlockingBackend
from coredash.engine.limits import MAX_BLOCKING_JOB_S
from coredash.engine.modes import REGISTRY
from coredash.loop_lag import LoopLagMonitor
from coredash.screens.picker import JobPickerScreen
from coredash.widgets.comparison import ComparisonPanel
from coredash.widgets.monitor_panel import MonitorPanel
from coredash.widgets.status_line import StatusLine
from coredash.widgets.workers_panel import WorkersPanel
from tests.conftest import EventLog, WorkerWatch, check_job_invariants, until, worker_children

BLOCKING = Mode.BLOCKING
NOTICE = re.compile(r"process\.join\(\) blocked the event loop for (\d+\.\d\d) s")


async def test_one_job_at_a_time_whatever_the_worker_count(make_engine) -> None:
    engine = make_engine(mode=BLOCKING, workers=2)
    log = EventLog(engine)
    batch = engine.submit_batch("sleep", 4, {"ms": 250})
    assert engine.snapshot().counts[JobState.DISPATCHED] == 1  # not 2: the second would only wait
    summary = await asyncio.wait_for(engine.wait_batch(batch), 60)
    jobs = [engine.job(job_id) for job_id in batch.job_ids]
    check_job_invariants(log, jobs)  # type: ignore[arg-type]
    assert summary.done == 4 and log.max_running == 1
    spans = sorted((job.started, job.finished) for job in jobs if job)  # type: ignore[misc]
    assert all(end <= start for (_, end), (start, _) in itertools.pairwise(spans)), spans
    assert len({job.pid for job in jobs if job}) == 4  # a fresh process each, as the seed does
    # The proof of the comparison row: the makespan is the sum of the jobs, not a
    # quarter of it at 2 workers (plus each job's start and the loop's breather).
    assert summary.sum_run_s <= summary.makespan_s < summary.sum_run_s + 4 * 0.25, summary


async def test_the_loop_is_blocked_while_a_job_runs_and_a_notice_says_for_how_long(make_engine) -> None:
    engine = make_engine(mode=BLOCKING)
    notices: list[str] = []
    engine.subscribe(lambda event: notices.append(event.message) if isinstance(event, PoolNotice) else None)
    loop = asyncio.get_running_loop()
    turns: list[float] = []  # when the loop ran a callback a thread asked for every 10 ms
    stop = threading.Event()

    def heartbeat() -> None:
        while not stop.is_set():
            loop.call_soon_threadsafe(lambda: turns.append(time.monotonic()))
            time.sleep(0.01)

    beating = threading.Thread(target=heartbeat, daemon=True)
    beating.start()
    try:
        await asyncio.sleep(0.1)
        job = engine.submit("sleep", {"ms": 1000})
        await asyncio.wait_for(engine.wait_idle(), 30)
        await asyncio.sleep(0.1)
    finally:
        stop.set()
        beating.join()
    assert job.state is JobState.DONE and job.run_s is not None
    longest = max(later - earlier for earlier, later in itertools.pairwise(turns))
    assert longest >= job.run_s, (longest, job.run_s)  # the loop ran nothing while the job ran
    found = [match for text in notices if (match := NOTICE.search(text))]
    assert len(found) == 1, notices
    blocked = float(found[0].group(1))
    assert job.run_s <= blocked + 0.01 and blocked < job.run_s + 0.5, (blocked, job.run_s)
    assert "nothing was drawn and no key was read" in notices[0]
    assert "Process per job (s) awaits the same process without blocking" in notices[0]


async def test_the_freezes_of_a_batch_are_all_told_even_the_last_ones(make_engine) -> None:
    engine = make_engine(mode=BLOCKING)
    notices: list[str] = []
    engine.subscribe(lambda event: notices.append(event.message) if isinstance(event, PoolNotice) else None)
    batch = engine.submit_batch("sleep", 4, {"ms": 200})
    await asyncio.wait_for(engine.wait_batch(batch), 30)
    await until(lambda: len(notices) >= 2, 5, "the notice for the freezes after the first")
    assert NOTICE.search(notices[0]), notices  # the first freeze, at once
    # The other three came within the toast's lifetime: one notice counts them, once
    # nothing runs any more.
    assert "blocked the event loop 3 more times" in notices[1], notices
    assert len(notices) == 2, notices


async def test_a_result_larger_than_a_pipe_buffer_comes_back(make_engine) -> None:
    # Written to a pipe nobody reads during join(), it would never let the child exit.
    engine = make_engine(mode=BLOCKING)
    job = engine.submit("payload", {"mb": 16})
    await asyncio.wait_for(engine.wait_idle(), 30)
    assert job.state is JobState.DONE, job.error
    assert job.result is not None and len(job.result) == 16 << 20


class ShortCap(BlockingBackend):
    CAP_S = 1.0


@pytest.fixture
def short_cap() -> Iterator[None]:
    real = REGISTRY.info(BLOCKING)
    REGISTRY.register(dataclasses.replace(real, backend=ShortCap))
    try:
        yield
    finally:
        REGISTRY.register(real)


async def test_a_job_past_the_cap_is_killed_and_says_why(make_engine, short_cap: None) -> None:
    engine = make_engine(mode=BLOCKING)
    log = EventLog(engine)
    began = time.monotonic()
    job = engine.submit("hang", {"s": 5})  # under the real cap, over this one
    after = engine.submit("tiny", {"n": 1})
    await asyncio.wait_for(engine.wait_idle(), 30)
    check_job_invariants(log, [job, after])
    assert job.state is JobState.FAILED
    assert "1.00 s time limit on one blocking job" in (job.error or ""), job.error
    assert f"pid {job.pid}" in (job.error or "") and "killed" in (job.error or "")
    assert time.monotonic() - began < 4
    assert after.state is JobState.DONE and after.result == 2
    assert not worker_children()


async def test_jobs_that_would_block_past_the_cap_are_refused(make_engine) -> None:
    engine = make_engine(mode=BLOCKING)
    with pytest.raises(
        EngineError, match=r"hang s=3,600: each job would block the event loop .* at most 10 s"
    ):
        engine.submit("hang", {"s": 3600})
    with pytest.raises(EngineError, match="sleep ms=60,000"):
        engine.submit_batch("sleep", 2, {"ms": 60_000})
    assert engine.blocking_refusal("hang", {"s": int(MAX_BLOCKING_JOB_S)}) is None
    assert engine.blocking_refusal("count_primes", {"n": 10**9}) is None  # not measured: the cap rules
    engine.set_mode(Mode.PROCESS_PER_JOB)
    assert engine.blocking_refusal("hang", {"s": 3600}) is None  # only a mode that blocks the loop refuses
    # A job timeout under the cap ends such jobs sooner: they may run.
    timed = make_engine(mode=BLOCKING, job_timeout=0.3)
    job = timed.submit("hang", {"s": 3600})
    await asyncio.wait_for(timed.wait_idle(), 30)
    assert job.state is JobState.FAILED and "timed out after 300 ms" in (job.error or "")


@pytest.mark.parametrize(
    "argv",
    [
        ["--mode", "blocking", "--task", "hang"],
        ["--mode", "join", "--task", "sleep", "--size", "20000"],
        ["bench", "--task", "hang", "--modes", "process,blocking"],
    ],
    ids=["dashboard default size", "dashboard --size", "bench"],
)
def test_the_command_line_refuses_them_with_the_reason(argv: list[str]) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "coredash", *argv], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 2, proc
    assert proc.stderr.startswith("coredash: error: ") and proc.stderr.count("\n") == 1, proc.stderr
    assert "in blocking join mode: each job would block the event loop" in proc.stderr
    assert "--job-timeout" in proc.stderr and "process-per-job" in proc.stderr  # what to do instead
    assert proc.stdout == ""


async def test_workers_run_nicer_when_asked(make_engine) -> None:
    engine = make_engine(mode=BLOCKING, worker_nice=7)

    def settled_nice(process: psutil.Process) -> int:
        # Found by the watch before its initializer ran, on a busy machine: give it time.
        deadline = time.monotonic() + 3
        while process.nice() != 7 and time.monotonic() < deadline:
            time.sleep(0.01)
        return process.nice()

    with WorkerWatch(then=settled_nice, delay=0.1) as watch:  # seen from a thread
        job = engine.submit("sleep", {"ms": 600})
        await asyncio.wait_for(engine.wait_idle(), 30)
    assert job.state is JobState.DONE and watch.acted == [7]
    assert psutil.Process().nice() == 0


def test_ctrl_c_inside_join_leaves_no_child(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """asyncio.run's second ctrl+c raises KeyboardInterrupt wherever it lands: here, inside join()."""
    script = tmp_path / "join_me.py"
    script.write_text(
        "import asyncio\n"
        "from coredash.engine import Engine\n"
        "async def main():\n"
        "    engine = Engine(mode='blocking', workers=1)\n"
        "    engine.submit('sleep', {'ms': 8000})\n"
        "    await engine.wait_idle()\n"
        "if __name__ == '__main__':\n"
        "    asyncio.run(main())\n"
    )
    proc = subprocess.Popen([sys.executable, str(script)], stderr=subprocess.PIPE, text=True)
    try:
        me = psutil.Process(proc.pid)
        deadline = time.monotonic() + 30
        jobs: list[psutil.Process] = []
        while not jobs:
            assert time.monotonic() < deadline, "the job never started"
            helpers = {p.pid for p in me.children() if "multiprocessing" in " ".join(p.cmdline())}
            jobs = [p for p in me.children(recursive=True) if p.pid not in helpers and p.ppid() in helpers]
            time.sleep(0.02)
        job = jobs[0]
        time.sleep(0.3)
        began = time.monotonic()
        for _ in range(2):  # the first cancels the main task (at its next await); the second raises
            proc.send_signal(2)
            time.sleep(0.1)
        proc.wait(10)
        assert time.monotonic() - began < 2
        assert "KeyboardInterrupt" in (proc.stderr.read() if proc.stderr else "")
        psutil.wait_procs([job], timeout=2)
        assert not job.is_running() or job.status() == psutil.STATUS_ZOMBIE, "the job outlived the join"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


# --- the dashboard ---------------------------------------------------------------------------


async def test_key_b_freezes_the_dashboard_then_says_what_happened() -> None:
    engine = Engine(mode=Mode.THREAD, workers=2)
    app = CoredashApp(engine, task="sleep", size=1200, jobs=2, refresh=10)
    app.auto_baseline = False
    changes: list[float] = []
    engine.subscribe(
        lambda event: changes.append(time.monotonic()) if isinstance(event, ConfigChanged) else None
    )

    def press_during_the_freeze(job: psutil.Process) -> float:
        driver = app._driver
        assert driver is not None
        driver.send_message(events.Key("minus", "-"))  # as the terminal's input thread does
        return time.monotonic()

    async with app.run_test(size=(160, 45), notifications=True) as pilot:
        await pilot.press("b")
        assert engine.mode is BLOCKING
        await until(lambda: engine.mode is app.query_one(StatusLine).data.mode, what="the status line")
        assert "2 workers, 1 at a time" in str(app.query_one(StatusLine).render())
        workers = app.query_one(WorkersPanel).render()
        assert "1 job at a time, not 2" in str(workers) and "w2" not in str(workers)

        with WorkerWatch(then=press_during_the_freeze, delay=0.3) as watch:
            await pilot.press("r")
            batch = engine.snapshot().batches[-1]
            await until(lambda: batch.finished, 60, "the batch")
        pressed = watch.acted
        first, second = (engine.job(job_id) for job_id in batch.job_ids)
        assert first is not None and second is not None and first.run_s is not None
        # The key pressed during the first job's freeze was read once it was over, and
        # before the second one froze the loop again.
        assert pressed and engine.workers == 1
        assert first.finished is not None and second.started is not None
        assert pressed[0] < first.finished < changes[-1] < second.started  # type: ignore[operator]

        # The notice, with the figure the backend measured.
        await until(lambda: any(NOTICE.search(str(n.message)) for n in app._notifications), what="the notice")
        texts = [str(note.message) for note in app._notifications if NOTICE.search(str(note.message))]
        blocked = float(NOTICE.search(texts[0]).group(1))  # type: ignore[union-attr]
        assert first.run_s <= blocked + 0.01 < first.run_s + 0.5, (blocked, first.run_s)

        # The lag meter shows the stall, and the comparison row its batch's p99.
        await until(lambda: app.lag.stats() is not None and app.lag.stats().p99_ms >= 1000, what="lag p99")  # type: ignore[union-attr]
        lag_row = next(
            line for line in str(app.query_one(MonitorPanel).render()).splitlines() if "lag" in line
        )
        p99 = float(re.search(r"p99\s+(\d+) ms", lag_row).group(1))  # type: ignore[union-attr]
        assert p99 >= 1000, lag_row
        panel = app.query_one(ComparisonPanel)
        await until(lambda: batch.id in panel.data.lag_p99_ms, what="the batch's lag in the comparison")
        assert panel.data.lag_p99_ms[batch.id] >= 1000 * (first.run_s - 0.1)
        text = str(panel.render())
        row = next(line for line in text.splitlines() if "▶ blocking join" in line)
        assert "lag p99 · chunk" in text
        assert re.search(r"\s1\.\d+ s · ", row), row  # under "lag p99": a second and more
        assert "blocking join: 1 job at a time whatever the workers, so makespan ≈ Σ run" in text


async def test_the_picker_refuses_a_size_that_would_block_too_long() -> None:
    engine = Engine(mode=BLOCKING, workers=2)
    app = CoredashApp(engine, task="sleep", size=100, jobs=2, refresh=10)
    app.auto_baseline = False
    async with app.run_test(size=(160, 45)) as pilot:
        await pilot.press("j")
        await until(lambda: isinstance(app.screen, JobPickerScreen), what="the picker")
        picker = app.screen
        picker.query_one("#tasks", OptionList).highlighted = engine.catalog.names().index("hang")
        await until(lambda: picker.query_one("#size", Input).value == "3600", what="hang's default size")
        await pilot.press("enter")  # to the size field
        await pilot.press("enter")  # run
        error = picker.query_one("#error")
        await until(lambda: "would block the event loop" in str(error.render()), what="the refusal")
        assert "at most 10 s" in str(error.render())
        assert app.screen is picker and not engine.snapshot().batches  # nothing ran
        picker.query_one("#size", Input).value = "1"
        await pilot.press("enter")
        await until(lambda: bool(engine.snapshot().batches), what="the batch at a size that fits")
        await until(lambda: engine.snapshot().batches[-1].finished, 30, "it to finish")
        assert engine.snapshot().batches[-1].summary.done == 2  # type: ignore[union-attr]


def test_the_lag_meter_counts_every_timer_a_stall_held_up() -> None:
    """One wake-up after a 2 s stall stands for the 40 timers that were due meanwhile:
    counted alone it would be 1 sample in 50 and p99 would never show it."""
    monitor = LoopLagMonitor(interval=0.05, window=5.0)
    for index in range(50):
        monitor.record(index * 0.05, 0.001)
    assert monitor.stats().p99_ms == pytest.approx(1.0)  # type: ignore[union-attr]
    monitor.record(4.5, 2.0)  # due at 2.5, run at 4.5
    stats = monitor.stats()
    assert stats is not None and stats.max_ms == pytest.approx(2000) and stats.p99_ms >= 1900
    assert not monitor.settled(4.5) and monitor.settled(4.45)
    during = monitor.between(2.46, 4.5)  # a batch that ran then: its own p99
    assert during is not None and during.p99_ms >= 1900 and during.samples == 41
    assert monitor.between(0.0, 2.4).max_ms == pytest.approx(1.0)  # type: ignore[union-attr]


def test_the_help_states_the_cap() -> None:
    assert f"at most {MAX_BLOCKING_JOB_S:g} s" in REGISTRY.info(BLOCKING).help
