"""What the panels compute and draw, checked without running an app (memray-style)."""

from __future__ import annotations

import dataclasses

import pytest

from coredash.engine import BatchRecord, EngineSnapshot, Mode
from coredash.sampling import CpuSample, LoadAverager, ProcessLoad
from coredash.units import format_seconds
from coredash.view_model import batch_progress, comparison, core_marks, worker_rows
from coredash.widgets.core_grid import CoreGridData, bar, core_grid_lines, graph_rows, sparkline
from coredash.widgets.monitor_panel import MonitorData, monitor_rows
from tests.fixed_dashboard import NOW, fixed_lag, fixed_sample, fixed_snapshot


def text(line: list[tuple[str, str]]) -> str:
    return "".join(part for part, _ in line)


def test_bar_has_eighth_cell_resolution() -> None:
    assert text(bar(50, 10)) == "█████░░░░░"
    assert text(bar(55, 10)) == "█████▌░░░░"
    assert text(bar(100, 4)) == "████"
    assert text(bar(0, 4)) == "░░░░"
    assert bar(90, 10)[0][1] == "high"
    assert bar(10, 10)[0][1] == "low"


def test_graph_rows_stack_from_the_bottom() -> None:
    rows = graph_rows([100.0, 50.0, 0.0], width=5, rows=2)
    assert [text(row) for row in rows] == ["  █  ", "▁▁██▁"]
    assert text(sparkline([0.0, 100.0], 4)) == "  ▁█"


def test_core_grid_roomy_layout_marks_workers() -> None:
    snapshot = fixed_snapshot(Mode.THREAD)
    sample = fixed_sample(Mode.THREAD)
    data = CoreGridData(
        per_core=sample.per_core,
        history=((10.0,) * 5, (90.0,) * 5),
        usable=sample.usable,
        marks=core_marks(snapshot, sample),
    )
    lines = [text(line) for line in core_grid_lines(data, width=60, height=16)]
    assert all(len(line) == 60 for line in lines)
    assert lines[0].startswith("cpu0")
    cpu1 = next(line for line in lines if line.startswith("cpu1"))
    assert "96%" in cpu1
    assert "◆w1 #67" in cpu1 and "◆w2 #68" in cpu1  # both threads on one core: the GIL
    assert len(lines) > 4  # history graphs below each bar


def test_core_grid_compact_layout_uses_columns_for_many_cores() -> None:
    data = CoreGridData(per_core=tuple(float(i * 6) for i in range(16)), usable=frozenset(range(12)))
    lines = [text(line) for line in core_grid_lines(data, width=120, height=8)]
    assert len(lines) == 8
    assert "cpu0" in lines[0] and "cpu8" in lines[0]  # two columns
    assert "not in coredash's affinity" in " ".join(lines)  # cores 12-15


def test_core_grid_before_the_first_sample() -> None:
    assert "waiting" in text(core_grid_lines(CoreGridData(), 40, 5)[0])


def test_core_marks_follow_the_sampled_core() -> None:
    snapshot = fixed_snapshot(Mode.PROCESS)
    sample = fixed_sample(Mode.PROCESS)
    marks = core_marks(snapshot, sample)
    assert {core: [m.label for m in found] for core, found in marks.items()} == {0: ["w1 #67"], 1: ["w2 #68"]}
    # The workers moved since their jobs started: the marks follow the sample...
    moved = dataclasses.replace(
        sample,
        worker_processes={
            pid: dataclasses.replace(load, core=1 - load.core)
            for pid, load in sample.worker_processes.items()
        },  # type: ignore[operator]
    )
    marks = core_marks(snapshot, moved)
    assert {core: [m.label for m in found] for core, found in marks.items()} == {1: ["w1 #67"], 0: ["w2 #68"]}
    # ...and without a sample they fall back to the core recorded at start.
    marks = core_marks(snapshot, None)
    assert {core: [m.label for m in found] for core, found in marks.items()} == {0: ["w1 #67"], 1: ["w2 #68"]}


