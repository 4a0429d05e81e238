"""One registry of modes: a mode registered at run time is listed everywhere, and one
that cannot run here is listed with its reason and never switched to."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import pytest
from textual.pilot import Pilot
from textual.widgets import Markdown
from textual.widgets._footer import FooterKey

from coredash.app import CoredashApp
from coredash.cli import UsageError, build_bench_parser, build_parser
from coredash.engine import REGISTRY, Engine, Mode, ModeInfo
from coredash.screens.help import HelpScreen, explanation
from coredash.view_model import comparison
from coredash.widgets.comparison import ComparisonData, comparison_rows
from coredash.widgets.status_line import StatusLine
from tests.fixed_dashboard import PARAMS, fixed_snapshot

SIZE = (160, 45)
REASON = "needs Python 3.14"


def text(row: list[tuple[str, str] | str]) -> str:
    return "".join(part if isinstance(part, str) else part[0] for part in row)


def registered(info: ModeInfo) -> Iterator[Mode]:
    mode = REGISTRY.register(info)
    try:
        yield mode
    finally:
        REGISTRY.unregister(info.name)


@pytest.fixture
def throwaway() -> Iterator[Mode]:
    """A fourth mode, on the thread backend (named by path: not imported here)."""
    yield from registered(
        ModeInfo(
            name="throwaway",
            key="y",  # x is the dashboard's clear key
            label="throwaway",
            short="Throwaway",
            aliases=("tw",),
            colour="primary",
            help="A mode registered by a test, run on the thread backend.",
            abilities=Mode.THREAD.abilities,
            backend="coredash.engine.backends.threads:ThreadBackend",
        )
    )


@pytest.fixture
def unavailable() -> Iterator[Mode]:
    yield from registered(
        ModeInfo(
            name="future",
            key="u",
            label="future threads",
            short="Future",
            aliases=(),
            colour="error",
            help="Threads without a GIL.",
            abilities=Mode.THREAD.abilities,
            backend="coredash.engine.backends.threads:ThreadBackend",
            unavailable=lambda: REASON,
        )
    )


def make_app() -> CoredashApp:
    return CoredashApp(
        Engine(mode=Mode.THREAD, workers=1),
        task="tiny",
        size=1,
        jobs=2,
        refresh=10,
        auto_baseline=False,
    )


async def wait_until(pilot: Pilot[int], condition: Callable[[], bool], what: str) -> None:
    timeout = 30.0
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await pilot.pause(0.05)


def footer_keys(app: CoredashApp) -> dict[str, FooterKey]:
    return {key.key: key for key in app.screen.query(FooterKey)}


# --- a mode registered at run time ---------------------------------------------


def test_a_registered_mode_is_a_cli_choice(throwaway: Mode) -> None:
    assert "throwaway" in build_parser().format_help()
    assert build_parser().parse_args(["--mode", "tw"]).mode == throwaway
    bench = build_bench_parser()
    assert "throwaway" in bench.format_help()
    assert throwaway in bench.parse_args(["--task", "tiny"]).modes  # in the default list


def test_a_registered_mode_has_a_comparison_row(throwaway: Mode) -> None:
    found = comparison(fixed_snapshot(Mode.THREAD), ("count_primes", PARAMS))
    assert [mode for mode, _ in found.rows] == [*REGISTRY.modes()]
    assert dict(found.rows)[throwaway] is None
    rows = [text(row) for row in comparison_rows(ComparisonData(found, 2, Mode.THREAD), 120)]
    assert any("throwaway" in row and "not run yet: press y then r" in row for row in rows), rows
    empty = [text(row) for row in comparison_rows(ComparisonData(None, 2, Mode.THREAD), 120)]
    assert "y throwaway" in empty[1]


def test_a_registered_mode_is_in_the_help(throwaway: Mode) -> None:
    from coredash.screens.help import NUMBER_WORDS

    # Counted from the registry: the throwaway mode makes one more.
    assert f"## The {NUMBER_WORDS[len(REGISTRY)]} modes" in explanation()
    assert "**y · throwaway**: A mode registered by a test" in explanation()


async def test_a_registered_mode_gets_a_key_a_footer_entry_and_a_status_chip(throwaway: Mode) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: "y" in footer_keys(app), "the footer to show the new key")
        assert footer_keys(app)["y"].description == "Throwaway"
        # The footer keeps its order: the new mode sits after the three others.
        order = list(footer_keys(app))
        assert order.index("s") < order.index("y") < order.index("k")
        # A chip: the key alone at this width (labels need room the facts after them want).
        assert " y " in str(app.query_one(StatusLine).render())
        # Its key switches the engine (this needs the engine to build the mode's backend).
        await pilot.press("y")
        await wait_until(pilot, lambda: app.engine.mode == throwaway, "the key to switch mode")
        await wait_until(pilot, lambda: app.query_one(StatusLine).data.mode == throwaway, "the status line")
        await pilot.press("r")
        await wait_until(
            pilot,
            lambda: any(b.finished and b.mode == throwaway for b in app.engine.snapshot().batches),
            "a batch in the registered mode",
        )


async def test_a_wide_status_line_names_every_mode_in_full(throwaway: Mode) -> None:
    app = make_app()
    async with app.run_test(size=(240, 30)) as pilot:
        await pilot.pause()
        line = str(app.query_one(StatusLine).render())
        assert all(f" {info.key} {info.label} " in line for info in REGISTRY), line


# --- a mode that cannot run here -----------------------------------------------


def test_an_unavailable_mode_is_listed_with_its_reason(unavailable: Mode) -> None:
    help_text = " ".join(build_parser().format_help().split())  # argparse wraps lines
    assert f"future: {REASON}" in help_text
    assert "future" not in build_bench_parser().parse_args(["--task", "tiny"]).modes
    with pytest.raises(UsageError, match=REASON):
        build_parser().parse_args(["--mode", "future"])
    assert f"**u · future threads** *(unavailable here: {REASON})*" in explanation()
    found = comparison(fixed_snapshot(Mode.THREAD), ("count_primes", PARAMS))
    rows = [text(row) for row in comparison_rows(ComparisonData(found, 2, Mode.THREAD), 120)]
    assert any("future threads" in row and f"unavailable: {REASON}" in row for row in rows), rows


async def test_an_unavailable_modes_key_says_why_and_does_not_switch(unavailable: Mode) -> None:
    app = make_app()
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await wait_until(pilot, lambda: "u" in footer_keys(app), "the footer to show the key")
        assert REASON in str(footer_keys(app)["u"].tooltip)
        await pilot.press("u")
        await wait_until(
            pilot,
            lambda: any(REASON in str(note.message) for note in app._notifications),
            "a notice of why not",
        )
        assert app.engine.mode == Mode.THREAD
        await pilot.press("question_mark")
        await wait_until(pilot, lambda: isinstance(app.screen, HelpScreen), "the help screen")
        assert REASON in app.screen.query_one(Markdown).source
