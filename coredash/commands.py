"""The dashboard's keys and palette commands, built from the mode registry when asked.

Textual merges a class's BINDINGS once, when the class is created; the mode keys
are rebuilt for every app from ``REGISTRY`` so that a mode registered later
still gets a key, a footer entry and a palette command.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Protocol

from textual.app import SystemCommand
from textual.binding import Binding, BindingsMap

from coredash.engine import REGISTRY, Engine, EngineSnapshot, JobState, max_workers_allowed
from coredash.view_model import format_params


class Dashboard(Protocol):
    """What the palette's commands read and call on the app (coredash.app.CoredashApp)."""

    engine: Engine
    task_name: str
    task_size: int
    task_jobs: int
    snapshot_source: Callable[[], EngineSnapshot]

    def action_set_mode(self, mode: str) -> None: ...
    def action_run_batch(self) -> None: ...
    def action_pick_job(self) -> None: ...
    def action_change_workers(self, step: int) -> None: ...
    def action_cancel_queued(self) -> None: ...
    def action_kill_running(self) -> None: ...
    def action_clear_results(self) -> None: ...
    def action_save_records(self) -> None: ...
    def action_sweep(self, every_mode: bool = False) -> None: ...
    def action_help(self) -> None: ...


HEAD_BINDINGS = (
    Binding("question_mark,f1", "help", "Help", key_display="?", id="help", tooltip="What each mode shows"),
    Binding("q", "quit", "Quit", id="quit", tooltip="Stop all jobs and quit"),
    Binding("r,enter", "run_batch", "Run", id="run", tooltip="Run a batch of the picked job"),
)
TAIL_BINDINGS = (
    Binding("k", "kill_running", "Kill", id="kill", tooltip="Stop the running jobs"),
    Binding("c", "cancel_queued", "Cancel", id="cancel", tooltip="Cancel every queued job"),
    Binding("j", "pick_job", "Job…", id="pick", tooltip="Pick task, size, job count and chunk"),
    Binding(
        "plus,equals_sign",
        "change_workers(1)",
        "Worker",
        key_display="+",
        id="workers.more",
        tooltip="One more worker",
    ),
    Binding(
        "minus",
        "change_workers(-1)",
        "Worker",
        key_display="-",
        id="workers.fewer",
        tooltip="One worker fewer",
    ),
    Binding(
        "w",
        "sweep",
        "Sweep",
        id="sweep",
        tooltip="Speedup at 1, 2, … 2 × cores workers in this mode, with the Amdahl fit",
    ),
    Binding(
        "W",
        "sweep(True)",
        "Sweep all",
        id="sweep.all",
        show=False,  # the footer is full; the help and the palette list it
        tooltip="The same sweep in every mode that runs here, interleaved",
    ),
    Binding("x", "clear_results", "Clear", id="clear", tooltip="Clear job history, comparisons, baselines"),
    Binding(
        "e",
        "save_records",
        "Save",
        id="records",
        tooltip="Write jobs.csv, trace.json and session.json (the session so far, then on)",
    ),
)
SET_MODE = "set_mode("


def mode_bindings() -> list[Binding]:
    """A key for every registered mode, read from REGISTRY now.

    A mode that cannot run here keeps its key: pressing it says why (its tooltip
    too). A key the dashboard already uses stays the dashboard's; the mode is
    still in the status line and the palette.
    """
    taken = {key for binding in (*HEAD_BINDINGS, *TAIL_BINDINGS) for key in binding.key.split(",")}
    bindings = []
    for info in REGISTRY:
        if info.key in taken:
            continue
        reason = info.reason_unavailable
        bindings.append(
            Binding(
                info.key,
                f"{SET_MODE}{info.name!r})",
                info.short,
                id=f"mode.{info.name.replace('-', '_')}",
                tooltip=f"Switch executor to {info.label}" if reason is None else f"Unavailable: {reason}",
            )
        )
    return bindings


def dashboard_bindings() -> list[Binding]:
    return [*HEAD_BINDINGS, *mode_bindings(), *TAIL_BINDINGS]


def with_registered_modes(bindings: BindingsMap) -> BindingsMap:
    """An app's bindings with a key for every mode registered now, where the class had its mode keys.

    Textual merges a class's BINDINGS once, when the class is created, so a
    mode registered after import would get no key and no footer entry. The
    app's own binding map (which App.__init__ has completed with the palette
    key) is rebuilt with the registry's mode keys in place of the class's.
    """
    old = list(bindings)
    is_mode = [binding.action.startswith(SET_MODE) for _, binding in old]
    at = is_mode.index(True) if any(is_mode) else len(old)
    others = [pair for pair, mode in zip(old, is_mode, strict=True) if not mode]
    keys: dict[str, list[Binding]] = {}
    for key, binding in [*others[:at], *BindingsMap(mode_bindings()), *others[at:]]:
        keys.setdefault(key, []).append(binding)
    return BindingsMap.from_keys(keys)


def dashboard_commands(app: Dashboard) -> Iterator[SystemCommand]:
    """The palette's dashboard commands: every other mode, then what can be done now."""
    engine = app.engine
    for info in REGISTRY:
        if info.mode == engine.mode:
            continue
        reason = info.reason_unavailable
        yield SystemCommand(
            f"Mode: {info.label}",
            f"Switch executor to {info.label} (queued jobs follow; running ones finish)"
            if reason is None
            else f"Unavailable: {reason}",
            lambda name=info.name: app.action_set_mode(name),
        )
    params = format_params(engine.catalog.get(app.task_name).params_for(app.task_size))
    yield SystemCommand(
        "Run batch",
        f"{app.task_name} {params} ×{app.task_jobs} on {engine.mode.label}",
        app.action_run_batch,
    )
    yield SystemCommand("Pick job", "Choose task, size, job count and chunk", app.action_pick_job)
    if engine.workers < max_workers_allowed(engine.usable_cpus):
        yield SystemCommand(
            "Add worker", f"{engine.workers} → {engine.workers + 1}", lambda: app.action_change_workers(1)
        )
    if engine.workers > 1:
        yield SystemCommand(
            "Remove worker", f"{engine.workers} → {engine.workers - 1}", lambda: app.action_change_workers(-1)
        )
    counts = app.snapshot_source().counts
    if counts.get(JobState.QUEUED, 0):
        yield SystemCommand(
            "Cancel queued", f"{counts[JobState.QUEUED]} job(s) waiting", app.action_cancel_queued
        )
    if counts.get(JobState.RUNNING, 0) + counts.get(JobState.DISPATCHED, 0):
        yield SystemCommand("Kill running", "Stop the running jobs", app.action_kill_running)
    yield SystemCommand(
        "Scaling sweep",
        f"{app.task_name} at 1…{2 * engine.usable_cpus} workers on {engine.mode.label}, Amdahl fit",
        app.action_sweep,
    )
    yield SystemCommand(
        "Scaling sweep, every mode",
        f"{app.task_name} at 1…{2 * engine.usable_cpus} workers in every mode that runs here",
        lambda: app.action_sweep(True),
    )
    yield SystemCommand("Clear results", "Forget ended jobs and comparisons", app.action_clear_results)
    yield SystemCommand(
        "Save records", "jobs.csv, trace.json (Perfetto) and session.json", app.action_save_records
    )
    yield SystemCommand("Help", "What each mode demonstrates, and every key", app.action_help)
