"""What the dashboard shows, computed from engine snapshots and CPU samples.

Pure functions, no Textual: widgets only draw what these return, and the tests
check the numbers here without running an app.
"""

from __future__ import annotations

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
from coredash.sampling import CpuSample, WorkerLoad

# Everything here that lists modes reads REGISTRY when it is called, never at
# import: a mode registered at run time shows up like the built-in ones.


def in_thread(job: JobRecord) -> bool:
    """Whether the job ran on a thread of coredash itself (found by thread id, not pid)."""
    return job.mode is not None and job.mode.abilities.placement == "thread"


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
    slots = sorted(set(range(snapshot.workers)) | set(by_slot))
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
    """The latest finished batch in each mode for one task and size, side by side."""

    task: str
    params: dict[str, Any]
    rows: tuple[tuple[Mode, BatchSummary | None], ...]

    @property
    def longest_makespan(self) -> float:
        return max((s.makespan_s for _, s in self.rows if s is not None), default=0.0)


def comparison(snapshot: EngineSnapshot, focus: tuple[str, dict[str, Any]]) -> Comparison:
    """Compare modes for ``focus``: a task and its parameters."""
    batches = list(snapshot.batches)
    task, params = focus
    latest: dict[Mode, BatchSummary] = {}
    for batch in batches:
        summary = batch.summary
        if summary is None or batch.task != task or batch.params != params:
            continue
        # Only batches where every job ran, in one mode, compare: a cancelled or
        # failed batch, or one split by a mode switch, keeps the last good result.
        if summary.complete and summary.mode in REGISTRY:
            latest[REGISTRY.info(summary.mode).mode] = summary
    return Comparison(task, dict(params), tuple((mode, latest.get(mode)) for mode in REGISTRY.modes()))


def cpu_ratio_text(job: JobRecord) -> str:
    ratio = job.cpu_ratio
    return "–" if ratio is None else f"{ratio:.2f}"


def job_note(job: JobRecord) -> str:
    # A chunked job's wait and overhead include its chunk-mates' run times: say so.
    chunk = f"  (ran in a chunk of {job.chunk} tiny jobs)" if job.chunk > 1 else ""
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
