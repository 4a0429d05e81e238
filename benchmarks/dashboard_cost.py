"""What does the dashboard itself cost? coredash's own CPU, idle and under load, per refresh rate.

    .venv/bin/python benchmarks/dashboard_cost.py [--seconds 8] [--repeat 3] [--quick] [--json out.json]

Runs the real app headless (Textual still lays out and renders every frame; only
the terminal write is skipped) at 160x45 and measures the CPU time of coredash's
whole process per second and per refresh. The jobs run in worker processes here,
so that is the monitor's cost: sampling, snapshots, drawing, plus the pool's
helper threads (pickling, IPC), which the dashboard itself shows on a line of its
own. Scenarios are interleaved ``--repeat`` times in one process; medians.

The figures are INFO (the targets are in dashboard_vs_btop.py, which measures the
app in a real terminal, and render_scaling.py, which imports ``headless_cost``).
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from targets import TargetReport, median

if TYPE_CHECKING:  # the app is imported when measured, not at import time: workers re-run this script
    from coredash.app import CoredashApp
    from coredash.sampling import CpuSample, Sampler

SIZE = (160, 45)


class CountingSampler:
    """Any sampler, counted: the app samples exactly once per refresh tick."""

    def __init__(self, inner: Sampler) -> None:
        self.inner = inner
        self.count = 0

    def prime(self) -> None:
        self.inner.prime()

    def sample(self, worker_pids: Iterable[int]) -> CpuSample:
        self.count += 1
        return self.inner.sample(worker_pids)


@dataclass(frozen=True)
class Cost:
    cpu_s: float  # this process's CPU time (all threads) over the window
    elapsed_s: float
    ticks: int

    @property
    def percent(self) -> float:
        """% of one core."""
        return self.cpu_s / self.elapsed_s * 100

    @property
    def per_tick_ms(self) -> float:
        return self.cpu_s / max(1, self.ticks) * 1000


async def headless_cost(
    app: CoredashApp,
    sampler: CountingSampler,
    seconds: float,
    *,
    settle: float = 1.0,
    prepare: Callable[[CoredashApp], None] | None = None,
) -> Cost:
    """Run ``app`` headless at 160x45 and measure its process CPU over ``seconds``.

    ``sampler`` must be the app's sampler. ``prepare`` runs after the first
    layout (e.g. to start a batch), with another second to settle.
    """
    async with app.run_test(size=SIZE):
        await asyncio.sleep(settle)  # first layout, pool start
        if prepare is not None:
            prepare(app)
            await asyncio.sleep(1.0)
        ticks, cpu, began = sampler.count, time.process_time(), time.monotonic()
        await asyncio.sleep(seconds)
        cost = Cost(time.process_time() - cpu, time.monotonic() - began, sampler.count - ticks)
        await app.action_quit()
    return cost


def _run_batch(app: CoredashApp) -> None:
    app.auto_baseline = False
    app.action_run_batch()


async def scenario(refresh: float, load: bool, seconds: float) -> Cost:
    from coredash.app import CoredashApp
    from coredash.engine import Engine, Mode
    from coredash.sampling import PsutilSampler

    engine = Engine(mode=Mode.PROCESS, workers=2)
    sampler = CountingSampler(PsutilSampler())
    app = CoredashApp(engine, task="count_primes", jobs=10_000, refresh=refresh, sampler=sampler)
    return await headless_cost(app, sampler, seconds, prepare=_run_batch if load else None)


SCENARIOS = [(refresh, load) for refresh in (1.0, 4.0, 10.0) for load in (False, True)]


async def measure_all(seconds: float, repeat: int) -> dict[tuple[float, bool], list[Cost]]:
    results: dict[tuple[float, bool], list[Cost]] = {key: [] for key in SCENARIOS}
    for round_no in range(repeat):
        # Rotate the order so no scenario always runs first (warm caches, a quieter machine).
        shift = round_no % len(SCENARIOS)
        for refresh, load in SCENARIOS[shift:] + SCENARIOS[:shift]:
            cost = await scenario(refresh, load, seconds)
            results[(refresh, load)].append(cost)
            what = "2 process workers busy" if load else "idle"
            print(
                f"  round {round_no + 1}: {refresh:4.0f} Hz  {what:<24} {cost.percent:5.1f} % "
                f"({cost.per_tick_ms:.2f} ms/refresh)"
            )
    return results


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=8.0, help="measured window per scenario")
    parser.add_argument("--repeat", type=int, default=3, help="interleaved rounds (medians)")
    parser.add_argument("--quick", action="store_true", help="smoke test: 1 round of 2 s")
    parser.add_argument("--json", type=Path, default=None, metavar="PATH")
    args = parser.parse_args(argv)
    if args.quick:
        args.seconds, args.repeat = 2.0, 1
    print(f"coredash UI cost, % of one core ({args.seconds:g} s per scenario, {SIZE[0]}x{SIZE[1]}, headless)")
    results = asyncio.run(measure_all(args.seconds, args.repeat))

    report = TargetReport("dashboard cost, headless (process mode)")
    for (refresh, load), costs in results.items():
        what = "2 busy process workers" if load else "idle"
        report.info(
            f"{refresh:g} Hz, {what}",
            median([c.percent for c in costs]),
            unit="%",
            note=f"{median([c.per_tick_ms for c in costs]):.2f} ms CPU per refresh",
        )
    idle_4hz = median([c.percent for c in results[(4.0, False)]])
    if idle_4hz > 0:
        report.info("10 Hz / 4 Hz, idle", median([c.percent for c in results[(10.0, False)]]) / idle_4hz)
    return report.finish(args.json)


if __name__ == "__main__":
    raise SystemExit(main())
