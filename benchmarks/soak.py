"""Soak: random jobs, faults and mode switches in the real app for minutes; RSS, fds and threads stay flat.

    .venv/bin/python benchmarks/soak.py [--minutes 10] [--quick] [--seed 1] [--json out.json]

The real dashboard runs headless (``App.run_test``, 160x45, 4 Hz) on a real
engine. A seeded random driver keeps it busy: batches of tiny, sleep,
count_primes, fail and crash jobs (crash: kill, term or exit), and through
Pilot the keys a person would press: t / p / s (mode), + / - (workers, 1-4),
r (the picked batch, with its serial baseline), c (cancel queued), k (kill
running), x (clear history), ? then escape (help). The queue is kept under a
few thousand jobs so the run measures churn, not a backlog.

Two kinds of sample, of this process (the app; workers are children):

* every ``--every`` seconds, under load: RSS, open file descriptors
  (``num_fds``) and threads. Printed first/last and as a least-squares slope
  per minute (INFO): these move with the mode and the number of workers.
* checkpoints, every ``--checkpoint`` seconds: the driver pauses, cancels and
  kills everything, waits until idle, switches to threads with 2 workers and
  waits for retired pools to go. Each checkpoint finds the app in the same
  state, so any growth between checkpoints is something kept that should not
  be. The first checkpoint is taken after one interval of load (Python's
  allocator and Textual's caches fill up once; that is not a leak).

Flat, judged on the checkpoints, first vs last and the least-squares slope:
fds and threads must not grow at all beyond +2 (a transient helper thread, a
late pipe close); their slope <= 0.2 per minute. RSS: growth <= 10 MB and slope
<= 1 MB per minute: a leak of one small object per job (~100 B x the ~10^4-10^5
jobs a minute this runs) would cross it, allocator noise does not.
At the end: every job submitted ended (done + failed + cancelled = submitted),
and after quitting no worker process is left.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# Keep module-level imports light: process workers re-import this script as __mp_main__.
from targets import TargetReport

MB = 1e6
SIZE = (160, 45)
MAX_QUEUED = 3000


@dataclass
class Sample:
    t: float  # seconds since the start
    rss: float
    fds: int
    threads: int


@dataclass
class Soak:
    minutes: float
    samples: list[Sample] = field(default_factory=list)
    checkpoints: list[Sample] = field(default_factory=list)
    actions: dict[str, int] = field(default_factory=dict)
    submitted: int = 0
    ended: dict[str, int] = field(default_factory=dict)  # terminal events, by state
    not_ended: int = 0  # at the last checkpoint
    left_after_quit: list[str] = field(default_factory=list)


def slope_per_minute(points: list[tuple[float, float]]) -> float:
    """Least-squares slope of (seconds, value), per minute."""
    if len(points) < 2:
        return 0.0
    n = len(points)
    mean_t = sum(t for t, _ in points) / n
    mean_v = sum(v for _, v in points) / n
    var = sum((t - mean_t) ** 2 for t, _ in points)
    if var == 0:
        return 0.0
    cov = sum((t - mean_t) * (v - mean_v) for t, v in points)
    return cov / var * 60


async def soak(minutes: float, every: float, checkpoint_every: float, seed: int) -> Soak:
    import psutil

    from coredash.app import CoredashApp
    from coredash.engine import Engine, JobChanged, JobState, Mode
    from coredash.screens.help import HelpScreen

    rng = random.Random(seed)
    me = psutil.Process()
    out = Soak(minutes=minutes)
    engine = Engine(mode=Mode.PROCESS, workers=2)
    app = CoredashApp(engine, task="count_primes", size=20_000, jobs=8, refresh=4.0)

    def sample(began: float) -> Sample:
        return Sample(time.monotonic() - began, me.memory_info().rss, me.num_fds(), me.num_threads())

    def count(action: str) -> None:
        out.actions[action] = out.actions.get(action, 0) + 1

    def on_event(event: Any) -> None:
        # Counters only (a set of job ids would itself grow): a new job is queued
        # with no attempts yet; a re-queued one has had one.
        if isinstance(event, JobChanged):
            if event.state is JobState.QUEUED and event.job.attempts == 0:
                out.submitted += 1
            elif event.state.terminal:
                out.ended[event.state.value] = out.ended.get(event.state.value, 0) + 1

    engine.subscribe(on_event)

    def submit(task: str, jobs: int, params: dict[str, Any]) -> None:
        engine.submit_batch(task, jobs, params)
        count(f"batch {task}")

    async def press(pilot: Any, *keys: str) -> None:
        await pilot.press(*keys)
        count("key " + "+".join(keys))

    async def random_action(pilot: Any) -> None:
        queued = engine.snapshot(recent=0, batches=0, queued=0).counts[JobState.QUEUED]
        roll = rng.random()
        if roll < 0.45 and queued < MAX_QUEUED:
            kind = rng.choice(["tiny", "tiny", "sleep", "count_primes", "fail", "crash"])
            if kind == "tiny":
                submit("tiny", rng.randint(100, 2000), {"n": rng.randint(0, 1000)})
            elif kind == "sleep":
                submit("sleep", rng.randint(2, 10), {"ms": rng.randint(5, 200)})
            elif kind == "count_primes":
                submit("count_primes", rng.randint(2, 8), {"n": rng.randint(2_000, 30_000)})
            elif kind == "fail":
                submit("fail", rng.randint(1, 3), {"ms": rng.randint(0, 20)})
            else:
                how = rng.choice(["kill", "term", "exit"])
                submit("crash", rng.randint(1, 3), {"ms": rng.randint(0, 20), "how": how})
        elif roll < 0.60:
            await press(pilot, rng.choice(["t", "p", "s"]))
        elif roll < 0.72:
            step = rng.choice(["plus", "minus"])
            if 1 <= engine.workers + (1 if step == "plus" else -1) <= 4:
                await press(pilot, step)
        elif roll < 0.78 and queued < MAX_QUEUED:
            await press(pilot, "r")
        elif roll < 0.84:
            await press(pilot, "c")
        elif roll < 0.89:
            await press(pilot, "k")
        elif roll < 0.91:
            await press(pilot, "x")
        elif roll < 0.93:
            await press(pilot, "question_mark")
            await press(pilot, "escape")
        else:
            count("pause")
        if isinstance(app.screen, HelpScreen):
            await pilot.press("escape")

    async def quiet_checkpoint(pilot: Any, began: float) -> Sample:
        """Bring the app to the same state each time, then sample."""
        engine.cancel_queued()
        engine.kill_running()
        await asyncio.wait_for(engine.wait_idle(), 30)
        if engine.mode != Mode.THREAD:
            await pilot.press(Mode.THREAD.info.key)
        while engine.workers != 2:
            await pilot.press("plus" if engine.workers < 2 else "minus")
        deadline = time.monotonic() + 10
        while engine.snapshot().draining or engine.live_worker_pids():
            if time.monotonic() > deadline:
                break
            await asyncio.sleep(0.05)
        await asyncio.sleep(1.0)  # let retired pools' threads end
        return sample(began)

    async with app.run_test(size=SIZE) as pilot:
        app.auto_baseline = True
        began = time.monotonic()
        stop_at = began + minutes * 60
        next_sample = began
        next_checkpoint = began + checkpoint_every
        while time.monotonic() < stop_at:
            now = time.monotonic()
            if now >= next_sample:
                out.samples.append(sample(began))
                next_sample = now + every
            if now >= next_checkpoint:
                out.checkpoints.append(await quiet_checkpoint(pilot, began))
                mark = out.checkpoints[-1]
                print(
                    f"  checkpoint {len(out.checkpoints)} at {mark.t:5.0f} s: RSS {mark.rss / MB:.1f} MB, "
                    f"{mark.fds} fds, {mark.threads} threads; {out.submitted:,} jobs so far",
                    flush=True,
                )
                next_checkpoint = time.monotonic() + checkpoint_every
            await random_action(pilot)
            await asyncio.sleep(rng.uniform(0.05, 0.4))
        out.checkpoints.append(await quiet_checkpoint(pilot, began))
        counts = engine.snapshot().counts
        out.not_ended = sum(
            counts[state] for state in (JobState.QUEUED, JobState.DISPATCHED, JobState.RUNNING)
        )
        await app.action_quit()
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        out.left_after_quit = workers_left(me)
        if not out.left_after_quit:
            break
        await asyncio.sleep(0.1)
    return out


def workers_left(me: Any) -> list[str]:
    """Live descendants other than multiprocessing's resource tracker and forkserver."""
    import psutil

    helpers = ("multiprocessing.resource_tracker", "multiprocessing.forkserver")
    left = []
    for child in me.children(recursive=True):
        try:
            if child.status() == psutil.STATUS_ZOMBIE:
                continue
            cmdline = " ".join(child.cmdline())
            if child.ppid() == me.pid and any(h in cmdline for h in helpers):
                continue
            left.append(f"pid {child.pid}: {cmdline[:60]}")
        except psutil.NoSuchProcess:
            continue
    return left


