"""``coredash bench``: the same batch in each mode x worker count, measured headless.

Runs are interleaved (every configuration once, then again for each repeat) so
that a noisy neighbour slows all configurations alike, and every figure printed
is the median over repeats. The table and ``--json`` come from the same numbers.
"""

from __future__ import annotations

import asyncio
import json
import os
import platform
import signal
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from rich import box
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from coredash.engine import (
    BatchSummary,
    Catalog,
    Engine,
    JobChanged,
    Mode,
    usable_cpus,
)
from coredash.engine.amdahl import MeasuredPoint
from coredash.engine.chunking import AUTO, ChunkPolicy
from coredash.engine.gil import GilState, expectation
from coredash.engine.model import EngineEvent
from coredash.engine.sweep import SweepCurve, make_curve
from coredash.lifecycle import (
    Stopped,
    StopSignals,
    ctrl_c_at_once,
    detach_if_hung_up,
    helpers_immune_to_ctrl_c,
)
from coredash.plot import sweep_chart
from coredash.records import Recorder
from coredash.units import format_rate, format_ratio, format_seconds


@dataclass(frozen=True)
class BenchConfig:
    task: str
    params: dict[str, Any]
    jobs: int
    modes: tuple[Mode, ...]
    workers: tuple[int, ...]  # always includes 1: the baseline for speedup
    repeat: int = 1
    serial: bool = True
    start_method: str | None = None
    job_timeout: float | None = None
    memory_limit_mb: int | None = None
    worker_nice: int = 0
    chunk: ChunkPolicy = AUTO  # for every run


@dataclass
class BenchRun:
    """Medians over repeats for one mode x worker count."""

    task: str
    mode: str
    workers: int
    jobs: int
    params: dict[str, Any]
    makespan_s: float
    speedup: float | None  # vs the 1-worker run of the same mode
    efficiency: float | None  # speedup / min(workers, usable cores)
    vs_serial: float | None  # serial loop time / makespan
    parallelism: float  # sum of job CPU time / makespan
    mean_wait_s: float | None  # None when no job of the run finished
    mean_run_s: float | None
    mean_overhead_s: float | None
    sum_cpu_s: float
    done: int
    failed: int
    cancelled: int
    repeats: int
    makespans_s: list[float] = field(default_factory=list)
    jobs_per_s: float = 0.0  # finished jobs ÷ makespan (median)
    chunk: str = "auto"  # the setting: auto, off or N
    mean_chunk: float | None = None  # jobs per executor call, as dispatched (median)
    chunk_text: str = ""  # "chunk 1", "chunk auto (≈40)"
    # What this mode should do with this task on this build (engine.gil.expectation):
    # "scales", "one core", ... and why.
    expect: str = ""
    expect_why: str = ""


@dataclass
class BenchReport:
    machine: dict[str, Any]
    config: dict[str, Any]
    serial_s: float | None
    serial_error: str | None
    runs: list[BenchRun]

    def to_json(self) -> dict[str, Any]:
        return {
            "machine": self.machine,
            "config": self.config,
            "serial_s": self.serial_s,
            "serial_error": self.serial_error,
            "runs": [asdict(run) for run in self.runs],
            # Per mode: the (workers, speedup) points, the Amdahl fit and its residual.
            "scaling": [curve.to_json() for curve in self.curves()],
        }

    def curves(self) -> list[SweepCurve]:
        """The runs as scaling curves, one per mode, each with its Amdahl fit."""
        cores = int(self.machine.get("usable_cores") or usable_cpus())
        modes = list(dict.fromkeys(run.mode for run in self.runs))
        return [
            make_curve(
                mode,
                [
                    MeasuredPoint(
                        workers=run.workers,
                        speedup=run.speedup,
                        parallelism=run.parallelism,
                        overhead_s=run.mean_overhead_s,
                        run_s=run.mean_run_s,
                        makespan_s=run.makespan_s,
                        jobs=int(self.config["jobs"]),
                    )
                    for run in self.runs
                    if run.mode == mode and run.speedup is not None
                ],
                cores,
            )
            for mode in modes
        ]


