"""CPU sampling with psutil, in one place, apart from drawing.

``PsutilSampler.sample()`` is called once per tick by the app. It measures,
since the previous call: each core's load (``psutil.cpu_percent(percpu=True)``;
never ``cpu_times_percent(percpu=True)``, which is wrong below 1 s), coredash's
own process, the worker threads inside it and the worker processes, plus the
core each worker is on now. ``psutil.Process`` objects are cached across samples:
a fresh object has no baseline and would read 0 %.

``CoreHistory`` keeps about a minute of per-core load as one-second averages.
Neither imports Textual; a fixed series of ``CpuSample`` can stand in for the
sampler (the snapshot tests do), and the real sampler is tested against real load.
"""

from __future__ import annotations

import os
import threading
import time
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import psutil

from coredash.engine.backends import THREAD_NAME_PREFIX
from coredash.engine.platform import STAT_PROCESSOR, STAT_STIME, STAT_UTIME, task_stat


@dataclass(frozen=True, slots=True)
class WorkerLoad:
    """One worker thread or process: where it is and how busy it was."""

    core: int | None  # the CPU it is on (or last ran on)
    cores: float | None  # CPU used over the interval, in cores (1.0 = one core); None: not known yet


@dataclass(frozen=True, slots=True)
class CpuSample:
    at: float  # monotonic time of the sample
    interval: float  # seconds covered
    per_core: tuple[float, ...]  # percent busy per logical core, whole machine
    usable: frozenset[int]  # cores coredash may run on
    process_cores: float  # coredash's own process, all threads
    ui_cores: float  # the event loop's thread and Textual's: the monitor's own cost
    plumbing_cores: float = 0.0  # executor helper threads: pickling, IPC
    worker_threads: dict[int, WorkerLoad] = field(default_factory=dict)  # native tid ->
    worker_processes: dict[int, WorkerLoad] = field(default_factory=dict)  # pid ->

    @property
    def workers_cores(self) -> float:
        loads = [*self.worker_threads.values(), *self.worker_processes.values()]
        return sum(load.cores for load in loads if load.cores is not None)


class Sampler(Protocol):
    def prime(self) -> None: ...

    def sample(self, worker_pids: Iterable[int]) -> CpuSample: ...


