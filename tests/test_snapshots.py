"""Screenshots of the dashboard from fixed inputs, compared with the stored SVGs.

Update after a deliberate visual change with ``pytest tests/test_snapshots.py
--snapshot-update``, and look at the new SVGs (rsvg-convert -> PNG) before committing.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

import pytest

from coredash.engine import REGISTRY, Mode
from tests.fixed_dashboard import make_fixed_app

WIDE = (160, 45)


@pytest.fixture(autouse=True)
def interpreters_as_on_311() -> Iterator[None]:
    """The same pictures on every Python: the interpreters mode reads as it does on 3.11."""
    real = REGISTRY.info(Mode.INTERPRETERS)
    pinned = dataclasses.replace(
        real, unavailable=lambda: "needs Python 3.13 with coredash[interpreters], or 3.14"
    )
    REGISTRY.register(pinned)
    try:
        yield
    finally:
        REGISTRY.register(real)


def test_main_screen_threads(snap_compare) -> None:
    assert snap_compare(make_fixed_app(Mode.THREAD), terminal_size=WIDE)


def test_main_screen_processes(snap_compare) -> None:
    assert snap_compare(make_fixed_app(Mode.PROCESS), terminal_size=WIDE)


def test_main_screen_at_120x36(snap_compare) -> None:
    assert snap_compare(make_fixed_app(Mode.PROCESS), terminal_size=(120, 36))


def test_main_screen_at_80x24(snap_compare) -> None:
    assert snap_compare(make_fixed_app(Mode.THREAD), terminal_size=(80, 24))


def test_job_picker(snap_compare) -> None:
    assert snap_compare(make_fixed_app(Mode.THREAD), press=["j"], terminal_size=WIDE)


def test_help_screen(snap_compare) -> None:
    assert snap_compare(make_fixed_app(Mode.THREAD), press=["question_mark"], terminal_size=WIDE)


def test_job_detail_with_traceback(snap_compare) -> None:
    async def open_failed_job(pilot) -> None:  # type: ignore[no-untyped-def]
        table = pilot.app.query_one("#jobs")
        table.focus()
        table.move_cursor(row=table.get_row_index("63"))
        await pilot.press("enter")

    assert snap_compare(make_fixed_app(Mode.THREAD), run_before=open_failed_job, terminal_size=WIDE)


def test_too_small_notice(snap_compare) -> None:
    assert snap_compare(make_fixed_app(Mode.THREAD), terminal_size=(70, 20))


def test_light_theme(snap_compare) -> None:
    app = make_fixed_app(Mode.PROCESS)
    app.theme = "textual-light"
    assert snap_compare(app, terminal_size=WIDE)


def test_no_color(snap_compare, monkeypatch) -> None:
    monkeypatch.setenv("NO_COLOR", "1")
    assert snap_compare(make_fixed_app(Mode.THREAD), terminal_size=WIDE)
