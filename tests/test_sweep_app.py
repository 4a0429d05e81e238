"""The dashboard's sweep key, driven with Pilot on a real engine and real (sleeping) thread jobs."""

from __future__ import annotations

import pytest

from coredash.app import CoredashApp
from coredash.engine import Engine, Mode
from coredash.engine.sweep import sweep_workers
from coredash.screens.sweep import SweepScreen
from tests.test_app import SIZE, wait_until


def make_app(ms: int, jobs: int) -> CoredashApp:
    # Sleeping jobs scale with the worker count on any machine, so the chart is known.
    engine = Engine(mode=Mode.THREAD, workers=2)
    app = CoredashApp(engine, task="sleep", size=ms, jobs=jobs, refresh=10)
    app.auto_baseline = False
    return app


def screen_text(app: CoredashApp, selector: str) -> str:
    return str(app.screen.query_one(selector).render())


async def test_w_sweeps_the_current_mode_and_draws_the_fit() -> None:
    app = make_app(ms=40, jobs=4)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("w")
        await wait_until(pilot, lambda: isinstance(app.screen, SweepScreen), what="the sweep screen")
        await wait_until(pilot, lambda: bool(app.sweeps), 60, "the sweep to finish")
        (result,) = app.sweeps
        assert not result.stopped
        (curve,) = result.curves
        assert curve.mode == "thread"
        assert [p.workers for p in curve.points] == list(sweep_workers(app.engine.usable_cpus))
        assert curve.fit is not None
        chart = screen_text(app, "#sweep-chart")
        assert "●" in chart and "ideal" in chart and f"f = {curve.fit.f:.2f}" in chart
        assert "done:" in screen_text(app, "#sweep-progress")
        assert app.engine.workers == 2  # the user's own worker count is back
        await pilot.press("escape")
        assert not isinstance(app.screen, SweepScreen)


async def test_c_stops_the_sweep_and_keeps_the_points() -> None:
    app = make_app(ms=150, jobs=4)
    if len(sweep_workers(app.engine.usable_cpus)) < 3:
        pytest.skip("one core: the sweep has two points, nothing to stop halfway")
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("w")
        await wait_until(pilot, lambda: isinstance(app.screen, SweepScreen), what="the sweep screen")
        screen = app.screen
        assert isinstance(screen, SweepScreen)
        await wait_until(
            pilot, lambda: screen.progress is not None and screen.progress.index >= 3, 30, "the third point"
        )
        assert "point 3/" in screen_text(app, "#sweep-progress")
        await pilot.press("c")
        await wait_until(pilot, lambda: bool(app.sweeps), 30, "the sweep to stop")
        (result,) = app.sweeps
        assert result.stopped
        assert [p.workers for p in result.curves[0].points] == [1, 2]
        assert "stopped: kept 2 point(s)" in screen_text(app, "#sweep-progress")
        assert not app.engine.snapshot().active  # the interrupted batch was cancelled, not left running


async def test_shift_w_sweeps_every_mode_and_puts_the_mode_back() -> None:
    from coredash.engine import REGISTRY

    # Every available mode, so keep it short: 20 ms sleeps, 2 jobs a point.
    app = make_app(ms=20, jobs=2)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("W")
        await wait_until(pilot, lambda: isinstance(app.screen, SweepScreen), what="the sweep screen")
        await wait_until(pilot, lambda: bool(app.sweeps), 120, "the sweep to finish")
        (result,) = app.sweeps
        assert [curve.mode for curve in result.curves] == [str(mode) for mode in REGISTRY.available()]
        assert all(len(curve.points) == len(sweep_workers(app.engine.usable_cpus)) for curve in result.curves)
        chart = screen_text(app, "#sweep-chart")
        assert all(str(mode) in chart for mode in REGISTRY.available()), chart
        assert app.engine.mode is Mode.THREAD and app.engine.workers == 2  # the user's own setup is back
