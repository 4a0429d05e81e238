"""Command line: ``coredash`` (the dashboard), ``coredash bench``, ``coredash tasks``.

Every bad argument ends in one line on stderr and exit status 2, never a traceback.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import os
import signal
import sys
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

from coredash import __version__
from coredash.defaults import (
    APP_JOBS_PER_CORE,
    APP_WORKER_NICE,
    BENCH_JOBS_PER_CORE,
    MAX_JOBS,
    app_jobs,
    bench_jobs,
)
from coredash.engine import Catalog, CatalogError, Mode, max_workers_allowed, usable_cpus
from coredash.engine.platform import START_METHODS
from coredash.engine.worker import MAX_MEMORY_LIMIT_MB, MAX_NICE, MIN_MEMORY_LIMIT_MB

USAGE_ERROR = 2
COMMANDS = ("bench", "tasks")
REFRESH_RANGE = (0.5, 30.0)
# A size beyond this is a typo, not an experiment (tasks may set a lower limit).
MAX_SIZE = 10**12


class UsageError(Exception):
    """Bad command-line input; the message is one line for the user."""


class Stopped(KeyboardInterrupt):
    """A stop signal (SIGTERM, a closed terminal's SIGHUP), unwound like ctrl+c."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


def stop_at_once(signum: int, frame: object) -> None:
    """The first stop signal: deaf to the rest, then unwind like ctrl+c.

    A person who sees no answer presses ctrl+c again and again. Each press
    used to raise a new KeyboardInterrupt wherever it landed: in asyncio's own
    clean-up, or halfway through the progress bar's exit, which once swallowed
    the "interrupted" line. One signal is enough to stop; the rest are ignored.
    """
    ignore_stop_signals()
    if signum == signal.SIGINT:
        raise KeyboardInterrupt
    raise Stopped(signum)


def stop_at_the_first_signal() -> None:
    """ctrl+c, SIGTERM and SIGHUP end a headless run at once, and only once.

    Left to their defaults, SIGTERM and SIGHUP would end coredash on the spot,
    leaving the process pool and multiprocessing's helpers behind with their
    temporary files. Installing a handler for SIGINT also keeps asyncio.run
    from installing its own, which raises again on every further ctrl+c.
    """
    for signum in STOP_SIGNALS:
        with contextlib.suppress(ValueError, OSError):  # not the main thread; no such signal
            signal.signal(signum, stop_at_once)


@contextlib.contextmanager
def helpers_immune_to_ctrl_c() -> Iterator[None]:
    """Start multiprocessing's helper processes (forkserver, resource tracker) deaf to ctrl+c.

    The terminal sends ctrl+c to every process in the foreground group, and the
    forkserver only starts ignoring it once it has imported the task modules: a
    ctrl+c in its first second printed a KeyboardInterrupt traceback. coredash
    ends its helpers itself. A child inherits an ignored signal; blocking it
    meanwhile keeps a ctrl+c pressed now pending for coredash, not lost.
    """
    from multiprocessing import resource_tracker

    from coredash.engine.backends._processes import stderr_with_fileno

    # The tracker guards its own start, then unblocks ctrl+c: start it first.
    with stderr_with_fileno():
        resource_tracker.ensure_running()
    with signals_blocked([signal.SIGINT]) as blocked:
        previous = None
        if blocked:
            with contextlib.suppress(ValueError):  # not the main thread
                previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
        try:
            yield
        finally:
            if previous is not None:
                signal.signal(signal.SIGINT, previous)


@contextlib.contextmanager
def signals_blocked(signums: Iterable[int]) -> Iterator[bool]:
    """Hold these signals pending meanwhile; says whether it could (signal masks exist)."""
    try:
        before = signal.pthread_sigmask(signal.SIG_BLOCK, set(signums))
    except (AttributeError, OSError, ValueError):  # no signal masks on this platform
        before = None
    try:
        yield before is not None
    finally:
        if before is not None:
            signal.pthread_sigmask(signal.SIG_SETMASK, before)


STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def ignore_stop_signals() -> None:
    """On the way out already: one more ctrl+c must not print a traceback from the exit."""
    for signum in STOP_SIGNALS:
        with contextlib.suppress(ValueError, OSError):
            signal.signal(signum, signal.SIG_IGN)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(message)


def shown(text: str, limit: int = 24) -> str:
    """The user's input quoted for a message, cut short if it is long."""
    return repr(text) if len(text) <= limit else repr(text[:limit]) + f"… ({len(text):,} characters)"


def positive_int(text: str) -> int:
    try:
        value = int(text.replace("_", ""))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {shown(text)}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def task_size(text: str) -> int:
    value = positive_int(text)
    if value > MAX_SIZE:
        raise argparse.ArgumentTypeError(f"at most {MAX_SIZE:,}, got {value:,}")
    return value


def worker_count(text: str) -> int:
    value = positive_int(text)
    limit = max_workers_allowed()
    if value > limit:
        raise argparse.ArgumentTypeError(
            f"{value} workers is too many for {usable_cpus()} usable cores (at most {limit})"
        )
    return value


def job_count(text: str) -> int:
    value = positive_int(text)
    if value > MAX_JOBS:
        raise argparse.ArgumentTypeError(f"at most {MAX_JOBS:,} jobs per batch, got {value:,}")
    return value


def mode_name(text: str) -> Mode:
    try:
        return Mode.parse(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


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


MAX_JOB_TIMEOUT_S = 7 * 24 * 3600


def timeout_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, got {text!r}") from None
    if not 0 < value <= MAX_JOB_TIMEOUT_S:  # also refuses nan and inf
        raise argparse.ArgumentTypeError(f"must be above 0 and at most {MAX_JOB_TIMEOUT_S} s, got {text}")
    return value


def memory_mib(text: str) -> int:
    value = positive_int(text)
    if value < MIN_MEMORY_LIMIT_MB:
        raise argparse.ArgumentTypeError(
            f"must be at least {MIN_MEMORY_LIMIT_MB} MiB (a Python worker needs that much), got {value}"
        )
    if value > MAX_MEMORY_LIMIT_MB:
        raise argparse.ArgumentTypeError(f"must be at most {MAX_MEMORY_LIMIT_MB:,} MiB (1 PiB)")
    return value


def niceness(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a whole number from 0 to {MAX_NICE}, got {text!r}"
        ) from None
    if not 0 <= value <= MAX_NICE:
        raise argparse.ArgumentTypeError(f"must be from 0 to {MAX_NICE}, got {value}")
    return value


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
        help="address-space limit per worker process; past it a job fails with MemoryError",
    )


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
    parser.add_argument(
        "--mode", type=mode_name, default=Mode.THREAD, help="thread, process or process-per-job"
    )
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
    # Nicer workers: the dashboard still answers keys when the jobs fill every core.
    _add_limits(parser, nice=APP_WORKER_NICE)
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
        default=(Mode.THREAD, Mode.PROCESS, Mode.PROCESS_PER_JOB),
        help="comma-separated modes (default: thread,process,process-per-job)",
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
        "--no-serial", action="store_true", help="skip the plain-loop serial baseline (vs serial column)"
    )
    _add_limits(parser, nice=0)  # a benchmark runs its workers like anybody's
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


