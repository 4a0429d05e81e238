"""Amdahl's law fitted to a measured scaling curve, and why a curve falls short of it.

Pure arithmetic (no engine, no UI): the sweep, ``coredash bench --plot`` and the
dashboard all read the same fit.

The model is S(n) = 1 / (f + (1 - f) / n): a serial fraction f of the work never
runs in parallel. f is chosen by least squares *on the speedups themselves*
(what the chart shows and what the residual measures), not on 1/S: the
linearised fit weighs the small speedups of the first points most, which is
where noise matters least.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Sequence
from dataclasses import dataclass

# A measured point this far below what is expected counts as falling short (noise allowance).
SHORTFALL = 0.1
# Parallelism at or below this with two or more workers on two or more cores: one lock serialises them.
GIL_PARALLELISM = 1.25
# Below this the jobs barely use a core at all (sleeping, waiting on I/O): a low
# parallelism then says nothing about a lock.
GIL_FLOOR = 0.6


def amdahl(workers: float, f: float) -> float:
    """Amdahl's speedup on ``workers`` processors with serial fraction ``f``."""
    return 1.0 / (f + (1.0 - f) / workers)


def ideal(workers: float, cores: int) -> float:
    """The best any mode can do: one worker per core, nothing more past the core count."""
    return float(min(workers, cores))


@dataclass(frozen=True)
class AmdahlFit:
    f: float  # the serial fraction, in [0, 1]
    residual: float  # RMS of (measured - fitted speedup) over the points fitted
    fitted: tuple[tuple[int, float], ...]  # the points the fit used

    @property
    def max_speedup(self) -> float:
        """1/f: the ceiling however many cores (inf when nothing is serial)."""
        return math.inf if self.f <= 0 else 1.0 / self.f

    def speedup(self, workers: float) -> float:
        return amdahl(workers, self.f)

    @property
    def text(self) -> str:
        """One line: "f = 0.03: at most 33× however many cores"."""
        if self.max_speedup > 1000:
            return f"f = {self.f:.2f}: no serial part measured, only the cores limit it"
        ceiling = self.max_speedup
        shown = f"{ceiling:.0f}" if ceiling >= 10 else f"{ceiling:.1f}".removesuffix(".0")
        return f"f = {self.f:.2f}: at most {shown}× however many cores"

    def to_json(self) -> dict[str, object]:
        return {
            "f": self.f,
            "residual": self.residual,
            "max_speedup": None if math.isinf(self.max_speedup) else self.max_speedup,
            "fitted_points": [list(point) for point in self.fitted],
            "text": self.text,
        }


def _sum_squares(points: Sequence[tuple[int, float]], f: float) -> float:
    return sum((speedup - amdahl(workers, f)) ** 2 for workers, speedup in points)


def fit_amdahl(points: Sequence[tuple[int, float]], cores: int | None = None) -> AmdahlFit:
    """Least-squares serial fraction over (workers, speedup) points, f clamped to [0, 1].

    With ``cores`` given, only points with at most that many workers are fitted:
    past the core count the machine, not the program, caps the speedup, and that
    shortfall is oversubscription (see :func:`diagnose`), not a serial part. When
    that leaves no point with two or more workers (a 1-core machine), every point
    is fitted: the best that machine can say.
    """
    usable = [(int(n), float(s)) for n, s in points if n >= 1 and math.isfinite(s)]
    if cores is not None:
        within = [(n, s) for n, s in usable if n <= cores]
        if any(n >= 2 for n, _ in within):
            usable = within
    if not any(n >= 2 for n, _ in usable):
        # S(1) = 1 for every f: a 1-worker point says nothing about f.
        raise ValueError("an Amdahl fit needs a measured point with 2 or more workers")
    # The sum of squares is smooth in f but not always unimodal across points:
    # a grid finds the right basin, golden-section search then refines it.
    steps = 200
    grid = [i / steps for i in range(steps + 1)]
    best = min(range(len(grid)), key=lambda i: _sum_squares(usable, grid[i]))
    low, high = grid[max(best - 1, 0)], grid[min(best + 1, steps)]
    ratio = (math.sqrt(5) - 1) / 2
    a, b = high - ratio * (high - low), low + ratio * (high - low)
    for _ in range(60):
        if _sum_squares(usable, a) <= _sum_squares(usable, b):
            high, b = b, a
            a = high - ratio * (high - low)
        else:
            low, a = a, b
            b = low + ratio * (high - low)
    f = min(max((low + high) / 2, 0.0), 1.0)
    # The grid ends are candidates too: the clamp may be the minimum.
    f = min((f, 0.0, 1.0), key=lambda value: _sum_squares(usable, value))
    residual = math.sqrt(_sum_squares(usable, f) / len(usable))
    return AmdahlFit(f=f, residual=residual, fitted=tuple(usable))


class Effect(enum.Enum):
    GIL = "GIL"
    OVERSUBSCRIPTION = "oversubscription"
    IPC = "IPC"
    SERIAL = "serial part"
    ROUNDS = "uneven rounds"
    OTHER = "other"

    @property
    def why(self) -> str:
        return _WHY[self]


