"""How late does the event loop run a timer? The UI's own responsiveness, measured.

In thread mode with pure-Python jobs the loop thread must win the GIL from the
job threads before it can run anything, so timers fire late. That lag is part of
what coredash demonstrates, so it is measured and shown, not hidden.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections import deque
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class LagStats:
    p50_ms: float
    p99_ms: float
    max_ms: float
    samples: int


class LoopLagMonitor:
    """Sleeps ``interval`` seconds in a loop and records how late each wake-up is.

    A loop blocked for L seconds wakes the monitor once, but every timer due
    meanwhile ran late too: by L, L - interval, L - 2 x interval, and so on. Those
    are counted as well (the usual correction for "coordinated omission"): else a
    2 s stall is one sample among a hundred and p99 never shows it.
    """

    def __init__(self, interval: float = 0.05, window: float = 5.0, history: float = 900.0) -> None:
        self.interval = interval
        self.window = window
        self._lags: deque[tuple[float, float]] = deque()
        # (when the timer was due, how late), longer than the window: a batch's own lag
        # is read from here once it has finished (``between``).
        self._history: deque[tuple[float, float]] = deque(maxlen=max(1, round(history / interval)))
        self._last_at = float("-inf")

    async def run(self) -> None:
        while True:
            before = time.monotonic()
            await asyncio.sleep(self.interval)
            now = time.monotonic()
            self.record(now, max(0.0, now - before - self.interval))

    def record(self, at: float, lag: float) -> None:
        """One wake-up at ``at``, ``lag`` seconds late (plus the timers it stood for)."""
        self._last_at = max(self._last_at, at)
        due = at - lag
        # (No more than the window holds: an hour's suspension is not 72,000 samples.)
        missed = min(int(lag / self.interval), int(min(self.window, 60.0) / self.interval) + 1)
        for late in (lag, *(lag - k * self.interval for k in range(1, missed + 1))):
            self._lags.append((at, late))
            self._history.append((due + lag - late, late))
        while self._lags and self._lags[0][0] < at - self.window:
            self._lags.popleft()

    def settled(self, until: float) -> bool:
        """Every timer due by ``until`` has been seen (a stall ending then is measured)."""
        return self._last_at >= until + self.interval

    def between(self, start: float, end: float) -> LagStats | None:
        """Lag of the timers due from ``start`` to ``end`` (a batch's run), if any were."""
        return _stats([lag for due, lag in self._history if start <= due <= end])

    def stats(self) -> LagStats | None:
        return _stats([lag for _, lag in self._lags])


def _stats(found: list[float]) -> LagStats | None:
    if not found:
        return None
    lags = sorted(found)
    p99 = lags[min(len(lags) - 1, round(0.99 * (len(lags) - 1)))]
    return LagStats(
        p50_ms=statistics.median(lags) * 1000,
        p99_ms=p99 * 1000,
        max_ms=lags[-1] * 1000,
        samples=len(lags),
    )
