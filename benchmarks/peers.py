"""coredash against what a user would pick instead: coarse-job makespan and tiny-job throughput.

    .venv/bin/python benchmarks/peers.py [--repeat 5] [--quick] [--only coarse|tiny] [--json out.json]

Needs the bench extra for joblib and dask (``.venv/bin/pip install -e '.[bench]'``);
a peer that is not installed is skipped with a line that says so.

1. Coarse jobs (issue 4, item 1): 16 pure-Python jobs of about 0.25 s each
   (``tasks.cpu.count_primes``, ``n`` calibrated on this machine and printed) at
   workers = usable cores. coredash's process mode is the real Engine driven
   headless with its full bookkeeping, against raw ``ProcessPoolExecutor.map``,
   ``multiprocessing.Pool.map``, joblib (loky) and a dask distributed
   ``LocalCluster`` (processes, one thread per worker), plus the same 16 jobs run
   one after another in this process (the serial makespan). Every pool is
   started and warmed before timing (start-up cost is process_start.py's
   subject); the contenders are interleaved round by round, and the figures
   are medians of ``--repeat`` rounds.
   Targets: coredash ÷ fastest peer <= 1.02; parallel efficiency
   (serial ÷ (cores × coredash makespan)) >= 0.97.

2. Tiny jobs (item 2): 10,000 jobs of about 20 µs (count_primes with a small
   ``n``, the same call for every contender). jobs/s of coredash's thread and
   process modes (engine headless, one submit_batch, wait_batch) against a naive
   ``asyncio.gather`` of one ``loop.run_in_executor`` per job on the same kind
   of executor, and against ``executor.map`` (with ``chunksize`` for processes).
   Target: coredash >= 1.0× the naive per-job path in each mode; the ratio to
   chunked map is reported.

3. Interpreters (issue 10): the same coarse jobs on coredash's ``interpreters``
   mode against raw ``InterpreterPoolExecutor.map`` (3.14's, or the 3.13
   backport coredash uses), both warm, interleaved, at workers = usable cores.
   Targets: coredash ÷ raw <= 1.05; efficiency (serial ÷ (cores × makespan))
   >= 0.9. Where the mode cannot run (3.11, 3.12) the section says why.

``--profile`` instead runs one tiny-job batch per coredash mode under cProfile
and prints where the engine's loop spends its time.

Module-level imports stay light: forkserver and spawn children re-import this
script (as ``__mp_main__``) to find ``_primes_with_pid``.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

COARSE_JOBS = 16
COARSE_TARGET_S = 0.25
TINY_JOBS = 10_000
TINY_TARGET_S = 20e-6
BENCH_EXTRA = "pip install -e '.[bench]'  (or .venv/bin/pip install joblib 'dask[distributed]')"


def _primes_with_pid(n: int) -> tuple[int, int]:
    """count_primes plus the pid that ran it: proves a peer really spreads jobs over processes."""
    from tasks.cpu import count_primes

    return os.getpid(), count_primes(n)


# --- calibration -----------------------------------------------------------------


def _time_calls(n: int, calls: int, trials: int) -> float:
    """Median seconds per count_primes(n) call, over ``trials`` timings of ``calls`` calls."""
    import statistics

    from tasks.cpu import count_primes

    samples = []
    for _ in range(trials):
        start = time.perf_counter()
        for _ in range(calls):
            count_primes(n)
        samples.append((time.perf_counter() - start) / calls)
    return statistics.median(samples)


def calibrate(target_s: float, n: int, calls: int, trials: int) -> tuple[int, float]:
    """An ``n`` whose count_primes(n) takes about ``target_s`` here, and its measured time."""
    for _ in range(4):
        took = _time_calls(n, calls, trials)
        if abs(took / target_s - 1) < 0.05:
            return n, took
        # Trial division to sqrt(k) for every k below n: about n^1.5 work.
        n = max(16, round(n * (target_s / took) ** (1 / 1.5)))
    return n, _time_calls(n, calls, trials)


# --- coarse jobs (item 1) ------------------------------------------------------


class Contender:
    """One way to run ``jobs`` calls of count_primes(n) on ``workers`` processes, warm."""

    name = ""

    def warm(self, n: int, jobs: int) -> set[int]:
        """Start every worker; returns the pids that ran ``jobs`` pid-reporting calls."""
        return set()

    def run(self, n: int, jobs: int) -> float:
        """Wall seconds to run the jobs and have every result back."""
        raise NotImplementedError

    def close(self) -> None:
        pass


class Serial(Contender):
    name = "serial (one process)"

    def run(self, n: int, jobs: int) -> float:
        from tasks.cpu import count_primes

        start = time.perf_counter()
        for _ in range(jobs):
            count_primes(n)
        return time.perf_counter() - start


class CoredashEngine(Contender):
    """The real engine, headless, on a loop of its own (an asyncio.Runner kept open)."""

    def __init__(self, mode: str, workers: int) -> None:
        import asyncio

        from coredash.engine import Engine, Mode

        self.name = f"coredash {mode}"
        self.runner = asyncio.Runner()
        self.engine = Engine(mode=Mode.parse(mode), workers=workers)
        self.pids: set[int] = set()
        self.max_overlap = 0
        # Idle time of a worker between one job's end and its next job's start
        # (worker clocks; records of every round so far).
        self.gaps: list[float] = []
        # Per batch: the share of worker time (workers × makespan) with no job running.
        self.idle_shares: list[float] = []
        self.mean_runs: list[float] = []  # per batch: the mean run time of one job, in the worker

    def warm(self, n: int, jobs: int) -> set[int]:
        if not self.runner.run(self.engine.warm_up()):
            raise RuntimeError(f"{self.name}: the executor did not start")
        self.run(n, jobs)
        return set(self.pids)

    def run(self, n: int, jobs: int) -> float:
        return self.runner.run(self._batch(n, jobs))

    async def _batch(self, n: int, jobs: int) -> float:
        import itertools

        start = time.perf_counter()
        batch = self.engine.submit_batch("count_primes", jobs, {"n": n})
        summary = await self.engine.wait_batch(batch)
        took = time.perf_counter() - start
        if summary.done != jobs:
            raise RuntimeError(f"{self.name}: {summary.done} of {jobs} jobs done ({summary})")
        records = [self.engine.job(job_id) for job_id in batch.job_ids[-self.engine.history :]]
        intervals = [(r.started, r.finished) for r in records if r and r.started and r.finished]
        self.pids = {r.pid for r in records if r is not None and r.pid is not None}
        self.max_overlap = _max_overlap(intervals)
        by_worker: dict[tuple[int, int], list[tuple[float, float]]] = {}
        for r in records:
            if r is not None and r.pid is not None and r.started and r.finished:
                # One worker is a (process, thread): interpreters share coredash's pid.
                by_worker.setdefault((r.pid, r.thread_id or 0), []).append((r.started, r.finished))
        for runs in by_worker.values():
            runs.sort()
            self.gaps += [nxt[0] - prev[1] for prev, nxt in itertools.pairwise(runs)]
        if len(records) == jobs:
            busy = sum(finished - started for started, finished in intervals)
            self.idle_shares.append(max(0.0, 1 - busy / (self.engine.workers * took)))
            self.mean_runs.append(busy / jobs)
        return took

    def close(self) -> None:
        self.runner.run(self.engine.close())
        self.runner.close()


def _max_overlap(intervals: list[tuple[float, float]]) -> int:
    edges = sorted([(s, 1) for s, _ in intervals] + [(f, -1) for _, f in intervals])
    running = peak = 0
    for _, step in edges:
        running += step
        peak = max(peak, running)
    return peak


class RawProcessPool(Contender):
    name = "ProcessPoolExecutor.map"

    def __init__(self, workers: int, context: object) -> None:
        from concurrent.futures import ProcessPoolExecutor

        self.pool = ProcessPoolExecutor(max_workers=workers, mp_context=context)  # type: ignore[arg-type]

    def warm(self, n: int, jobs: int) -> set[int]:
        return {pid for pid, _ in self.pool.map(_primes_with_pid, [n] * jobs)}

    def run(self, n: int, jobs: int) -> float:
        from tasks.cpu import count_primes

        start = time.perf_counter()
        list(self.pool.map(count_primes, [n] * jobs))
        return time.perf_counter() - start

    def close(self) -> None:
        self.pool.shutdown(cancel_futures=True)


class MultiprocessingPool(Contender):
    name = "multiprocessing.Pool.map"

    def __init__(self, workers: int, context: object) -> None:
        self.pool = context.Pool(workers)  # type: ignore[attr-defined]

    def warm(self, n: int, jobs: int) -> set[int]:
        return {pid for pid, _ in self.pool.map(_primes_with_pid, [n] * jobs)}

    def run(self, n: int, jobs: int) -> float:
        from tasks.cpu import count_primes

        start = time.perf_counter()
        self.pool.map(count_primes, [n] * jobs)  # default chunksize, as a user would call it
        return time.perf_counter() - start

    def close(self) -> None:
        self.pool.terminate()
        self.pool.join()


class Joblib(Contender):
    name = "joblib Parallel (loky)"

    def __init__(self, workers: int) -> None:
        from joblib import Parallel

        # Used as a context manager the loky workers stay up between calls.
        self.parallel = Parallel(n_jobs=workers, backend="loky")
        self.parallel.__enter__()

    def warm(self, n: int, jobs: int) -> set[int]:
        from joblib import delayed

        return {pid for pid, _ in self.parallel(delayed(_primes_with_pid)(n) for _ in range(jobs))}

    def run(self, n: int, jobs: int) -> float:
        from joblib import delayed

        from tasks.cpu import count_primes

        start = time.perf_counter()
        self.parallel(delayed(count_primes)(n) for _ in range(jobs))
        return time.perf_counter() - start

    def close(self) -> None:
        self.parallel.__exit__(None, None, None)


class Dask(Contender):
    name = "dask LocalCluster"

    def __init__(self, workers: int) -> None:
        import logging

        from distributed import Client, LocalCluster

        self.cluster = LocalCluster(
            n_workers=workers,
            threads_per_worker=1,
            processes=True,
            dashboard_address=None,
            silence_logs=logging.ERROR,
        )
        self.client = Client(self.cluster)

    def warm(self, n: int, jobs: int) -> set[int]:
        futures = self.client.map(_primes_with_pid, [n] * jobs, pure=False)
        return {pid for pid, _ in self.client.gather(futures)}

    def run(self, n: int, jobs: int) -> float:
        from tasks.cpu import count_primes

        start = time.perf_counter()
        # pure=False: identical arguments must still be separate tasks.
        self.client.gather(self.client.map(count_primes, [n] * jobs, pure=False))
        return time.perf_counter() - start

    def close(self) -> None:
        self.client.close()
        self.cluster.close()


def _interpreter_pool_class() -> type:
    """3.14's InterpreterPoolExecutor, else the 3.13 backport coredash itself uses."""
    try:
        from concurrent.futures import InterpreterPoolExecutor  # type: ignore[attr-defined]
    except ImportError:
        from interpreters_backport.concurrent.futures.interpreter import InterpreterPoolExecutor
    return InterpreterPoolExecutor  # type: ignore[no-any-return]


