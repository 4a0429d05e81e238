"""The scheduler's policy with a fake backend: queue order, slots, re-runs, attempts, chunks.

No executor here: the fake backend runs each job inline on the loop (the real job
wrapper, so timings and results are real) or hands back an outcome the test
scripts. These run in milliseconds; the real-executor tests (test_engine,
test_faults, test_contract) check the same promises against real workers.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable, Iterator

import pytest

from coredash.engine import Engine, JobRecord, JobState, Mode
from coredash.engine.backends.base import Backend, Outcome, Unit
from coredash.engine.modes import REGISTRY, ModeInfo
from coredash.engine.worker import WorkerResult, run_job
from tests.conftest import EventLog, check_job_invariants

Script = Callable[[JobRecord], Outcome | None]  # None: run the job for real


class FakeBackend(Backend):
    """Runs jobs inline after a loop turn; a script may replace any job's outcome."""

    script: Script = staticmethod(lambda record: None)
    calls: list[list[int]] = []  # job ids per executor call, across all fakes

    async def _call(self, unit: Unit) -> list[WorkerResult]:
        await asyncio.sleep(0.001)  # a real executor never answers in the same loop turn
        report = self.ctx.report_in_process
        return [run_job(spec, report, cancel) for spec, cancel in zip(unit.specs, unit.cancels, strict=True)]

    async def run(self, unit: Unit) -> list[Outcome]:
        FakeBackend.calls.append([record.id for record in unit.records])
        outcomes = await super().run(unit)
        scripted = [FakeBackend.script(record) for record in unit.records]
        return [s if s is not None else o for s, o in zip(scripted, outcomes, strict=True)]

    def shutdown(self) -> None:
        pass

    def close(self) -> None:
        self.closed = True


@pytest.fixture
def fake_mode() -> Iterator[Mode]:
    thread = REGISTRY.info(Mode.THREAD)
    info = ModeInfo(
        name="fake",
        key="F",
        label="fake executor",
        short="Fake",
        aliases=(),
        colour="accent",
        help="A test double at the backend seam.",
        abilities=dataclasses.replace(thread.abilities, chunks=True),
        backend=FakeBackend,
    )
    mode = REGISTRY.register(info)
    FakeBackend.calls = []
    FakeBackend.script = staticmethod(lambda record: None)
    try:
        yield mode
    finally:
        REGISTRY.unregister("fake")


async def test_jobs_run_in_order_and_never_more_than_the_workers(make_engine, fake_mode: Mode) -> None:
    engine: Engine = make_engine(mode=fake_mode, workers=3)
    log = EventLog(engine)
    jobs = [engine.submit("sleep", {"ms": 5}) for _ in range(12)]
    await asyncio.wait_for(engine.wait_idle(), 5)
    check_job_invariants(log, jobs)
    assert all(job.state is JobState.DONE and job.mode is fake_mode for job in jobs)
    assert [ids[0] for ids in FakeBackend.calls] == [job.id for job in jobs]  # first come, first served
    assert log.max_running <= 3


async def test_a_rerun_goes_back_to_the_head_and_counts_an_attempt(make_engine, fake_mode: Mode) -> None:
    FakeBackend.script = staticmethod(lambda r: Outcome.rerun() if r.id == 1 and r.attempts == 1 else None)
    engine: Engine = make_engine(mode=fake_mode, workers=1)
    log = EventLog(engine)
    jobs = [engine.submit("sleep", {"ms": 5}) for _ in range(3)]
    await asyncio.wait_for(engine.wait_idle(), 5)
    check_job_invariants(log, jobs)
    assert [job.attempts for job in jobs] == [2, 1, 1]
    assert [ids[0] for ids in FakeBackend.calls] == [1, 1, 2, 3]  # re-run before the others
    assert log.states[1].count(JobState.QUEUED) == 2  # queued again, visibly


