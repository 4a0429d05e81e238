"""How does the dashboard's drawing cost grow with the number of cores? 2, 16 and 64, measured.

    .venv/bin/python benchmarks/render_scaling.py [--seconds 10] [--repeat 5] [--quick] [--json out.json]

Feeds synthetic cores through the sampler seam (a ``FixedSampler`` holding one
``CpuSample`` per refresh, every one with a fresh random load on each core, so
every bar and, once a second, every history graph really redraws) into the real
app, run headless at 160x45 and the default 4 Hz, with an idle real engine. It
measures the process CPU time per refresh over ``--seconds``. Core counts are
interleaved ``--repeat`` times (order rotated each round); medians.

Target: 64 cores cost at most 2x what 2 cores cost, per refresh.
"""

from __future__ import annotations

import argparse
import asyncio
import random
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from dashboard_cost import Cost, CountingSampler, headless_cost
from targets import TargetReport, median

if TYPE_CHECKING:
    from coredash.sampling import CpuSample

CORE_COUNTS = (2, 16, 64)
REFRESH_HZ = 4.0  # the app's default


def synthetic_samples(cores: int, count: int, seed: int) -> list[CpuSample]:
    """``count`` samples a refresh apart, each core's load a random walk over 0-100 %."""
    from coredash.sampling import CpuSample

    rng = random.Random(seed)
    interval = 1 / REFRESH_HZ
    load = [rng.uniform(0, 100) for _ in range(cores)]
    samples = []
    for index in range(count):
        load = [min(100.0, max(0.0, value + rng.uniform(-30, 30))) for value in load]
        samples.append(
            CpuSample(
                at=1000.0 + index * interval,
                interval=interval,
                per_core=tuple(round(value, 1) for value in load),
                usable=frozenset(range(cores)),
                process_cores=0.02 + rng.uniform(0, 0.02),
                ui_cores=0.02 + rng.uniform(0, 0.02),
            )
        )
    return samples


async def measure(cores: int, seconds: float, seed: int) -> Cost:
    from coredash.app import CoredashApp
    from coredash.engine import Engine, Mode
    from coredash.sampling import FixedSampler

    # Enough samples for settle + window with room to spare: they never run out.
    count = int((seconds + 10) * REFRESH_HZ * 2)
    sampler = CountingSampler(FixedSampler(synthetic_samples(cores, count, seed)))
    app = CoredashApp(Engine(mode=Mode.THREAD, workers=2), refresh=REFRESH_HZ, sampler=sampler)
    return await headless_cost(app, sampler, seconds, settle=1.5)


async def measure_all(seconds: float, repeat: int) -> dict[int, list[Cost]]:
    results: dict[int, list[Cost]] = {cores: [] for cores in CORE_COUNTS}
    order = list(CORE_COUNTS)
    for round_no in range(repeat):
        shift = round_no % len(order)
        for cores in order[shift:] + order[:shift]:
            cost = await measure(cores, seconds, seed=round_no * 100 + cores)
            results[cores].append(cost)
            print(
                f"  round {round_no + 1}: {cores:3d} cores  {cost.per_tick_ms:6.2f} ms CPU per refresh "
                f"({cost.ticks} refreshes, {cost.percent:4.1f} % of a core)"
            )
    return results


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="measured window per run")
    parser.add_argument("--repeat", type=int, default=5, help="interleaved rounds (medians)")
    parser.add_argument("--quick", action="store_true", help="smoke test: 1 round of 3 s")
    parser.add_argument("--json", type=Path, default=None, metavar="PATH")
    args = parser.parse_args(argv)
    if args.quick:
        args.seconds, args.repeat = 3.0, 1
    print(
        f"rendering cost vs core count: synthetic cores, headless 160x45, {REFRESH_HZ:g} Hz, "
        f"{args.repeat} round(s) of {args.seconds:g} s"
    )
    results = asyncio.run(measure_all(args.seconds, args.repeat))

    per_tick = {cores: median([c.per_tick_ms for c in costs]) for cores, costs in results.items()}
    # Ratios are taken round by round (same moment, same machine load), then the median.
    ratios = {
        cores: median(
            [big.per_tick_ms / base.per_tick_ms for big, base in zip(costs, results[2], strict=True)]
        )
        for cores, costs in results.items()
    }
    report = TargetReport("rendering cost vs core count (headless, 4 Hz)")
    report.check(
        "64 cores / 2 cores, CPU per refresh", ratios[64], "<=", 2.0, unit="×", note=f"{args.repeat} rounds"
    )
    report.info("16 cores / 2 cores, CPU per refresh", ratios[16], unit="×")
    for cores in CORE_COUNTS:
        percent = median([c.percent for c in results[cores]])
        report.info(
            f"{cores} cores, CPU per refresh", per_tick[cores], unit=" ms", note=f"{percent:.1f} % of a core"
        )
    return report.finish(args.json)


if __name__ == "__main__":
    raise SystemExit(main())