class RawInterpreterPool(Contender):
    name = "InterpreterPoolExecutor.map"

    def __init__(self, workers: int) -> None:
        self.pool = _interpreter_pool_class()(max_workers=workers)

    def warm(self, n: int, jobs: int) -> set[int]:
        import threading

        from tasks.cpu import count_primes

        # Only what an interpreter can import crosses: a function of this script
        # (__main__ there) would make the 3.13 backport spin forever, unreported.
        list(self.pool.map(count_primes, [n] * jobs))
        return {f.result() for f in [self.pool.submit(threading.get_native_id) for _ in range(jobs)]}

    def run(self, n: int, jobs: int) -> float:
        from tasks.cpu import count_primes

        start = time.perf_counter()
        list(self.pool.map(count_primes, [n] * jobs))
        return time.perf_counter() - start

    def close(self) -> None:
        self.pool.shutdown(cancel_futures=True)


def interpreters(args: argparse.Namespace, cores: int, report: object) -> None:
    from targets import TargetReport, median

    from coredash.engine import REGISTRY, Mode

    assert isinstance(report, TargetReport)
    why = REGISTRY.info(Mode.INTERPRETERS).reason_unavailable
    if why is not None:
        print(f"\n[interpreters] skipped: the interpreters mode {why}", flush=True)
        report.info(f"interpreters: not run ({why})", 0.0)
        return
    jobs = COARSE_JOBS
    if args.n:
        n, one = args.n, _time_calls(args.n, 1, 3)
    else:
        n, one = calibrate(COARSE_TARGET_S, 150_000, calls=1, trials=3)
    print(
        f"\n[interpreters] {jobs} × count_primes(n={n:,}), one job alone here: {one * 1000:.0f} ms; "
        f"workers = {cores}",
        flush=True,
    )
    coredash = CoredashEngine("interpreters", cores)
    contenders: list[Contender] = [Serial(), coredash, RawInterpreterPool(cores)]
    try:
        for contender in contenders[1:]:
            contender.warm(n, 2 * cores)
        print(
            f"  warmed both; coredash's interpreter jobs ran in pid(s) {sorted(coredash.pids)} "
            f"(its own: {os.getpid()})",
            flush=True,
        )
        _OTHERS.clear()
        times = run_rounds(contenders, n, jobs, args.repeat, "interpreters")
    finally:
        for contender in contenders:
            contender.close()
    ratio = median([a / b for a, b in zip(times[coredash.name], times[RawInterpreterPool.name], strict=True)])
    efficiency = median(
        [s / (cores * c) for s, c in zip(times[Serial.name], times[coredash.name], strict=True)]
    )
    raw_efficiency = median(
        [s / (cores * p) for s, p in zip(times[Serial.name], times[RawInterpreterPool.name], strict=True)]
    )
    for name, values in times.items():
        rounds = " ".join(f"{value:6.3f}" for value in values)
        print(f"    {name:<30} {rounds}  median {median(values):6.3f} s")
    report.info("serial makespan (16 jobs, one process)", median(times[Serial.name]), unit=" s")
    report.info("coredash interpreters makespan", median(times[coredash.name]), unit=" s")
    report.info("InterpreterPoolExecutor.map makespan", median(times[RawInterpreterPool.name]), unit=" s")
    report.check("coredash interpreters / raw InterpreterPoolExecutor", ratio, "<=", 1.05, unit="×")
    report.check("coredash interpreters parallel efficiency", efficiency, ">=", 0.9, note="per round")
    report.info("raw pool's parallel efficiency", raw_efficiency, note="what this machine allows now")
    report.info("other processes' load during the rounds", median(_OTHERS), unit=" cores", note="median")


