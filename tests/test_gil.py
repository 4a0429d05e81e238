"""Free-threaded builds: what coredash expects of each mode follows the build, never an assumed GIL.

No free-threaded interpreter can be installed here, so the decision is tested
through its seam: ``engine.gil.expectation`` with a ``GilState`` built for each
build (a GIL build; free-threaded with the GIL off; free-threaded with
PYTHON_GIL=1), and the real views are built with such a state. The real build
this runs on is checked too: it has the GIL, and every view says that caps threads.
"""

from __future__ import annotations

import ast
import asyncio
import dataclasses
import importlib
import sys
from pathlib import Path
from types import ModuleType

import pytest

from coredash.app import CoredashApp
from coredash.bench import BenchConfig, run_bench
from coredash.engine import REGISTRY, Catalog, Engine, Mode
from coredash.engine.gil import GilState, Outlook, expectation
from coredash.screens.help import HelpScreen, explanation
from coredash.widgets.comparison import ComparisonPanel
from coredash.widgets.monitor_panel import MonitorData, monitor_rows
from coredash.widgets.status_line import StatusLine
from tests.conftest import PROCESS_MODES
from tests.fixed_dashboard import fixed_lag, fixed_sample, make_fixed_app
from tests.test_view import load_of, text

REPO = Path(__file__).resolve().parent.parent
GIL_BUILD = GilState(free_threaded=False, enabled=True)
FREE_THREADED = GilState(free_threaded=True, enabled=False)
GIL_BACK_ON = GilState(free_threaded=True, enabled=True, because="PYTHON_GIL=1")
THREADS = Mode.THREAD.abilities
POOL = Mode.PROCESS.abilities


# --- the seam -------------------------------------------------------------------


def test_on_a_gil_build_threads_run_one_core_of_pure_python() -> None:
    pure = expectation(THREADS, False, GIL_BUILD)
    assert pure.outlook is Outlook.ONE_CORE and "GIL" in pure.why and pure.ui_waits_for_gil
    native = expectation(THREADS, True, GIL_BUILD)
    assert native.outlook is Outlook.SCALES and "releases the GIL" in native.why
    assert expectation(THREADS, None, GIL_BUILD).outlook is Outlook.DEPENDS
    for releases in (False, True, None):
        assert expectation(POOL, releases, GIL_BUILD).outlook is Outlook.SCALES
        assert not expectation(POOL, releases, GIL_BUILD).ui_waits_for_gil


def test_free_threaded_with_the_gil_off_threads_scale() -> None:
    for releases in (False, True, None):
        found = expectation(THREADS, releases, FREE_THREADED)
        assert found.outlook is Outlook.SCALES, releases
        assert "free-threaded" in found.why and not found.ui_waits_for_gil
    assert expectation(POOL, False, FREE_THREADED).outlook is Outlook.SCALES


def test_python_gil_1_on_a_free_threaded_build_switches_threads_back() -> None:
    pure = expectation(THREADS, False, GIL_BACK_ON)
    assert pure.outlook is Outlook.ONE_CORE and pure.ui_waits_for_gil
    assert "PYTHON_GIL=1" in pure.why
    assert expectation(THREADS, True, GIL_BACK_ON).outlook is Outlook.SCALES  # C code still releases it


def test_the_seam_reads_abilities_not_names() -> None:
    # Any executor that shares the UI's interpreter is "threads" to the decision; one
    # that blocks the loop runs a job at a time; one with its own GIL per worker scales.
    shared = dataclasses.replace(POOL, shares_ui_gil=True, in_process=True)
    assert expectation(shared, False, GIL_BUILD).outlook is Outlook.ONE_CORE
    assert expectation(shared, False, FREE_THREADED).outlook is Outlook.SCALES
    own_gil = dataclasses.replace(THREADS, shares_ui_gil=False)
    assert expectation(own_gil, False, GIL_BUILD).outlook is Outlook.SCALES
    blocking = dataclasses.replace(POOL, blocks_loop=True)
    assert expectation(blocking, False, FREE_THREADED).outlook is Outlook.ONE_AT_A_TIME


