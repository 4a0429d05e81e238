"""Fixed inputs for deterministic screenshots of the dashboard.

Everything here goes through the seams the live app uses: a ``CpuSample`` series
(what ``PsutilSampler`` returns, tested for real in test_sampling.py), an
``EngineSnapshot`` of job and batch records (what ``Engine.snapshot()`` returns,
tested for real in test_engine.py and test_app.py), a clock and a loop-lag monitor.
The numbers are the kind a real 2-core run shows.
"""

from __future__ import annotations

from coredash.app import CoredashApp
from coredash.engine import (
    BatchRecord,
    BatchSummary,
    Engine,
    EngineSnapshot,
    JobRecord,
    JobState,
    Mode,
)
from coredash.engine.gil import GilState
from coredash.loop_lag import LoopLagMonitor
from coredash.sampling import CoreHistory, CpuSample, FixedSampler, WorkerLoad

NOW = 5000.0
PARAMS = {"n": 300000}
PID = 4242
TIDS = (4250, 4251)
WORKER_PIDS = (4301, 4302)


def _summary(batch_id: int, mode: Mode, makespan: float, parallelism: float, speedup: float) -> BatchSummary:
    return BatchSummary(
        batch_id=batch_id,
        task="count_primes",
        params=dict(PARAMS),
        mode=mode.value,
        workers=2,
        jobs=8,
        done=8,
        failed=0,
        cancelled=0,
        makespan_s=makespan,
        sum_run_s=makespan * parallelism,
        sum_cpu_s=makespan * parallelism,
        parallelism=parallelism,
        mean_wait_s=makespan / 2,
        mean_run_s=0.2,
        mean_overhead_s=0.002,
        serial_s=makespan * speedup,
        speedup=speedup,
        efficiency=speedup / 2,
    )


def _batch(batch_id: int, mode: Mode, summary: BatchSummary | None, ended: int) -> BatchRecord:
    return BatchRecord(
        id=batch_id,
        task="count_primes",
        params=dict(PARAMS),
        count=8,
        mode=mode,
        workers=2,
        submitted=NOW - 60 + batch_id * 10,
        first_dispatched=NOW - 60 + batch_id * 10,
        job_ids=list(range(batch_id * 10, batch_id * 10 + 8)),
        ended=ended,
        summary=summary,
    )


def _ended_job(job_id: int, mode: Mode, state: JobState, slot: int) -> JobRecord:
    started = NOW - 30 + job_id * 0.5
    in_thread = mode is Mode.THREAD
    job = JobRecord(
        id=job_id,
        task="count_primes" if state is not JobState.FAILED else "fail",
        params=dict(PARAMS) if state is not JobState.FAILED else {"ms": 50},
        batch_id=None,
        state=state,
        mode=mode,
        attempts=1,
        submitted=started - 0.4,
        dispatched=started - 0.002,
        started=started,
        finished=started + (0.41 if in_thread else 0.2),
        completed=started + (0.415 if in_thread else 0.201),
        pid=PID if in_thread else WORKER_PIDS[slot],
        thread_id=TIDS[slot] if in_thread else WORKER_PIDS[slot],
        thread_name=f"coredash-worker_{slot}" if in_thread else "MainThread",
        core=slot,
        end_core=slot,
        cpu_s=0.2,
        result_repr="25997" if state is JobState.DONE else None,
        version=3,
    )
    if state is JobState.FAILED:
        job.error = "ValueError: deliberate failure after 50 ms of work"
        job.traceback = (
            "Traceback (most recent call last):\n"
            '  File "tasks/misc.py", line 93, in fail\n'
            "ValueError: deliberate failure after 50 ms of work\n"
        )
    if state is JobState.CANCELLED:
        job.error = (
            "cancelled while running (stopped at a checkpoint)"
            if in_thread
            else "cancelled while running: worker pid 4302 was ended"
        )
        job.result_repr = None
    return job


