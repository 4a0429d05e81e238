"""No job lost: a property test of the engine's central promise, on real executors.

Hypothesis draws scenarios: a starting mode and worker count, then a sequence of
operations (batches and single jobs that succeed, raise, crash their worker or
sleep; cancels of one job, of a batch, of the queue; kills of everything
running; mode switches; worker-count changes; short awaits in between). Each
scenario runs on a fresh engine and event loop, is driven until the engine is
idle, then closed, and then checked:

* every submitted job got exactly one terminal event, and it was its last;
* the counts add up: per state, per batch, and in the engine's snapshot;
* every failed or cancelled job says why, in words that fit what it did; a
  cancelled job was one we asked to cancel; a job that raises or crashes never
  ends "done"; a job that ended "done" returned its own result (tiny jobs carry
  distinct numbers, so results handed to the wrong job show);
* no asyncio task or future is left pending, and the engine's in-flight maps
  are empty;
* no worker process (or zombie), worker thread or extra multiprocessing helper
  is left behind.

Runs of hundreds of tiny jobs are there so that dispatch which sends many tiny
jobs per executor call gets exercised when the engine does that. Across all
examples the test submits well over 1,000 jobs and checks, at the end, that the
strategy really reached every operation and every mode.

Reproducible: ``derandomize=True`` and no example database, so CI draws the
same scenarios every run (timing still varies, which is the point of running
real executors).
"""

from __future__ import annotations

import asyncio
import os
import sys
import threading
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

import psutil
import pytest
from hypothesis import HealthCheck, Phase, example, given, settings
from hypothesis import strategies as st

from coredash.engine import BatchRecord, Engine, EngineEvent, JobChanged, JobRecord, JobState, Mode
from coredash.engine.backends import THREAD_NAME_PREFIX
from tests.conftest import ALL_MODES, EventLog, check_job_invariants, helper_processes, until

EXAMPLES = 100
MIN_JOBS = 1000
# The largest scenario drawn takes a few seconds; a minute would be a hang.
IDLE_TIMEOUT = 20.0
# Shrinking replays failing scenarios many times (a hang costs IDLE_TIMEOUT each):
# off in CI, where the first failing scenario is printed as it is.
SHRINK = os.environ.get("COREDASH_SHRINK") == "1"

# --- what the scenarios are made of ------------------------------------------------


@dataclass(frozen=True)
class JobKind:
    task: str
    params: dict[str, Any]

    @property
    def behaviour(self) -> str:
        return {"tiny": "ok", "sleep": "ok", "fail": "raise", "crash": "crash"}[self.task]


tiny_jobs = st.builds(lambda n: JobKind("tiny", {"n": n}), st.integers(0, 10**9))
sleep_jobs = st.builds(lambda ms: JobKind("sleep", {"ms": ms}), st.integers(0, 80))
fail_jobs = st.builds(lambda ms: JobKind("fail", {"ms": ms}), st.integers(0, 3))
crash_jobs = st.builds(
    lambda ms, how: JobKind("crash", {"ms": ms, "how": how}),
    st.integers(0, 3),
    st.sampled_from(["kill", "term", "exit"]),
)
small_jobs = st.one_of(sleep_jobs, fail_jobs, crash_jobs, tiny_jobs)


def tiny_count(draw: st.DrawFn, mode: Mode) -> int:
    """Hundreds of tiny jobs where they are cheap; tens where each is a new process.

    A queue of hundreds can still land in process-per-job mode through a later
    mode switch (about 5 ms a job on 2 cores): it happens, just not every time.
    """
    if mode.abilities.start_cost == "per job":  # process per job, blocking join
        return draw(st.integers(5, 40))
    return draw(st.integers(50, 400))


