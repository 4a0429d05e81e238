"""Does each executor mode scale the way the GIL says it should? Measured, side by side.

    .venv/bin/python benchmarks/executor_scaling.py [--repeat 3] [--jobs N] [--json out.json]

For a pure-Python task (count_primes) and a GIL-releasing one (sha256), runs
every mode on 1 worker and on all usable cores, interleaved, ``--repeat`` times,
and prints the median speedup of each mode against its own 1-worker run. Then it
checks the expectations coredash exists to show, scaled to this machine:

* pure Python on threads: no speedup (the GIL lets one thread run at a time);
* pure Python on processes: close to one per core;
* GIL-releasing C code on threads: close to one per core as well.

It exits 1 if an expectation is missed, so it can gate a release on a quiet
machine; it is not part of the test suite (tests check behaviour, not speed).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path

from rich.console import Console

from coredash.bench import BenchConfig, BenchReport, render_table, run_bench
from coredash.defaults import bench_jobs
from coredash.engine import REGISTRY, Catalog, usable_cpus


def expectations(report: BenchReport, cores: int) -> list[tuple[str, float, str, bool]]:
    checks = []
    gil_free = report.config["task"] == "sha256"
    for run in report.runs:
        if run.workers != cores or run.speedup is None:
            continue
        # Jobs that share one GIL (threads) cannot scale pure Python.
        if REGISTRY.info(run.mode).abilities.shares_ui_gil and not gil_free:
            ok = run.speedup <= 1.25
            want = "<= 1.25 (one core's worth: the GIL)"
        else:
            floor = 0.75 * cores
            ok = run.speedup >= floor
            want = f">= {floor:.2f} (75% of {cores} cores)"
        checks.append((f"{report.config['task']} on {run.mode} x{cores}", run.speedup, want, ok))
    return checks


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--jobs", type=int, default=None, help="jobs per batch (default: 4 per core)")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()

    cores = usable_cpus()
    jobs = args.jobs or bench_jobs()
    console = Console(width=130)
    catalog = Catalog.builtin()
    reports = []
    for task in ("count_primes", "sha256"):
        config = BenchConfig(
            task=task,
            params=catalog.get(task).params_for(),
            jobs=jobs,
            modes=REGISTRY.available(),
            workers=tuple(sorted({1, cores})),
            repeat=args.repeat,
        )
        console.print(f"[dim]running {task} × {jobs}, {args.repeat} repeat(s)…[/]")
        report = asyncio.run(run_bench(config, catalog))
        console.print(render_table(report))
        reports.append(report)

    failed = 0
    console.print(
        f"\n[bold]expectations on this machine[/] ({cores} usable cores; medians of {args.repeat}):"
    )
    for report in reports:
        for name, speedup, want, ok in expectations(report, cores):
            failed += not ok
            mark = "[green]ok  [/]" if ok else "[red]MISS[/]"
            console.print(f"  {mark} {name:<34} speedup {speedup:5.2f}×  want {want}")
    if args.json is not None:
        args.json.write_text(json.dumps([r.to_json() for r in reports], indent=2) + "\n")
    if cores < 2:
        console.print("[yellow]one usable core: there is no parallelism to show here[/]")
        return 0
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