def _missing(module: str) -> str | None:
    import importlib.util

    return None if importlib.util.find_spec(module) is not None else module


def run_rounds(
    contenders: list[Contender], n: int, jobs: int, repeat: int, label: str
) -> dict[str, list[float]]:
    """Every contender once per round, the order rotated each round; wall seconds per contender."""
    times: dict[str, list[float]] = {c.name: [] for c in contenders}
    for round_no in range(repeat):
        shift = round_no % len(contenders)
        order = contenders[shift:] + contenders[:shift]
        before = _cpu_now()
        for contender in order:
            times[contender.name].append(contender.run(n, jobs))
        others = _others_load(before, _cpu_now())
        print(
            f"  {label} round {round_no + 1}/{repeat} done; other processes kept {others:.2f} cores busy",
            flush=True,
        )
        _OTHERS.append(others)
    return times


_OTHERS: list[float] = []  # per round: cores' worth of CPU that other processes on the machine used


def _cpu_now() -> tuple[float, float, float]:
    """(wall, CPU seconds the whole machine has spent busy, CPU seconds of this process tree)."""
    import psutil

    times = psutil.cpu_times()
    busy = sum(times) - times.idle - getattr(times, "iowait", 0.0)
    ours = 0.0
    me = psutil.Process()
    for process in [me, *me.children(recursive=True)]:
        try:
            cpu = process.cpu_times()
        except psutil.Error:
            continue
        ours += cpu.user + cpu.system
    return time.monotonic(), busy, ours


