"""What the dashboard shows, computed from engine snapshots and CPU samples.

Pure functions, no Textual: widgets only draw what these return, and the tests
check the numbers here without running an app.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from coredash.engine import (
    REGISTRY,
    BatchRecord,
    BatchSummary,
    EngineSnapshot,
    JobRecord,
    JobState,
    Mode,
)
from coredash.engine.chunking import OFF, ChunkPolicy
from coredash.loop_lag import LoopLagMonitor
from coredash.sampling import CpuSample, WorkerLoad

# Everything here that lists modes reads REGISTRY when it is called, never at
# import: a mode registered at run time shows up like the built-in ones.


def in_thread(job: JobRecord) -> bool:
    """Whether the job ran on a thread of coredash itself (found by thread id, not pid).

    Interpreter workers are threads of coredash too, each running its own interpreter.
    """
    return job.mode is not None and job.mode.abilities.placement in ("thread", "interpreter")


def format_params(params: dict[str, Any]) -> str:
    return " ".join(f"{key}={value}" for key, value in params.items())


@dataclass(frozen=True, slots=True)
class CoreMark:
    """A coredash worker running a job on a core right now."""

    core: int
    slot: int
    job_id: int
    label: str  # e.g. "w1 #12"


def worker_load(job: JobRecord, sample: CpuSample | None) -> WorkerLoad | None:
    """What the last sample saw of the thread or process running ``job``."""
    if sample is None:
        return None
    if in_thread(job):
        return sample.worker_threads.get(job.thread_id) if job.thread_id is not None else None
    return sample.worker_processes.get(job.pid) if job.pid is not None else None


def live_core(job: JobRecord, sample: CpuSample | None) -> int | None:
    """Where the job's worker is now (sampled), else where the job started."""
    load = worker_load(job, sample)
    return load.core if load is not None and load.core is not None else job.core


def core_marks(snapshot: EngineSnapshot, sample: CpuSample | None) -> dict[int, list[CoreMark]]:
    marks: dict[int, list[CoreMark]] = {}
    for job in snapshot.active:
        if job.state is not JobState.RUNNING:
            continue
        core = live_core(job, sample)
        if core is None or job.slot is None:
            continue
        marks.setdefault(core, []).append(
            CoreMark(core=core, slot=job.slot, job_id=job.id, label=f"w{job.slot + 1} #{job.id}")
        )
    for found in marks.values():
        found.sort(key=lambda mark: mark.slot)
    return marks


@dataclass(frozen=True, slots=True)
class WorkerRow:
    slot: int
    job: JobRecord | None  # None: idle
    elapsed_s: float | None
    where: str
    core: int | None
    cpu_cores: float | None  # how busy that worker was over the last sample


def worker_rows(snapshot: EngineSnapshot, sample: CpuSample | None, now: float) -> list[WorkerRow]:
    """One row per worker slot, plus any job still draining on a slot beyond the count."""
    by_slot: dict[int, JobRecord] = {}
    for active in snapshot.active:  # a chunk's jobs share a slot: its first one is the one running
        if active.slot is not None:
            by_slot.setdefault(active.slot, active)
    # A mode that blocks the loop runs one job at a time: one row, not N idle ones.
    capacity = 1 if snapshot.mode.abilities.blocks_loop else snapshot.workers
    slots = sorted(set(range(capacity)) | set(by_slot))
    rows = []
    for slot in slots:
        job = by_slot.get(slot)
        if job is None:
            rows.append(WorkerRow(slot, None, None, "idle", None, None))
            continue
        started = job.started if job.started is not None else job.dispatched
        elapsed = max(0.0, now - started) if started is not None else None
        load = worker_load(job, sample)
        busy = load.cores if load is not None else None
        where = job.where if job.state is JobState.RUNNING else "starting…"
        if job.chunk > 1:
            where = f"chunk ×{job.chunk} · {where}"
        rows.append(WorkerRow(slot, job, elapsed, where, live_core(job, sample), busy))
    return rows


@dataclass(frozen=True, slots=True)
class BatchProgress:
    batch: BatchRecord
    ended: int
    elapsed_s: float  # since its first job was dispatched (0 while it waits its turn)
    eta_s: float | None  # None until a job has ended, and once all have
    waiting_batches: int  # batches queued behind this one


def batch_progress(snapshot: EngineSnapshot, now: float) -> BatchProgress | None:
    """The batch being worked on (the oldest unfinished), else the last one that finished."""
    if not snapshot.batches:
        return None
    unfinished = [batch for batch in snapshot.batches if batch.summary is None]
    batch = unfinished[0] if unfinished else snapshot.batches[-1]
    waiting = max(0, len(unfinished) - 1)
    if batch.summary is not None:
        return BatchProgress(batch, batch.ended, batch.summary.makespan_s, None, waiting)
    began = batch.first_dispatched
    elapsed = max(0.0, now - began) if began is not None else 0.0
    remaining = batch.count - batch.ended
    eta = elapsed / batch.ended * remaining if batch.ended and remaining else None
    return BatchProgress(batch, batch.ended, elapsed, eta, waiting)