async def test_unexplained_reruns_give_up_after_max_attempts(make_engine, fake_mode: Mode) -> None:
    FakeBackend.script = staticmethod(lambda r: Outcome.rerun(unexplained="the fake pool broke"))
    engine: Engine = make_engine(mode=fake_mode, workers=2, max_attempts=3)
    log = EventLog(engine)
    job = engine.submit("sleep", {"ms": 1})
    await asyncio.wait_for(engine.wait_idle(), 5)
    check_job_invariants(log, [job])
    assert job.state is JobState.FAILED and job.attempts == 3
    assert job.error == "the fake pool broke 3 times while this job was in it, cause unknown"


async def test_a_rerun_alone_is_never_chunked_again(make_engine, fake_mode: Mode) -> None:
    engine: Engine = make_engine(mode=fake_mode, workers=1, history=5000)
    await engine.wait_batch(engine.submit_batch("tiny", 20, {"n": 1}))  # measured: tiny
    FakeBackend.calls = []
    FakeBackend.script = staticmethod(
        lambda r: Outcome.rerun(alone=True) if r.attempts == 1 and r.chunk > 1 else None
    )
    log = EventLog(engine)
    batch = engine.submit_batch("tiny", 300, {"n": 1})
    summary = await asyncio.wait_for(engine.wait_batch(batch), 10)
    assert summary.done == 300
    jobs = [engine.job(job_id) for job_id in batch.job_ids]
    check_job_invariants(log, [job for job in jobs if job is not None])
    assert max(len(ids) for ids in FakeBackend.calls) > 1, "tiny jobs were not chunked"
    rerun = [job for job in jobs if job is not None and job.attempts == 2]
    assert rerun and all(job.alone and job.chunk == 1 for job in rerun)


async def test_a_backend_that_cannot_chunk_gets_one_job_a_call(make_engine, fake_mode: Mode) -> None:
    info = REGISTRY.info(fake_mode)
    REGISTRY.register(dataclasses.replace(info, abilities=dataclasses.replace(info.abilities, chunks=False)))
    engine: Engine = make_engine(mode=fake_mode, workers=2)
    await engine.wait_batch(engine.submit_batch("tiny", 20, {"n": 1}))
    await engine.wait_batch(engine.submit_batch("tiny", 200, {"n": 1}))
    assert all(len(ids) == 1 for ids in FakeBackend.calls)


async def test_an_exclusive_job_waits_for_the_workers_and_runs_alone(make_engine, fake_mode: Mode) -> None:
    engine: Engine = make_engine(mode=fake_mode, workers=2)
    log = EventLog(engine)
    before = [engine.submit("sleep", {"ms": 30}) for _ in range(2)]
    baseline = engine.submit_baseline("sleep", {"ms": 30})
    after = [engine.submit("sleep", {"ms": 30}) for _ in range(2)]
    await asyncio.wait_for(engine.wait_idle(), 10)
    check_job_invariants(log, [*before, baseline, *after])
    assert baseline.dispatched is not None and baseline.finished is not None
    assert all(job.completed is not None and job.completed <= baseline.dispatched for job in before)
    assert all(job.dispatched is not None and job.dispatched >= baseline.finished for job in after)
    assert baseline.solo and engine.has_baseline("sleep", {"ms": 30})


async def test_cancelling_queued_jobs_ends_each_once_and_runs_none(make_engine, fake_mode: Mode) -> None:
    engine: Engine = make_engine(mode=fake_mode, workers=1)
    log = EventLog(engine)
    batch = engine.submit_batch("sleep", 5000, {"ms": 1})  # more than one slice of records
    await asyncio.sleep(0.01)
    cancelled = engine.cancel_queued()
    summary = await asyncio.wait_for(engine.wait_batch(batch), 10)
    assert cancelled >= 4900 and summary.cancelled == cancelled
    assert summary.done + summary.cancelled == 5000
    jobs = [engine.job(job_id) for job_id in batch.job_ids]
    check_job_invariants(log, [job for job in jobs if job is not None])