def _others_load(before: tuple[float, float, float], after: tuple[float, float, float]) -> float:
    """Cores' worth of CPU used by processes outside this benchmark between two readings.

    Approximate: CPU of our processes that ended in between (none here: every
    pool lives for the whole run) would count as someone else's.
    """
    wall = after[0] - before[0]
    return max(0.0, ((after[1] - before[1]) - (after[2] - before[2])) / wall) if wall > 0 else 0.0


def coarse(args: argparse.Namespace, cores: int, report: object) -> None:
    import multiprocessing

    from targets import TargetReport, median

    from coredash.engine import default_start_method

    assert isinstance(report, TargetReport)
    jobs = COARSE_JOBS
    if args.n:
        n, one = args.n, _time_calls(args.n, 1, 3)
    else:
        n, one = calibrate(COARSE_TARGET_S, 150_000, calls=1, trials=3)
    method = default_start_method()
    context = multiprocessing.get_context(method)
    print(
        f"\n[coarse] {jobs} × count_primes(n={n:,}), one job alone here: {one * 1000:.0f} ms; "
        f"workers = {cores}; pools use the {method} start method like coredash "
        "(joblib: loky's own; dask: its nanny's)",
        flush=True,
    )
    coredash = CoredashEngine("process", cores)
    contenders: list[Contender] = [Serial(), coredash]
    contenders += [RawProcessPool(cores, context), MultiprocessingPool(cores, context)]
    if missing := _missing("joblib"):
        print(f"  skipping joblib: {missing} is not installed; {BENCH_EXTRA}")
    else:
        contenders.append(Joblib(cores))
    if missing := (_missing("distributed") or _missing("dask")):
        print(f"  skipping dask: {missing} is not installed; {BENCH_EXTRA}")
    else:
        contenders.append(Dask(cores))
    try:
        for contender in contenders[1:]:
            pids = contender.warm(n, 2 * cores)
            print(f"  warmed {contender.name}: {2 * cores} jobs ran in {len(pids)} worker process(es)")
            if len(pids) < min(cores, 2):
                print(f"  WARNING: {contender.name} ran every job in one process: not parallel")
        coredash.gaps.clear()
        coredash.idle_shares.clear()
        coredash.mean_runs.clear()
        _OTHERS.clear()
        times = run_rounds(contenders, n, jobs, args.repeat, "coarse")
        overlap = coredash.max_overlap
    finally:
        for contender in contenders:
            contender.close()

    medians = {name: median(values) for name, values in times.items()}
    serial = medians[Serial.name]
    print("\n  makespan per round, its median, and the speedup vs serial of the medians:")
    for name, values in times.items():
        rounds = " ".join(f"{value:6.3f}" for value in values)
        print(
            f"    {name:<26} {rounds}  median {medians[name]:6.3f} s  speedup {serial / medians[name]:.2f}×"
        )
    peers = {k: v for k, v in medians.items() if k not in (Serial.name, coredash.name)}
    fastest = min(peers, key=peers.__getitem__)
    ours = medians[coredash.name]
    # Ratios are taken round by round (each round's contenders ran minutes apart at
    # most), then the median: a busy spell on the shared machine moves both sides.
    ratio = median([a / b for a, b in zip(times[coredash.name], times[fastest], strict=True)])
    efficiency = median(
        [s / (cores * c) for s, c in zip(times[Serial.name], times[coredash.name], strict=True)]
    )
    peer_efficiency = median(
        [s / (cores * p) for s, p in zip(times[Serial.name], times[fastest], strict=True)]
    )
    gaps = sorted(coredash.gaps)
    report.info("serial makespan (16 jobs, one process)", serial, unit=" s")
    report.info("coredash process makespan", ours, unit=" s", note=f"{overlap} jobs overlapped at most")
    for name, value in sorted(peers.items(), key=lambda item: item[1]):
        report.info(f"{name} makespan", value, unit=" s")
    report.check("coredash process / fastest peer", ratio, "<=", 1.02, unit="×", note=f"{fastest}, per round")
    report.check("coredash parallel efficiency", efficiency, ">=", 0.97, note="per round")
    report.info("fastest peer's parallel efficiency", peer_efficiency, note="what this machine allows now")
    report.info("other processes' load during the rounds", median(_OTHERS), unit=" cores", note="median")
    slowdown = [run * jobs / s for run, s in zip(coredash.mean_runs, times[Serial.name], strict=True)]
    report.info(
        "coredash's jobs' run time ÷ the same job in the serial run",
        median(slowdown),
        unit="×",
        note="above 1: the jobs themselves ran slower (other load), per round",
    )
    report.info(
        "coredash workers idle (no job running)",
        100 * median(coredash.idle_shares),
        unit=" %",
        note="of workers × makespan: dispatch, hand-overs, the last job's tail",
    )
    if gaps:
        report.info(
            "coredash worker idle between jobs, median",
            median(gaps) * 1000,
            unit=" ms",
            note=f"p90 {gaps[int(0.9 * (len(gaps) - 1))] * 1000:.1f} ms over {len(gaps)} hand-overs",
        )


