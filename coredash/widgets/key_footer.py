"""Textual's Footer, without a leak that a live dashboard would hit.

Footer rebuilds its key widgets every time the screen's bindings change, and each
FooterKey data-binds ``compact`` back to the Footer. That binding is a watcher
kept on the *Footer*, and Textual prunes such watchers only when the watched value
changes, which ``compact`` never does: every rebuild kept a dozen dead FooterKeys
(and their styles) alive for good. coredash refreshes bindings whenever the mode,
the worker count or the queue changes, so a 10-minute soak grew by ~23 MB a
minute. Textualize/textual#6666 (open) describes the bug; until it is fixed,
prune the watchers of keys that are gone after every rebuild.
"""

from __future__ import annotations

from textual.widgets import Footer


class KeyFooter(Footer):
    async def recompose(self) -> None:
        await super().recompose()
        self.prune_dead_watchers()

    def prune_dead_watchers(self) -> None:
        # Where Reactive keeps watchers registered by other nodes (textual/reactive.py).
        watchers = getattr(self, "__watchers", {}).get("compact")
        if watchers:
            watchers[:] = [(node, callback) for node, callback in watchers if node.is_attached]