def test_worker_rows_show_idle_slots_and_elapsed_time() -> None:
    snapshot = fixed_snapshot(Mode.PROCESS)
    rows = worker_rows(snapshot, fixed_sample(Mode.PROCESS), NOW)
    assert [row.slot for row in rows] == [0, 1]
    assert rows[0].job is not None and rows[0].job.id == 67
    assert rows[0].elapsed_s == pytest.approx(0.3)
    assert rows[0].where == "pid 4301"
    assert rows[0].cpu_cores == 0.99


def test_batch_progress_estimates_the_rest() -> None:
    progress = batch_progress(fixed_snapshot(Mode.THREAD), NOW)
    assert progress is not None
    assert progress.ended == 6
    assert progress.elapsed_s == 20.0
    assert progress.eta_s == 20.0 / 6 * 2


def _with_batches(snapshot: EngineSnapshot, *extra: BatchRecord) -> EngineSnapshot:
    return dataclasses.replace(snapshot, batches=(*snapshot.batches, *extra))


def test_comparison_keeps_the_latest_complete_batch_per_mode() -> None:
    snapshot = fixed_snapshot(Mode.PROCESS)
    good = next(b for b in snapshot.batches if b.mode is Mode.PROCESS)
    assert good.summary is not None
    newer = dataclasses.replace(
        good, id=10, summary=dataclasses.replace(good.summary, batch_id=10, makespan_s=0.5)
    )
    cancelled = dataclasses.replace(
        good,
        id=11,
        summary=dataclasses.replace(good.summary, batch_id=11, done=3, cancelled=5, makespan_s=9.0),
    )
    mixed = dataclasses.replace(
        good, id=12, summary=dataclasses.replace(good.summary, batch_id=12, mode="mixed")
    )
    found = comparison(_with_batches(snapshot, newer, cancelled, mixed), ("count_primes", {"n": 300000}))
    process = dict(found.rows)[Mode.PROCESS]
    assert process is not None
    assert process.batch_id == 10  # the newest complete one; the cancelled and mixed ones do not count


def test_comparison_takes_the_latest_batch_in_each_mode() -> None:
    found = comparison(fixed_snapshot(Mode.THREAD), ("count_primes", {"n": 300000}))
    assert found is not None
    summaries = dict(found.rows)
    assert summaries[Mode.PROCESS].makespan_s == 0.84  # type: ignore[union-attr]
    assert found.longest_makespan == 1.62
    other = comparison(fixed_snapshot(Mode.THREAD), ("count_primes", {"n": 5}))
    assert other is not None and all(summary is None for _, summary in other.rows)


def load_of(sample: CpuSample) -> ProcessLoad | None:
    averager = LoadAverager()
    averager.add(sample)
    return averager.load()


def test_monitor_explains_the_gil_only_when_it_applies() -> None:
    rows = monitor_rows(
        MonitorData(
            load_of(fixed_sample(Mode.THREAD)), fixed_lag(Mode.THREAD).stats(), Mode.THREAD, 2, running=2
        ),
        80,
    )
    rendered = "\n".join(text([(p, "") if isinstance(p, str) else p for p in row]) for row in rows)  # type: ignore[misc]
    assert "1.03 cores" in rendered
    assert "UI waits for the GIL" in rendered
    rows = monitor_rows(
        MonitorData(
            load_of(fixed_sample(Mode.PROCESS)), fixed_lag(Mode.PROCESS).stats(), Mode.PROCESS, 2, running=2
        ),
        80,
    )
    rendered = "\n".join(text([(p, "") if isinstance(p, str) else p for p in row]) for row in rows)  # type: ignore[misc]
    assert "GIL" not in rendered
    assert "1.97 cores" in rendered


def test_format_seconds() -> None:
    assert format_seconds(None) == "–"
    assert format_seconds(0.0000042) == "4 µs"
    assert format_seconds(0.0123) == "12.3 ms"
    assert format_seconds(0.4567) == "457 ms"
    assert format_seconds(12.345) == "12.35 s"
    assert format_seconds(125) == "2 m 05 s"