def machine_info(start_method: str, gil: GilState) -> dict[str, Any]:
    return {
        "usable_cores": usable_cpus(),
        "logical_cores": os.cpu_count(),
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "free_threaded_build": gil.free_threaded,
        "gil_enabled": gil.enabled,
        "platform": platform.platform(),
        "start_method": start_method,
    }


def measure_serial(catalog: Catalog, task: str, params: dict[str, Any], jobs: int) -> float:
    """The honest baseline: call the function ``jobs`` times in a plain loop, here."""
    info = catalog.get(task)
    kwargs = info.call_kwargs(params)
    began = time.perf_counter()
    for _ in range(jobs):
        info.func(**kwargs)
    return time.perf_counter() - began


ProgressHook = Callable[[str, int, int], None]


async def _close_whatever_happens(engine: Engine) -> None:
    """Close the engine to the end, even if the bench is cancelled again meanwhile."""
    closing = asyncio.ensure_future(engine.close())
    cancelled = False
    while not closing.done():
        try:
            await asyncio.shield(closing)
        except asyncio.CancelledError:
            if closing.cancelled():
                raise
            cancelled = True
    closing.result()
    if cancelled:
        raise asyncio.CancelledError


async def run_bench(
    config: BenchConfig,
    catalog: Catalog,
    on_progress: ProgressHook | None = None,
    recorder: Recorder | None = None,
) -> BenchReport:
    """Run every configuration ``repeat`` times; report medians (and record every job, if asked)."""
    serial_s: float | None = None
    serial_error: str | None = None
    if config.serial:
        try:
            with ctrl_c_at_once():
                serial_s = measure_serial(catalog, config.task, config.params, config.jobs)
        except Exception as exc:
            serial_error = f"{type(exc).__name__}: {exc}"

    summaries: dict[tuple[Mode, int], list[BatchSummary]] = {}
    with StopSignals():
        with helpers_immune_to_ctrl_c():
            engine = Engine(
                mode=config.modes[0],
                workers=max(config.workers),
                start_method=config.start_method,
                catalog=catalog,
                job_timeout=config.job_timeout,
                memory_limit_mb=config.memory_limit_mb,
                worker_nice=config.worker_nice,
                chunk=config.chunk,
            )
        label = ""
        ended = 0

        def count(event: EngineEvent) -> None:
            nonlocal ended
            if isinstance(event, JobChanged) and event.state.terminal:
                ended += 1
                if on_progress is not None:
                    on_progress(label, ended, config.jobs)

        engine.subscribe(count)
        if recorder is not None:
            recorder.attach(engine)
        try:
            for rep in range(config.repeat):
                for mode in config.modes:
                    for workers in config.workers:
                        engine.set_mode(mode)
                        engine.set_workers(workers)
                        await engine.warm_up()  # measure the steady state, not pool start-up
                        label = f"{mode.value} x{workers}" + (
                            f" (run {rep + 1}/{config.repeat})" if config.repeat > 1 else ""
                        )
                        ended = 0
                        if on_progress is not None:
                            on_progress(label, 0, config.jobs)
                        batch = engine.submit_batch(config.task, config.jobs, config.params)
                        summary = await engine.wait_batch(batch)
                        summaries.setdefault((mode, workers), []).append(summary)
        finally:
            await _close_whatever_happens(engine)

    # Asked after the runs: an extension imported meanwhile may have turned the GIL back on.
    gil = GilState.now()
    runs = _summarize(config, summaries, serial_s, expectations(config, catalog, gil))
    config_json = {
        "task": config.task,
        "params": config.params,
        "jobs": config.jobs,
        "modes": [mode.value for mode in config.modes],
        "workers": list(config.workers),
        "repeat": config.repeat,
        "chunk": str(config.chunk),
    }
    return BenchReport(
        machine=machine_info(engine.start_method, gil),
        config=config_json,
        serial_s=serial_s,
        serial_error=serial_error,
        runs=runs,
    )


