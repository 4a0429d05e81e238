"""The dashboard: a Textual app whose own event loop drives the engine.

The app owns three inputs (the engine, a CPU sampler, a clock) and one timer.
Each tick it samples the CPUs once, takes an engine snapshot and hands the
widgets what to draw. Keys and the command palette call engine methods; widgets
never schedule anything.
"""

from __future__ import annotations

import asyncio
import gc
import sys
import threading
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, ClassVar

from textual import on
from textual.app import App, ComposeResult, SystemCommand
from textual.binding import BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.css.query import NoMatches
from textual.screen import ModalScreen, Screen
from textual.widgets import DataTable, Static

from coredash.commands import dashboard_bindings, dashboard_commands, with_registered_modes
from coredash.defaults import APP_JOBS_PER_CORE
from coredash.engine import (
    REGISTRY,
    BatchFinished,
    CatalogError,
    ConfigChanged,
    Engine,
    EngineError,
    EngineEvent,
    EngineSnapshot,
    HistoryCleared,
    JobChanged,
    JobRecord,
    JobState,
    PoolNotice,
    max_workers_allowed,
    python_label,
)
from coredash.engine.gil import GilState, expectation
from coredash.engine.sweep import SweepPlan, SweepProgress, SweepResult, run_sweep, sweep_workers
from coredash.lifecycle import QuitSignals, terminal_hung_up
from coredash.loop_lag import LoopLagMonitor
from coredash.records import Recorder, RecordError, default_folder
from coredash.sampling import CoreHistory, CpuSample, LoadAverager, PsutilSampler, Sampler
from coredash.screens.help import HelpScreen
from coredash.screens.job_detail import JobDetailScreen
from coredash.screens.picker import JobChoice, JobPickerScreen
from coredash.screens.sweep import SweepScreen
from coredash.units import format_rate, format_seconds
from coredash.view_model import (
    BatchLag,
    batch_progress,
    capacity_note,
    comparison,
    core_marks,
    format_params,
    worker_rows,
)
from coredash.widgets.comparison import ComparisonData, ComparisonPanel
from coredash.widgets.core_grid import CoreGrid, CoreGridData
from coredash.widgets.jobs_table import JobsTable
from coredash.widgets.key_footer import KeyFooter
from coredash.widgets.monitor_panel import MonitorData, MonitorPanel
from coredash.widgets.status_line import StatusData, StatusLine
from coredash.widgets.workers_panel import WorkersData, WorkersPanel

if TYPE_CHECKING:
    pass

MIN_SIZE = (80, 24)
DASHBOARD_ACTIONS = frozenset(
    {
        "set_mode",
        "run_batch",
        "pick_job",
        "change_workers",
        "cancel_queued",
        "kill_running",
        "clear_results",
        "save_records",
        "sweep",
        "help",
    }
)
TOO_SMALL = (
    "coredash needs a terminal of at least {0}×{1}.\n\n"
    "This one is {2}×{3}: make it bigger, or press q to quit."
)


