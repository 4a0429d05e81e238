"""Why pools exist: a process per job against a pool, cold start and per-job overhead, measured.

    .venv/bin/python benchmarks/process_start.py [--repeat 5] [--quick] [--json out.json]

Issue 4, item 6. For each start method coredash uses (forkserver, its Linux
default, and spawn, the default elsewhere), four ways to run ``--jobs`` short
jobs (count_primes, ``n`` calibrated to about 5 ms here) at workers = usable cores:

* coredash process-per-job mode (the real Engine, headless);
* a raw ``multiprocessing.Process`` + ``Pipe`` per job, ``cores`` at a time;
* coredash process mode (a pool);
* a raw ``ProcessPoolExecutor``;
* where the ``interpreters`` mode runs (3.13 with the backport, 3.14), coredash's
  interpreters mode and a raw ``InterpreterPoolExecutor``, beside the pools of
  the first start method (interpreters start no process: no start method).

Each round starts cold: the engine or pool is created inside the timed region,
all jobs are submitted at once, and the time to the first result is taken. Then
the same jobs run again on the now-warm executor, and the per-job overhead is
``makespan × workers ÷ jobs − one job's own run time``: what each job costs
beyond its work. A process per job pays process start-up (and, with spawn, a
fresh interpreter importing everything) on every job; a pool pays it once.
All figures are INFO (no target): the point is to show the difference. The
forkserver server process itself is started once per run, before timing, as the
app does at start-up (with coredash's preload: its worker and the catalogue).

Module-level imports stay light: spawn and forkserver children re-import this
script (as ``__mp_main__``) to find ``_send_primes``.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

JOB_TARGET_S = 0.005
JOBS = 40


def _send_primes(conn: object, n: int) -> None:
    """Target of the raw per-job processes: one job, its result sent down a pipe."""
    from tasks.cpu import count_primes

    conn.send((os.getpid(), count_primes(n)))  # type: ignore[attr-defined]
    conn.close()  # type: ignore[attr-defined]


class Timing:
    """One cold round: time to first result, cold makespan; then the warm makespan."""

    def __init__(self) -> None:
        self.first = self.cold = self.warm = 0.0


def run_raw_per_job(context: object, n: int, jobs: int, workers: int, start: float) -> tuple[float, float]:
    """Process + Pipe per job, ``workers`` alive at a time; (first result, all results) since ``start``."""
    from multiprocessing.connection import wait

    pending, running, finished = jobs, {}, []
    first = None
    while pending or running:
        while pending and len(running) < workers:
            reader, writer = context.Pipe(duplex=False)  # type: ignore[attr-defined]
            process = context.Process(target=_send_primes, args=(writer, n))  # type: ignore[attr-defined]
            process.start()
            writer.close()
            running[reader] = process
            pending -= 1
        for reader in wait(list(running)):
            try:
                reader.recv()
            except EOFError as exc:
                raise RuntimeError(f"a per-job process died: exit code {running[reader].exitcode}") from exc
            if first is None:
                first = time.perf_counter() - start
            finished.append(running.pop(reader))
            reader.close()
    for process in finished:  # they have all sent their result: this only reaps them
        process.join()
    assert first is not None
    return first, time.perf_counter() - start


def round_raw_per_job(method: str, n: int, jobs: int, workers: int) -> Timing:
    import multiprocessing

    context = multiprocessing.get_context(method)
    timing = Timing()
    timing.first, timing.cold = run_raw_per_job(context, n, jobs, workers, time.perf_counter())
    timing.warm = run_raw_per_job(context, n, jobs, workers, time.perf_counter())[1]
    return timing


def _cold_then_warm(make_pool: Callable[[], Any], n: int, jobs: int) -> Timing:
    """A raw pool made inside the timed region: first result, all results; then warm again."""
    from concurrent.futures import FIRST_COMPLETED, wait

    from tasks.cpu import count_primes

    timing = Timing()
    start = time.perf_counter()
    pool = make_pool()
    try:
        futures = [pool.submit(count_primes, n) for _ in range(jobs)]
        wait(futures, return_when=FIRST_COMPLETED)
        timing.first = time.perf_counter() - start
        wait(futures)
        timing.cold = time.perf_counter() - start
        start = time.perf_counter()
        futures = [pool.submit(count_primes, n) for _ in range(jobs)]
        for future in futures:
            future.result()
        timing.warm = time.perf_counter() - start
    finally:
        pool.shutdown(cancel_futures=True)
    return timing


def round_raw_pool(method: str, n: int, jobs: int, workers: int) -> Timing:
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    context = multiprocessing.get_context(method)
    return _cold_then_warm(lambda: ProcessPoolExecutor(max_workers=workers, mp_context=context), n, jobs)


def round_raw_interpreters(n: int, jobs: int, workers: int) -> Timing:
    try:
        from concurrent.futures import InterpreterPoolExecutor  # type: ignore[attr-defined]
    except ImportError:
        from interpreters_backport.concurrent.futures.interpreter import InterpreterPoolExecutor

    return _cold_then_warm(lambda: InterpreterPoolExecutor(max_workers=workers), n, jobs)


def round_coredash(mode: str, method: str, n: int, jobs: int, workers: int) -> Timing:
    import asyncio

    return asyncio.run(_round_coredash(mode, method, n, jobs, workers))


async def _round_coredash(mode: str, method: str, n: int, jobs: int, workers: int) -> Timing:
    from coredash.engine import Engine, EngineEvent, JobChanged, JobState, Mode

    timing = Timing()
    first: list[float] = []

    def on_event(event: EngineEvent) -> None:
        if not first and isinstance(event, JobChanged) and event.state is JobState.DONE:
            first.append(time.perf_counter())

    start = time.perf_counter()
    engine = Engine(mode=Mode.parse(mode), workers=workers, start_method=method)
    try:
        engine.subscribe(on_event)
        summary = await engine.wait_batch(engine.submit_batch("count_primes", jobs, {"n": n}))
        timing.cold = time.perf_counter() - start
        timing.first = first[0] - start
        if summary.done != jobs:
            raise RuntimeError(f"coredash {mode}: {summary.done} of {jobs} jobs done")
        start = time.perf_counter()
        summary = await engine.wait_batch(engine.submit_batch("count_primes", jobs, {"n": n}))
        timing.warm = time.perf_counter() - start
        if summary.done != jobs:
            raise RuntimeError(f"coredash {mode}: {summary.done} of {jobs} jobs done")
    finally:
        await engine.close()
    return timing


def calibrate(target_s: float) -> tuple[int, float]:
    """count_primes n of about ``target_s`` here, and its measured median run time."""
    import statistics

    from tasks.cpu import count_primes

    def one(n: int) -> float:
        samples = []
        for _ in range(7):
            start = time.perf_counter()
            count_primes(n)
            samples.append(time.perf_counter() - start)
        return statistics.median(samples)

    n = 12_000
    for _ in range(4):
        took = one(n)
        if abs(took / target_s - 1) < 0.05:
            break
        n = max(16, round(n * (target_s / took) ** (1 / 1.5)))
    return n, one(n)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5, help="cold rounds per contender (median taken)")
    parser.add_argument("--quick", action="store_true", help="smoke run: 2 rounds of 20 jobs")
    parser.add_argument("--jobs", type=int, default=JOBS)
    parser.add_argument("--n", type=int, default=None, help="count_primes n (skip calibration)")
    parser.add_argument("--json", type=Path, default=None, help="write the figures here (TargetReport)")
    args = parser.parse_args()
    if args.quick:
        args.repeat, args.jobs = min(args.repeat, 2), min(args.jobs, 20)
    if args.repeat < 1 or args.jobs < 1:
        parser.error("--repeat and --jobs must be at least 1")

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import multiprocessing
    import statistics

    from targets import TargetReport, median

    from coredash.engine import REGISTRY, Mode, usable_cpus

    workers = usable_cpus()
    n = args.n or calibrate(JOB_TARGET_S)[0]
    methods = [m for m in ("forkserver", "spawn") if m in multiprocessing.get_all_start_methods()]
    print(
        f"{args.jobs} × count_primes(n={n:,}) (about 5 ms), workers = {workers}, "
        f"start methods {', '.join(methods)}; medians of {args.repeat} cold rounds",
        flush=True,
    )
    report = TargetReport(f"process start cost: per-job process vs pool, {args.jobs} × ~5 ms (item 6)")
    for method in methods:
        # The forkserver is a per-parent singleton: start it with coredash's preload
        # once, as the app does when it starts, so every contender forks from it.
        # One job through it waits until the server has imported its preload.
        round_coredash("per-job", method, n, 1, 1)
        contenders = {
            "coredash process-per-job": lambda m=method: round_coredash("per-job", m, n, args.jobs, workers),
            "Process + Pipe per job": lambda m=method: round_raw_per_job(m, n, args.jobs, workers),
            "coredash process pool": lambda m=method: round_coredash("process", m, n, args.jobs, workers),
            "ProcessPoolExecutor": lambda m=method: round_raw_pool(m, n, args.jobs, workers),
        }
        interpreters_why = REGISTRY.info(Mode.INTERPRETERS).reason_unavailable
        if method == methods[0] and interpreters_why is None:
            contenders["coredash interpreters"] = lambda m=method: round_coredash(
                "interpreters", m, n, args.jobs, workers
            )
            contenders["InterpreterPoolExecutor"] = lambda: round_raw_interpreters(n, args.jobs, workers)
        elif method == methods[0]:
            print(f"  interpreters not measured: the mode {interpreters_why}", flush=True)
        names = list(contenders)
        results: dict[str, list[Timing]] = {name: [] for name in names}
        runs: list[float] = []  # one job's own run time, measured in every round
        for round_no in range(args.repeat):
            shift = round_no % len(names)
            runs.append(statistics.median(_timed(n) for _ in range(9)))
            for name in names[shift:] + names[:shift]:
                results[name].append(contenders[name]())
            print(f"  {method} round {round_no + 1}/{args.repeat} done", flush=True)
        run_s = median(runs)
        print(f"\n  {method}: medians of {args.repeat} rounds; one job alone here: {run_s * 1000:.2f} ms")
        print(f"    {'':<26} {'first result':>12} {'cold all':>10} {'warm all':>10} {'overhead/job':>13}")
        for name in names:
            first = median([t.first for t in results[name]])
            cold = median([t.cold for t in results[name]])
            warm = median([t.warm for t in results[name]])
            overhead = warm * workers / args.jobs - run_s
            print(
                f"    {name:<26} {first * 1000:10.1f}ms {cold * 1000:8.0f}ms {warm * 1000:8.0f}ms "
                f"{overhead * 1000:11.2f}ms"
            )
            report.info(f"{method}: {name}, first result (cold)", first * 1000, unit=" ms")
            report.info(f"{method}: {name}, overhead per job (warm)", overhead * 1000, unit=" ms")
        per_job = median([t.warm for t in results["coredash process-per-job"]])
        pool = median([t.warm for t in results["coredash process pool"]])
        report.info(
            f"{method}: coredash per-job ÷ pool, warm makespan",
            per_job / pool,
            unit="×",
            note=f"{args.jobs} jobs of {run_s * 1000:.1f} ms",
        )
    report.print()
    print(
        "\n  Why pools exist: a new process costs a fork (forkserver) or a whole interpreter start and "
        "imports (spawn) before the job's first line; a pool pays that once and then only pickles "
        "each job and its result. An interpreter pool starts no process, but each interpreter "
        "imports its own modules before its first job."
    )
    if args.json is not None:
        report.write_json(args.json)
    return report.exit_code()


def _timed(n: int) -> float:
    from tasks.cpu import count_primes

    start = time.perf_counter()
    count_primes(n)
    return time.perf_counter() - start


if __name__ == "__main__":
    sys.exit(main())