def report(s: Soak) -> TargetReport:
    r = TargetReport(f"soak: {s.minutes:g} min of random jobs, faults and mode switches (headless app)")
    r.info("jobs submitted", s.submitted, note=", ".join(f"{k} {v:,}" for k, v in s.ended.items()))
    r.info(
        "actions",
        sum(s.actions.values()),
        note=", ".join(f"{k} {v}" for k, v in sorted(s.actions.items())),
    )
    ended = sum(s.ended.values())
    r.check("jobs submitted - terminal events", abs(s.submitted - ended), "<=", 0, note="either way")
    r.check("jobs not ended at the last checkpoint", s.not_ended, "<=", 0)
    r.check(
        "worker processes left after quitting",
        len(s.left_after_quit),
        "<=",
        0,
        note="; ".join(s.left_after_quit),
    )

    first, last = s.samples[0], s.samples[-1]
    for name, unit, scale in (("RSS", " MB", MB), ("fds", "", 1), ("threads", "", 1)):
        attr = name.lower() if name != "RSS" else "rss"
        points = [(x.t, getattr(x, attr) / scale) for x in s.samples]
        r.info(
            f"under load: {name} slope",
            slope_per_minute(points),
            unit=f"{unit}/min",
            note=f"first {getattr(first, attr) / scale:.1f}, last {getattr(last, attr) / scale:.1f}, "
            f"min {min(v for _, v in points):.1f}, max {max(v for _, v in points):.1f}, "
            f"{len(points)} samples",
        )
    judged = s.checkpoints[1:] if len(s.checkpoints) > 2 else s.checkpoints
    if len(judged) >= 2:
        c0, c1 = judged[0], judged[-1]
        limits = {"rss": (10.0, 1.0), "fds": (2.0, 0.2), "threads": (2.0, 0.2)}
        for name, unit, scale in (("RSS", " MB", MB), ("fds", "", 1), ("threads", "", 1)):
            attr = name.lower() if name != "RSS" else "rss"
            growth_limit, slope_limit = limits[attr]
            points = [(x.t, getattr(x, attr) / scale) for x in judged]
            r.check(
                f"checkpoints: {name} last - first",
                (getattr(c1, attr) - getattr(c0, attr)) / scale,
                "<=",
                growth_limit,
                unit=unit,
                note=f"{getattr(c0, attr) / scale:.1f} at {c0.t:.0f} s -> {getattr(c1, attr) / scale:.1f} "
                f"at {c1.t:.0f} s",
            )
            r.check(
                f"checkpoints: {name} slope", slope_per_minute(points), "<=", slope_limit, unit=f"{unit}/min"
            )
    return r


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--quick", action="store_true", help="1 minute, checkpoints every 15 s")
    parser.add_argument("--every", type=float, default=5.0, help="seconds between samples under load")
    parser.add_argument("--checkpoint", type=float, default=60.0, help="seconds between quiet checkpoints")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    minutes, checkpoint = (1.0, 15.0) if args.quick else (args.minutes, args.checkpoint)
    if minutes <= 0 or args.every <= 0 or checkpoint <= 0:
        parser.error("--minutes, --every and --checkpoint must be positive")
    print(
        f"soak: {minutes:g} min, samples every {args.every:g} s, checkpoints every {checkpoint:g} s",
        flush=True,
    )
    sys.stdout.flush()
    result = report(asyncio.run(soak(minutes, args.every, checkpoint, args.seed)))
    return result.finish(args.json)


if __name__ == "__main__":
    sys.exit(main())
