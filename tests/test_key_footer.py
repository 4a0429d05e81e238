"""The footer is rebuilt on every binding change; the dashboard must not leak a key set each time."""

from __future__ import annotations

import gc

from textual.widgets._footer import FooterKey

from coredash.app import CoredashApp
from coredash.engine import Engine, Mode
from coredash.widgets.key_footer import KeyFooter


def live_footer_keys() -> int:
    gc.collect()
    return sum(1 for obj in gc.get_objects() if isinstance(obj, FooterKey))


async def test_rebuilding_the_footer_does_not_keep_old_keys_alive() -> None:
    app = CoredashApp(Engine(mode=Mode.THREAD, workers=2), task="tiny", size=1, jobs=4, refresh=4)
    async with app.run_test(size=(160, 45)) as pilot:
        await pilot.pause(0.3)
        footer = app.query_one(KeyFooter)
        before = live_footer_keys()
        assert before > 0
        for index in range(30):  # what mode, worker and queue changes do all day long
            await pilot.press("+" if index % 2 else "-")
            await pilot.pause(0.05)
        await pilot.pause(0.3)
        # One set of keys on screen (plus, at most, one being rebuilt), not 30 sets.
        assert live_footer_keys() <= 2 * before, (before, live_footer_keys())
        watchers = getattr(footer, "__watchers", {}).get("compact", [])
        assert len(watchers) <= 2 * before