class CoredashApp(App[int]):
    TITLE = "coredash"
    CSS_PATH = "coredash.tcss"
    # Nothing focused at start, so enter runs a batch; tab moves to the job table,
    # where enter opens a job's details (the focused panel's border lights up).
    AUTO_FOCUS = None
    HORIZONTAL_BREAKPOINTS = [
        (0, "-tiny"),
        (MIN_SIZE[0], "-narrow"),
        (120, "-wide"),
    ]
    VERTICAL_BREAKPOINTS = [
        (0, "-short"),
        (MIN_SIZE[1], "-tall-enough"),
    ]
    # Footer order is priority order: a narrow terminal crops from the right,
    # so help and quit come first. Modes as registered at import: every app
    # re-reads the registry for its own keys (commands.with_registered_modes).
    BINDINGS: ClassVar[list[BindingType]] = list(dashboard_bindings())

    def __init__(
        self,
        engine: Engine,
        *,
        task: str = "count_primes",
        size: int | None = None,
        jobs: int | None = None,
        refresh: float = 4.0,
        sampler: Sampler | None = None,
        clock: Callable[[], float] = time.monotonic,
        snapshot_source: Callable[[], EngineSnapshot] | None = None,
        auto_baseline: bool = True,
        lag_monitor: LoopLagMonitor | None = None,
        python: str | None = None,
        gil_state: Callable[[], GilState] = GilState.now,
        recorder: Recorder | None = None,
    ) -> None:
        super().__init__()
        self.dashboard_bindings = dashboard_bindings()
        self._bindings = with_registered_modes(self._bindings)
        self.engine = engine
        info = engine.catalog.get(task)
        self.task_name = info.name
        self.task_size = size if size is not None else info.default_size
        self.task_jobs = jobs if jobs is not None else APP_JOBS_PER_CORE * engine.usable_cpus
        self.refresh_hz = refresh
        self.sampler: Sampler = sampler if sampler is not None else PsutilSampler()
        self.clock = clock
        self.snapshot_source = snapshot_source or engine.snapshot
        self.auto_baseline = auto_baseline
        self.history = CoreHistory(seconds=60)
        self.load = LoadAverager(seconds=2.0)
        # A monitor passed in is shown as it is (tests); the app's own one runs live.
        self._measure_lag = lag_monitor is None
        self.lag = lag_monitor if lag_monitor is not None else LoopLagMonitor()
        self.batch_lag = BatchLag(self.lag)  # per batch, for the comparison panel
        self.python = python if python is not None else python_label()
        # Read every redraw: importing an extension can turn a free-threaded build's GIL
        # back on for good. Tests pass other builds' states here (none can be installed).
        self.gil_state = gil_state
        # Records every job from the start (in memory until a folder is given: --record or e).
        self.recorder = recorder if recorder is not None else Recorder()
        self.recorder.attach(engine)
        self._last_sample: CpuSample | None = None
        self._history_key: tuple[int, int] = (-1, -1)
        self._history_cache: tuple[tuple[float, ...], ...] = ()
        self._binding_state: tuple[object, ...] = ()
        self._unsubscribe: Callable[[], None] | None = None
        self._quitting = False
        self._quit_requested = False
        self._quit_signals = QuitSignals(self._quit_from_signal)
        self._sweep_stop: asyncio.Event | None = None  # set: stop the sweep running now
        self.sweeps: list[SweepResult] = []  # every sweep this session, newest last

    # --- layout -----------------------------------------------------------

    def compose(self) -> ComposeResult:
        yield StatusLine(id="status")
        with VerticalScroll(id="main", can_focus=False):
            with Horizontal(id="top"):
                with Vertical(id="cores-panel", classes="panel") as cores:
                    cores.border_title = "Cores"
                    cores.border_subtitle = "load · last 60 s · ◆ coredash worker"
                    yield CoreGrid(id="cores")
                    yield MonitorPanel(id="monitor")
                with Vertical(id="right"):
                    with Vertical(id="queue-panel", classes="panel") as queue:
                        queue.border_title = "Queue & workers"
                        yield WorkersPanel(id="workers")
                    with Vertical(id="compare-panel", classes="panel") as compare:
                        compare.border_title = "Threads vs processes"
                        yield ComparisonPanel(id="comparison")
            with Vertical(id="jobs-panel", classes="panel") as jobs:
                jobs.border_title = "Completion times"
                jobs.border_subtitle = "select a row for details and traceback"
                yield JobsTable(id="jobs")
        yield Static("", id="too-small")
        yield KeyFooter(compact=True)

    def on_mount(self) -> None:
        self._unsubscribe = self.engine.subscribe(self._on_engine_event)
        self._quit_signals.install()
        self.sampler.prime()
        if self._measure_lag:
            self.run_worker(self.lag.run(), name="loop-lag", group="monitor", exit_on_error=False)
        self.set_interval(1 / self.refresh_hz, self.tick, name="tick")
        self.tick()
        if self.engine.mode.abilities.start_cost == "per pool":
            self._warm_pool()
        self.call_after_refresh(self._freeze_startup_objects)

    def _freeze_startup_objects(self) -> None:
        # The ~70,000 objects of a laid-out Textual app live as long as the app.
        # Frozen, a full garbage collection no longer walks them: under a stream of
        # jobs those collections were the event loop's longest stalls (~50-130 ms).
        gc.collect()
        gc.freeze()

    def _quit_from_signal(self) -> None:
        if terminal_hung_up():
            # The terminal is gone: its input thread would spin on end-of-file
            # and starve the quit of the GIL. Stop it; there is nothing to read.
            exit_event = getattr(self._driver, "exit_event", None)
            if isinstance(exit_event, threading.Event):
                exit_event.set()
        # A second signal (kill sent twice, SIGTERM after SIGHUP) must not cancel
        # the quit already under way, as an exclusive worker would: nothing would exit.
        if self._quit_requested:
            return
        self._quit_requested = True
        self.run_worker(self.action_quit(), name="quit", group="quit", exit_on_error=False)

    def _update_too_small_notice(self) -> None:
        # Which panels show is CSS (the -tiny/-short breakpoint classes); this
        # only keeps the notice's numbers current.
        width, height = self.size
        if width < MIN_SIZE[0] or height < MIN_SIZE[1]:
            self.query_one("#too-small", Static).update(TOO_SMALL.format(*MIN_SIZE, width, height))

    # --- the tick -----------------------------------------------------------

    def tick(self) -> None:
        """The timer's tick: sample the CPUs once, then redraw."""
        if self._quitting or not self.is_running:
            return
        sample = self.sampler.sample(self.engine.live_worker_pids())
        self._last_sample = sample
        self.recorder.note_sample(sample)
        self.history.add(sample)
        self.load.add(sample)
        self.redraw()

    def redraw(self) -> None:
        """Hand every widget what to draw, from the last sample and a fresh snapshot.

        Keys and engine events redraw at once without sampling: a sample taken
        off the timer's beat would cover an odd interval.
        """
        sample = self._last_sample
        if sample is None or self._quitting or not self.is_running:
            return
        snapshot = self.snapshot_source()
        now = self.clock()
        try:
            self._update_too_small_notice()
            with self.batch_update():
                self._update_widgets(snapshot, sample, now)
        except NoMatches:
            return  # the app is shutting down: the widgets are already gone
        self._refresh_bindings_if_needed(snapshot)

    def _update_widgets(self, snapshot: EngineSnapshot, sample: CpuSample, now: float) -> None:
        info = self.engine.catalog.get(self.task_name)
        params = info.params_for(self.task_size)
        gil = self.gil_state()
        expect = expectation(snapshot.mode.abilities, info.releases_gil, gil)
        self.query_one(StatusLine).data = StatusData(
            mode=snapshot.mode,
            workers=snapshot.workers,
            usable_cpus=snapshot.usable_cpus,
            python=self.python,
            gil=gil,
            expect=expect,
            refresh_hz=self.refresh_hz,
            task=self.task_name,
            params=tuple(params.items()),
            jobs=self.task_jobs,
            draining=snapshot.draining,
            chunk=str(snapshot.chunk),
        )
        cores = len(sample.per_core)
        self.query_one(CoreGrid).update_data(
            CoreGridData(
                per_core=sample.per_core,
                history=self._history_columns(cores),
                usable=sample.usable,
                marks=core_marks(snapshot, sample),
            )
        )
        running = snapshot.counts.get(JobState.RUNNING, 0)
        self.query_one(MonitorPanel).data = MonitorData(
            load=self.load.load(),
            lag=self.lag.stats(),
            mode=snapshot.mode,
            usable_cpus=snapshot.usable_cpus,
            running=running,
            gil=gil,
        )
        self.query_one(WorkersPanel).data = WorkersData(
            queued_total=snapshot.counts.get(JobState.QUEUED, 0),
            queued_next=tuple((job.id, job.task, job.label) for job in snapshot.queued[:4]),
            rows=tuple(worker_rows(snapshot, sample, now)),
            progress=batch_progress(snapshot, now),
            note=capacity_note(snapshot.mode, snapshot.workers),
        )
        found = comparison(snapshot, (self.task_name, params))
        self.query_one(ComparisonPanel).data = ComparisonData(
            comparison=found,
            usable_cpus=snapshot.usable_cpus,
            current_mode=snapshot.mode,
            expect=expect,
            lag_p99_ms=self.batch_lag(snapshot, found),
        )
        self.query_one(JobsTable).sync(snapshot.recent)

    def _history_columns(self, cores: int) -> tuple[tuple[float, ...], ...]:
        """Per-core history, rebuilt only when a new one-second column has closed."""
        key = (self.history.closed_columns, cores)
        if key != self._history_key:
            self._history_key = key
            self._history_cache = tuple(tuple(self.history.series(core)) for core in range(cores))
        return self._history_cache

    def _refresh_bindings_if_needed(self, snapshot: EngineSnapshot) -> None:
        state = (
            snapshot.mode,
            snapshot.workers,
            snapshot.counts.get(JobState.QUEUED, 0) > 0,
            bool(snapshot.active),
        )
        if state != self._binding_state:
            self._binding_state = state
            self.refresh_bindings()

    # --- engine events ---------------------------------------------------

    def _on_engine_event(self, event: EngineEvent) -> None:
        # Called on the loop thread by the engine, so notify() is safe here.
        if isinstance(event, BatchFinished):
            summary = event.summary
            speedup = "" if summary.speedup is None else f" · speedup {summary.speedup:.2f}×"
            problems = summary.failed + summary.cancelled
            self.notify(
                f"{summary.task} ×{summary.jobs} on {summary.mode} ({summary.workers} w): "
                f"{format_seconds(summary.makespan_s)} · parallelism {summary.parallelism:.2f}{speedup}"
                f" · {format_rate(summary.jobs_per_s)} jobs/s · {summary.chunk_text}"
                + (f" · {summary.failed} failed, {summary.cancelled} cancelled" if problems else ""),
                title=f"Batch {summary.batch_id} finished",
                severity="warning" if problems else "information",
                markup=False,
            )
        elif isinstance(event, PoolNotice):
            self.notify(event.message, title="Executor", severity="warning", timeout=8, markup=False)
        elif isinstance(event, ConfigChanged | HistoryCleared):
            self.call_later(self.redraw)
        elif isinstance(event, JobChanged) and event.state is JobState.FAILED and event.job.label:
            # A failed baseline explains why no speedup will show for that task.
            self.notify(
                f"{event.job.label} for {event.job.task} failed: {event.job.error}",
                severity="warning",
                markup=False,
            )
        elif isinstance(event, JobChanged) and event.state is JobState.DISPATCHED:
            mode = event.job.mode
            if mode is not None and mode.abilities.blocks_loop:
                # The last frame before the loop blocks (the backend lets it be drawn):
                # the freeze then shows the job it is waiting for.
                self.call_later(self.redraw)

    # --- actions -----------------------------------------------------------

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if isinstance(self.screen, ModalScreen) and action in DASHBOARD_ACTIONS:
            return False  # not while help, the picker or job details is open
        if action == "set_mode" and parameters and parameters[0] == self.engine.mode.value:
            return None  # shown dimmed: already in that mode
        if action == "change_workers" and parameters:
            step = int(str(parameters[0]))
            target = self.engine.workers + step
            if not 1 <= target <= max_workers_allowed(self.engine.usable_cpus):
                return None
        # Queue state as of the last redraw (which refreshes the bindings when it changes).
        has_queued, has_active = self._binding_state[2:4] if self._binding_state else (False, False)
        if action == "cancel_queued" and not has_queued:
            return None
        if action == "kill_running" and not has_active:
            return None
        return True

    def action_set_mode(self, mode: str) -> None:
        try:
            info = REGISTRY.parse(mode)
        except ValueError as exc:  # unregistered since its key was bound
            self.notify(str(exc), severity="error", markup=False)
            return
        new = info.mode
        if new == self.engine.mode:
            return
        reason = info.reason_unavailable
        if reason is not None:
            self.notify(reason, title=f"No {info.label} here", severity="warning", timeout=6, markup=False)
            return
        try:
            self.engine.set_mode(new)
        except (EngineError, ValueError, ImportError) as exc:  # a backend that cannot start here
            self.notify(str(exc), title=f"No {info.label}", severity="error", markup=False)
            return
        if new.abilities.start_cost == "per pool":
            self._warm_pool()
        self.notify(f"mode: {new.label}", timeout=2)

    def _warm_pool(self) -> None:
        # Start the pool's workers now, not when the first batch arrives.
        self.run_worker(
            self.engine.warm_up(), name="warm-up", group="warm", exclusive=True, exit_on_error=False
        )

    def action_run_batch(self) -> None:
        info = self.engine.catalog.get(self.task_name)
        params = info.params_for(self.task_size)
        try:
            # A failing or crashing task has no speedup to measure.
            wants_baseline = self.auto_baseline and info.kind not in ("error", "crash", "fault")
            measured = self.engine.has_baseline(info.name, params)
            if wants_baseline and not measured and not self.engine.baseline_pending(info.name, params):
                self.engine.submit_baseline(info.name, params)
            self.engine.submit_batch(info.name, self.task_jobs, params)
        except (EngineError, CatalogError) as exc:
            self.notify(str(exc), severity="error", markup=False)
            return
        self.redraw()

    def action_pick_job(self) -> None:
        def chosen(choice: JobChoice | None) -> None:
            if choice is None:
                return
            self.task_name, self.task_size, self.task_jobs = choice.task, choice.size, choice.jobs
            self.engine.set_chunk(choice.chunk)  # batches from now on; queued ones keep theirs
            if choice.run_now:
                self.action_run_batch()
            else:
                self.redraw()

        self.push_screen(
            JobPickerScreen(
                self.engine.catalog,
                self.task_name,
                self.task_size,
                self.task_jobs,
                self.engine.chunk,
                refuse=self._refusal,
            ),
            chosen,
        )

    def _refusal(self, task: str, size: int) -> str | None:
        return self.engine.blocking_refusal(task, self.engine.catalog.get(task).params_for(size))

    def action_change_workers(self, step: int) -> None:
        target = self.engine.workers + int(step)
        limit = max_workers_allowed(self.engine.usable_cpus)
        if not 1 <= target <= limit:
            self.notify(f"workers stay between 1 and {limit}", severity="warning", timeout=2)
            return
        self.engine.set_workers(target)

    def action_cancel_queued(self) -> None:
        count = self.engine.cancel_queued()
        self.notify(f"cancelled {count} queued job{'s' if count != 1 else ''}", timeout=3)

    def action_kill_running(self) -> None:
        stopping = [job for job in self.engine.snapshot().active]
        count = self.engine.kill_running()
        # Jobs whose executor cannot kill them (threads) stop at their next checkpoint().
        threads = [job for job in stopping if job.mode is not None and not job.mode.abilities.can_kill]
        labels = " and ".join(dict.fromkeys(job.mode.label for job in threads if job.mode is not None))
        how = f"{labels} jobs stop at their next checkpoint()" if threads else "workers ended"
        self.notify(f"stopping {count} running job{'s' if count != 1 else ''} ({how})", timeout=3)
        if threads:
            self.set_timer(2.0, lambda: self._report_unstoppable(threads))

    def _report_unstoppable(self, jobs: list[JobRecord]) -> None:
        """Say so when a thread job ignores the cancel flag: threads cannot be killed."""
        stuck = [job for job in jobs if not job.state.terminal]
        if stuck:
            ids = ", ".join(f"#{job.id}" for job in stuck)
            self.notify(
                f"job {ids} has not reached a checkpoint(): it runs on a thread (interpreters run on "
                "threads too), which cannot be killed, so it runs to its end. Process modes can end "
                "jobs at once; q quits without waiting.",
                title="Still running",
                severity="warning",
                timeout=10,
                markup=False,
            )

    def action_clear_results(self) -> None:
        self.engine.clear_history()

    def action_save_records(self) -> None:
        recorder = self.recorder
        fresh = recorder.folder is None
        try:
            if fresh:
                recorder.start_writing(default_folder())
            else:
                recorder.flush()
        except (RecordError, OSError) as exc:
            self.notify(str(exc), title="Records not saved", severity="error", markup=False)
            return
        kept = f" ({recorder.jobs_not_kept} early jobs not kept)" if recorder.jobs_not_kept else ""
        self.notify(
            f"{recorder.folder}: jobs.csv ({recorder.jobs_ended} ended jobs{kept}), trace.json "
            "(open in ui.perfetto.dev), session.json; "
            + ("new jobs are added as they end" if fresh else "up to date"),
            title="Records saved",
            timeout=8,
            markup=False,
        )

    def action_sweep(self, every_mode: bool = False) -> None:
        """Speedup at 1 … 2 × cores workers: in the current mode, or in every mode that runs here."""
        if self._sweep_stop is not None:
            self.notify("a sweep is already running", severity="warning", timeout=3)
            return
        snapshot = self.engine.snapshot()
        if snapshot.active or snapshot.counts.get(JobState.QUEUED, 0):
            # Another batch on the same workers would make every point wrong.
            self.notify(
                "a sweep needs the workers to itself: let the jobs end, or press c and k first",
                severity="warning",
                timeout=5,
            )
            return
        info = self.engine.catalog.get(self.task_name)
        params = info.params_for(self.task_size)
        mode = self.engine.mode
        modes = REGISTRY.available() if every_mode else (mode,)
        plan = SweepPlan(
            task=info.name,
            params=params,
            jobs=self.task_jobs,
            modes=modes,
            workers=sweep_workers(self.engine.usable_cpus),
        )
        where = "every mode" if every_mode else mode.label
        screen = SweepScreen(
            f"{info.name} {format_params(params)} ×{self.task_jobs} on {where}", self.engine.usable_cpus
        )
        self._sweep_stop = asyncio.Event()
        self.push_screen(screen)
        self.run_worker(
            self._run_sweep(plan, screen, self._sweep_stop), name="sweep", group="sweep", exit_on_error=False
        )

    async def _run_sweep(self, plan: SweepPlan, screen: SweepScreen, stop: asyncio.Event) -> None:
        workers, mode = self.engine.workers, self.engine.mode

        def progress(found: SweepProgress) -> None:
            screen.progress = found

        try:
            result = await run_sweep(self.engine, plan, on_progress=progress, stop=stop)
        except (EngineError, CatalogError) as exc:  # the engine closed (quit), a refused size...
            if not self._quitting:
                if self.screen is screen:
                    screen.dismiss()
                self.notify(str(exc), title="Sweep stopped", severity="error", markup=False)
            return
        finally:
            self._sweep_stop = None
            if not self._quitting:
                self.engine.set_mode(mode)  # back to the user's own mode and worker count
                self.engine.set_workers(workers)
        self.sweeps.append(result)
        self.recorder.add_sweep(result)  # session.json keeps every sweep, with its fit
        screen.result = result
        fitted = "; ".join(
            f"{curve.mode}: {curve.fit.text if curve.fit is not None else 'no fit: too few points'}"
            for curve in result.curves
        )
        self.notify(
            fitted + (" (stopped early)" if result.stopped else ""),
            title="Sweep finished",
            timeout=8,
            markup=False,
        )

    @on(SweepScreen.StopRequested)
    def _stop_sweep(self) -> None:
        if self._sweep_stop is not None:
            self._sweep_stop.set()

    def action_help(self) -> None:
        # Built once and kept (composing the help's Markdown takes ~0.4 s), once per GIL
        # state: it says what to expect on this build, and an import can turn the GIL on.
        gil = self.gil_state()
        name = f"help {gil}"
        if not self.is_screen_installed(name):
            self.install_screen(HelpScreen(self.dashboard_bindings, gil), name=name)
        self.push_screen(name)

    async def action_quit(self) -> None:
        if self._quitting:
            return
        self._quitting = True
        # Thread jobs are winding down and still hold the GIL in turns: let the
        # loop thread (which must shut the UI down) get it back more often.
        switch_interval = sys.getswitchinterval()
        sys.setswitchinterval(0.0005)
        try:
            await self.engine.close(grace=1.0)
        finally:
            sys.setswitchinterval(switch_interval)
        self._close_records()
        self.exit(0)

    def _close_records(self) -> None:
        # After the engine's close: its last jobs end (cancelled) and get their rows.
        try:
            self.recorder.close()
        except OSError as exc:  # the disk filled up, the folder was removed...
            self.notify(f"records: {exc}", severity="error", markup=False)

    async def on_unmount(self) -> None:
        self._quitting = True
        self._quit_signals.restore()
        if self._unsubscribe is not None:
            self._unsubscribe()
        await self.engine.close(grace=1.0)
        self._close_records()

    @on(DataTable.RowSelected, "#jobs")
    def _show_job(self, event: DataTable.RowSelected) -> None:
        job = self.engine.job(int(str(event.row_key.value)))
        if job is None:
            job = next((j for j in self.snapshot_source().recent if str(j.id) == event.row_key.value), None)
        if job is not None:
            self.push_screen(JobDetailScreen(job))

    # --- command palette ------------------------------------------------------

    def get_system_commands(self, screen: Screen[Any]) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        yield from dashboard_commands(self)