# --- tiny jobs (item 2) --------------------------------------------------------


class NaiveGather(Contender):
    """One loop.run_in_executor per job, all gathered: what a user writes first."""

    def __init__(self, kind: str, workers: int, context: object) -> None:
        import asyncio
        from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor

        self.name = f"naive gather ({kind})"
        self.runner = asyncio.Runner()
        self.pool: Executor = (
            ThreadPoolExecutor(max_workers=workers)
            if kind == "thread"
            else ProcessPoolExecutor(max_workers=workers, mp_context=context)  # type: ignore[arg-type]
        )

    def warm(self, n: int, jobs: int) -> set[int]:
        return {pid for pid, _ in self.runner.run(self._gather(_primes_with_pid, n, jobs))}

    async def _gather(self, func: object, n: int, jobs: int) -> list[object]:
        import asyncio

        loop = asyncio.get_running_loop()
        return await asyncio.gather(*(loop.run_in_executor(self.pool, func, n) for _ in range(jobs)))  # type: ignore[arg-type]

    def run(self, n: int, jobs: int) -> float:
        from tasks.cpu import count_primes

        start = time.perf_counter()
        self.runner.run(self._gather(count_primes, n, jobs))
        return time.perf_counter() - start

    def close(self) -> None:
        self.pool.shutdown(cancel_futures=True)
        self.runner.close()


