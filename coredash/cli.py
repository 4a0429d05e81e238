"""Command line: ``coredash`` (the dashboard), ``coredash bench``, ``coredash tasks``.

Every bad argument ends in one line on stderr and exit status 2, never a traceback.
"""

from __future__ import annotations

import argparse
import os
import sys
import textwrap
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn, TypeVar

from coredash import __version__
from coredash.defaults import (
    APP_JOBS_PER_CORE,
    APP_WORKER_NICE,
    BENCH_JOBS_PER_CORE,
    app_jobs,
    bench_jobs,
)
from coredash.engine import REGISTRY, Catalog, CatalogError, Mode, TaskInfo, limits, usable_cpus
from coredash.engine.chunking import MAX_FIXED_CHUNK
from coredash.engine.limits import MAX_NICE, LimitError, shown
from coredash.engine.modes import DEFAULT_MODE
from coredash.engine.platform import START_METHODS
from coredash.lifecycle import report_stop, stop_at_the_first_signal

USAGE_ERROR = 2
COMMANDS = ("bench", "tasks")
REFRESH_RANGE = (0.5, 30.0)
T = TypeVar("T")


class UsageError(Exception):
    """Bad command-line input; the message is one line for the user."""


class _HelpFormatter(argparse.HelpFormatter):
    """argparse's, except that a line never breaks inside a mode name such as process-per-job."""

    def _split_lines(self, text: str, width: int) -> list[str]:
        return textwrap.wrap(" ".join(text.split()), width, break_on_hyphens=False)


class _Parser(argparse.ArgumentParser):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", _HelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        raise UsageError(message)


def limited(parse: Callable[[str], T]) -> Callable[[str], T]:
    """An argparse type from one of the limits' parsers: the same check as the picker and the engine."""

    def argument_type(text: str) -> T:
        try:
            return parse(text)
        except LimitError as exc:
            raise argparse.ArgumentTypeError(exc.problem) from None

    argument_type.__name__ = parse.__name__.removeprefix("parse_")  # argparse names it in errors
    return argument_type


task_size = limited(limits.parse_size)
worker_count = limited(limits.parse_workers)
job_count = limited(limits.parse_jobs)
timeout_seconds = limited(limits.parse_job_timeout)
memory_mib = limited(limits.parse_memory_limit)
niceness = limited(limits.parse_nice)
chunk_setting = limited(limits.parse_chunk)


