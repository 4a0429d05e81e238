"""The scaling sweep on a real engine: points, fit, progress, and a stop that keeps what was measured."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from coredash.engine import JobState, Mode
from coredash.engine.sweep import SweepPlan, SweepProgress, run_sweep, sweep_workers
from coredash.plot import sweep_chart
from tests.test_cli import coredash


def test_sweep_workers_up_to_twice_the_cores() -> None:
    assert sweep_workers(2) == (1, 2, 3, 4)
    assert sweep_workers(1) == (1, 2)
    assert sweep_workers(16) == tuple(range(1, 33))
    big = sweep_workers(64)
    assert len(big) <= 32 and big[0] == 1 and big[-1] == 128 and 64 in big
    assert list(big) == sorted(set(big))
    assert big[:8] == tuple(range(1, 9))  # dense where the curve bends


async def test_sweep_of_sleeping_threads_scales_and_fits_f_near_zero(make_engine) -> None:
    engine = make_engine(mode=Mode.THREAD, workers=1)
    seen: list[SweepProgress] = []
    # Sleeping jobs overlap on any machine: the speedup is the worker count, whatever the cores.
    plan = SweepPlan(task="sleep", params={"ms": 60}, jobs=6, modes=(Mode.THREAD,), workers=(1, 2, 3))
    result = await run_sweep(engine, plan, on_progress=seen.append)
    assert [(p.index, p.workers) for p in seen] == [(1, 1), (2, 2), (3, 3)]
    assert seen[0].eta_s is None and seen[-1].eta_s is not None and seen[-1].eta_s > 0
    assert "point 3/3: thread × 3" in seen[-1].text
    assert not result.stopped
    (curve,) = result.curves
    assert [p.workers for p in curve.points] == [1, 2, 3]
    assert curve.points[0].speedup == 1.0
    assert curve.points[2].speedup == pytest.approx(3.0, rel=0.25)
    assert curve.fit is not None and curve.fit.f < 0.1
    data = json.loads(json.dumps(result.to_json()))
    assert data["curves"][0]["fit"]["f"] == curve.fit.f
    assert [p["workers"] for p in data["curves"][0]["points"]] == [1, 2, 3]
    chart = sweep_chart(result.curves, cores=result.cores).plain
    assert "●" in chart and "f = 0.0" in chart and "workers" in chart


async def test_a_stopped_sweep_keeps_the_points_measured(make_engine) -> None:
    engine = make_engine(mode=Mode.THREAD, workers=1)
    stop = asyncio.Event()

    def on_progress(progress: SweepProgress) -> None:
        if progress.index == 3:  # the third point starts: stop it halfway
            asyncio.get_running_loop().call_later(0.1, stop.set)

    plan = SweepPlan(task="sleep", params={"ms": 100}, jobs=4, modes=(Mode.THREAD,), workers=(1, 2, 3, 4))
    result = await asyncio.wait_for(run_sweep(engine, plan, on_progress=on_progress, stop=stop), 10)
    assert result.stopped
    (curve,) = result.curves
    assert [p.workers for p in curve.points] == [1, 2]  # the interrupted point is not a point
    assert curve.fit is not None
    # The interrupted batch ended, every job of it with a reason; nothing is left running.
    snapshot = engine.snapshot()
    assert not snapshot.queued and not snapshot.active
    assert all(job.state.terminal for job in snapshot.recent)
    assert any(job.state is JobState.CANCELLED for job in snapshot.recent)


def test_bench_plot_draws_the_chart_and_json_has_the_fit(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    proc = coredash(
        "bench",
        "--task",
        "sha256",
        "--size",
        "64",
        "--jobs",
        "4",
        "--modes",
        "thread,process",
        "--workers",
        "1,2",
        "--no-serial",
        "--plot",
        "--json",
        str(out),
    )
    assert proc.returncode == 0, proc.stderr
    table, _, chart = proc.stdout.partition("speedup vs 1 worker")
    assert chart, proc.stdout  # the chart comes after the table
    assert "thread" in table and "●" in chart and "┤" in chart and "workers" in chart
    assert "ideal" in chart and chart.count("Amdahl f = ") == 2
    data = json.loads(out.read_text())
    scaling = {curve["mode"]: curve for curve in data["scaling"]}
    assert set(scaling) == {"thread", "process"}
    for mode, curve in scaling.items():
        assert [p["workers"] for p in curve["points"]] == [1, 2]
        run = next(r for r in data["runs"] if r["mode"] == mode and r["workers"] == 2)
        assert curve["points"][1]["speedup"] == pytest.approx(run["speedup"])
        fit = curve["fit"]
        assert 0 <= fit["f"] <= 1 and fit["residual"] >= 0
        assert f"f = {fit['f']:.2f}" in chart
