"""100,000 queued tiny jobs in the real app: does the UI stay responsive, and is memory bounded?

    .venv/bin/python benchmarks/load_100k.py [--jobs 100000] [--mode process] [--quick] [--json out.json]

The real dashboard runs headless (``App.run_test``, 160x45, 4 Hz: Textual still
lays out and renders every frame) on a real engine. ``r`` queues one batch of
``--jobs`` ``tiny`` jobs (each returns n + 1: dispatch and IPC are all there is).
While the batch runs:

* loop lag: coredash's own monitor (coredash/loop_lag.py: sleep, record how
  late the wake-up is; here every 10 ms, not 50) runs beside the app on its loop, keeping every
  sample from the first job queued to the last job ended; p50 and p99.
  Target (issue 5): p99 <= 50 ms.
* key presses answered: every 0.25 s Pilot presses ``?`` (help opens) or
  ``escape`` (help closes); the time from the press to the app's screen stack
  showing the change is one sample. Every press must be answered within 1 s;
  the median is judged against the 100 ms key-to-screen target (issue 4, item 4);
  the max is reported.
* memory: RSS of the app's process (this one; workers are separate processes)
  when 50 % and 100 % of the jobs have ended. Targets (issue 4, item 5):
  <= 200 MB at the end, and flat from half to all: growth <= 5 % of the RSS at
  half way. Engine history and the job table are bounded by design; 5 % leaves
  room for allocator noise while a leak of even 100 bytes a job (5 MB over
  50,000 jobs) would show.
* throughput: jobs/s from the first job queued to the last one ended (INFO).

``--quick`` runs 20,000 jobs (the same checks, at 10,000 and 20,000).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# Keep module-level imports light: process workers re-import this script as __mp_main__.
from targets import TargetReport

MB = 1e6
SIZE = (160, 45)
PRESS_GAP_S = 0.1  # a 100k batch is over in ~2 s here: several presses must land in it


@dataclass
class Measured:
    jobs: int
    mode: str
    elapsed_s: float = 0.0
    lags_ms: list[float] = field(default_factory=list)
    lags_after_queueing_ms: list[float] = field(default_factory=list)
    key_ms: dict[str, list[float]] = field(default_factory=dict)
    unanswered: int = 0
    key_idle_ms: dict[str, list[float]] = field(default_factory=dict)
    unanswered_idle: int = 0
    rss_start: float = 0.0
    rss_queued: float = 0.0
    rss_half: float = 0.0
    half_at: int = 0  # jobs ended when the half-way RSS was read
    submit_ms: float = 0.0  # the r key: queueing every job, on the loop
    rss_end: float = 0.0
    rss_end_after_gc: float = 0.0
    done: int = 0
    failed: int = 0
    cancelled: int = 0


KEYS = ("question_mark", "escape", "plus", "minus")  # help on, help off, one worker more, one fewer
# Under load only + and -: opening help composes a long Markdown page on the loop
# (~0.3 s even idle), which would be measured as the load's lag. Each + or -
# rebuilds the process pool at the new size, mid-batch.
LOADED_KEYS = ("plus", "minus")


async def measure(jobs: int, mode: str, refresh: float, keys: bool = True) -> Measured:
    import psutil

    from coredash.app import CoredashApp
    from coredash.engine import Engine, JobState
    from coredash.loop_lag import LoopLagMonitor
    from coredash.screens.help import HelpScreen
    from coredash.widgets.status_line import StatusLine

    me = psutil.Process()
    out = Measured(jobs=jobs, mode=mode)
    engine = Engine(mode=mode)
    app = CoredashApp(engine, task="tiny", jobs=jobs, refresh=refresh, auto_baseline=False)

    wakeups: list[tuple[float, float]] = []  # (monotonic time, lag s) of every wake-up

    class RecordingMonitor(LoopLagMonitor):
        """coredash's own loop-lag monitor, keeping every wake-up."""

        def record(self, at: float, lag: float) -> None:
            super().record(at, lag)
            wakeups.append((at, lag))

    # The app's own monitor sleeps 50 ms; this one 10 ms, so a batch that is over
    # in two seconds still gives a few hundred samples and p99 is not just the max.
    lag = RecordingMonitor(interval=0.01, window=float("inf"))

    def ended() -> int:
        counts = engine.snapshot(recent=0, batches=0, queued=0).counts
        return counts[JobState.DONE] + counts[JobState.FAILED] + counts[JobState.CANCELLED]

    # Measurement hooks only (each calls the original): every frame Textual
    # composes (headless, it is computed, not written), and when the r key's
    # action queued the batch.
    frames: list[float] = []
    display = app._display

    def recording_display(screen: Any, renderable: Any) -> None:
        if renderable is not None:
            frames.append(time.perf_counter())
        display(screen, renderable)

    app._display = recording_display  # type: ignore[method-assign]
    run_batch = app.action_run_batch
    queueing: list[float] = []

    def timed_run_batch() -> None:
        queueing.append(time.monotonic())
        run_batch()
        queueing.append(time.monotonic())

    app.action_run_batch = timed_run_batch  # type: ignore[method-assign]

    def shows(key: str, workers_before: int) -> bool:
        """The app's state shows the key's effect (the next frame then draws it)."""
        if key == "question_mark":
            return isinstance(app.screen, HelpScreen)
        if key == "escape":
            return not isinstance(app.screen, HelpScreen)
        status = app.query_one(StatusLine).data
        want = workers_before + (1 if key == "plus" else -1)
        return engine.workers == want and status is not None and status.workers == want

    async def press(pilot: Any, key: str) -> float | None:
        """ms from pressing ``key`` to the first frame composed after the app showed its effect."""
        workers_before = engine.workers
        t0 = time.perf_counter()
        pressing = asyncio.create_task(pilot.press(key))
        answered = None
        seen = None
        while time.perf_counter() - t0 < 1.0:
            if seen is None and shows(key, workers_before):
                seen = len(frames)
            if seen is not None and len(frames) > seen:
                answered = frames[seen]
                break
            await asyncio.sleep(0.001)
        await asyncio.wait_for(pressing, 10)
        return None if answered is None else (answered - t0) * 1000

    async def press_keys(
        pilot: Any, keys: tuple[str, ...], into: dict[str, list[float]], count: int | None, stop: Any
    ) -> int:
        """Cycle through ``keys`` ``count`` times, or until ``stop()``; returns presses not answered."""
        unanswered = 0
        pressed = 0
        while (count is None and not stop()) or (count is not None and pressed < count):
            key = keys[pressed % len(keys)]
            ms = await press(pilot, key)
            pressed += 1
            if ms is None:
                unanswered += 1
                if isinstance(app.screen, HelpScreen):
                    await pilot.press("escape")
            else:
                into.setdefault(key, []).append(ms)
            await asyncio.sleep(PRESS_GAP_S)
        return unanswered

    async with app.run_test(size=SIZE) as pilot:
        await engine.warm_up()
        await asyncio.sleep(1.0)  # first layout, pool started
        out.unanswered_idle = await press_keys(pilot, KEYS, out.key_idle_ms, 3 * len(KEYS), None)
        await asyncio.sleep(0.5)
        out.rss_start = me.memory_info().rss
        lag_task = asyncio.create_task(lag.run())
        began = time.monotonic()
        # Not awaited: Pilot.press waits for the screen to settle, which it does
        # only once the batch is over, and the keys must land while it runs.
        pressing_r = asyncio.create_task(pilot.press("r"))
        while len(queueing) < 2:  # noqa: ASYNC110  (set by the app's action, not an event)
            await asyncio.sleep(0.001)
        out.submit_ms = (queueing[1] - queueing[0]) * 1000
        out.rss_queued = me.memory_info().rss
        batch = engine.snapshot().batches[-1]
        assert batch.count == jobs, f"the app queued {batch.count} jobs, not {jobs}"

        async def watch_memory() -> None:
            while not batch.finished:
                if not out.rss_half and (count := ended()) >= jobs // 2:
                    out.rss_half, out.half_at = me.memory_info().rss, count
                await asyncio.sleep(0.01)

        watcher = asyncio.create_task(watch_memory())
        if keys:
            out.unanswered = await press_keys(pilot, LOADED_KEYS, out.key_ms, None, lambda: batch.finished)
        await watcher
        await pressing_r
        out.elapsed_s = time.monotonic() - began
        lag_task.cancel()
        if not out.rss_half:
            out.rss_half, out.half_at = me.memory_info().rss, ended()
        out.rss_end = me.memory_info().rss
        gc.collect()
        out.rss_end_after_gc = me.memory_info().rss
        summary = batch.summary
        assert summary is not None
        out.done, out.failed, out.cancelled = summary.done, summary.failed, summary.cancelled
        out.lags_ms = [lag_s * 1000 for _, lag_s in wakeups]
        # Wake-ups that the queueing call itself delayed (it runs on the loop).
        end_of_queueing = queueing[1] + lag.interval
        out.lags_after_queueing_ms = [lag_s * 1000 for at, lag_s in wakeups if at > end_of_queueing]
        await app.action_quit()
    return out