def positive_int(text: str) -> int:
    try:
        value = int(text.replace("_", ""))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {shown(text)}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def mode_name(text: str) -> Mode:
    try:
        info = REGISTRY.parse(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    reason = info.reason_unavailable
    if reason is not None:
        raise argparse.ArgumentTypeError(f"mode {info.name!r} cannot run here: {reason}")
    return info.mode


def modes_help(joiner: str = ", ", last: str = " or ") -> str:
    """The modes that run here, then those that do not and why (read from REGISTRY now)."""
    names = [str(mode) for mode in REGISTRY.available()]
    text = joiner.join(names[:-1]) + last + names[-1] if len(names) > 1 else "".join(names)
    missing = [f"{info.name}: {info.reason_unavailable}" for info in REGISTRY if not info.available]
    if missing:
        text += f" (not here: {'; '.join(missing)})"
    return text.replace("%", "%%")  # argparse formats help with %


def mode_list(text: str) -> tuple[Mode, ...]:
    modes = tuple(mode_name(part) for part in text.split(",") if part.strip())
    if not modes:
        raise argparse.ArgumentTypeError("give at least one mode")
    return tuple(dict.fromkeys(modes))


def worker_list(text: str) -> tuple[int, ...]:
    counts = tuple(worker_count(part.strip()) for part in text.split(",") if part.strip())
    if not counts:
        raise argparse.ArgumentTypeError("give at least one worker count")
    # 1 worker is the baseline every speedup is measured against.
    return tuple(sorted({1, *counts}))


def refresh_rate(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of refreshes per second, got {text!r}") from None
    low, high = REFRESH_RANGE
    if not low <= value <= high:
        raise argparse.ArgumentTypeError(
            f"refresh rate must be between {low:g} and {high:g} Hz, got {value:g}"
        )
    return value


def _not_for(ability: str) -> str:
    """The modes that lack an ability, as a note for a help line (read from REGISTRY now)."""
    names = [info.label for info in REGISTRY if not getattr(info.abilities, ability)]
    return f" (not for {', '.join(names)}: their jobs share coredash's process)" if names else ""


def _add_limits(parser: argparse.ArgumentParser, nice: int) -> None:
    parser.add_argument(
        "--worker-nice",
        type=niceness,
        default=nice,
        metavar="N",
        help=f"run job workers this much nicer than coredash (0-{MAX_NICE}, default {nice})",
    )
    parser.add_argument(
        "--job-timeout",
        type=timeout_seconds,
        default=None,
        metavar="SECONDS",
        help="fail a job that runs longer (process workers are killed; threads stop at a checkpoint)",
    )
    parser.add_argument(
        "--memory-limit",
        type=memory_mib,
        default=None,
        metavar="MIB",
        help="address-space limit per worker process; past it a job fails with MemoryError"
        + _not_for("memory_limit"),
    )


def _add_chunk(parser: argparse.ArgumentParser, where: str) -> None:
    parser.add_argument(
        "--chunk",
        type=chunk_setting,
        default=limits.check_chunk("auto"),
        metavar="auto|off|N",
        help="jobs per executor call: auto (tiny jobs go several to a call), off (one IPC round "
        f"trip per job) or up to N (1-{MAX_FIXED_CHUNK}); {where} (default auto)",
    )


def _add_record(parser: argparse.ArgumentParser, when: str) -> None:
    parser.add_argument(
        "--record",
        type=Path,
        default=None,
        metavar="FOLDER",
        help=f"write jobs.csv (a row per ended job), trace.json (Perfetto, chrome://tracing) and "
        f"session.json into FOLDER (created; must not hold records already) {when}",
    )


def check_record(folder: Path | None) -> None:
    """A --record folder that cannot be written to is a usage error, said before anything runs."""
    if folder is None:
        return
    from coredash.records import RecordError, check_folder

    try:
        check_folder(folder)
    except RecordError as exc:
        raise UsageError(str(exc)) from None


def _add_common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--tasks",
        metavar="PATH.py",
        action="append",
        default=[],
        type=Path,
        help="load more jobs from a Python file (repeatable); its public functions become tasks",
    )
    parser.add_argument(
        "--start-method",
        choices=START_METHODS,
        default=None,
        help="how worker processes start (default: forkserver on Linux, spawn elsewhere)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="coredash",
        description="Watch Python's threads and processes use your cores, live. "
        "Run without a command to open the dashboard.",
        epilog="commands: 'coredash bench --help', 'coredash tasks'",
    )
    parser.add_argument("--version", action="version", version=f"coredash {__version__}")
    parser.add_argument("--mode", type=mode_name, default=DEFAULT_MODE, help=modes_help())
    parser.add_argument(
        "--workers", type=worker_count, default=None, help="jobs run at once (default: usable cores)"
    )
    parser.add_argument(
        "--task", default="count_primes", help="task the batch key runs (see 'coredash tasks')"
    )
    parser.add_argument("--size", type=task_size, default=None, help="the task's size knob")
    parser.add_argument(
        "--jobs", type=job_count, default=None, help=f"jobs per batch (default: {APP_JOBS_PER_CORE} per core)"
    )
    parser.add_argument("--refresh", type=refresh_rate, default=4.0, help="redraws per second (default 4)")
    _add_chunk(parser, "the job picker (j) changes it")
    # Nicer workers: the dashboard still answers keys when the jobs fill every core.
    _add_limits(parser, nice=APP_WORKER_NICE)
    _add_record(parser, "as jobs end (the e key writes to ./coredash-records/ otherwise)")
    _add_common(parser)
    return parser


def build_bench_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="coredash bench",
        description="Run the same batch in each mode x worker count and print makespan, "
        "speedup, efficiency and parallelism (medians over --repeat runs).",
    )
    parser.add_argument("--task", required=True, help="task to run (see 'coredash tasks')")
    parser.add_argument("--size", type=task_size, default=None, help="the task's size knob")
    parser.add_argument(
        "--jobs",
        type=job_count,
        default=None,
        help=f"jobs per batch (default: {BENCH_JOBS_PER_CORE} per core)",
    )
    parser.add_argument(
        "--modes",
        type=mode_list,
        default=REGISTRY.available(),
        help=f"comma-separated modes (default: {modes_help(',', ',')})",
    )
    parser.add_argument(
        "--workers",
        type=worker_list,
        default=None,
        help="comma-separated worker counts; 1 is always added (default: 1,<usable cores>)",
    )
    parser.add_argument("--repeat", type=positive_int, default=1, help="runs per configuration (medians)")
    parser.add_argument("--json", type=Path, default=None, metavar="PATH", help="also write results as JSON")
    parser.add_argument(
        "--plot",
        action="store_true",
        help="after the table, chart speedup against workers per mode with the ideal line and the "
        "fitted Amdahl curve; without --workers it sweeps 1, 2, … 2 × usable cores",
    )
    parser.add_argument(
        "--no-serial", action="store_true", help="skip the plain-loop serial baseline (vs serial column)"
    )
    _add_chunk(parser, "for every run")
    _add_limits(parser, nice=0)  # a benchmark runs its workers like anybody's
    _add_record(parser, "as the runs go")
    _add_common(parser)
    return parser


def build_tasks_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="coredash tasks", description="List the job catalogue.")
    _add_common(parser)
    return parser


def load_catalog(paths: Sequence[Path]) -> Catalog:
    catalog = Catalog.builtin()
    for path in paths:
        catalog.load_file(path)
    return catalog


