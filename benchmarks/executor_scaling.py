"""Does each executor mode scale the way the GIL says it should? Measured, side by side.

    .venv/bin/python benchmarks/executor_scaling.py [--repeat 3] [--jobs N] [--json out.json]

For a pure-Python task (count_primes) and a GIL-releasing one (sha256), runs
every mode on 1 worker and on all usable cores, interleaved, ``--repeat`` times,
and prints the median speedup of each mode against its own 1-worker run. Then it
checks the expectations coredash exists to show, scaled to this machine:

* pure Python on threads: no speedup (the GIL lets one thread run at a time),
  unless this is a free-threaded build with the GIL off: then close to one per
  core (``coredash.engine.gil.expectation`` decides, from the build);
* pure Python on processes and on interpreters (one GIL each): close to one
  per core (at least 80 % of the cores: 1.6× on 2);
* GIL-releasing C code on threads: close to one per core as well;
* the blocking join: no speedup at all (<= 1.1×): one job at a time, the loop
  blocked in ``process.join()``.

Run it with the 3.13 venv (``.venv-3.13/bin/python``) to include interpreters.

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
from coredash.engine.gil import GilState, Outlook, expectation


def expectations(
    report: BenchReport, cores: int, gil: GilState | None = None
) -> list[tuple[str, float, str, bool]]:
    """What each run should have done on this build, from engine.gil (not an assumed GIL).

    ``gil`` is the build's state (read now by default); tests pass other builds'.
    """
    gil = gil if gil is not None else GilState.now()
    releases_gil = Catalog.builtin().get(report.config["task"]).releases_gil
    checks = []
    for run in report.runs:
        if run.workers != cores or run.speedup is None:
            continue
        expect = expectation(REGISTRY.info(run.mode).abilities, releases_gil, gil)
        if expect.outlook is Outlook.SCALES:
            floor = 0.8 * cores  # 1.6× on 2 cores: the interpreters target of issue 10
            ok = run.speedup >= floor
            want = f">= {floor:.2f} (80% of {cores} cores)"
        elif expect.outlook is Outlook.ONE_AT_A_TIME:
            ok = run.speedup <= 1.1
            want = "<= 1.1 (one job at a time)"
        elif expect.outlook is Outlook.ONE_CORE:
            ok = run.speedup <= 1.25
            want = "<= 1.25 (one core's worth: the GIL)"
        else:
            continue  # nothing to hold it to
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
