"""Serial baselines and batch statistics: what speedups are measured against, and the totals."""

from __future__ import annotations

import statistics
from collections import deque
from collections.abc import Iterable
from typing import Any, NamedTuple

from coredash.engine.chunking import EstimateKey, params_key
from coredash.engine.model import BatchRecord, BatchSummary, JobRecord, JobState
from coredash.engine.modes import Mode


class Baseline(NamedTuple):
    run_s: float  # median run time of one job alone, in a fresh process
    measured: float  # when the last sample was taken (monotonic)


class Baselines:
    """Run times of baseline jobs, per task and parameters.

    A baseline job runs alone, in a fresh process whatever the mode (on a thread
    it would share the GIL with the UI and read slow), so one baseline serves
    every mode and their speedups compare.
    """

    def __init__(self) -> None:
        self._runs: dict[EstimateKey, deque[tuple[float, float]]] = {}
        self._ended_intervals: deque[tuple[float, float]] = deque(maxlen=64)

    def clear(self) -> None:
        self._runs.clear()

    def has(self, task: str, params: dict[str, Any]) -> bool:
        return bool(self._runs.get((task, params_key(params))))

    def get(self, task: str, params: dict[str, Any]) -> Baseline | None:
        runs = self._runs.get((task, params_key(params)))
        if not runs:
            return None
        return Baseline(statistics.median(run for run, _ in runs), runs[-1][1])

    def ended(self, record: JobRecord, active: Iterable[JobRecord]) -> None:
        """A job with a start and a finish ended: keep its interval; a lone baseline job is a sample."""
        assert record.started is not None and record.finished is not None
        if record.exclusive:  # only a baseline job's solitude matters
            record.solo = self._ran_alone(record, active)
        self._ended_intervals.append((record.started, record.finished))
        run = record.run_s
        if record.state is JobState.DONE and record.exclusive and record.solo and run is not None:
            key = (record.task, params_key(record.params))
            self._runs.setdefault(key, deque(maxlen=5)).append((run, record.completed or 0.0))

    def _ran_alone(self, record: JobRecord, active: Iterable[JobRecord]) -> bool:
        """No other job overlapped this one: its run time is a serial baseline sample."""
        start, end = record.started, record.finished
        if start is None or end is None:
            return False
        for other in active:
            if other is not record and (other.started is None or other.started < end):
                return False
        return not any(s < end and f > start for s, f in self._ended_intervals)


class BatchStats:
    """Running totals for a batch, so summaries survive the job-history cap."""

    def __init__(self) -> None:
        self.states: dict[JobState, int] = {JobState.DONE: 0, JobState.FAILED: 0, JobState.CANCELLED: 0}
        self.modes: set[Mode] = set()
        self.sum_run = self.sum_cpu = self.sum_wait = self.sum_overhead = 0.0
        self.timed = 0
        self.last_completed = 0.0
        self.dispatched = 0  # jobs handed to an executor, and the executor calls they took
        self.calls = 0.0

    def add(self, record: JobRecord) -> None:
        self.states[record.state] += 1
        if record.mode is not None:
            self.modes.add(record.mode)
        self.last_completed = max(self.last_completed, record.completed or 0.0)
        if record.dispatched is not None:
            self.dispatched += 1
            self.calls += 1 / max(1, record.chunk)  # a chunk of n jobs: one call, 1/n each
        # CPU burned by any job counts towards how busy the cores were; the means
        # describe finished work only (a job stopped at a checkpoint ran short).
        self.sum_cpu += record.cpu_s or 0.0
        run, wait, overhead = record.run_s, record.wait_s, record.overhead_s
        if record.state is JobState.DONE and run is not None and wait is not None and overhead is not None:
            self.timed += 1
            self.sum_run += run
            self.sum_wait += wait
            self.sum_overhead += overhead

    def summarize(self, batch: BatchRecord, baseline: Baseline | None, usable_cpus: int) -> BatchSummary:
        # From the first dispatch, not from submission: time spent queued behind
        # earlier work (another batch, a baseline job) is not this batch's doing.
        began = batch.first_dispatched if batch.first_dispatched is not None else batch.submitted
        makespan = max(1e-9, self.last_completed - began)
        done = self.states[JobState.DONE]
        mode = (
            next(iter(self.modes)).value
            if len(self.modes) == 1
            else ("mixed" if self.modes else batch.mode.value)
        )
        serial = None
        if done == batch.count and len(self.modes) == 1 and baseline is not None:
            serial = batch.count * baseline.run_s
        speedup = serial / makespan if serial is not None else None

        def mean(total: float) -> float | None:
            return total / self.timed if self.timed else None

        return BatchSummary(
            batch_id=batch.id,
            task=batch.task,
            params=dict(batch.params),
            mode=mode,
            workers=batch.workers,
            jobs=batch.count,
            done=done,
            failed=self.states[JobState.FAILED],
            cancelled=self.states[JobState.CANCELLED],
            makespan_s=makespan,
            sum_run_s=self.sum_run,
            sum_cpu_s=self.sum_cpu,
            parallelism=self.sum_cpu / makespan,
            mean_wait_s=mean(self.sum_wait),
            mean_run_s=mean(self.sum_run),
            mean_overhead_s=mean(self.sum_overhead),
            serial_s=serial,
            speedup=speedup,
            efficiency=speedup / min(batch.workers, usable_cpus) if speedup is not None else None,
            chunk=batch.chunk,
            mean_chunk=self.dispatched / self.calls if self.calls else None,
        )
