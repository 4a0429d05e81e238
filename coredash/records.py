"""Records a user can keep: ``jobs.csv``, ``trace.json`` and ``session.json``, written as the session runs.

A ``Recorder`` subscribed to an engine turns its events into three files in one folder:

- ``jobs.csv``: one row per ended job, every figure the job table shows. A row is
  written on the job's terminal ``JobChanged`` only (a re-run job goes back to
  queued, never through a terminal state twice), appended to a file opened with
  ``O_APPEND``, one ``os.write`` per loop turn: a kill loses no row written before it.
- ``trace.json``: the Chrome trace-event object format, valid JSON at every moment.
  Each append overwrites the fixed tail ``]}`` with the new events and the tail
  again, in one ``pwrite``: Perfetto and ``chrome://tracing`` open it, and so does
  ``json.load``, even after a kill (an unterminated array, catapult's own answer to
  crashes, would leave strict JSON readers out), and no append rewrites the file.
- ``session.json``: small (machine, batches, comparisons, sweeps), so it is
  rewritten whole, through a temporary file and ``os.replace``: a reader, or a
  kill, sees the old file or the new one, never half of one. It is written when
  a batch finishes or the configuration changes (at most once a second), every
  5 s while the dashboard samples the CPUs, on ``flush()`` and at ``close()``.

No fsync: the files must survive coredash being killed (the kernel keeps what was
written), not the machine losing power.

Before a folder is given (the dashboard without ``--record``) rows and trace
events are kept in memory, up to ``MAX_BUFFERED_JOBS`` jobs, and written out when
``start_writing`` is called (the dashboard's ``e`` key).

Times in ``jobs.csv`` are seconds and in ``trace.json`` microseconds, both since
one origin on ``time.monotonic()`` (the engine's clock, system-wide, so worker
and loop timestamps line up); ``session.json`` says when the origin was.
"""

from __future__ import annotations

import asyncio
import csv
import functools
import io
import json
import logging
import os
import platform
import sys
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from coredash import __version__
from coredash.engine import (
    BatchFinished,
    BatchRecord,
    BatchSummary,
    ConfigChanged,
    Engine,
    EngineEvent,
    JobChanged,
    JobRecord,
    JobState,
    Mode,
    PoolNotice,
)
from coredash.engine.gil import GilState
from coredash.sampling import CpuSample
from coredash.view_model import comparison_of, format_params, job_note

log = logging.getLogger(__name__)

JOBS_CSV, TRACE_JSON, SESSION_JSON = "jobs.csv", "trace.json", "session.json"
RECORD_FILES = (JOBS_CSV, TRACE_JSON, SESSION_JSON)
JOB_COLUMNS = (
    "job",
    "batch",
    "task",
    "params",
    "mode",
    "workers",
    "label",
    "state",
    "submitted_s",
    "dispatched_s",
    "started_s",
    "finished_s",
    "completed_s",
    "wait_s",
    "run_s",
    "overhead_s",
    "cpu_s",
    "cpu_per_wall",
    "pid",
    "thread_id",
    "thread",
    "where",
    "core",
    "end_core",
    "chunk",
    "attempts",
    "result_or_reason",
)
TURN_BUDGET_S = 0.003  # formatting ended jobs per loop turn, at most (then the next turn)
MAX_BUFFERED_JOBS = 100_000  # kept in memory before a folder is given; later ones are counted only
SESSION_EVERY_S = 1.0  # session.json is rewritten at most this often while jobs run
SESSION_IDLE_EVERY_S = 5.0  # and this often while the dashboard samples the CPUs
TRACE_HEAD = (
    '{"displayTimeUnit":"ms","otherData":{"coredash":' + json.dumps(__version__) + '},"traceEvents":['
)
TRACE_TAIL = b"\n]}\n"
COREDASH_PID = 1  # the trace's track for coredash itself: mode switches, batches, queued jobs
QUEUE_TID = 0