def percentile(values: list[float], q: float) -> float:
    """Nearest rank, as coredash's own monitor computes it."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def report(m: Measured) -> TargetReport:
    r = TargetReport(f"{m.jobs:,} queued tiny jobs in the app ({m.mode} mode, headless 160x45)")
    r.info("jobs done / failed / cancelled", m.done, note=f"{m.failed} failed, {m.cancelled} cancelled")
    r.check("jobs done", m.done, ">=", m.jobs)
    r.info("throughput", m.jobs / m.elapsed_s, unit=" jobs/s", note=f"{m.elapsed_s:.1f} s in all")
    r.info("r: the batch queued in", m.submit_ms, unit=" ms", note="one call on the loop")
    r.info("loop lag p50", statistics.median(m.lags_ms), unit=" ms", note=f"{len(m.lags_ms)} wake-ups")
    r.check("loop lag p99", percentile(m.lags_ms, 0.99), "<=", 50, unit=" ms")
    r.info("loop lag max", max(m.lags_ms), unit=" ms")
    if m.lags_after_queueing_ms:
        r.info(
            "loop lag p99 once queued",
            percentile(m.lags_after_queueing_ms, 0.99),
            unit=" ms",
            note=f"max {max(m.lags_after_queueing_ms):.1f} ms; without the wake-up the queueing delayed",
        )
    loaded = [ms for values in m.key_ms.values() for ms in values]
    r.check(
        "key presses not answered within 1 s", m.unanswered, "<=", 0, note=f"of {len(loaded) + m.unanswered}"
    )
    if loaded:
        r.check("key press to frame, median", statistics.median(loaded), "<=", 100, unit=" ms")
        r.info("key press to frame, max", max(loaded), unit=" ms")
    for key in KEYS:
        if m.key_ms.get(key) or m.key_idle_ms.get(key):
            busy = m.key_ms.get(key, [])
            quiet = m.key_idle_ms.get(key, [])
            r.info(
                f"  {key}: median loaded / idle",
                statistics.median(busy) if busy else float("nan"),
                unit=" ms",
                note=f"idle {statistics.median(quiet):.1f} ms (n={len(quiet)}); loaded n={len(busy)}",
            )
    half = m.jobs // 2
    r.info("RSS before queueing", m.rss_start / MB, unit=" MB")
    r.info(f"RSS with {m.jobs:,} queued", m.rss_queued / MB, unit=" MB")
    r.info(f"RSS at {half:,} ended", m.rss_half / MB, unit=" MB", note=f"read at {m.half_at:,} ended")
    r.check(f"RSS at {m.jobs:,} ended", m.rss_end / MB, "<=", 200, unit=" MB")
    growth = (m.rss_end - m.rss_half) / m.rss_half * 100
    r.check(
        f"RSS growth {half:,} -> {m.jobs:,}",
        growth,
        "<=",
        5,
        unit=" %",
        note=f"{(m.rss_end - m.rss_half) / MB:+.1f} MB",
    )
    r.info("RSS at the end after gc.collect()", m.rss_end_after_gc / MB, unit=" MB")
    return r


def main() -> int:
    from coredash.engine import REGISTRY

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=100_000)
    # Modes that can batch tiny jobs: a process per job would start 100,000 processes.
    batching = [str(info.mode) for info in REGISTRY if info.available and info.abilities.chunks]
    parser.add_argument("--mode", choices=batching, default="process")
    parser.add_argument("--refresh", type=float, default=4.0, help="dashboard refresh rate, Hz")
    parser.add_argument("--quick", action="store_true", help="20,000 jobs")
    parser.add_argument(
        "--no-keys", action="store_true", help="press no keys while the batch runs (lag of the load alone)"
    )
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    jobs = 20_000 if args.quick else args.jobs
    if jobs < 2:
        parser.error("--jobs must be at least 2")
    measured = asyncio.run(measure(jobs, args.mode, args.refresh, keys=not args.no_keys))
    result = report(measured)
    return result.finish(args.json)


if __name__ == "__main__":
    sys.exit(main())