def expectations(config: BenchConfig, catalog: Catalog, gil: GilState) -> dict[Mode, tuple[str, str]]:
    """(outlook, why) per mode for the config's task on this build."""
    releases_gil = catalog.get(config.task).releases_gil
    found = {}
    for mode in config.modes:
        expect = expectation(mode.abilities, releases_gil, gil)
        found[mode] = (expect.outlook.value, expect.why)
    return found


def _summarize(
    config: BenchConfig,
    summaries: dict[tuple[Mode, int], list[BatchSummary]],
    serial_s: float | None,
    expects: dict[Mode, tuple[str, str]] | None = None,
) -> list[BenchRun]:
    def median(values: Sequence[float]) -> float:
        return float(statistics.median(values))

    def median_known(values: Sequence[float | None]) -> float | None:
        known = [value for value in values if value is not None]
        return median(known) if known else None

    cores = usable_cpus()
    runs: list[BenchRun] = []
    for mode in config.modes:
        baseline = summaries.get((mode, 1))
        # A batch where jobs failed or were cancelled did less work: no speedup.
        base_ok = bool(baseline) and all(s.complete for s in baseline or [])
        base_makespan = median([s.makespan_s for s in baseline]) if baseline and base_ok else None
        for workers in config.workers:
            found = summaries.get((mode, workers), [])
            if not found:
                continue
            makespan = median([s.makespan_s for s in found])
            complete = all(s.complete for s in found)
            speedup = base_makespan / makespan if base_makespan is not None and complete else None
            runs.append(
                BenchRun(
                    task=config.task,
                    mode=mode.value,
                    workers=workers,
                    jobs=config.jobs,
                    params=dict(config.params),
                    makespan_s=makespan,
                    speedup=speedup,
                    efficiency=speedup / min(workers, cores) if speedup is not None else None,
                    vs_serial=serial_s / makespan if serial_s is not None and complete else None,
                    parallelism=median([s.parallelism for s in found]),
                    mean_wait_s=median_known([s.mean_wait_s for s in found]),
                    mean_run_s=median_known([s.mean_run_s for s in found]),
                    mean_overhead_s=median_known([s.mean_overhead_s for s in found]),
                    sum_cpu_s=median([s.sum_cpu_s for s in found]),
                    done=min(s.done for s in found),
                    failed=max(s.failed for s in found),
                    cancelled=max(s.cancelled for s in found),
                    repeats=len(found),
                    makespans_s=[s.makespan_s for s in found],
                    jobs_per_s=median([s.jobs_per_s for s in found]),
                    chunk=str(config.chunk),
                    mean_chunk=median_known([s.mean_chunk for s in found]),
                    chunk_text=config.chunk.describe(median_known([s.mean_chunk for s in found])),
                    expect=(expects or {}).get(mode, ("", ""))[0],
                    expect_why=(expects or {}).get(mode, ("", ""))[1],
                )
            )
    return runs


