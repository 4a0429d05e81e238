"""The psutil sampler against real load; the history and the loop-lag meter."""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import threading
import time

import psutil
import pytest

from coredash.engine.backends import THREAD_NAME_PREFIX
from coredash.engine.platform import thread_core
from coredash.loop_lag import LoopLagMonitor
from coredash.sampling import CoreHistory, CpuSample, FixedSampler, PsutilSampler


def burn(seconds: float) -> None:
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        pass


def test_real_thread_load_is_seen_per_thread_and_per_core() -> None:
    sampler = PsutilSampler()
    stop = threading.Event()
    worker = threading.Thread(target=spin_until, args=(stop, 20), name=f"{THREAD_NAME_PREFIX}_test")
    worker.start()
    try:
        time.sleep(0.05)
        sampler.sample(())  # baseline with the worker thread known
        time.sleep(0.5)
        sample = sampler.sample(())
    finally:
        stop.set()
        worker.join()

    assert len(sample.per_core) == len(psutil.cpu_percent(percpu=True))
    assert sum(sample.per_core) / 100 >= 0.5  # the busy thread shows up on the cores
    assert sample.process_cores >= 0.5
    assert worker.native_id in sample.worker_threads
    load = sample.worker_threads[worker.native_id]
    assert load.cores >= 0.5
    assert load.core is not None
    # The UI share is the main thread (and Textual's): this test's main thread idles.
    assert sample.ui_cores < 0.3
    assert sample.usable <= frozenset(range(psutil.cpu_count() or 1))


def test_real_worker_process_load_needs_a_cached_process_object() -> None:
    context = multiprocessing.get_context("spawn")
    child = context.Process(target=burn, args=(2.0,))
    child.start()
    try:
        sampler = PsutilSampler()
        first = sampler.sample([child.pid])  # type: ignore[list-item]
        assert first.worker_processes[child.pid].cores is None  # type: ignore[index]  # no baseline yet
        time.sleep(0.5)
        second = sampler.sample([child.pid])  # type: ignore[list-item]
        load = second.worker_processes[child.pid]  # type: ignore[index]
        assert load.cores >= 0.5
        assert load.core is not None
        assert second.workers_cores >= 0.5
    finally:
        child.kill()
        child.join()
    gone = sampler.sample([child.pid])  # type: ignore[list-item]
    assert child.pid not in gone.worker_processes


def test_contended_job_threads_add_up() -> None:
    """Four GIL-bound threads: each at most one core, together about one, inside the process figure."""
    sampler = PsutilSampler()
    stop = threading.Event()
    workers = [
        threading.Thread(target=spin_until, args=(stop, 20), name=f"{THREAD_NAME_PREFIX}_{n}")
        for n in range(4)
    ]
    for worker in workers:
        worker.start()
    try:
        time.sleep(0.1)
        sampler.sample(())
        time.sleep(0.6)
        sample = sampler.sample(())
    finally:
        stop.set()
        for worker in workers:
            worker.join()
    loads = [sample.worker_threads[w.native_id].cores for w in workers]  # type: ignore[index]
    assert all(load is not None and load <= 1.0 for load in loads)
    assert sample.workers_cores <= sample.process_cores + 1e-9
    assert 0.6 <= sample.workers_cores <= 1.3  # the GIL: one core's worth between them
    assert sample.ui_cores < 0.3


def test_thread_kinds() -> None:
    from coredash.sampling import thread_kind

    assert thread_kind(f"{THREAD_NAME_PREFIX}_3", 11, 10) == "job"
    assert thread_kind("MainThread", 10, 10) == "ui"
    assert thread_kind("textual-input", 12, 10) == "ui"
    assert thread_kind("QueueFeederThread", 13, 10) == "plumbing"


def test_thread_core_reads_proc() -> None:
    core = thread_core(os.getpid(), threading.get_native_id())
    assert core is not None
    assert 0 <= core < (os.cpu_count() or 1)
    assert thread_core(os.getpid(), 2**31 - 1) is None


def spin_until(stop: threading.Event, limit: float) -> None:
    deadline = time.perf_counter() + limit
    while not stop.is_set() and time.perf_counter() < deadline:
        pass


def test_only_named_job_threads_count_as_workers() -> None:
    sampler = PsutilSampler()
    stop = threading.Event()
    named = threading.Thread(target=spin_until, args=(stop, 20), name=f"{THREAD_NAME_PREFIX}_x")
    other = threading.Thread(target=spin_until, args=(stop, 20), name="someone-else")
    named.start()
    other.start()
    try:
        time.sleep(0.1)
        sampler.sample(())
        time.sleep(0.5)
        sample = sampler.sample(())
        assert named.native_id in sample.worker_threads
        assert other.native_id not in sample.worker_threads
        assert sample.plumbing_cores > 0.2  # the unnamed busy thread is "executor threads"
    finally:
        stop.set()
        named.join()
        other.join()


def _sample(at: float, *load: float) -> CpuSample:
    return CpuSample(
        at=at, interval=0.25, per_core=load, usable=frozenset(range(len(load))), process_cores=0, ui_cores=0
    )


def test_fixed_sampler_replays_then_holds() -> None:
    samples = [_sample(1, 10.0), _sample(2, 20.0)]
    sampler = FixedSampler(samples)
    assert [sampler.sample(()).per_core for _ in range(3)] == [(10.0,), (20.0,), (20.0,)]
    with pytest.raises(ValueError, match="at least one"):
        FixedSampler([])


def test_history_keeps_one_second_averages() -> None:
    history = CoreHistory(seconds=3)
    for step in range(21):  # 4 samples a second for 5 seconds
        history.add(_sample(step * 0.25, 100.0 if step < 8 else 0.0, 50.0))
    assert len(history) == 3  # capped
    assert history.series(1) == [50.0, 50.0, 50.0]
    assert history.series(0)[-1] == 0.0


def test_loop_lag_stats() -> None:
    monitor = LoopLagMonitor(window=5.0)
    assert monitor.stats() is None
    for index in range(100):
        monitor.record(index * 0.05, 0.001 if index < 98 else 0.2)
    stats = monitor.stats()
    assert stats is not None
    assert stats.p50_ms == pytest.approx(1.0)
    assert stats.p99_ms == pytest.approx(200.0)
    monitor.record(100.0, 0.003)  # everything older than the window is dropped
    assert monitor.stats().samples == 1  # type: ignore[union-attr]


async def test_loop_lag_sees_a_blocked_loop() -> None:
    monitor = LoopLagMonitor(interval=0.01)
    task = asyncio.create_task(monitor.run())
    await asyncio.sleep(0.05)
    burn(0.15)  # block the loop, as a GIL-starved UI thread would be
    await asyncio.sleep(0.05)
    task.cancel()
    stats = monitor.stats()
    assert stats is not None
    assert stats.max_ms >= 100


def test_load_averager_smooths_over_its_window() -> None:
    from coredash.sampling import LoadAverager

    averager = LoadAverager(seconds=1.0)
    assert averager.load() is None
    for step, cores in enumerate([0.0, 0.04, 0.0, 0.04, 1.0]):
        averager.add(
            CpuSample(
                at=step * 0.25,
                interval=0.25,
                per_core=(0.0,),
                usable=frozenset({0}),
                process_cores=cores,
                ui_cores=cores,
            )
        )
    load = averager.load()
    assert load is not None
    assert load.process_cores == pytest.approx((0.04 + 0.0 + 0.04 + 1.0) / 4)  # the oldest fell out
    assert load.window_s == 1.0