def run(argv: Sequence[str]) -> int:
    try:
        return _run(list(argv))
    except UsageError as exc:
        sys.stderr.write(f"coredash: error: {exc}\n")
        return USAGE_ERROR
    except CatalogError as exc:
        sys.stderr.write(f"coredash: error: {exc}\n")
        return USAGE_ERROR
    except KeyboardInterrupt as stop:  # ctrl+c, or a stop signal (lifecycle.Stopped)
        return report_stop(stop)


def _run(argv: list[str]) -> int:
    command = argv[0] if argv and not argv[0].startswith("-") else None
    if command == "bench":
        return _bench(build_bench_parser().parse_args(argv[1:]))
    if command == "tasks":
        return _tasks(build_tasks_parser().parse_args(argv[1:]))
    if command is not None:
        raise UsageError(f"unknown command {command!r}; commands are 'bench' and 'tasks'")
    try:
        args = build_parser().parse_args(argv)
    except UsageError as exc:
        misplaced = [word for word in argv if word in COMMANDS]
        if misplaced and "unrecognized arguments" in str(exc):
            raise UsageError(
                f"put options after the command: coredash {misplaced[0]} [options] (got: {' '.join(argv)})"
            ) from None
        raise
    if os.environ.get("TERM") == "dumb":
        # Textual draws with escape codes whatever TERM says: on a dumb terminal
        # that is a screen of garbage, so say so instead.
        raise UsageError(
            "the dashboard needs a terminal that can move the cursor, and TERM=dumb says this one "
            "cannot; use 'coredash bench' for plain text, or set TERM (e.g. TERM=xterm-256color)"
        )
    catalog = load_catalog(args.tasks)
    info = catalog.get(args.task)
    if args.size is not None:
        info.check_size(args.size)
    check_blocking(info, args.size, (args.mode,), args.job_timeout)
    check_record(args.record)
    from coredash.launch import AppOptions, run_app  # the UI is imported only when it is wanted

    options = AppOptions(
        mode=args.mode,
        workers=args.workers,
        task=info.name,
        size=args.size,
        jobs=args.jobs or app_jobs(),
        refresh=args.refresh,
        start_method=args.start_method,
        catalog=catalog,
        job_timeout=args.job_timeout,
        memory_limit_mb=args.memory_limit,
        worker_nice=args.worker_nice,
        chunk=args.chunk,
        record=args.record,
    )
    return run_app(options)


def check_blocking(
    info: TaskInfo, size: int | None, modes: Sequence[Mode], job_timeout: float | None
) -> None:
    """A mode that blocks the event loop refuses a size whose jobs would block it too long."""
    blocking = [mode for mode in modes if mode.abilities.blocks_loop]
    params = info.params_for(size)
    why = limits.blocking_refusal(info.expected_run_s(params), job_timeout)
    if not blocking or why is None:
        return
    others = ", ".join(str(mode) for mode in REGISTRY.available() if not mode.abilities.blocks_loop)
    raise UsageError(
        f"{info.name} {info.size_param}={params[info.size_param]:,} in {blocking[0].label} mode: {why}; "
        f"pass a smaller --size, a --job-timeout of at most {limits.MAX_BLOCKING_JOB_S:g} s, or a mode "
        f"that does not block the loop ({others})"
    )


def _bench(args: argparse.Namespace) -> int:
    from coredash.bench import BenchConfig, run_bench_cli
    from coredash.engine.sweep import sweep_workers

    catalog = load_catalog(args.tasks)
    info = catalog.get(args.task)
    if args.size is not None:
        info.check_size(args.size)
    check_blocking(info, args.size, args.modes, args.job_timeout)
    config = BenchConfig(
        task=info.name,
        params=info.params_for(args.size),
        jobs=args.jobs or bench_jobs(),
        modes=args.modes,
        workers=args.workers or (sweep_workers() if args.plot else tuple(sorted({1, usable_cpus()}))),
        repeat=args.repeat,
        serial=not args.no_serial,
        start_method=args.start_method,
        job_timeout=args.job_timeout,
        memory_limit_mb=args.memory_limit,
        worker_nice=args.worker_nice,
        chunk=args.chunk,
    )
    if args.json is not None and not args.json.parent.exists():
        raise UsageError(f"cannot write {args.json}: folder {args.json.parent} does not exist")
    check_record(args.record)
    stop_at_the_first_signal()
    return run_bench_cli(config, catalog, args.json, plot=args.plot, record=args.record)


def _tasks(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    catalog = load_catalog(args.tasks)
    table = Table(title="coredash tasks", header_style="bold")
    table.add_column("task")
    table.add_column("kind")
    table.add_column("size knob")
    table.add_column("GIL")
    table.add_column("what it does")
    for info in catalog:
        gil = {True: "released", False: "held", None: "n/a"}[info.releases_gil]
        unit = f" {info.meta.size_unit}" if info.meta.size_unit else ""
        table.add_row(
            info.name, info.kind, f"{info.size_param}={info.default_size}{unit}", gil, info.description
        )
    Console().print(table)
    return 0