_WHY = {
    Effect.GIL: "parallelism stays ≈1: one lock (the GIL) lets one worker run at a time",
    Effect.OVERSUBSCRIPTION: "more workers than cores: they take turns, the extra ones add nothing",
    Effect.IPC: "overhead per job ≥ run time per job: sending work and results costs more than the work",
    Effect.SERIAL: "on the fitted curve: the serial fraction f is what limits it",
    Effect.ROUNDS: "the jobs do not divide evenly: the last round leaves workers idle",
    Effect.OTHER: "below the fit, with no sign of the GIL, oversubscription or IPC",
}


@dataclass(frozen=True)
class MeasuredPoint:
    """One point of a scaling curve, with the figures that explain it."""

    workers: int
    speedup: float
    parallelism: float  # Σ job CPU time ÷ makespan: cores really used
    overhead_s: float | None  # mean per job: dispatch → start + finish → result back
    run_s: float | None  # mean run time per job
    makespan_s: float | None = None
    jobs: int | None = None  # in the batch: N jobs on W workers take ceil(N / W) rounds

    @property
    def rounds_bound(self) -> float | None:
        """The most speedup equal jobs allow here: N jobs in ceil(N / W) rounds instead of N."""
        if not self.jobs:
            return None
        return self.jobs / math.ceil(self.jobs / self.workers)


@dataclass(frozen=True)
class Shortfall:
    workers: int
    expected: float  # what the point fell short of: the higher of the ideal and the fit it is below
    measured: float
    effect: Effect


@dataclass(frozen=True)
class Diagnosis:
    shortfalls: tuple[Shortfall, ...]  # every point below the ideal or the fit
    dominant: Effect | None  # the effect that explains the largest total shortfall; None: none

    @property
    def text(self) -> str:
        if self.dominant is None:
            return "on the ideal line: nothing to explain"
        workers = [str(s.workers) for s in self.shortfalls if s.effect is self.dominant]
        at = ", ".join(workers) if len(workers) <= 4 else f"{workers[0]}…{workers[-1]}"
        return f"short at {at} workers: {self.dominant.value}, {self.dominant.why}"

    def to_json(self) -> dict[str, object]:
        return {
            "dominant": None if self.dominant is None else self.dominant.value,
            "text": self.text,
            "shortfalls": [
                {
                    "workers": s.workers,
                    "expected": s.expected,
                    "measured": s.measured,
                    "effect": s.effect.value,
                }
                for s in self.shortfalls
            ],
        }


def diagnose(
    points: Sequence[MeasuredPoint], fit: AmdahlFit, cores: int, tolerance: float = SHORTFALL
) -> Diagnosis:
    """Where the measured curve falls below the ideal line or the fit, which effect dominates.

    Judged from each point's own figures, in order of how plainly they show:
    overhead per job at least its run time is IPC; a parallelism that stays ≈1
    with several workers on several cores is a lock (the GIL); more workers than
    cores is oversubscription; below the ideal line but on the fit is the serial
    fraction itself.
    """
    shortfalls: list[Shortfall] = []
    for point in sorted(points, key=lambda p: p.workers):
        if point.workers < 2:
            continue
        best = ideal(point.workers, cores)
        fitted = fit.speedup(point.workers)
        below_ideal = point.speedup < (1 - tolerance) * best
        below_fit = point.speedup < (1 - tolerance) * fitted
        if not (below_ideal or below_fit):
            continue
        # Measured against the higher of the lines it falls below: the size of what is missing.
        expected = max(value for value, below in ((best, below_ideal), (fitted, below_fit)) if below)
        bound = point.rounds_bound
        # As fast as equal jobs allow at this worker count, and that is below the line.
        uneven = (
            bound is not None
            and bound < (1 - tolerance) * expected
            and point.speedup >= (1 - tolerance) * bound
        )
        # IPC first: workers starved by their own overhead also show a low parallelism.
        if point.overhead_s is not None and point.run_s is not None and point.overhead_s >= point.run_s:
            effect = Effect.IPC
        elif uneven:
            effect = Effect.ROUNDS
        elif min(point.workers, cores) >= 2 and GIL_FLOOR <= point.parallelism <= GIL_PARALLELISM:
            effect = Effect.GIL
        elif point.workers > cores:
            effect = Effect.OVERSUBSCRIPTION
        elif not below_fit:
            effect = Effect.SERIAL
        else:
            effect = Effect.OTHER
        shortfalls.append(Shortfall(point.workers, expected, point.speedup, effect))
    totals: dict[Effect, float] = {}
    for s in shortfalls:
        totals[s.effect] = totals.get(s.effect, 0.0) + (s.expected - s.measured)
    dominant = max(totals, key=lambda effect: totals[effect]) if totals else None
    return Diagnosis(shortfalls=tuple(shortfalls), dominant=dominant)