def usable_cores() -> frozenset[int]:
    try:
        return frozenset(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return frozenset(range(psutil.cpu_count() or 1))


_CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def read_thread_times(pid: int) -> dict[int, tuple[float, float, int | None]]:
    """Per thread: (CPU seconds, when read, core), read one thread at a time.

    Each value is stamped the moment it is read. Under GIL contention a loop
    over many threads can take a long while, and one timestamp for all of them
    would give threads impossible loads (a thread never uses more than a core).
    """
    found: dict[int, tuple[float, float, int | None]] = {}
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return found
    for name in tids:
        fields = task_stat(pid, name)
        at = time.monotonic()
        if fields is None:
            continue  # the thread ended meanwhile
        try:
            cpu = (int(fields[STAT_UTIME]) + int(fields[STAT_STIME])) / _CLOCK_TICKS
            core: int | None = int(fields[STAT_PROCESSOR])
        except (IndexError, ValueError):
            continue
        found[int(name)] = (cpu, at, core)
    return found


def thread_kind(name: str, tid: int, pid: int) -> str:
    """job: a coredash worker thread; ui: the event loop and Textual's own; plumbing: the rest."""
    if name.startswith(THREAD_NAME_PREFIX):
        return "job"
    if tid == pid or name.startswith("textual"):
        return "ui"
    return "plumbing"  # executor manager and queue feeder threads: pickling, IPC


class PsutilSampler:
    """Real measurements. Call ``prime()`` once; every later ``sample()`` covers the gap."""

    def __init__(self) -> None:
        self._clock = time.monotonic
        self._pid = os.getpid()
        self._usable = usable_cores()
        self._processes: dict[int, psutil.Process] = {}
        self._last_at = self._clock()
        self._last_threads = read_thread_times(self._pid)
        psutil.cpu_percent(percpu=True)  # the first call only sets the baseline

    def prime(self) -> None:
        self.sample(())

    def sample(self, worker_pids: Iterable[int]) -> CpuSample:
        now = self._clock()
        interval = max(1e-6, now - self._last_at)
        per_core = tuple(float(p) for p in psutil.cpu_percent(percpu=True))

        names = {t.native_id: t.name for t in threading.enumerate() if t.native_id is not None}
        threads = read_thread_times(self._pid)
        totals = {"job": 0.0, "ui": 0.0, "plumbing": 0.0}
        worker_threads: dict[int, WorkerLoad] = {}
        for tid, (cpu, at, core) in threads.items():
            last = self._last_threads.get(tid)
            if last is None or at <= last[1]:
                cores = 0.0  # a new thread: no baseline yet
            else:
                cores = min(1.0, max(0.0, cpu - last[0]) / (at - last[1]))
            kind = thread_kind(names.get(tid, ""), tid, self._pid)
            totals[kind] += cores
            if kind == "job":
                worker_threads[tid] = WorkerLoad(core=core, cores=cores)

        worker_processes: dict[int, WorkerLoad] = {}
        wanted = set(worker_pids)
        for pid in list(self._processes):
            if pid not in wanted:
                del self._processes[pid]
        for pid in wanted:
            process = self._processes.get(pid)
            try:
                if process is None:
                    # New: baseline now; its load is unknown until the next sample.
                    process = self._processes[pid] = psutil.Process(pid)
                    process.cpu_percent(None)
                    worker_processes[pid] = WorkerLoad(core=process.cpu_num(), cores=None)
                    continue
                with process.oneshot():
                    cores = process.cpu_percent(None) / 100.0  # psutil stamps its own interval
                    worker_processes[pid] = WorkerLoad(core=process.cpu_num(), cores=cores)
            except psutil.Error:
                self._processes.pop(pid, None)

        self._last_at = now
        self._last_threads = threads
        return CpuSample(
            at=now,
            interval=interval,
            per_core=per_core,
            usable=self._usable,
            process_cores=sum(totals.values()),
            ui_cores=totals["ui"],
            plumbing_cores=totals["plumbing"],
            worker_threads=worker_threads,
            worker_processes=worker_processes,
        )


class FixedSampler:
    """A scripted series of samples (deterministic screenshots and snapshot tests)."""

    def __init__(self, samples: Sequence[CpuSample]) -> None:
        if not samples:
            raise ValueError("FixedSampler needs at least one sample")
        self._samples = list(samples)
        self._next = 0

    def prime(self) -> None:
        pass

    def sample(self, worker_pids: Iterable[int]) -> CpuSample:
        sample = self._samples[min(self._next, len(self._samples) - 1)]
        self._next += 1
        return sample


@dataclass(frozen=True, slots=True)
class ProcessLoad:
    """coredash's own CPU split, averaged over a short window."""

    process_cores: float
    workers_cores: float
    ui_cores: float
    plumbing_cores: float
    window_s: float  # the averaging window (the first seconds after start cover less)


class LoadAverager:
    """Averages the process / worker / UI figures over the last ``seconds``.

    Process CPU times advance in 10 ms clock ticks, so a single 250 ms sample is
    only good to about ±4 % of a core; a 2 s average reads steadily.
    """

    def __init__(self, seconds: float = 2.0) -> None:
        self.seconds = seconds
        self._samples: deque[CpuSample] = deque()

    def add(self, sample: CpuSample) -> None:
        if self._samples and self._samples[-1].at == sample.at:
            self._samples[-1] = sample  # the same instant again: nothing new to average
        else:
            self._samples.append(sample)
        while self._samples and self._samples[0].at <= sample.at - self.seconds:
            self._samples.popleft()

    def load(self) -> ProcessLoad | None:
        if not self._samples:
            return None
        total = sum(sample.interval for sample in self._samples) or 1.0

        def mean(values: Iterable[tuple[float, float]]) -> float:
            return sum(value * weight for value, weight in values) / total

        return ProcessLoad(
            process_cores=mean((s.process_cores, s.interval) for s in self._samples),
            workers_cores=mean((s.workers_cores, s.interval) for s in self._samples),
            ui_cores=mean((s.ui_cores, s.interval) for s in self._samples),
            plumbing_cores=mean((s.plumbing_cores, s.interval) for s in self._samples),
            window_s=self.seconds,
        )


class CoreHistory:
    """Per-core load as one-second averages, about a minute of it."""

    def __init__(self, seconds: int = 60) -> None:
        self.seconds = seconds
        self._columns: deque[tuple[float, ...]] = deque(maxlen=seconds)
        self._bucket_start: float | None = None
        self._sums: list[float] = []
        self._count = 0
        self._closed = 0

    def add(self, sample: CpuSample) -> None:
        if self._bucket_start is None:
            self._bucket_start = sample.at
        if len(self._sums) != len(sample.per_core):
            self._sums = [0.0] * len(sample.per_core)
            self._count = 0
        for index, value in enumerate(sample.per_core):
            self._sums[index] += value
        self._count += 1
        if sample.at - self._bucket_start >= 1.0:
            self._columns.append(tuple(total / self._count for total in self._sums))
            self._closed += 1
            self._bucket_start = sample.at
            self._sums = [0.0] * len(sample.per_core)
            self._count = 0

    @property
    def closed_columns(self) -> int:
        """Grows by one each second: a cheap "has the history changed" check."""
        return self._closed

    def series(self, core: int) -> list[float]:
        """Oldest first; finished seconds only."""
        return [column[core] for column in self._columns if core < len(column)]

    def __len__(self) -> int:
        return len(self._columns)
