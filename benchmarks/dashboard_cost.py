"""What does the dashboard itself cost? coredash's own CPU, idle and under load, per refresh rate.

    .venv/bin/python benchmarks/dashboard_cost.py [--seconds 8]

Runs the real app headless (Textual still lays out and renders every frame) at
160x45 and measures the CPU time of coredash's whole process. The jobs run in
worker processes here, so that is the monitor's cost: sampling, snapshots,
drawing, plus the pool's helper threads (pickling, IPC), which the dashboard
itself shows on a line of their own. Scenarios run back to back in one process;
figures are % of one core.
"""

from __future__ import annotations

import argparse
import asyncio
import time

from coredash.engine import Engine, Mode


async def measure(refresh: float, load: bool, seconds: float) -> float:
    from coredash.app import CoredashApp  # not at import time: workers re-run this script

    engine = Engine(mode=Mode.PROCESS, workers=2)
    app = CoredashApp(engine, task="count_primes", jobs=10_000, refresh=refresh)
    async with app.run_test(size=(160, 45)):
        await asyncio.sleep(1.0)  # settle: first layout, pool start
        if load:
            app.auto_baseline = False
            app.action_run_batch()
            await asyncio.sleep(1.0)
        began_cpu, began = time.process_time(), time.monotonic()
        await asyncio.sleep(seconds)
        used = time.process_time() - began_cpu
        elapsed = time.monotonic() - began
        await app.action_quit()
    return used / elapsed * 100


async def main(seconds: float) -> None:
    print(f"coredash UI cost, % of one core ({seconds:g} s per scenario, 160x45, headless)")
    results = {}
    for refresh in (1.0, 4.0, 10.0):
        for load in (False, True):
            value = await measure(refresh, load, seconds)
            results[(refresh, load)] = value
            what = "2 process workers busy" if load else "idle"
            print(f"  {refresh:4.0f} Hz  {what:<24} {value:5.1f} %")
    base = results[(4.0, False)]
    if base > 0:
        print(f"  10 Hz / 4 Hz idle: {results[(10.0, False)] / base:.2f}x")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=8.0)
    asyncio.run(main(parser.parse_args().seconds))
