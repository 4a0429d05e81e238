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
    """Sleeps ``interval`` seconds in a loop and records how late each wake-up is."""

    def __init__(self, interval: float = 0.05, window: float = 5.0) -> None:
        self.interval = interval
        self.window = window
        self._lags: deque[tuple[float, float]] = deque()

    async def run(self) -> None:
        while True:
            before = time.monotonic()
            await asyncio.sleep(self.interval)
            now = time.monotonic()
            self.record(now, max(0.0, now - before - self.interval))

    def record(self, at: float, lag: float) -> None:
        self._lags.append((at, lag))
        while self._lags and self._lags[0][0] < at - self.window:
            self._lags.popleft()

    def stats(self) -> LagStats | None:
        if not self._lags:
            return None
        lags = sorted(lag for _, lag in self._lags)
        p99 = lags[min(len(lags) - 1, round(0.99 * (len(lags) - 1)))]
        return LagStats(
            p50_ms=statistics.median(lags) * 1000,
            p99_ms=p99 * 1000,
            max_ms=lags[-1] * 1000,
            samples=len(lags),
        )
