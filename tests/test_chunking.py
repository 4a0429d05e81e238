"""The chunk setting: auto, off or N jobs per executor call, per batch, visible everywhere.

Real executors: a chunk is one real executor call, and each job's record says
how many went with it (``JobRecord.chunk``).
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
from pathlib import Path

import pytest
from textual.widgets import Input, Static

from coredash.app import CoredashApp
from coredash.bench import BenchConfig, render_table, run_bench
from coredash.cli import build_bench_parser, build_parser
from coredash.engine import BatchRecord, Catalog, ConfigChanged, Engine, EngineError, JobRecord, Mode
from coredash.engine.chunking import AUTO, MAX_CHUNK_WORK_S, OFF, ChunkPolicy, chunk_size
from coredash.screens.picker import JobPickerScreen
from coredash.view_model import comparison
from coredash.widgets.comparison import ComparisonData, ComparisonPanel, comparison_rows
from coredash.widgets.status_line import StatusLine
from tests.conftest import EventLog, check_job_invariants
from tests.fixed_dashboard import fixed_snapshot
from tests.test_view import text

CHUNKING_MODES = [Mode.THREAD, Mode.PROCESS]


def jobs_of(engine: Engine, batch: BatchRecord) -> list[JobRecord]:
    return [job for job_id in batch.job_ids if (job := engine.job(job_id)) is not None]


async def measured(engine: Engine) -> None:
    """Run a few tiny jobs so the engine knows they are tiny (unmeasured jobs go alone)."""
    await engine.wait_batch(engine.submit_batch("tiny", 20, {"n": 1}))


@pytest.mark.parametrize("mode", CHUNKING_MODES, ids=str)
async def test_chunk_off_sends_every_job_alone(make_engine, mode: Mode) -> None:  # type: ignore[no-untyped-def]
    engine = make_engine(mode=mode, chunk="off", history=2000)
    log = EventLog(engine)
    await measured(engine)
    batch = engine.submit_batch("tiny", 600, {"n": 1})
    summary = await asyncio.wait_for(engine.wait_batch(batch), 60)
    assert summary.done == 600
    jobs = jobs_of(engine, batch)
    assert len(jobs) == 600 and all(job.chunk == 1 for job in jobs)
    check_job_invariants(log, jobs)
    assert summary.chunk == OFF and summary.mean_chunk == 1.0 and summary.chunk_text == "chunk 1"


@pytest.mark.parametrize("mode", CHUNKING_MODES, ids=str)
async def test_a_fixed_chunk_sends_at_most_n_jobs_a_call(make_engine, mode: Mode) -> None:  # type: ignore[no-untyped-def]
    engine = make_engine(mode=mode, chunk=16, history=2000)
    log = EventLog(engine)
    await measured(engine)
    batch = engine.submit_batch("tiny", 600, {"n": 1})
    summary = await asyncio.wait_for(engine.wait_batch(batch), 60)
    jobs = jobs_of(engine, batch)
    check_job_invariants(log, jobs)
    assert summary.done == 600
    chunks = [job.chunk for job in jobs]
    assert max(chunks) == 16 and min(chunks) >= 1, sorted(set(chunks))
    assert summary.chunk == ChunkPolicy(16)
    assert summary.mean_chunk is not None and 12 <= summary.mean_chunk <= 16
    assert summary.chunk_text.startswith("chunk 16")
    for job in jobs:
        assert job.result == 2  # every job of a chunk got its own result


async def test_chunks_hold_the_jobs_of_one_batch(make_engine) -> None:  # type: ignore[no-untyped-def]
    engine = make_engine(mode=Mode.PROCESS, chunk=64, workers=1, history=2000)
    await measured(engine)
    params = {"n": 1}
    first, second = engine.submit_batch("tiny", 10, params), engine.submit_batch("tiny", 10, params)
    await asyncio.wait_for(asyncio.gather(engine.wait_batch(first), engine.wait_batch(second)), 60)
    # Same task, same parameters, queued back to back: still never one call.
    assert [job.chunk for job in jobs_of(engine, first)] == [10] * 10
    assert [job.chunk for job in jobs_of(engine, second)] == [10] * 10


async def test_the_setting_changes_at_run_time_for_the_next_batch(make_engine) -> None:  # type: ignore[no-untyped-def]
    engine = make_engine(mode=Mode.PROCESS, history=3000)
    changes: list[ConfigChanged] = []
    engine.subscribe(lambda event: changes.append(event) if isinstance(event, ConfigChanged) else None)
    await measured(engine)
    assert engine.chunk == AUTO
    engine.set_chunk("off")
    alone = engine.submit_batch("tiny", 500, {"n": 1})
    engine.set_chunk("auto")  # the queued batch keeps the setting it was submitted with
    chunked = engine.submit_batch("tiny", 500, {"n": 1})
    off, auto = await asyncio.wait_for(
        asyncio.gather(engine.wait_batch(alone), engine.wait_batch(chunked)), 60
    )
    assert [change.chunk for change in changes] == [OFF, AUTO]
    assert all(job.chunk == 1 for job in jobs_of(engine, alone))
    assert max(job.chunk for job in jobs_of(engine, chunked)) > 1
    assert (off.chunk, off.mean_chunk) == (OFF, 1.0)
    assert auto.chunk == AUTO and auto.mean_chunk is not None and auto.mean_chunk > 1
    assert auto.chunk_text == f"chunk auto (≈{auto.mean_chunk:.0f})"
    assert off.jobs_per_s == pytest.approx(500 / off.makespan_s)


async def test_a_fixed_chunk_keeps_the_never_chunk_rules(make_engine) -> None:  # type: ignore[no-untyped-def]
    # A job timeout needs a timer per job; a mode that cannot chunk sends one job a call.
    timed = make_engine(mode=Mode.PROCESS, chunk=50, job_timeout=5, history=1000)
    per_job = make_engine(mode=Mode.PROCESS_PER_JOB, chunk=50, history=1000)
    assert not Mode.PROCESS_PER_JOB.abilities.chunks
    for engine in (timed, per_job):
        await measured(engine)
        batch = engine.submit_batch("tiny", 60, {"n": 1})
        summary = await asyncio.wait_for(engine.wait_batch(batch), 60)
        assert summary.done == 60
        assert all(job.chunk == 1 for job in jobs_of(engine, batch)), engine.mode


def test_a_fixed_chunk_is_held_to_about_a_second_of_measured_work() -> None:
    head = JobRecord(id=1, task="tiny", params={}, batch_id=1)
    assert chunk_size(head, None, 1000, 2, ChunkPolicy(500)) == 1  # not measured yet: alone
    assert chunk_size(head, 0.0001, 1000, 2, ChunkPolicy(500)) == 500
    assert chunk_size(head, 0.1, 1000, 2, ChunkPolicy(500)) == int(MAX_CHUNK_WORK_S / 0.1)
    assert chunk_size(head, 5.0, 1000, 2, ChunkPolicy(500)) == 1
    assert chunk_size(head, 0.0001, 1000, 2, OFF) == 1
    assert 1 < chunk_size(head, 0.0001, 1000, 2, AUTO) <= 256
    head.exclusive = True  # a serial baseline always runs alone
    assert chunk_size(head, 0.0001, 1000, 2, ChunkPolicy(500)) == 1


@pytest.mark.parametrize("bad", [0, -1, 10**9, "x", "", 2.5, True])
def test_the_engine_refuses_a_bad_setting_with_its_range(bad: object) -> None:
    with pytest.raises(EngineError, match="chunk must be auto, off or a whole number"):
        Engine(chunk=bad)  # type: ignore[arg-type]


async def test_set_chunk_refuses_a_bad_setting_and_keeps_the_old_one(make_engine) -> None:  # type: ignore[no-untyped-def]
    engine = make_engine(chunk=8)
    with pytest.raises(EngineError, match="from 1 to 1,000, not 5,000"):
        engine.set_chunk(5000)
    assert engine.chunk == ChunkPolicy(8)


# --- the command line -----------------------------------------------------------------


def test_the_command_lines_take_a_chunk_setting() -> None:
    assert build_parser().parse_args([]).chunk == AUTO
    assert build_parser().parse_args(["--chunk", "off"]).chunk == OFF
    assert build_parser().parse_args(["--chunk", "1"]).chunk == OFF
    assert build_parser().parse_args(["--chunk", "AUTO"]).chunk == AUTO
    assert build_bench_parser().parse_args(["--task", "tiny", "--chunk", "64"]).chunk == ChunkPolicy(64)
    assert "--chunk auto|off|N" in build_parser().format_help()


async def test_bench_runs_with_the_setting_and_says_so(tmp_path: Path) -> None:
    catalog = Catalog.builtin()
    found = {}
    for policy in (OFF, AUTO):
        config = BenchConfig(
            task="tiny",
            params={"n": 1},
            jobs=400,
            modes=(Mode.PROCESS,),
            workers=(1,),
            repeat=3,  # medians: one run can meet a busy moment of the machine
            serial=False,
            chunk=policy,
        )
        report = await run_bench(config, catalog)
        data = json.loads(json.dumps(report.to_json()))
        assert data["config"]["chunk"] == str(policy)
        (run,) = data["runs"]
        found[str(policy)] = run
        table = render_table(report)
        cells = [str(cell) for column in table.columns for cell in column.cells]
        assert {column.header for column in table.columns} >= {"jobs/s", "chunk"}
        assert run["chunk_text"].removeprefix("chunk ") in cells
    assert found["off"]["mean_chunk"] == 1.0 and found["off"]["chunk_text"] == "chunk 1"
    assert found["auto"]["mean_chunk"] > 1
    # One IPC round trip per job costs tiny jobs most of their rate (measured: 10-17× here).
    assert found["auto"]["jobs_per_s"] > 1.5 * found["off"]["jobs_per_s"], found


# --- the views ----------------------------------------------------------------------


def _tiny_batch(batch_id: int, chunk: ChunkPolicy, mean: float, makespan: float) -> BatchRecord:
    base = next(b for b in fixed_snapshot(Mode.PROCESS).batches if b.mode is Mode.PROCESS)
    assert base.summary is not None
    summary = dataclasses.replace(
        base.summary,
        batch_id=batch_id,
        task="tiny",
        params={"n": 1},
        jobs=2000,
        done=2000,
        makespan_s=makespan,
        chunk=chunk,
        mean_chunk=mean,
        serial_s=None,
        speedup=None,
        efficiency=None,
    )
    return dataclasses.replace(
        base, id=batch_id, task="tiny", params={"n": 1}, count=2000, summary=summary, chunk=chunk
    )


def test_the_comparison_shows_chunk_off_and_auto_as_two_rows_with_jobs_per_s() -> None:
    snapshot = fixed_snapshot(Mode.PROCESS)
    snapshot = dataclasses.replace(
        snapshot,
        batches=(*snapshot.batches, _tiny_batch(30, AUTO, 40.0, 0.09), _tiny_batch(31, OFF, 1.0, 1.6)),
    )
    found = comparison(snapshot, ("tiny", {"n": 1}))
    process = [summary for mode, summary in found.rows if mode is Mode.PROCESS]
    assert [s.chunk for s in process if s is not None] == [OFF, AUTO]  # off first, then auto
    rows = [
        text([(p, "") if isinstance(p, str) else p for p in row])
        for row in comparison_rows(ComparisonData(found, 2, Mode.PROCESS), 140)
    ]
    assert any("jobs/s  lag p99 · chunk" in row for row in rows)
    off = next(row for row in rows if " · 1 · ×2000" in row)  # after the lag ("–": not measured)
    auto = next(row for row in rows if " · auto (≈40) · ×2000" in row)
    assert "1,250" in off and "22k" in auto  # 2000 jobs in 1.6 s, and in 90 ms
    assert off.startswith("▶ process pool") and "process pool" in auto


async def test_picker_sets_the_chunk_and_two_batches_land_side_by_side() -> None:
    app = CoredashApp(Engine(mode=Mode.PROCESS, workers=2), task="tiny", size=1, jobs=600, refresh=10)
    app.auto_baseline = False
    async with app.run_test(size=(160, 45)) as pilot:
        for setting, message in (("0", "chunk: must be at least 1"), ("lots", "chunk: expected auto, off")):
            await pilot.press("j")
            picker = app.screen
            assert isinstance(picker, JobPickerScreen)
            picker.query_one("#chunk", Input).value = setting
            await pilot.press("ctrl+s")
            assert isinstance(app.screen, JobPickerScreen)  # refused, with the reason
            assert message in str(picker.query_one("#error", Static).render())
            await pilot.press("escape")
        assert app.engine.chunk == AUTO and not app.engine.snapshot().batches

        async def run_with(setting: str) -> None:
            await pilot.press("j")
            picker = app.screen
            assert isinstance(picker, JobPickerScreen)
            picker.query_one("#chunk", Input).value = setting
            picker.query_one("#size", Input).focus()
            await pilot.press("enter")  # run
            batch = app.engine.snapshot().batches[-1]
            deadline = asyncio.get_running_loop().time() + 60
            while not batch.finished:
                assert asyncio.get_running_loop().time() < deadline, "the batch did not finish"
                await pilot.pause(0.05)

        await run_with("auto")  # measures tiny, so the next auto batch chunks from its first job
        await run_with("off")
        assert app.engine.chunk == OFF
        assert "chunk off" in app.query_one(StatusLine).render().plain  # type: ignore[union-attr]
        await run_with("auto")
        await pilot.pause(0.2)
        found = app.query_one(ComparisonPanel).data.comparison
        assert found is not None
        process = [s for mode, s in found.rows if mode is Mode.PROCESS and s is not None]
        assert [s.chunk for s in process] == [OFF, AUTO]
        assert process[1].jobs_per_s > process[0].jobs_per_s
        shown = app.query_one(ComparisonPanel).render().plain  # type: ignore[union-attr]
        assert "jobs/s  lag p99" in shown and " · 1 · " in shown and " · auto" in shown, shown