def test_this_build_is_read_as_it_is() -> None:
    found = GilState.now()
    assert found.enabled is (getattr(sys, "_is_gil_enabled", lambda: True)())
    assert found == GIL_BUILD  # no free-threaded interpreter can be installed here
    assert found.label == "GIL on"
    assert FREE_THREADED.label == "GIL off (free-threaded)"
    assert GIL_BACK_ON.label == "GIL on again (free-threaded)"


# --- the views, built through the seam ---------------------------------------------


async def _status_and_help(app: CoredashApp) -> tuple[str, str, str]:
    async with app.run_test(size=(200, 45)) as pilot:
        await pilot.pause(0.1)
        status = app.query_one(StatusLine).render().plain  # type: ignore[union-attr]
        comparison = app.query_one(ComparisonPanel).render().plain  # type: ignore[union-attr]
        await pilot.press("question_mark")
        await pilot.pause(0.1)
        assert isinstance(app.screen, HelpScreen)
        return status, comparison, app.screen._text


async def test_views_say_threads_scale_on_a_free_threaded_build() -> None:
    app = make_fixed_app(Mode.THREAD)  # count_primes (holds the GIL) on threads
    app.gil_state = lambda: FREE_THREADED
    status, comparison, help_text = await _status_and_help(app)
    assert "threads: scales" in status and "GIL off (free-threaded)" in status
    assert "threads: scales here: free-threaded build with the GIL off" in comparison
    assert "**threads**: pure Python **scales**" in help_text
    assert "free-threaded build with the GIL off" in help_text


async def test_views_say_the_gil_caps_threads_on_this_build() -> None:
    app = make_fixed_app(Mode.THREAD)
    app.gil_state = GilState.now  # the real reading, as the app makes by default: this build has the GIL
    status, comparison, help_text = await _status_and_help(app)
    assert "threads: one core" in status and "GIL on" in status
    assert "threads: one core here: the GIL lets one thread run Python at a time" in comparison
    assert "**threads**: pure Python **one core** (the GIL lets one thread run Python" in help_text
    assert "which caps threads at one core's worth of pure Python" in help_text


async def test_views_follow_python_gil_1_and_the_help_is_rebuilt_when_the_gil_changes() -> None:
    app = make_fixed_app(Mode.THREAD)
    state = [FREE_THREADED]
    app.gil_state = lambda: state[0]
    async with app.run_test(size=(200, 45)) as pilot:
        await pilot.press("question_mark")
        assert "pure Python **scales**" in app.screen._text  # type: ignore[attr-defined]
        await pilot.press("escape")
        state[0] = GIL_BACK_ON  # an extension without Py_mod_gil was imported, say
        app.tick()
        await pilot.pause(0.05)
        assert "threads: one core" in app.query_one(StatusLine).render().plain  # type: ignore[union-attr]
        await pilot.press("question_mark")
        help_text = app.screen._text  # type: ignore[attr-defined]
        assert "**threads**: pure Python **one core**" in help_text and "PYTHON_GIL=1" in help_text


def test_the_monitor_blames_the_gil_for_lag_only_while_it_is_on() -> None:
    def rendered(gil: GilState) -> str:
        data = MonitorData(
            load_of(fixed_sample(Mode.THREAD)), fixed_lag(Mode.THREAD).stats(), Mode.THREAD, 2, 2, gil
        )
        return "\n".join(
            text([(p, "") if isinstance(p, str) else p for p in row]) for row in monitor_rows(data, 80)
        )

    assert "UI waits for the GIL" in rendered(GIL_BUILD)
    assert "UI waits for the GIL" in rendered(GIL_BACK_ON)
    assert "GIL" not in rendered(FREE_THREADED)


def test_help_lists_an_expectation_for_every_registered_mode() -> None:
    for gil in (GIL_BUILD, FREE_THREADED, GIL_BACK_ON):
        found = explanation(gil)
        for info in REGISTRY:
            assert f"- **{info.label}**: pure Python **" in found, (gil, info.name)


