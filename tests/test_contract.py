"""A backend registered today is listed everywhere and held to the whole contract today.

The throwaway backend below follows the README's "adding an executor" steps: a
Backend subclass (one thread started per job, awaited without blocking the loop)
and one registry entry. Nothing else in coredash is touched, yet it shows up in
``coredash --help``, in the comparison panel, and passes the fault matrix and
the exactly-once invariants that every registered mode runs in test_faults.py.
"""

from __future__ import annotations

import asyncio
import dataclasses
import threading
from collections.abc import Iterator

import pytest

from coredash.engine import Engine, JobState, Mode
from coredash.engine.backends.base import Backend, NotStarted, Unit
from coredash.engine.modes import REGISTRY, ModeInfo
from coredash.engine.worker import WorkerResult, run_job
from tests.conftest import EventLog, check_job_invariants
from tests.test_faults import FAULTS, check_fault, expect, run_with_innocents, still_works


class ThreadPerJob(Backend):
    """A fresh thread for every job: the simplest executor that keeps the contract."""

    async def _call(self, unit: Unit) -> list[WorkerResult]:
        if self.closed:
            raise NotStarted("coredash closed before it started")
        loop = asyncio.get_running_loop()
        done: asyncio.Future[list[WorkerResult]] = loop.create_future()

        def work() -> None:
            report = self.ctx.report_in_process
            try:
                results = [run_job(s, report, c) for s, c in zip(unit.specs, unit.cancels, strict=True)]
            except BaseException as exc:  # run_job never raises for a job's fault; anything else is ours
                loop.call_soon_threadsafe(_settle, done, None, exc)
            else:
                loop.call_soon_threadsafe(_settle, done, results, None)

        threading.Thread(target=work, name=f"coredash-worker_{unit.records[0].id}", daemon=True).start()
        return await done

    def shutdown(self) -> None:
        pass

    def close(self) -> None:
        self.closed = True


def _settle(
    future: asyncio.Future[list[WorkerResult]], results: list[WorkerResult] | None, exc: BaseException | None
) -> None:
    if future.done():
        return
    if exc is not None:
        future.set_exception(exc)
    else:
        assert results is not None
        future.set_result(results)


@pytest.fixture
def thread_per_job() -> Iterator[Mode]:
    threads = REGISTRY.info(Mode.THREAD)
    mode = REGISTRY.register(
        ModeInfo(
            name="thread-per-job",
            key="x",
            label="thread per job",
            short="Thread",
            aliases=("tpj",),
            colour="accent",
            help="A new thread for every job (a test of the backend contract).",
            abilities=dataclasses.replace(threads.abilities, chunks=False),
            backend=ThreadPerJob,
        )
    )
    try:
        yield mode
    finally:
        REGISTRY.unregister("thread-per-job")


def test_a_registered_mode_is_listed_by_the_cli(thread_per_job: Mode) -> None:
    from coredash.cli import build_bench_parser, build_parser

    assert "thread-per-job" in build_parser().format_help()
    assert "thread-per-job" in build_bench_parser().format_help()
    assert build_parser().parse_args(["--mode", "tpj"]).mode is thread_per_job


async def test_a_registered_mode_gets_a_row_in_the_comparison_panel(
    make_engine, thread_per_job: Mode
) -> None:
    from coredash.view_model import comparison

    engine: Engine = make_engine(mode=thread_per_job, workers=2)
    params = {"n": 20_000}
    summary = await engine.wait_batch(engine.submit_batch("count_primes", 4, params))
    assert summary.done == 4 and summary.mode == "thread-per-job"
    found = comparison(engine.snapshot(), ("count_primes", params))
    assert found is not None
    rows = dict(found.rows)
    assert thread_per_job in rows and rows[thread_per_job] is not None
    assert rows[thread_per_job].makespan_s == summary.makespan_s  # type: ignore[union-attr]


@pytest.mark.parametrize("fault", list(FAULTS))
async def test_a_registered_mode_passes_the_fault_matrix(
    make_engine, thread_per_job: Mode, fault: str
) -> None:
    await check_fault(make_engine(mode=thread_per_job), fault)


async def test_a_registered_mode_keeps_the_timeout_and_cancel_promises(
    make_engine, thread_per_job: Mode
) -> None:
    engine: Engine = make_engine(mode=thread_per_job, job_timeout=0.5)
    job, innocents, _ = await run_with_innocents(engine, "hang", {"s": 3600})
    expect(JobState.FAILED, "timed out after 500 ms", "stopped at a checkpoint")(job)
    assert all(other.state is JobState.DONE for other in innocents)
    log = EventLog(engine)
    batch = engine.submit_batch("sleep", 30, {"ms": 20})
    await asyncio.sleep(0.05)
    engine.cancel_batch(batch.id)
    summary = await asyncio.wait_for(engine.wait_batch(batch), 30)
    assert summary.done + summary.failed + summary.cancelled == 30 and summary.cancelled > 0
    check_job_invariants(log, [job for job_id in batch.job_ids if (job := engine.job(job_id)) is not None])
    await still_works(engine)