def render_table(report: BenchReport) -> Table:
    config, machine = report.config, report.machine
    params = ", ".join(f"{k}={v}" for k, v in config["params"].items())
    title = f"{config['task']}({params}) × {config['jobs']} jobs"
    caption = (
        f"{machine['usable_cores']} usable cores · Python {machine['python']} · "
        f"GIL {'on' if machine['gil_enabled'] else 'off'}"
        f"{' (free-threaded build)' if machine.get('free_threaded_build') else ''} · "
        f"start method {machine['start_method']} · chunk {config.get('chunk', 'auto')} · "
        f"medians of {config['repeat']} run(s) · serial loop {format_seconds(report.serial_s)}\n"
        "speedup: vs the same mode on 1 worker · vs serial: vs a plain loop in one process · "
        "parallelism: Σ job CPU time ÷ makespan (cores really used) · "
        "wait: time queued · overhead: dispatch → start + finish → result back, per job · "
        "efficiency: speedup ÷ min(workers, cores) · jobs/s: finished jobs ÷ makespan · "
        "chunk: jobs per executor call (the setting, ≈ what was sent) · "
        "expect: what this build should do (GIL on or off)"
    )
    table = Table(
        title=title,
        caption=caption,
        header_style="bold",
        box=box.SIMPLE_HEAD,
        pad_edge=False,
        caption_justify="left",
    )
    # Columns that say nothing for this run stay out, so the table fits 120 columns:
    # chunk only when a setting was given or jobs really went several to a call,
    # failed only when something failed.
    chunked = str(config.get("chunk", "auto")) != "auto" or any(
        (run.mean_chunk or 1.0) > 1.05 for run in report.runs
    )
    failures = any(run.failed or run.cancelled for run in report.runs)
    columns: list[tuple[str, str, Callable[[BenchRun], str]]] = [
        ("mode", "left", lambda run: run.mode),
        ("workers", "right", lambda run: str(run.workers)),
        ("makespan", "right", lambda run: format_seconds(run.makespan_s)),
        ("speedup\nvs 1 w", "right", lambda run: format_ratio(run.speedup)),
        ("effi-\nciency", "right", lambda run: "-" if run.efficiency is None else f"{run.efficiency:.0%}"),
        ("vs\nserial", "right", lambda run: format_ratio(run.vs_serial)),
        ("paral-\nlelism", "right", lambda run: f"{run.parallelism:.2f}"),
        ("mean\nwait", "right", lambda run: format_seconds(run.mean_wait_s)),
        ("mean\noverhead", "right", lambda run: format_seconds(run.mean_overhead_s)),
        ("jobs/s", "right", lambda run: format_rate(run.jobs_per_s)),
    ]
    if chunked:
        columns.append(("chunk", "left", lambda run: run.chunk_text.removeprefix("chunk ")))
    columns.append(("expect", "left", lambda run: run.expect))
    if failures:
        columns.append(
            (
                "failed",
                "right",
                lambda run: str(run.failed + run.cancelled) if run.failed or run.cancelled else "",
            )
        )
    for header, justify, _ in columns:
        table.add_column(header, justify=justify, no_wrap=True)  # type: ignore[arg-type]
    for run in report.runs:
        table.add_row(*(value(run) for _, _, value in columns))
    return table


def _record_report(recorder: Recorder, report: BenchReport) -> None:
    """The table's numbers and the sweep curves with their fits, into session.json."""
    recorder.add_section("bench", report.to_json())  # closed, it still rewrites session.json
    for curve in report.curves():
        recorder.add_sweep(curve)
    recorder.flush()


def run_bench_cli(
    config: BenchConfig,
    catalog: Catalog,
    json_path: Path | None,
    *,
    plot: bool = False,
    record: Path | None = None,
) -> int:
    out = Console()
    if not out.is_terminal:
        out = Console(width=150)  # pipes and CI logs: no terminal width to fit
    err = Console(stderr=True)
    progress = Progress(
        TextColumn("[bold]{task.description:<28}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err,
        transient=True,
    )
    bars: dict[str, Any] = {}

    def on_progress(label: str, done: int, total: int) -> None:
        if label not in bars:
            bars[label] = progress.add_task(label, total=total)
        progress.update(bars[label], completed=done)

    recorder = Recorder(record) if record is not None else None
    try:
        with progress:
            if config.serial:
                progress.console.print(f"[dim]serial baseline: {config.jobs} calls in a plain loop…[/]")
            report = asyncio.run(run_bench(config, catalog, on_progress, recorder))
    except OSError:
        # The terminal was closed under the progress bar? The engine is closed by now.
        if not detach_if_hung_up():
            raise
        raise Stopped(signal.SIGHUP) from None
    finally:
        if recorder is not None:
            recorder.close()  # what was measured before a stop is kept too
    if recorder is not None:
        _record_report(recorder, report)
        err.print(f"recorded {recorder.jobs_ended} jobs in {record}", markup=False)
    out.print(render_table(report))
    if plot:
        cores = int(report.machine["usable_cores"])
        out.print(sweep_chart(report.curves(), cores, width=max(min(out.width - 10, 72), 20)))
    if report.serial_error:
        err.print(f"serial baseline skipped: {report.serial_error}", markup=False)
    if json_path is not None:
        json_path.write_text(json.dumps(report.to_json(), indent=2) + "\n")
        err.print(f"wrote {json_path}", markup=False)
    sys.stdout.flush()
    return 0