_PARAMS, _WAIT, _RATIO, _WHERE = (
    JOB_COLUMNS.index(name) for name in ("params", "wait_s", "cpu_per_wall", "where")
)


class RecordError(Exception):
    """A folder records cannot go to; the message is one line for the user."""


class SupportsJson(Protocol):
    """A sweep result (or anything else session.json should hold): ``to_json()`` gives plain data."""

    def to_json(self) -> dict[str, Any]: ...


def check_folder(path: Path) -> Path:
    """Make ``path`` a folder the records can be written to, or say in one line why it cannot be."""
    if path.exists() and not path.is_dir():
        raise RecordError(f"cannot record to {path}: it is not a folder")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise RecordError(f"cannot record to {path}: {exc.strerror or exc}") from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise RecordError(f"cannot record to {path}: the folder is not writable")
    # Never overwrite records a user kept from an earlier session.
    kept = [name for name in RECORD_FILES if (path / name).exists()]
    if kept:
        raise RecordError(f"cannot record to {path}: it already holds {kept[0]}; choose another folder")
    return path


def default_folder(now: datetime | None = None) -> Path:
    """Where the dashboard's ``e`` key writes: ./coredash-records/<date-time>."""
    stamp = (now or datetime.now()).strftime("%Y%m%d-%H%M%S")
    return Path.cwd() / "coredash-records" / stamp


@functools.cache
def _platform() -> str:
    return platform.platform()  # reads the interpreter's binary (libc_ver): tens of ms, once


def machine_info(engine: Engine, gil: GilState) -> dict[str, Any]:
    return {
        "usable_cores": engine.usable_cpus,
        "logical_cores": os.cpu_count(),
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "executable": sys.executable,
        "platform": _platform(),
        "free_threaded_build": gil.free_threaded,
        "gil_enabled": gil.enabled,
        "gil": gil.label,
        "gil_on_because": gil.because,
        "start_method": engine.start_method,
    }


def summary_json(batch: BatchRecord, summary: BatchSummary, origin: float) -> dict[str, Any]:
    return {
        "batch": summary.batch_id,
        "task": summary.task,
        "params": summary.params,
        "mode": summary.mode,
        "workers": summary.workers,
        "jobs": summary.jobs,
        "done": summary.done,
        "failed": summary.failed,
        "cancelled": summary.cancelled,
        "submitted_s": _since(batch.submitted, origin),
        "first_dispatched_s": _since(batch.first_dispatched, origin),
        "makespan_s": summary.makespan_s,
        "sum_run_s": summary.sum_run_s,
        "sum_cpu_s": summary.sum_cpu_s,
        "parallelism": summary.parallelism,
        "mean_wait_s": summary.mean_wait_s,
        "mean_run_s": summary.mean_run_s,
        "mean_overhead_s": summary.mean_overhead_s,
        "serial_s": summary.serial_s,
        "speedup": summary.speedup,
        "efficiency": summary.efficiency,
        "jobs_per_s": summary.jobs_per_s,
        "chunk": str(summary.chunk),
        "mean_chunk": summary.mean_chunk,
        "chunk_text": summary.chunk_text,
    }


def _since(moment: float | None, origin: float) -> float | None:
    return None if moment is None else moment - origin


def _us(moment: float, origin: float) -> float:
    return round((moment - origin) * 1e6, 3)


@dataclass
class WriteCost:
    """What recording cost the loop: event handling and file writes, each call timed."""

    calls: int = 0
    total_s: float = 0.0
    longest_s: float = 0.0
    # The CPU the longest-CPU call used: wall time includes waiting for the GIL and the
    # scheduler, which a loaded machine adds to any call.
    longest_cpu_s: float = 0.0

    def add(self, seconds: float, cpu_s: float | None = None) -> None:
        self.calls += 1
        self.total_s += seconds
        self.longest_s = max(self.longest_s, seconds)
        if cpu_s is not None:
            self.longest_cpu_s = max(self.longest_cpu_s, cpu_s)

    def to_json(self) -> dict[str, Any]:
        return {
            "calls": self.calls,
            "total_ms": self.total_s * 1e3,
            "longest_ms": self.longest_s * 1e3,
            "longest_cpu_ms": self.longest_cpu_s * 1e3,
        }