# --- coredash bench and benchmarks/executor_scaling.py -------------------------------


async def test_bench_reports_the_expectation_of_this_build() -> None:
    catalog = Catalog.builtin()
    config = BenchConfig(
        task="tiny",
        params={"n": 1},
        jobs=4,
        modes=(Mode.THREAD, Mode.PROCESS),
        workers=(1,),
        serial=False,
    )
    report = await run_bench(config, catalog)
    expects = {run.mode: run.expect for run in report.runs}
    assert expects == {"thread": "one core", "process": "scales"}  # tiny holds the GIL; this build has it
    assert report.machine["gil_enabled"] is True and report.machine["free_threaded_build"] is False


def _scaling_module() -> ModuleType:
    sys.path.insert(0, str(REPO / "benchmarks"))
    try:
        return importlib.import_module("executor_scaling")
    finally:
        sys.path.remove(str(REPO / "benchmarks"))


def test_executor_scaling_holds_threads_to_the_build() -> None:
    from coredash.bench import BenchReport, BenchRun

    def run(mode: str, speedup: float) -> BenchRun:
        return BenchRun(
            "count_primes",
            mode,
            2,
            8,
            {},
            1.0,
            speedup,
            speedup / 2,
            None,
            1.0,
            None,
            None,
            None,
            1.0,
            8,
            0,
            0,
            1,
        )

    report = BenchReport({}, {"task": "count_primes"}, None, None, [run("thread", 1.9), run("process", 1.9)])
    scaling = _scaling_module()
    on_gil = {name: (ok, want) for name, _, want, ok in scaling.expectations(report, 2, GIL_BUILD)}
    assert on_gil["count_primes on thread x2"] == (False, "<= 1.25 (one core's worth: the GIL)")
    free = {name: (ok, want) for name, _, want, ok in scaling.expectations(report, 2, FREE_THREADED)}
    assert free["count_primes on thread x2"] == (True, ">= 1.60 (80% of 2 cores)")  # "scales"
    back = {name: ok for name, _, _, ok in scaling.expectations(report, 2, GIL_BACK_ON)}
    assert back["count_primes on thread x2"] is False  # PYTHON_GIL=1: one core again
    assert all(ok for ok, _ in (on_gil["count_primes on process x2"], free["count_primes on process x2"]))


# --- never PYTHON_GIL or -X gil for a child -----------------------------------------------


@pytest.mark.parametrize("mode", PROCESS_MODES, ids=str)
async def test_no_child_is_given_python_gil_or_x_gil(make_engine, mode: Mode, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    # On a build with the GIL, either one is a fatal error at the child's start.
    monkeypatch.delenv("PYTHON_GIL", raising=False)
    from tests.scripts import env_tasks

    engine: Engine = make_engine(mode=mode, workers=1)
    engine.catalog.load_file(env_tasks.__file__)
    summary = await asyncio.wait_for(engine.wait_batch(engine.submit_batch("gil_settings", 2)), 60)
    assert summary.done == 2, summary
    for job_id in engine.batch(summary.batch_id).job_ids:  # type: ignore[union-attr]
        job = engine.job(job_id)
        assert job is not None
        env, xoption, pid = ast.literal_eval(job.result)  # make_engine keeps results
        assert pid != __import__("os").getpid()  # it did run in a child
        assert (env, xoption) == (None, None)


def test_coredash_never_names_python_gil_or_x_gil_for_a_child() -> None:
    # The only mentions allowed are words for people (the help, engine.gil's reading of the state).
    for path in (REPO / "coredash").rglob("*.py"):
        source = path.read_text()
        for needle in ('"-X"', "'-X'", 'environ["PYTHON_GIL"]', "PYTHON_GIL=", "putenv"):
            if needle in source:
                allowed = path.name in ("gil.py", "help.py") and needle == "PYTHON_GIL="
                assert allowed, f"{path.relative_to(REPO)} mentions {needle}"