class ChunkedMap(Contender):
    def __init__(self, kind: str, workers: int, context: object, chunksize: int) -> None:
        from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor

        self.chunksize = chunksize
        if kind == "thread":
            self.name = "ThreadPoolExecutor.map"  # chunksize means nothing to threads
            self.pool: Executor = ThreadPoolExecutor(max_workers=workers)
        else:
            self.name = f"ProcessPoolExecutor.map(chunksize={chunksize})"
            self.pool = ProcessPoolExecutor(max_workers=workers, mp_context=context)  # type: ignore[arg-type]

    def warm(self, n: int, jobs: int) -> set[int]:
        return {pid for pid, _ in self.pool.map(_primes_with_pid, [n] * jobs)}

    def run(self, n: int, jobs: int) -> float:
        from tasks.cpu import count_primes

        start = time.perf_counter()
        list(self.pool.map(count_primes, [n] * jobs, chunksize=self.chunksize))
        return time.perf_counter() - start

    def close(self) -> None:
        self.pool.shutdown(cancel_futures=True)


def tiny(args: argparse.Namespace, cores: int, report: object) -> None:
    import multiprocessing

    from targets import TargetReport, median

    from coredash.engine import default_start_method

    assert isinstance(report, TargetReport)
    jobs = args.tiny_jobs
    if args.tiny_n:
        n, one = args.tiny_n, _time_calls(args.tiny_n, 2000, 5)
    else:
        n, one = calibrate(TINY_TARGET_S, 250, calls=2000, trials=5)
    method = default_start_method()
    context = multiprocessing.get_context(method)
    chunksize = max(1, jobs // (4 * cores))
    print(
        f"\n[tiny] {jobs:,} × count_primes(n={n}), one call here: {one * 1e6:.1f} µs; workers = {cores}; "
        f"process pools use {method}",
        flush=True,
    )
    modes = {}
    try:
        for kind in ("thread", "process"):
            ours = CoredashEngine(kind, cores)
            contenders = [
                ours,
                NaiveGather(kind, cores, context),
                ChunkedMap(kind, cores, context, chunksize),
            ]
            modes[kind] = contenders
            for contender in contenders:
                pids = contender.warm(n, 4 * cores)
                print(f"  warmed {contender.name}: ran in {len(pids)} process(es)")
        # All six interleaved: a busy spell on the shared machine hits every mode alike.
        everyone = [c for kind in modes for c in modes[kind]]
        _OTHERS.clear()
        times = run_rounds(everyone, n, jobs, args.repeat, "tiny")
    finally:
        for contenders in modes.values():
            for contender in contenders:
                contender.close()

    rate = {name: jobs / median(values) for name, values in times.items()}
    print(f"\n  median jobs/s of {args.repeat} rounds:")
    for name, value in rate.items():
        print(f"    {name:<44} {value:12,.0f} jobs/s")
    for kind, (ours, naive, chunked) in modes.items():
        report.info(f"coredash {kind} mode", rate[ours.name], unit=" jobs/s")
        report.info(f"naive gather, {kind} pool", rate[naive.name], unit=" jobs/s")
        report.info(f"{chunked.name}", rate[chunked.name], unit=" jobs/s")
        report.check(
            f"coredash {kind} / naive gather", rate[ours.name] / rate[naive.name], ">=", 1.0, unit="×"
        )
        report.info(f"coredash {kind} / {chunked.name}", rate[ours.name] / rate[chunked.name], unit="×")
    report.info("other processes' load during the rounds", median(_OTHERS), unit=" cores", note="median")


# --- profiling -------------------------------------------------------------------


def profile(args: argparse.Namespace, cores: int) -> None:
    """One tiny batch per coredash mode under cProfile: where does the loop's time go?"""
    import cProfile
    import pstats

    n = args.tiny_n or calibrate(TINY_TARGET_S, 250, calls=2000, trials=5)[0]
    for kind in ("thread", "process"):
        ours = CoredashEngine(kind, cores)
        try:
            ours.warm(n, 4 * cores)
            profiler = cProfile.Profile()
            profiler.enable()
            took = ours.run(n, args.tiny_jobs)
            profiler.disable()
        finally:
            ours.close()
        print(f"\n[profile] coredash {kind}: {args.tiny_jobs:,} jobs in {took:.2f} s under cProfile")
        stats = pstats.Stats(profiler).strip_dirs()
        stats.sort_stats("tottime").print_stats(18)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5, help="rounds per contender (median taken)")
    parser.add_argument("--quick", action="store_true", help="smoke run: 2 rounds, 2,000 tiny jobs")
    parser.add_argument("--only", choices=("coarse", "tiny", "interpreters"), default=None)
    parser.add_argument(
        "--n", type=int, default=None, help="count_primes n for coarse jobs (skip calibration)"
    )
    parser.add_argument("--tiny-n", type=int, default=None, help="count_primes n for tiny jobs")
    parser.add_argument("--tiny-jobs", type=int, default=TINY_JOBS)
    parser.add_argument("--profile", action="store_true", help="cProfile coredash's tiny-job batches")
    parser.add_argument("--json", type=Path, default=None, help="write the figures here (TargetReport)")
    args = parser.parse_args()
    if args.quick:
        args.repeat = min(args.repeat, 2)
        args.tiny_jobs = min(args.tiny_jobs, 2000)
    if args.repeat < 1 or args.tiny_jobs < 1:
        parser.error("--repeat and --tiny-jobs must be at least 1")

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from targets import TargetReport

    from coredash.engine import usable_cpus

    cores = usable_cpus()
    if args.profile:
        profile(args, cores)
        return 0
    commit = _git_commit()
    print(f"coredash at {commit}; {cores} usable cores; medians of {args.repeat} rounds", flush=True)
    reports = []
    if args.only in (None, "coarse"):
        reports.append(TargetReport(f"coarse jobs: {COARSE_JOBS} × ~0.25 s, makespan (issue 4 item 1)"))
        coarse(args, cores, reports[-1])
        reports[-1].print()
    if args.only in (None, "tiny"):
        reports.append(TargetReport(f"tiny jobs: {args.tiny_jobs:,} × ~20 µs, throughput (issue 4 item 2)"))
        tiny(args, cores, reports[-1])
        reports[-1].print()
    if args.only in (None, "interpreters"):
        reports.append(TargetReport(f"interpreters: {COARSE_JOBS} × ~0.25 s, makespan (issue 10)"))
        interpreters(args, cores, reports[-1])
        reports[-1].print()
    if args.json is not None:
        combined = TargetReport(f"peers ({commit})", [f for r in reports for f in r.figures])
        combined.write_json(args.json)
    return max(r.exit_code() for r in reports)


def _git_commit() -> str:
    import subprocess

    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            cwd=Path(__file__).resolve().parent,
            check=False,
        )
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "coredash"],
            capture_output=True,
            text=True,
            cwd=Path(__file__).resolve().parent,
            check=False,
        )
    except OSError:
        return "unknown commit"
    commit = out.stdout.strip() or "unknown commit"
    return commit + (" + uncommitted coredash/ changes" if dirty.stdout.strip() else "")


if __name__ == "__main__":
    sys.exit(main())