@dataclass(frozen=True)
class AppOptions:
    mode: Mode
    workers: int | None
    task: str
    size: int | None
    jobs: int
    refresh: float
    start_method: str | None
    catalog: Catalog
    job_timeout: float | None = None
    memory_limit_mb: int | None = None
    worker_nice: int = 0


def run(argv: Sequence[str]) -> int:
    try:
        return _run(list(argv))
    except UsageError as exc:
        sys.stderr.write(f"coredash: error: {exc}\n")
        return USAGE_ERROR
    except CatalogError as exc:
        sys.stderr.write(f"coredash: error: {exc}\n")
        return USAGE_ERROR
    except Stopped as exc:
        ignore_stop_signals()
        _say(f"coredash: stopped by {signal.Signals(exc.signum).name}\n")
        return 128 + exc.signum
    except KeyboardInterrupt:
        ignore_stop_signals()
        _say("coredash: interrupted\n")
        return 130


def _say(line: str) -> None:
    """Write to stderr; if the terminal has been closed, there is no one to tell."""
    if terminal_hung_up():
        detach_from_terminal()
        return
    # Past a progress bar that was cut short, sys.stderr may still be Rich's proxy,
    # which holds text back while its console is mid-render: write past it.
    stream = getattr(sys.stderr, "rich_proxied_file", sys.stderr)
    try:
        stream.write(line)
        stream.flush()
    except OSError:
        detach_from_terminal()


def terminal_hung_up() -> bool:
    """True once the terminal coredash runs in has been closed (reads and writes fail with EIO)."""
    stream = sys.__stdin__
    try:
        import termios  # Unix only
    except ImportError:
        return False
    if stream is None:
        return False
    try:
        termios.tcgetattr(stream.fileno())
    except termios.error as exc:
        return bool(exc.args) and exc.args[0] == errno.EIO
    except (OSError, ValueError):
        return False
    return False


def detach_from_terminal() -> None:
    """Point stdin, stdout and stderr at /dev/null, once the terminal has been closed.

    What is left in the output buffers has nowhere to go, and a failed flush at
    exit would turn a clean stop into exit status 120.
    """
    null = os.open(os.devnull, os.O_RDWR)
    try:
        for fd in (0, 1, 2):
            os.dup2(null, fd)
    finally:
        os.close(null)


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
    )
    from coredash.app import run_app  # the UI is imported only when it is wanted

    return run_app(options)


def _bench(args: argparse.Namespace) -> int:
    from coredash.bench import BenchConfig, run_bench_cli

    catalog = load_catalog(args.tasks)
    info = catalog.get(args.task)
    if args.size is not None:
        info.check_size(args.size)
    config = BenchConfig(
        task=info.name,
        params=info.params_for(args.size),
        jobs=args.jobs or bench_jobs(),
        modes=args.modes,
        workers=args.workers or tuple(sorted({1, usable_cpus()})),
        repeat=args.repeat,
        serial=not args.no_serial,
        start_method=args.start_method,
        job_timeout=args.job_timeout,
        memory_limit_mb=args.memory_limit,
        worker_nice=args.worker_nice,
    )
    if args.json is not None and not args.json.parent.exists():
        raise UsageError(f"cannot write {args.json}: folder {args.json.parent} does not exist")
    stop_at_the_first_signal()
    return run_bench_cli(config, catalog, args.json)


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