@dataclass(frozen=True, slots=True)
class Comparison:
    """The latest finished batch in each mode (and chunk setting) for one task and size, side by side.

    A mode appears once per chunk setting it ran with (off, fixed sizes, then
    auto), so ``tiny`` with chunk off and chunk auto read as two rows.
    """

    task: str
    params: dict[str, Any]
    rows: tuple[tuple[Mode, BatchSummary | None], ...]

    @property
    def longest_makespan(self) -> float:
        return max((s.makespan_s for _, s in self.rows if s is not None), default=0.0)


def comparison(snapshot: EngineSnapshot, focus: tuple[str, dict[str, Any]]) -> Comparison:
    """Compare modes for ``focus``: a task and its parameters."""
    return comparison_of(snapshot.batches, focus)


def comparison_of(batches: Iterable[BatchRecord], focus: tuple[str, dict[str, Any]]) -> Comparison:
    """The same from any batches, oldest first (records keep more than a snapshot's cap)."""
    task, params = focus
    latest: dict[tuple[Mode, ChunkPolicy], BatchSummary] = {}
    for batch in batches:
        summary = batch.summary
        if summary is None or batch.task != task or batch.params != params:
            continue
        # Only batches where every job ran, in one mode, compare: a cancelled or
        # failed batch, or one split by a mode switch, keeps the last good result.
        if summary.complete and summary.mode in REGISTRY:
            mode = REGISTRY.info(summary.mode).mode
            # A mode that cannot chunk sends one job a call whatever the setting: one row.
            chunk = summary.chunk if mode.abilities.chunks else OFF
            latest[(mode, chunk)] = summary
    rows: list[tuple[Mode, BatchSummary | None]] = []
    for mode in REGISTRY.modes():
        found = sorted(
            ((chunk, summary) for (ran, chunk), summary in latest.items() if ran == mode),
            key=lambda pair: (pair[0].auto, pair[0].size or 0),
        )
        rows += [(mode, summary) for _, summary in found] if found else [(mode, None)]
    return Comparison(task, dict(params), tuple(rows))


class BatchLag:
    """Each finished batch's event-loop lag p99, in ms: how the UI fared while it ran.

    The engine knows nothing of the loop's lag; the app's monitor does. A batch's
    figure is read once the monitor has seen past its end (the stall of a job that
    blocked the loop is measured only when the loop is free again), then kept.
    """

    def __init__(self, monitor: LoopLagMonitor) -> None:
        self.monitor = monitor
        self._known: dict[int, float | None] = {}

    def __call__(self, snapshot: EngineSnapshot, found: Comparison) -> dict[int, float]:
        batches = {batch.id: batch for batch in snapshot.batches}
        lags: dict[int, float] = {}
        for _, summary in found.rows:
            if summary is None:
                continue
            if summary.batch_id not in self._known:
                batch = batches.get(summary.batch_id)
                if batch is None or batch.first_dispatched is None:
                    continue
                end = batch.first_dispatched + summary.makespan_s
                if not self.monitor.settled(end):
                    continue
                stats = self.monitor.between(batch.first_dispatched, end)
                self._known[summary.batch_id] = stats.p99_ms if stats is not None else None
            p99 = self._known[summary.batch_id]
            if p99 is not None:
                lags[summary.batch_id] = p99
        return lags


def capacity_note(mode: Mode, workers: int, short: bool = False) -> str | None:
    """What a worker count means in a mode that blocks the loop: one job at a time, whatever it is."""
    if not mode.abilities.blocks_loop:
        return None
    if short:
        return "1 at a time"
    if workers == 1:
        return "1 job at a time: it blocks the event loop"
    return f"1 job at a time, not {workers}: each one blocks the event loop"


def cpu_ratio_text(job: JobRecord) -> str:
    ratio = job.cpu_ratio
    return "–" if ratio is None else f"{ratio:.2f}"


def job_note(job: JobRecord) -> str:
    # A chunked job's wait and overhead include its chunk-mates' run times: say so.
    chunk = f"  (ran in a chunk of {job.chunk} jobs)" if job.chunk > 1 else ""
    if job.state is JobState.DONE:
        return (job.result_repr or "") + chunk
    return (job.error or "") + chunk


def load_level(percent: float) -> str:
    """Colour band of a load figure: low / mid / high."""
    if percent >= 80:
        return "high"
    if percent >= 40:
        return "mid"
    return "low"
