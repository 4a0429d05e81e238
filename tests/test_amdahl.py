"""The Amdahl fit is honest: synthetic points with a known serial fraction give it back."""

from __future__ import annotations

import math
import random

import pytest

from coredash.engine.amdahl import Effect, MeasuredPoint, amdahl, diagnose, fit_amdahl


def curve(f: float, workers: range, noise: float = 0.0, seed: int = 1) -> list[tuple[int, float]]:
    rng = random.Random(seed)
    return [(n, amdahl(n, f) * (1 + rng.gauss(0, noise))) for n in workers]


@pytest.mark.parametrize("seed", range(5))
def test_known_f_with_noise_comes_back(seed: int) -> None:
    fit = fit_amdahl(curve(0.1, range(1, 17), noise=0.03, seed=seed))
    assert fit.f == pytest.approx(0.1, abs=0.02)
    assert 0 < fit.residual < 0.5
    assert fit.max_speedup == pytest.approx(1 / fit.f)


def test_exact_points_fit_exactly() -> None:
    fit = fit_amdahl(curve(0.03, range(1, 9)))
    assert fit.f == pytest.approx(0.03, abs=1e-6)
    assert fit.residual == pytest.approx(0, abs=1e-6)
    assert fit.text == "f = 0.03: at most 33× however many cores"


def test_perfect_scaling_is_f_zero() -> None:
    fit = fit_amdahl([(n, float(n)) for n in range(1, 9)])
    assert fit.f == pytest.approx(0, abs=1e-6)
    assert fit.max_speedup > 1e5
    # Superlinear points would want f < 0: clamped.
    clamped = fit_amdahl([(1, 1.0), (2, 2.3), (4, 4.8)])
    assert clamped.f == 0.0 and math.isinf(clamped.max_speedup)
    assert "only the cores limit it" in clamped.text


def test_flat_curve_is_f_one() -> None:
    fit = fit_amdahl([(n, 1.0) for n in range(1, 9)])
    assert fit.f == pytest.approx(1, abs=1e-6)
    assert fit.text == "f = 1.00: at most 1× however many cores"
    # Slower with more workers still clamps to 1, not past it.
    assert fit_amdahl([(1, 1.0), (2, 0.8), (4, 0.6)]).f == 1.0


def test_points_past_the_cores_are_not_fitted() -> None:
    # Processes on 2 cores: 2× at 2 workers, then flat. The flat part is the machine, not f.
    points = [(1, 1.0), (2, 1.98), (3, 1.97), (4, 1.99)]
    fit = fit_amdahl(points, cores=2)
    assert fit.f == pytest.approx(2 / 1.98 - 1, abs=1e-4)
    assert [n for n, _ in fit.fitted] == [1, 2]
    assert fit_amdahl(points).f > 0.1  # fitted over everything it would blame a serial part
    # One core: nothing within it says anything, so everything is fitted.
    assert len(fit_amdahl([(1, 1.0), (2, 1.0)], cores=1).fitted) == 2


def test_one_worker_alone_cannot_be_fitted() -> None:
    with pytest.raises(ValueError, match="2 or more workers"):
        fit_amdahl([(1, 1.0)])


def point(
    n: int, speedup: float, parallelism: float, overhead: float = 0.001, run: float = 0.4
) -> MeasuredPoint:
    return MeasuredPoint(workers=n, speedup=speedup, parallelism=parallelism, overhead_s=overhead, run_s=run)


def test_diagnose_gil_when_parallelism_stays_one() -> None:
    points = [point(1, 1.0, 1.0), point(2, 1.0, 1.0), point(3, 0.99, 1.0), point(4, 1.0, 1.0)]
    fit = fit_amdahl([(p.workers, p.speedup) for p in points], cores=2)
    found = diagnose(points, fit, cores=2)
    assert found.dominant is Effect.GIL
    assert [s.workers for s in found.shortfalls] == [2, 3, 4]
    assert "GIL" in found.text


def test_diagnose_oversubscription_past_the_cores() -> None:
    points = [point(1, 1.0, 1.0), point(2, 1.97, 1.97), point(3, 1.96, 1.98), point(4, 1.98, 1.99)]
    fit = fit_amdahl([(p.workers, p.speedup) for p in points], cores=2)
    found = diagnose(points, fit, cores=2)
    assert found.dominant is Effect.OVERSUBSCRIPTION
    assert [s.workers for s in found.shortfalls] == [3, 4]  # 2 workers is on the ideal line


def test_diagnose_ipc_when_overhead_beats_the_work() -> None:
    points = [point(1, 1.0, 0.5, overhead=2e-4, run=1e-4), point(2, 1.1, 0.6, overhead=3e-4, run=1e-4)]
    found = diagnose(points, fit_amdahl([(p.workers, p.speedup) for p in points], cores=4), cores=4)
    assert found.dominant is Effect.IPC


def test_diagnose_nothing_on_the_ideal_line() -> None:
    points = [point(n, float(n), float(n)) for n in (1, 2, 4)]
    found = diagnose(points, fit_amdahl([(p.workers, p.speedup) for p in points], cores=4), cores=4)
    assert found.dominant is None and found.shortfalls == ()
    assert "nothing to explain" in found.text


def test_diagnose_uneven_rounds_before_oversubscription() -> None:
    # 4 sleeping jobs: on 3 workers they still take 2 rounds, so 2× is all the batch allows.
    points = [
        MeasuredPoint(1, 1.0, 0.01, None, None, jobs=4),
        MeasuredPoint(2, 2.0, 0.02, None, None, jobs=4),
        MeasuredPoint(3, 2.0, 0.02, None, None, jobs=4),
        MeasuredPoint(4, 3.9, 0.04, None, None, jobs=4),
    ]
    fit = fit_amdahl([(p.workers, p.speedup) for p in points], cores=4)
    found = diagnose(points, fit, cores=4)
    assert [(s.workers, s.effect) for s in found.shortfalls] == [(3, Effect.ROUNDS)]
    assert "do not divide evenly" in found.text


def test_jobs_that_barely_use_a_core_are_not_blamed_on_the_gil() -> None:
    # Parallelism near 0 (waiting, not computing) says nothing about a lock.
    points = [MeasuredPoint(1, 1.0, 0.01, None, None), MeasuredPoint(2, 1.0, 0.01, None, None)]
    found = diagnose(points, fit_amdahl([(1, 1.0), (2, 1.0)], cores=2), cores=2)
    assert all(s.effect is not Effect.GIL for s in found.shortfalls), found