@dataclass
class _Dispatch:
    slot: int
    workers: int


@dataclass
class _Lanes:
    """The trace's tracks: a process per mode, a thread per worker slot."""

    pids: dict[str, int] = field(default_factory=dict)
    named: set[tuple[int, int]] = field(default_factory=set)
    ends: dict[tuple[int, int], float] = field(default_factory=dict)  # lane -> its last event's end (µs)


class Recorder:
    """Writes a session's records into a folder (or keeps them until one is given)."""

    def __init__(self, folder: Path | None = None, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.origin = clock()
        self.started_at = datetime.now(UTC)
        self.clock = clock
        self.folder: Path | None = None
        self.event_cost = WriteCost()  # on_event: formatting rows and trace events
        self.write_cost = WriteCost()  # the writes themselves (and session.json's rewrites)
        self.jobs_ended = 0
        self.jobs_not_kept = 0  # past MAX_BUFFERED_JOBS before a folder was given
        self._states = {JobState.DONE: 0, JobState.FAILED: 0, JobState.CANCELLED: 0}
        self._engine: Engine | None = None
        self._unsubscribe: Callable[[], None] | None = None
        self._dispatches: dict[int, _Dispatch] = {}
        self._workers = 0
        self._mode: Mode | None = None
        self._lanes = _Lanes()
        self._batches: list[BatchRecord] = []
        self._summaries: list[dict[str, Any]] = []
        self._config_changes: list[dict[str, Any]] = []
        self._notices: list[dict[str, Any]] = []
        self._sweeps: list[dict[str, Any]] = []
        self._sections: dict[str, Any] = {}
        self._others: list[float] = []  # other programs' load, in cores, per CPU sample
        # Not yet written: csv rows, trace events (JSON text).
        self._ended: deque[tuple[JobRecord, JobState, _Dispatch | None]] = deque()  # not yet formatted
        self._rows = io.StringIO()  # csv text, formatted row by row
        self._csv = csv.writer(self._rows, lineterminator="\n")
        self._events: list[str] = []  # JSON text
        self._flush_handle: asyncio.Handle | None = None
        self._session_handle: asyncio.TimerHandle | None = None
        self._session_written = float("-inf")
        self._jobs_fd: int | None = None
        self._trace_fd: int | None = None
        self._last_params: tuple[dict[str, Any] | None, str] = (None, "")
        self._trace_end = 0  # where the tail starts
        self._trace_events = 0
        self._closed = False
        self.error: str | None = None  # why writing stopped (a write failed), if it did
        if folder is not None:
            self.start_writing(folder)

    # --- feeding -----------------------------------------------------------------

    def attach(self, engine: Engine) -> None:
        """Record ``engine``'s events from now on (before its first job, for a whole session)."""
        self._engine = engine
        self._mode, self._workers = engine.mode, engine.workers
        self._unsubscribe = engine.subscribe(self.on_event)
        self._config_changes.append(self._config_json(engine.mode, engine.workers, str(engine.chunk)))
        self._session_soon()  # the machine, before any job ends

    def on_event(self, event: EngineEvent) -> None:
        if self._closed:
            return
        began = time.perf_counter()
        if isinstance(event, JobChanged):
            self._on_job(event.job, event.state)
        elif isinstance(event, BatchFinished):
            self._on_batch(event.batch, event.summary)
        elif isinstance(event, ConfigChanged):
            self._on_config(event)
        elif isinstance(event, PoolNotice):
            self._on_notice(event)
        self.event_cost.add(time.perf_counter() - began)

    def note_sample(self, sample: CpuSample) -> None:
        """Other programs' load: the whole machine's busy cores less coredash's process and workers."""
        busy = sum(sample.per_core) / 100
        ours = sample.process_cores + sum(
            load.cores for load in sample.worker_processes.values() if load.cores is not None
        )
        self._others.append(max(0.0, busy - ours))
        if len(self._others) > 100_000:
            del self._others[::2]  # a day at 4 Hz: keep every other one, the mean holds
        if time.monotonic() - self._session_written > SESSION_IDLE_EVERY_S:
            self._session_soon()  # the load figures move even when no job ends

    def add_sweep(self, sweep: SupportsJson) -> None:
        """A finished scaling sweep, with its fit, for session.json."""
        self._sweeps.append(sweep.to_json())
        self._session_soon()

    def add_section(self, name: str, data: Any) -> None:
        """Anything else session.json should hold (``coredash bench`` adds its report)."""
        self._sections[name] = data
        self._session_soon()

    # --- events --------------------------------------------------------------------

    def _on_job(self, job: JobRecord, state: JobState) -> None:
        if state is JobState.DISPATCHED and job.slot is not None:
            # The slot is gone from the record once the job ends: keep it for the trace.
            self._dispatches[job.id] = _Dispatch(job.slot, self._workers)
            return
        if not state.terminal:
            return
        dispatch = self._dispatches.pop(job.id, None)
        self.jobs_ended += 1
        self._states[state] += 1
        buffering = self.folder is None
        if buffering and self.jobs_ended > MAX_BUFFERED_JOBS:
            self.jobs_not_kept += 1
            return
        # Formatted later, once per loop turn: an ended record no longer changes.
        self._ended.append((job, state, dispatch))
        self._flush_soon()

    def _row(self, job: JobRecord, state: JobState, dispatch: _Dispatch | None) -> tuple[object, ...]:
        origin = self.origin
        mode = job.mode.value if job.mode is not None else ""
        values = (
            job.id,
            job.batch_id,
            job.task,
            self._params_text(job.params),
            mode,
            dispatch.workers if dispatch is not None else None,
            job.label,
            state.value,
            _since(job.submitted, origin),
            _since(job.dispatched, origin),
            _since(job.started, origin),
            _since(job.finished, origin),
            _since(job.completed, origin),
            job.wait_s,
            job.run_s,
            job.overhead_s,
            job.cpu_s,
            job.cpu_ratio,
            job.pid,
            job.thread_id,
            job.thread_name,
            job.where if job.pid is not None else None,
            job.core,
            job.end_core,
            job.chunk,
            job.attempts,
            job_note(job),
        )
        return values

    def _mode_pid(self, mode: Mode) -> int:
        pid = self._lanes.pids.get(mode.value)
        if pid is None:
            pid = self._lanes.pids[mode.value] = COREDASH_PID + 1 + len(self._lanes.pids)
            self._meta("process_name", pid, 0, mode.label)
            self._meta("process_sort_index", pid, 0, pid, key="sort_index")
        return pid

    def _meta(self, name: str, pid: int, tid: int, value: object, key: str = "name") -> None:
        self._event({"ph": "M", "name": name, "pid": pid, "tid": tid, "ts": 0, "args": {key: value}})

    def _lane(self, pid: int, slot: int, start: float, label: str) -> int:
        """The worker slot's thread track; a second track only if its events would overlap."""
        tid = slot + 1
        while self._lanes.ends.get((pid, tid), float("-inf")) > start:
            tid += 1000  # never seen so far: a slot's executor calls follow one another
        if (pid, tid) not in self._lanes.named:
            self._lanes.named.add((pid, tid))
            self._meta("thread_name", pid, tid, label if tid <= 1000 else f"{label} (overlap)")
            self._meta("thread_sort_index", pid, tid, tid, key="sort_index")
        return tid

    def _params_text(self, params: dict[str, Any]) -> str:
        # A batch's jobs share one params dict: format it once.
        if self._last_params[0] is not params:
            self._last_params = (params, format_params(params))
        return self._last_params[1]

    def _trace_job(
        self, job: JobRecord, state: JobState, dispatch: _Dispatch | None, row: tuple[object, ...]
    ) -> None:
        # The row's figures, computed once for both files.
        wait, run, overhead, cpu, ratio = row[_WAIT : _RATIO + 1]
        args: dict[str, Any] = {
            "job": job.id,
            "batch": job.batch_id,
            "task": job.task,
            "params": row[_PARAMS],
            "state": state.value,
            "wait_ms": _ms(wait),  # type: ignore[arg-type]
            "run_ms": _ms(run),  # type: ignore[arg-type]
            "overhead_ms": _ms(overhead),  # type: ignore[arg-type]
            "cpu_ms": _ms(cpu),  # type: ignore[arg-type]
            "cpu_per_wall": ratio,
            "where": row[_WHERE] or "-",
            "core": job.core,
            "chunk": job.chunk,
            "note": row[-1],
        }
        name = f"{job.task} #{job.id}" + ("" if state is JobState.DONE else f" ({state.value})")
        end = job.finished if job.finished is not None else job.completed
        if job.mode is None or dispatch is None or job.started is None or end is None:
            # Never ran (cancelled while queued, failed before it started): a mark, not a bar.
            at = job.completed if job.completed is not None else self.clock()
            if (COREDASH_PID, QUEUE_TID) not in self._lanes.named:
                self._lanes.named.add((COREDASH_PID, QUEUE_TID))
                self._coredash_track()
                self._meta("thread_name", COREDASH_PID, QUEUE_TID, "jobs that never ran")
            self._event(
                {
                    "ph": "i",
                    "s": "t",
                    "name": name,
                    "cat": "job",
                    "pid": COREDASH_PID,
                    "tid": QUEUE_TID,
                    "ts": _us(at, self.origin),
                    "args": args,
                }
            )
            return
        pid = self._mode_pid(job.mode)
        ts, stop = _us(job.started, self.origin), _us(max(end, job.started), self.origin)
        tid = self._lane(pid, dispatch.slot, ts, f"w{dispatch.slot + 1}")
        self._lanes.ends[(pid, tid)] = stop
        self._event(
            {
                "ph": "X",
                "name": name,
                "cat": f"job,{state.value}",
                "pid": pid,
                "tid": tid,
                "ts": ts,
                "dur": round(stop - ts, 3),
                "args": args,
            }
        )

    def _coredash_track(self) -> None:
        if (COREDASH_PID, -1) not in self._lanes.named:
            self._lanes.named.add((COREDASH_PID, -1))
            self._meta("process_name", COREDASH_PID, 0, "coredash")
            self._meta("process_sort_index", COREDASH_PID, 0, 0, key="sort_index")

    def _instant(self, name: str, pid: int, scope: str, args: dict[str, Any]) -> None:
        self._coredash_track()
        self._event(
            {
                "ph": "i",
                "s": scope,
                "name": name,
                "cat": "coredash",
                "pid": pid,
                "tid": 0,
                "ts": _us(self.clock(), self.origin),
                "args": args,
            }
        )
        self._flush_soon()

    def _on_batch(self, batch: BatchRecord, summary: BatchSummary) -> None:
        self._batches.append(batch)
        data = summary_json(batch, summary, self.origin)
        self._summaries.append(data)
        self._instant(f"batch {summary.batch_id} finished", COREDASH_PID, "p", data)
        self._session_soon()

    def _on_config(self, event: ConfigChanged) -> None:
        change = self._config_json(event.mode, event.workers, str(event.chunk))
        self._config_changes.append(change)
        what = []
        if event.mode != self._mode:
            what.append(f"mode {event.mode.label}")
        if event.workers != self._workers:
            what.append(f"{event.workers} worker{'s' if event.workers != 1 else ''}")
        self._mode, self._workers = event.mode, event.workers
        self._instant(", ".join(what) or f"chunk {event.chunk}", COREDASH_PID, "g", change)
        self._session_soon()

    def _on_notice(self, event: PoolNotice) -> None:
        notice = {
            "at_s": _since(self.clock(), self.origin),
            "mode": event.mode.value,
            "message": event.message,
        }
        self._notices.append(notice)
        self._instant(f"pool: {event.message[:60]}", self._mode_pid(event.mode), "p", notice)
        self._session_soon()

    def _config_json(self, mode: Mode, workers: int, chunk: str) -> dict[str, Any]:
        return {
            "at_s": _since(self.clock(), self.origin),
            "mode": mode.value,
            "workers": workers,
            "chunk": chunk,
        }

    def _event(self, event: dict[str, Any]) -> None:
        self._events.append(_ENCODE(event))

    # --- writing ------------------------------------------------------------------

    def start_writing(self, folder: Path) -> None:
        """Write everything so far into ``folder`` (checked: ``RecordError``), and go on writing there."""
        if self.folder is not None:
            raise RecordError(f"already recording to {self.folder}")
        folder = check_folder(folder)
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL
        jobs_fd = os.open(folder / JOBS_CSV, flags | os.O_APPEND, 0o644)
        try:
            trace_fd = os.open(folder / TRACE_JSON, flags, 0o644)
        except OSError:
            os.close(jobs_fd)
            raise
        self.folder, self._jobs_fd, self._trace_fd = folder, jobs_fd, trace_fd
        began = time.perf_counter()
        os.write(jobs_fd, _csv_text([list(JOB_COLUMNS)]).encode())
        head = TRACE_HEAD.encode()
        os.pwrite(trace_fd, head + TRACE_TAIL, 0)
        self._trace_end = len(head)
        self.write_cost.add(time.perf_counter() - began)
        self.flush()

    def _flush_soon(self) -> None:
        if self._flush_handle is not None:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self._write_pending()
            return
        # Every event of this loop turn (a chunk's jobs end together) in one write.
        self._flush_handle = loop.call_soon(self._write_pending)

    def _session_soon(self) -> None:
        if self.folder is None or self._session_handle is not None:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self._write_session()
            return
        wait = max(0.0, self._session_written + SESSION_EVERY_S - time.monotonic())
        self._session_handle = loop.call_later(wait, self._write_session)

    def _write_pending(self, everything: bool = False) -> None:
        """Format what ended since the last loop turn, and write it with one call per file.

        For at most TURN_BUDGET_S a call (the rest on the next loop turns), so that a burst
        of ended jobs (chunks of tiny ones) never holds the loop for long.
        """
        self._flush_handle = None
        if self.error is not None:
            self._ended.clear()
            return
        began, cpu = time.perf_counter(), time.thread_time()
        deadline = float("inf") if everything else began + TURN_BUDGET_S
        ended = self._ended
        while ended and time.perf_counter() < deadline:
            job, state, dispatch = ended.popleft()
            row = self._row(job, state, dispatch)
            self._csv.writerow(row)
            self._trace_job(job, state, dispatch, row)
        if self._jobs_fd is not None and self._trace_fd is not None:  # else kept until a folder is given
            try:
                self._write_files(self._jobs_fd, self._trace_fd)
            except OSError as exc:  # disk full, folder gone: stop writing, say why once
                self._failed(exc)
        self.write_cost.add(time.perf_counter() - began, time.thread_time() - cpu)
        if self._ended:
            self._flush_soon()

    def _failed(self, exc: OSError) -> None:
        self.error = f"records stopped: {exc.strerror or exc}"
        log.error("%s (%s)", self.error, self.folder)
        for fd in (self._jobs_fd, self._trace_fd):
            if fd is not None:
                os.close(fd)
        self._jobs_fd = self._trace_fd = None
        self._rows.seek(0)
        self._rows.truncate()
        self._events = []
        self._ended.clear()

    def _write_files(self, jobs_fd: int, trace_fd: int) -> None:
        rows = self._rows.getvalue()
        if rows:
            os.write(jobs_fd, rows.encode())
            self._rows.seek(0)
            self._rows.truncate()
        if self._events:
            lead = ",\n" if self._trace_events else "\n"
            body = (lead + ",\n".join(self._events)).encode()
            os.pwrite(trace_fd, body + TRACE_TAIL, self._trace_end)
            self._trace_end += len(body)
            self._trace_events += len(self._events)
            self._events = []

    def _write_session(self) -> None:
        self._session_handle = None
        if self.folder is None or self.error is not None:
            return
        began = time.perf_counter()
        path = self.folder / SESSION_JSON
        temporary = path.with_name(f".{SESSION_JSON}.tmp")
        try:
            temporary.write_text(json.dumps(self.session_json(), indent=1, default=str) + "\n")
            os.replace(temporary, path)
        except OSError as exc:
            self._failed(exc)
            return
        self._session_written = time.monotonic()
        self.write_cost.add(time.perf_counter() - began)

    def flush(self) -> None:
        """Write whatever is pending now, and session.json."""
        if self._flush_handle is not None:
            self._flush_handle.cancel()
        if self._session_handle is not None:
            self._session_handle.cancel()
            self._session_handle = None
        self._write_pending(everything=True)
        self._write_session()

    def close(self) -> None:
        """Write the rest and close the files (idempotent). Unsubscribes from the engine.

        session.json can still be rewritten afterwards (add_section, add_sweep, flush).
        """
        if self._closed:
            return
        if self._unsubscribe is not None:
            self._unsubscribe()
        self.flush()
        self._closed = True
        for fd in (self._jobs_fd, self._trace_fd):
            if fd is not None:
                os.close(fd)
        self._jobs_fd = self._trace_fd = None

    # --- session.json ----------------------------------------------------------

    def session_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "coredash": __version__,
            "origin": {
                "wall_clock": self.started_at.isoformat(),
                "note": "times are seconds (jobs.csv, here) or microseconds (trace.json) since this "
                "moment, on time.monotonic()",
            },
        }
        if self._engine is not None:
            data["machine"] = machine_info(self._engine, GilState.now())
        if self._others:
            data["other_programs_cores"] = {
                "mean": sum(self._others) / len(self._others),
                "max": max(self._others),
                "samples": len(self._others),
                "note": "busy cores of the whole machine less coredash's process and its workers",
            }
        data["jobs"] = {
            "ended": self.jobs_ended,
            **{state.value: count for state, count in self._states.items()},
            "not_kept": self.jobs_not_kept,
        }
        data["config_changes"] = self._config_changes
        data["pool_notices"] = self._notices
        data["batches"] = self._summaries
        data["comparisons"] = self._comparisons()
        # Filled by add_sweep (the scaling sweep's results, each with its fit).
        data["sweeps"] = self._sweeps
        data["record_cost"] = {"events": self.event_cost.to_json(), "writes": self.write_cost.to_json()}
        data.update(self._sections)
        return data

    def _comparisons(self) -> list[dict[str, Any]]:
        foci: dict[tuple[str, str], tuple[str, dict[str, Any]]] = {}
        for batch in self._batches:
            foci.setdefault((batch.task, format_params(batch.params)), (batch.task, batch.params))
        found = []
        for focus in foci.values():
            compared = comparison_of(self._batches, focus)
            rows = [
                {
                    "mode": mode.value,
                    "batch": summary.batch_id if summary is not None else None,
                    "workers": summary.workers if summary is not None else None,
                    "chunk": summary.chunk_text if summary is not None else None,
                    "makespan_s": summary.makespan_s if summary is not None else None,
                    "speedup": summary.speedup if summary is not None else None,
                    "parallelism": summary.parallelism if summary is not None else None,
                    "jobs_per_s": summary.jobs_per_s if summary is not None else None,
                }
                for mode, summary in compared.rows
            ]
            found.append({"task": compared.task, "params": compared.params, "rows": rows})
        return found


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else seconds * 1e3


_ENCODE = json.JSONEncoder(
    separators=(",", ":"), default=str
).encode  # one encoder: json.dumps makes one a call


def _csv_text(rows: Iterable[Sequence[object]]) -> str:
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows(rows)
    return out.getvalue()
