"""The scaling sweep: one task at 1, 2, … 2 × cores workers, speedup per point, Amdahl fitted.

Drives any :class:`Engine` it is given (``coredash bench`` makes its own, the
dashboard lends its own), so it knows nothing of signals or screens. Points are
interleaved: at each worker count every mode runs once before the count
changes, so a noisy neighbour slows every mode alike; each point is a fresh
batch on a warmed pool. A stop keeps the points already measured.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from coredash.engine.amdahl import AmdahlFit, Diagnosis, MeasuredPoint, diagnose, fit_amdahl
from coredash.engine.platform import usable_cpus

if TYPE_CHECKING:
    from coredash.engine.engine import Engine
    from coredash.engine.model import BatchRecord, BatchSummary
    from coredash.engine.modes import Mode

# More points than this on a big machine and a sweep takes too long for what it shows.
MAX_POINTS = 32


def sweep_workers(cores: int | None = None, cap: int = MAX_POINTS) -> tuple[int, ...]:
    """1, 2, … 2 × cores; past ``cap`` points, spaced geometrically (dense where the curve bends).

    The core count and twice it are always among them: the knee and the far end.
    """
    cores = max(cores if cores is not None else usable_cpus(), 1)
    top = 2 * cores
    if top <= cap:
        return tuple(range(1, top + 1))
    chosen: set[int] = set()
    steps = cap
    while True:
        picks = {round(top ** (i / (steps - 1))) for i in range(steps)} | {cores}
        if len(picks) > cap:
            break
        chosen = picks
        steps += 1
    return tuple(sorted(chosen))


@dataclass(frozen=True)
class SweepPlan:
    task: str
    params: dict[str, Any]
    jobs: int
    modes: tuple[Mode, ...]
    workers: tuple[int, ...]  # must start at 1: each mode's own baseline
    repeat: int = 1


@dataclass(frozen=True)
class SweepProgress:
    index: int  # the point now starting, from 1
    total: int
    mode: str
    workers: int
    elapsed_s: float
    eta_s: float | None  # None until a point has been measured
    curves: tuple[SweepCurve, ...] = ()  # the points measured so far, fitted: for a live chart

    @property
    def text(self) -> str:
        eta = "" if self.eta_s is None else f" · about {self.eta_s:.0f} s left"
        return f"point {self.index}/{self.total}: {self.mode} × {self.workers}{eta}"


@dataclass
class SweepCurve:
    mode: str
    points: list[MeasuredPoint]
    fit: AmdahlFit | None  # None: no point with 2 or more workers to fit
    diagnosis: Diagnosis | None

    def to_json(self) -> dict[str, Any]:
        return {
            "mode": self.mode,
            "points": [asdict(point) for point in self.points],
            "fit": None if self.fit is None else self.fit.to_json(),
            "diagnosis": None if self.diagnosis is None else self.diagnosis.to_json(),
        }


def make_curve(mode: str, points: Sequence[MeasuredPoint], cores: int) -> SweepCurve:
    ordered = sorted(points, key=lambda point: point.workers)
    try:
        fit: AmdahlFit | None = fit_amdahl([(p.workers, p.speedup) for p in ordered], cores=cores)
    except ValueError:
        fit = None
    found = diagnose(ordered, fit, cores) if fit is not None else None
    return SweepCurve(mode=mode, points=list(ordered), fit=fit, diagnosis=found)


@dataclass
class SweepResult:
    task: str
    params: dict[str, Any]
    jobs: int
    cores: int
    curves: list[SweepCurve]
    stopped: bool = False  # stopped early: the curves hold the points measured before
    elapsed_s: float = 0.0
    workers: list[int] = field(default_factory=list)  # as planned

    def to_json(self) -> dict[str, Any]:
        return {
            "task": self.task,
            "params": self.params,
            "jobs": self.jobs,
            "cores": self.cores,
            "workers": self.workers,
            "stopped": self.stopped,
            "elapsed_s": self.elapsed_s,
            "curves": [curve.to_json() for curve in self.curves],
        }


def curves_from_summaries(
    modes: Sequence[Mode], summaries: dict[tuple[Mode, int], list[BatchSummary]], cores: int
) -> list[SweepCurve]:
    """Medians over repeats; speedup against the same mode's 1-worker makespan.

    A point whose batch lost jobs (failed, cancelled) did less work: it is left out.
    """

    def median(values: Sequence[float | None]) -> float | None:
        known = [value for value in values if value is not None]
        return float(statistics.median(known)) if known else None

    curves = []
    for mode in modes:
        runs = {
            n: found for (m, n), found in summaries.items() if m is mode and all(x.complete for x in found)
        }
        base = median([s.makespan_s for s in runs.get(1, [])])
        points = []
        for n, found in sorted(runs.items()):
            makespan = median([s.makespan_s for s in found])
            if base is None or not makespan:
                continue
            points.append(
                MeasuredPoint(
                    workers=n,
                    speedup=base / makespan,
                    parallelism=median([s.parallelism for s in found]) or 0.0,
                    overhead_s=median([s.mean_overhead_s for s in found]),
                    run_s=median([s.mean_run_s for s in found]),
                    makespan_s=makespan,
                    jobs=found[0].jobs,
                )
            )
        curves.append(make_curve(mode.value, points, cores))
    return curves


async def _measure(engine: Engine, batch: BatchRecord, stop: asyncio.Event | None) -> BatchSummary | None:
    """The batch's summary, or None when ``stop`` was set first (the batch is then cancelled)."""
    waiting = asyncio.ensure_future(engine.wait_batch(batch))
    if stop is None:
        return await waiting
    stopping = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({waiting, stopping}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopping.cancel()
    if waiting.done():
        return waiting.result()
    engine.cancel_batch(batch.id)
    await waiting  # every job ends (cancelled) before the next sweep or batch starts
    return None


async def run_sweep(
    engine: Engine,
    plan: SweepPlan,
    on_progress: Callable[[SweepProgress], None] | None = None,
    stop: asyncio.Event | None = None,
) -> SweepResult:
    """Measure every point of ``plan`` on ``engine``; leaves the engine in the last point's mode and size.

    Setting ``stop`` ends the sweep: the batch running then is cancelled and
    dropped (a part of a batch is not a point), the points before it are kept.
    """
    cores = usable_cpus()
    order = [(n, mode) for _ in range(plan.repeat) for n in plan.workers for mode in plan.modes]
    summaries: dict[tuple[Mode, int], list[BatchSummary]] = {}
    began = time.monotonic()
    stopped = False
    for index, (workers, mode) in enumerate(order):
        if stop is not None and stop.is_set():
            stopped = True
            break
        elapsed = time.monotonic() - began
        # Later points have more workers and run faster: this ETA errs long, never short.
        eta = elapsed / index * (len(order) - index) if index else None
        if on_progress is not None:
            so_far = tuple(curves_from_summaries(plan.modes, summaries, cores))
            on_progress(SweepProgress(index + 1, len(order), mode.value, workers, elapsed, eta, so_far))
        engine.set_mode(mode)
        engine.set_workers(workers)
        await engine.warm_up()  # measure the steady state, not pool start-up
        summary = await _measure(engine, engine.submit_batch(plan.task, plan.jobs, plan.params), stop)
        if summary is None:
            stopped = True
            break
        summaries.setdefault((mode, workers), []).append(summary)
    return SweepResult(
        task=plan.task,
        params=dict(plan.params),
        jobs=plan.jobs,
        cores=cores,
        curves=curves_from_summaries(plan.modes, summaries, cores),
        stopped=stopped,
        elapsed_s=time.monotonic() - began,
        workers=list(plan.workers),
    )