def fixed_snapshot(mode: Mode) -> EngineSnapshot:
    in_thread = mode is Mode.THREAD
    recent = tuple(
        _ended_job(job_id, mode, state, job_id % 2)
        for job_id, state in [
            (61, JobState.DONE),
            (62, JobState.DONE),
            (63, JobState.FAILED),
            (64, JobState.DONE),
            (65, JobState.CANCELLED),
            (66, JobState.DONE),
        ]
    )
    active = []
    for slot in (0, 1):
        job = _ended_job(67 + slot, mode, JobState.RUNNING, slot)
        job.finished = job.completed = job.cpu_s = None
        job.result_repr = None
        job.started = NOW - 0.3 + slot * 0.1
        job.slot = slot
        job.core = 1 if in_thread else slot  # threads: both on one core at this instant
        job.batch_id = 4
        active.append(job)
    queued = tuple(
        JobRecord(id=job_id, task="count_primes", params=dict(PARAMS), batch_id=4, submitted=NOW - 2)
        for job_id in range(69, 75)
    )
    batches = (
        _batch(1, Mode.THREAD, _summary(1, Mode.THREAD, 1.62, 0.98, 0.99), 8),
        _batch(2, Mode.PROCESS, _summary(2, Mode.PROCESS, 0.84, 1.91, 1.90), 8),
        _batch(3, Mode.PROCESS_PER_JOB, _summary(3, Mode.PROCESS_PER_JOB, 0.95, 1.71, 1.68), 8),
        _batch(4, mode, None, 6),
    )
    counts = {state: 0 for state in JobState}
    counts.update({JobState.QUEUED: 6, JobState.RUNNING: 2, JobState.DONE: 28, JobState.FAILED: 1})
    counts[JobState.CANCELLED] = 1
    return EngineSnapshot(
        mode=mode,
        workers=2,
        usable_cpus=2,
        queued=queued,
        active=tuple(active),
        recent=recent,
        batches=batches,
        counts=counts,
        draining=0,
    )


def fixed_sample(mode: Mode) -> CpuSample:
    if mode is Mode.THREAD:
        return CpuSample(
            at=NOW,
            interval=0.25,
            per_core=(8.0, 96.0),
            usable=frozenset({0, 1}),
            process_cores=1.03,
            ui_cores=0.04,
            worker_threads={TIDS[0]: WorkerLoad(1, 0.5), TIDS[1]: WorkerLoad(1, 0.49)},
        )
    return CpuSample(
        at=NOW,
        interval=0.25,
        per_core=(99.0, 98.0),
        usable=frozenset({0, 1}),
        process_cores=0.03,
        ui_cores=0.03,
        worker_processes={WORKER_PIDS[0]: WorkerLoad(0, 0.99), WORKER_PIDS[1]: WorkerLoad(1, 0.98)},
    )


def fixed_history(mode: Mode) -> CoreHistory:
    """A minute of load: idle, a threads phase (one core's worth), then processes."""
    history = CoreHistory(seconds=60)
    for second in range(61):
        if second < 15:
            load = (6.0, 4.0)
        elif second < 35:
            load = (48.0 + (second % 3) * 3, 52.0 - (second % 3) * 3)  # threads: ~1 core in total
        elif second < 40:
            load = (5.0, 7.0)
        else:
            load = (97.0, 99.0) if mode is not Mode.THREAD else (50.0, 50.0)
        sample = CpuSample(
            at=NOW - 61 + second,
            interval=1.0,
            per_core=load,
            usable=frozenset({0, 1}),
            process_cores=0.0,
            ui_cores=0.0,
        )
        history.add(sample)
    return history


def fixed_lag(mode: Mode) -> LoopLagMonitor:
    monitor = LoopLagMonitor()
    lags = [0.002] * 90 + [0.04] * 9 + [0.19] if mode is Mode.THREAD else [0.001] * 99 + [0.004]
    for index, lag in enumerate(lags):
        monitor.record(NOW - 5 + index * 0.05, lag)
    return monitor


def make_fixed_app(mode: Mode) -> CoredashApp:
    engine = Engine(mode=mode, workers=2)
    snapshot = fixed_snapshot(mode)
    app = CoredashApp(
        engine,
        task="count_primes",
        size=PARAMS["n"],
        jobs=8,
        sampler=FixedSampler([fixed_sample(mode)]),
        clock=lambda: NOW,
        snapshot_source=lambda: snapshot,
        lag_monitor=fixed_lag(mode),
        python="Python 3.11.7",
        gil_state=lambda: GilState(free_threaded=False, enabled=True),  # whatever runs the tests
    )
    app.history = fixed_history(mode)
    return app