@st.composite
def operation(draw: st.DrawFn, mode: Mode) -> tuple[Any, ...]:
    """One step; submitting weighs twice as much as interfering, so few cancels hit nothing."""
    family = draw(st.sampled_from(["submit", "submit", "submit", "interfere", "interfere", "pause"]))
    if family == "submit":
        name = draw(st.sampled_from(["tiny_batch", "tiny_run", "batch", "submit"]))
        if name == "tiny_batch":
            return (name, draw(tiny_jobs), tiny_count(draw, mode))
        if name == "tiny_run":
            return (name, draw(st.integers(0, 10**9)), tiny_count(draw, mode) // 2 + 1)
        if name == "batch":
            return (name, draw(small_jobs), draw(st.integers(1, 6)))
        return (name, draw(small_jobs))
    if family == "pause":
        return ("pause", draw(st.integers(0, 60)))
    name = draw(
        st.sampled_from(
            ["cancel", "cancel_batch", "cancel_queued", "kill_running", "set_mode", "set_workers"]
        )
    )
    if name in ("cancel", "cancel_batch"):
        return (name, draw(st.integers(0, 10**6)))
    if name == "set_mode":
        return (name, draw(st.sampled_from(ALL_MODES)))
    if name == "set_workers":
        return (name, draw(st.integers(1, 4)))
    return (name,)


@st.composite
def scenarios(draw: st.DrawFn) -> tuple[Mode, int, list[tuple[Any, ...]]]:
    mode = draw(st.sampled_from(ALL_MODES))
    workers = draw(st.integers(1, 4))
    ops = []
    current = mode
    for _ in range(draw(st.integers(3, 12))):
        op = draw(operation(current))
        if op[0] == "set_mode":
            current = op[1]
        ops.append(op)
    if draw(st.integers(0, 3)) == 0:
        # Sometimes quit while busy instead of waiting: with jobs that would run
        # for 10 s, so a close that leaves workers running shows.
        ops.append(("close_busy", draw(st.integers(1, 3))))
    return (mode, workers, ops)


OPERATION_NAMES = {
    "tiny_batch",
    "tiny_run",
    "batch",
    "submit",
    "cancel",
    "cancel_batch",
    "cancel_queued",
    "kill_running",
    "set_mode",
    "set_workers",
    "pause",
    "close_busy",
}


@dataclass
class Coverage:
    """What the examples actually did, so the test can show the strategy explores."""

    jobs: int = 0
    examples: int = 0
    operations: Counter[str] = field(default_factory=Counter)
    outcomes: Counter[tuple[str, str, str]] = field(default_factory=Counter)  # task, mode, state
    rerun: int = 0
    chunked: int = 0


# --- driving one scenario ------------------------------------------------------------------


class Run:
    """One scenario on one engine: what was submitted, and what we asked to cancel."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.log = EventLog(engine)
        self.records: dict[int, JobRecord] = {}
        self.kinds: dict[int, JobKind] = {}
        self.batches: list[BatchRecord] = []
        self.cancel_asked: set[int] = set()
        # What the worker's start report said, per job: (attempt, pid, started).
        self.start_reports: dict[int, tuple[int, int | None, float | None]] = {}
        engine.subscribe(self._on_event)

    def _on_event(self, event: EngineEvent) -> None:
        if isinstance(event, JobChanged):
            record = event.job
            known = self.records.setdefault(record.id, record)
            assert known is record, f"job {record.id} reported with two different records"
            if event.state is JobState.RUNNING:
                self.start_reports[record.id] = (record.attempts, record.pid, record.started)

    def live(self) -> list[int]:
        return [job_id for job_id, record in self.records.items() if not record.state.terminal]

    def apply(self, op: tuple[Any, ...]) -> None:
        engine = self.engine
        name = op[0]
        if name in ("tiny_batch", "batch"):
            kind, count = op[1], op[2]
            batch = engine.submit_batch(kind.task, count, kind.params)
            self.batches.append(batch)
            for job_id in batch.job_ids:
                self.kinds[job_id] = kind
        elif name == "tiny_run":
            start, count = op[1], op[2]
            for i in range(count):
                kind = JobKind("tiny", {"n": start + i})
                self.kinds[engine.submit(kind.task, kind.params).id] = kind
        elif name == "submit":
            kind = op[1]
            self.kinds[engine.submit(kind.task, kind.params).id] = kind
        elif name == "cancel":
            ids = sorted(self.kinds)
            if ids:
                job_id = ids[op[1] % len(ids)]
                self.cancel_asked.add(job_id)
                engine.cancel(job_id)
        elif name == "cancel_batch":
            if self.batches:
                batch = self.batches[op[1] % len(self.batches)]
                self.cancel_asked.update(batch.job_ids)
                engine.cancel_batch(batch.id)
        elif name in ("cancel_queued", "kill_running"):
            self.cancel_asked.update(self.live())
            if name == "cancel_queued":
                engine.cancel_queued()
            else:
                engine.kill_running()
        elif name == "set_mode":
            engine.set_mode(op[1])
        elif name == "set_workers":
            engine.set_workers(op[1])
        else:
            raise AssertionError(f"unknown operation {op!r}")

    def describe_unfinished(self) -> str:
        lines = []
        for job_id in self.live()[:20]:
            record = self.records[job_id]
            lines.append(
                f"  job {job_id} {record.task} {record.params} {record.state.value} "
                f"mode={record.mode} attempts={record.attempts} pid={record.pid} "
                f"events={[s.value for s in self.log.states[job_id]]}"
            )
        return "\n".join(lines)


def worker_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith(THREAD_NAME_PREFIX) and t.is_alive()]


def leftover_children() -> list[str]:
    """Descendants of this process other than multiprocessing's helpers, zombies included."""
    me = psutil.Process()
    helpers = helper_processes(me)
    found = []
    for child in me.children(recursive=True):
        try:
            if child.pid in helpers or (child.ppid() in helpers and child.status() == psutil.STATUS_ZOMBIE):
                continue  # forkserver children are the forkserver's to reap
            found.append(f"pid {child.pid} {child.status()} {' '.join(child.cmdline())[:80]!r}")
        except psutil.NoSuchProcess:
            continue
    return found


# Engine attributes that hold a job only while it is queued or in flight. A rename
# in the engine fails this test loudly rather than silently checking nothing.
# One in-flight record per job (backend, task, cancel flag, timer) since the engine split.
IN_FLIGHT_MAPS = ("_queue", "_flights", "_slots", "_unexplained_breaks")
IN_FLIGHT_MAPS_IF_PRESENT: tuple[str, ...] = ()


async def drive(scenario: tuple[Mode, int, list[tuple[Any, ...]]], coverage: Coverage) -> None:
    mode, workers, ops = scenario
    engine = Engine(mode=mode, workers=workers, keep_results=True)
    run = Run(engine)
    try:
        await run_and_check(engine, run, ops, coverage)
    except BaseException as exc:
        exc.add_note(f"scenario: mode={mode.value} workers={workers} ops={ops!r}")
        raise


async def run_and_check(engine: Engine, run: Run, ops: list[tuple[Any, ...]], coverage: Coverage) -> None:
    busy = False
    try:
        for op in ops:
            coverage.operations[op[0]] += 1
            if op[0] == "pause":
                await asyncio.sleep(op[1] / 1000)
            elif op[0] == "close_busy":
                # Where a job blocks the loop, close() can only come once it is over:
                # a 10 s one would just be waited for, so a shorter one stands in.
                ms = 300 if engine.mode.abilities.blocks_loop else 10_000
                for _ in range(op[1]):
                    run.apply(("submit", JobKind("sleep", {"ms": ms})))
                await asyncio.sleep(0.05)
                run.cancel_asked.update(run.live())  # closing cancels whatever has not ended
                busy = True
                break
            else:
                run.apply(op)
                await asyncio.sleep(0)  # let done callbacks and start reports in between
        # A queue of hundreds switched onto the blocking join runs one process at a
        # time, each a freeze of its own (30-100 ms here): give it time per job.
        timeout = IDLE_TIMEOUT + (0.25 * len(run.live()) if engine.mode.abilities.blocks_loop else 0.0)
        try:
            if not busy:
                await asyncio.wait_for(engine.wait_idle(), timeout)
        except TimeoutError:
            raise AssertionError(
                f"engine not idle after {timeout:g} s; unfinished jobs:\n{run.describe_unfinished()}"
            ) from None
        unfinished = "" if busy else run.describe_unfinished()
        assert not unfinished, f"engine said idle, but jobs are not over:\n{unfinished}"
    finally:
        await engine.close()

    check_run(run)
    await check_nothing_left(engine)

    coverage.examples += 1
    coverage.jobs += len(run.records)
    for record in run.records.values():
        coverage.outcomes[(record.task, str(record.mode), record.state.value)] += 1
        coverage.rerun += record.attempts > 1
        coverage.chunked += getattr(record, "chunk", 1) > 1


# --- the checks ----------------------------------------------------------------------------------

REASONS = {
    # behaviour -> words one of which a failed job's reason must contain
    "ok": ("pool broke", "could not start", "timed out", "time limit"),
    "raise": ("ValueError: deliberate failure", "pool broke", "could not start", "timed out", "time limit"),
    "crash": ("crash refused", "SIGKILL", "SIGTERM", "code 3", "pool broke", "could not start", "died"),
}


def check_run(run: Run) -> None:
    records = run.records
    assert set(run.kinds) <= set(records), "a submitted job never produced an event"
    assert set(records) == set(run.kinds), "events for jobs nobody submitted"
    jobs = list(records.values())

    # Exactly one terminal state per job, and nothing after it.
    check_job_invariants(run.log, jobs)
    for job in jobs:
        states = run.log.states[job.id]
        assert states[-1].terminal, f"job {job.id} changed after it ended: {states}"

    # What each job did fits how it ended, and says why.
    for job in jobs:
        kind = run.kinds[job.id]
        where = f"job {job.id} ({kind.task} {kind.params}, mode {job.mode}, attempts {job.attempts})"
        if job.state is JobState.CANCELLED:
            assert job.id in run.cancel_asked, f"{where} cancelled, but nobody asked: {job.error!r}"
        elif job.state is JobState.FAILED:
            words = REASONS[kind.behaviour]
            assert any(w in (job.error or "") for w in words), f"{where} failed with {job.error!r}"
            if kind.task == "crash" and job.mode is not None and job.mode.abilities.in_process:
                # Threads and interpreters: a crash would end coredash itself.
                assert "crash refused" in (job.error or ""), f"{where}: {job.error!r}"
        else:
            assert kind.behaviour == "ok", f"{where} should not end done (result {job.result_repr})"
        # The result that came back is the one from the run the worker reported
        # starting (a chunk's results handed to the wrong jobs would show here).
        report = run.start_reports.get(job.id)
        if report is not None and report[0] == job.attempts and job.state is not JobState.CANCELLED:
            assert (job.pid, job.started) == report[1:], (
                f"{where} reported starting as pid {report[1]} at {report[2]}, "
                f"but its record says pid {job.pid} at {job.started}"
            )
        if job.state is JobState.DONE:
            if kind.task == "tiny":
                assert job.result == kind.params["n"] + 1, f"{where} got the result {job.result!r}"
            else:
                assert job.result == kind.params["ms"] / 1000, f"{where} got the result {job.result!r}"

    # Counts add up: per batch, and in the engine's own snapshot.
    by_state = Counter(job.state for job in jobs)
    for batch in run.batches:
        summary = batch.summary
        assert summary is not None, f"batch {batch.id} never finished"
        states = Counter(records[job_id].state for job_id in batch.job_ids)
        assert summary.done + summary.failed + summary.cancelled == batch.count == len(batch.job_ids)
        assert (summary.done, summary.failed, summary.cancelled) == (
            states[JobState.DONE],
            states[JobState.FAILED],
            states[JobState.CANCELLED],
        ), f"batch {batch.id} summary {summary} disagrees with its jobs {states}"
    counts = run.engine.snapshot().counts
    for state in JobState:
        assert counts.get(state, 0) == by_state[state], (
            f"snapshot counts {state.value}={counts.get(state, 0)}, jobs say {by_state[state]}"
        )


async def check_nothing_left(engine: Engine) -> None:
    present = [name for name in IN_FLIGHT_MAPS_IF_PRESENT if hasattr(engine, name)]
    for name in (*IN_FLIGHT_MAPS, *present):
        held = getattr(engine, name)
        assert not held, f"engine.{name} still holds {list(held)[:10]} after close"
    retiring = getattr(engine, "_retiring")  # noqa: B009  (private on purpose)
    assert not retiring, f"backends still retiring after close: {retiring}"
    waiters = getattr(engine, "_batch_waiters")  # noqa: B009
    assert all(w.done() for w in waiters.values()), "a wait_batch future is still pending"

    me = asyncio.current_task()

    def pending() -> list[asyncio.Task[Any]]:
        return [task for task in asyncio.all_tasks() if task is not me and not task.done()]

    # close() returns promptly; a task may need a few loop turns to see its end.
    try:
        await until(lambda: not pending(), 3.0, "asyncio tasks to finish")
    except AssertionError:
        raise AssertionError(f"tasks left pending after close: {pending()}") from None
    try:
        await until(lambda: not leftover_children(), 5.0, "worker processes to go")
    except AssertionError:
        raise AssertionError(f"processes left after close: {leftover_children()}") from None
    try:
        await until(lambda: not worker_threads(), 5.0, "worker threads to end")
    except AssertionError:
        raise AssertionError(f"threads left after close: {worker_threads()}") from None


# --- the test ---------------------------------------------------------------------------------------


def test_no_job_is_lost_whatever_happens(monkeypatch: pytest.MonkeyPatch) -> None:
    # Under pytest, __main__ is the pytest script, and with forkserver or spawn
    # every new worker process re-imports it (about 0.1 s each, against 0.01 s for
    # the process itself). The coredash CLI's __main__ is light; without this the
    # per-job scenarios would spend their time importing pytest, not running jobs.
    monkeypatch.delattr(sys.modules["__main__"], "__file__", raising=False)
    coverage = Coverage()
    helpers_before: set[int] = set()
    # Python 3.11's ThreadPoolExecutor keeps one queue-feeder thread per pool
    # only while the pool lives; the count of threads should come back down.
    threads_before = threading.active_count()

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
        print_blob=True,
        report_multiple_bugs=False,
        phases=[Phase.explicit, Phase.reuse, Phase.generate, *([Phase.shrink] if SHRINK else [])],
    )
    @given(scenarios())
    def scenario_keeps_every_job(scenario: tuple[Mode, int, list[tuple[Any, ...]]]) -> None:
        asyncio.run(drive(scenario, coverage))
        # Engines share multiprocessing's resource tracker (and forkserver): closing
        # an engine must not leave one more of them behind each time.
        helpers = helper_processes()
        assert len(helpers) <= 2, f"multiprocessing helpers pile up: {helpers}"
        if helpers_before:
            assert helpers <= helpers_before, f"new helpers appeared: {helpers - helpers_before}"
        else:
            helpers_before.update(helpers)

    # Every mode at least once, whatever the derandomized draws do: when modes were
    # added they changed, and once missed the process pool altogether.
    for mode in ALL_MODES:
        crash = JobKind("crash", {"ms": 1, "how": "kill"})
        every_mode = (mode, 2, [("batch", JobKind("tiny", {"n": 7}), 3), ("submit", crash)])
        scenario_keeps_every_job = example(every_mode)(scenario_keeps_every_job)
    scenario_keeps_every_job()

    print(
        f"\n{coverage.examples} examples, {coverage.jobs} jobs, {coverage.rerun} re-run, "
        f"{coverage.chunked} sent in chunks; operations {dict(coverage.operations)}"
    )
    for key, count in sorted(coverage.outcomes.items()):
        print(f"  {' '.join(key):<40} {count}")

    # The strategy really explored: enough jobs, every operation, every mode, every end.
    assert coverage.examples >= EXAMPLES // 2
    assert coverage.jobs >= MIN_JOBS, f"only {coverage.jobs} jobs over {coverage.examples} examples"
    missing = OPERATION_NAMES - set(coverage.operations)
    assert not missing, f"operations never drawn: {missing}"
    ran_in: defaultdict[str, set[str]] = defaultdict(set)
    for (task, mode, state), count in coverage.outcomes.items():
        if count:
            ran_in[state].add(mode)
            ran_in[f"{task}:{state}"].add(mode)
    assert {str(m) for m in ALL_MODES} <= ran_in["done"], f"done jobs by mode: {ran_in['done']}"
    assert ran_in["failed"] and ran_in["cancelled"], f"ends seen: {dict(coverage.outcomes)}"
    assert {str(Mode.PROCESS), str(Mode.PROCESS_PER_JOB)} <= ran_in["crash:failed"], dict(coverage.outcomes)
    in_process = {str(m) for m in ALL_MODES if m.abilities.in_process}
    assert in_process & ran_in["crash:failed"], "crash in coredash's own process was never refused"
    assert threading.active_count() <= threads_before + 2, [t.name for t in threading.enumerate()]
