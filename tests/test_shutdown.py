"""Quitting under load, in a real terminal (tmux), in every executor mode.

Each case starts coredash from an interactive shell in a tmux pane, runs a batch
until every worker is busy and jobs are queued, quits one way, then checks what
a user would: coredash gone within 2 s, the shell's terminal back to normal
(normal screen, cursor, no mouse reporting, tty settings as before), no
traceback, no process it started still alive (the multiprocessing resource
tracker and forkserver included), and no temporary file left in its TMPDIR.
"""

from __future__ import annotations

import contextlib
import re
import signal
import time
from pathlib import Path

import psutil
import pytest

from coredash.engine import REGISTRY, Mode
from tests.terminal import (
    NORMAL_FLAGS,
    ProcessTree,
    TmuxPane,
    coredash_command,
    dashboard_saturated,
    keeping_status,
    read_status,
    wait_exit,
)

EXIT_WITHIN = 2.0  # seconds, from the key or signal to the process having exited
WORKERS = 2  # = cores on CI: more thread workers would starve the UI of the GIL (documented)
# 0.25 s jobs: the serial baseline is over quickly, and 200 of them keep both
# workers busy far longer than any test waits.
LOAD = ("--task", "count_primes", "--size", "300000", "--jobs", "200", "--workers", str(WORKERS))
# The shell line: remember the tty settings, run, then report the exit status and
# whether the settings came back.
CHECKED = 'S=$(stty -g); {command}; echo "EXITED $? TTY-$([ "$(stty -g)" = "$S" ] && echo same || echo new)"'
# Modes that keep the loop free: they quit at once, however busy. One that blocks it
# (blocking join) can only quit once the job in hand is over: its own test below.
LOOP_FREE = [mode for mode in REGISTRY.available() if not mode.abilities.blocks_loop]
BLOCKING_MODES = [mode for mode in REGISTRY.available() if mode.abilities.blocks_loop]
FREEZE_S = 2.0  # each blocking job: the dashboard is frozen this long
FROZEN = ("--task", "sleep", "--size", str(int(FREEZE_S * 1000)), "--jobs", "4", "--workers", "2")


def start_loaded(pane: TmuxPane, command: str) -> ProcessTree:
    """Run ``command`` (the dashboard) in the pane and wait until it is saturated."""
    pane.run(command)
    tree = ProcessTree(pane.coredash())
    pane.wait_for("Threads vs processes", 30, "the dashboard")
    pane.send("r")
    pane.wait_for(
        lambda screen: bool(tree.scan() or True) and dashboard_saturated(screen, WORKERS),
        30,
        "every worker busy with jobs queued",
    )
    tree.scan()
    return tree


def assert_nothing_left(pane: TmuxPane, tree: ProcessTree) -> None:
    assert tree.wait_gone(1.0) is not None, "left behind:\n" + tree.describe(tree.alive())
    assert pane.temp_files() == [], "temporary files left behind; the pane said:\n" + pane.history()[-3000:]


def assert_terminal_restored(pane: TmuxPane, status: int = 0) -> None:
    screen = pane.wait_for(
        lambda screen: re.search(r"^\S*EXITED \d+ TTY-", screen, re.MULTILINE) is not None,
        5,
        "the shell to run the next command",
    )
    assert f"EXITED {status} TTY-same" in screen, screen
    assert pane.flags() == NORMAL_FLAGS  # normal screen, cursor shown, no mouse reporting
    pane.run("echo ALIVE-$((6*7))")  # the shell reads and echoes keys again
    pane.wait_for("ALIVE-42", 5, "the shell to answer")
    assert "Traceback" not in pane.history()


@pytest.mark.parametrize("mode", LOOP_FREE, ids=str)
@pytest.mark.parametrize("way", ["q", "ctrl+q", "SIGTERM"])
def test_quitting_under_load_restores_the_terminal_and_leaves_nothing(
    pane: TmuxPane, mode: Mode, way: str
) -> None:
    tree = start_loaded(pane, CHECKED.format(command=coredash_command("--mode", mode.value, *LOAD)))
    coredash = tree.root
    began = time.monotonic()
    if way == "q":
        pane.send("q")
    elif way == "ctrl+q":
        pane.send("C-q")
    else:
        coredash.send_signal(signal.SIGTERM)
    took = wait_exit(coredash, 10)
    assert took is not None, f"coredash still running 10 s after {way}"
    assert took < EXIT_WITHIN, f"took {took:.2f} s to exit after {way}"
    assert_nothing_left(pane, tree)
    assert_terminal_restored(pane)
    assert time.monotonic() - began < 30


@pytest.mark.parametrize("mode", LOOP_FREE, ids=str)
def test_closing_the_terminal_under_load_quits_cleanly(pane: TmuxPane, tmp_path: Path, mode: Mode) -> None:
    status_file = tmp_path / "status.json"
    command = keeping_status(status_file, coredash_command("--mode", mode.value, *LOAD))
    tree = start_loaded(pane, command)
    coredash = tree.root
    pane.kill_session()  # the terminal hangs up: the shell passes SIGHUP on, as when a window closes
    took = wait_exit(coredash, 10)
    assert took is not None, "coredash still running 10 s after its terminal closed"
    assert took < EXIT_WITHIN, f"took {took:.2f} s to exit after its terminal closed"
    # 0, not 120 (a failed flush to the dead terminal) or -1 (killed by the signal).
    assert read_status(status_file) == 0
    assert_nothing_left(pane, tree)


def start_frozen(pane: TmuxPane, command: str) -> tuple[ProcessTree, psutil.Process]:
    """Run the dashboard, start a batch, and return once a blocking job has frozen it."""
    pane.run(command)
    tree = ProcessTree(pane.coredash())
    pane.wait_for("Threads vs processes", 30, "the dashboard")
    pane.send("r")
    # Job processes are the forkserver's children: the serial baseline first (it runs
    # apart, without blocking anything), then batch job #2, whose join() blocks the loop.
    deadline = time.monotonic() + 30
    jobs: dict[int, psutil.Process] = {}
    while len(jobs) < 2:
        assert time.monotonic() < deadline, f"no blocking job started: {tree.describe(tree.scan())}"
        helpers: set[int] = set()
        for child in (children := tree.scan()):
            # The serial baseline's process may be a zombie by now: it has no cmdline to read.
            with contextlib.suppress(psutil.Error):
                if "multiprocessing" in " ".join(child.cmdline()):
                    helpers.add(child.pid)
        for child in children:
            with contextlib.suppress(psutil.Error):
                if child.ppid() in helpers:
                    jobs[child.pid] = child
        time.sleep(0.01)
    time.sleep(0.5)  # well into the freeze
    # The frame drawn just before it, and kept on screen all along: the job it waits for.
    assert re.search(r"w1 +#2 +sleep", pane.screen()), pane.screen()
    return tree, list(jobs.values())[-1]


@pytest.mark.parametrize("mode", BLOCKING_MODES, ids=str)
@pytest.mark.parametrize("way", ["q", "SIGTERM", "closed terminal"])
def test_quitting_during_a_freeze_quits_once_the_job_is_over(
    pane: TmuxPane, tmp_path: Path, mode: Mode, way: str
) -> None:
    """The loop cannot read q or run a signal handler while join() blocks it: both wait
    for the job, and then coredash quits at once, leaving nothing behind."""
    status_file = tmp_path / "status.json"
    command = coredash_command("--mode", mode.value, *FROZEN)
    tree, job = start_frozen(
        pane,
        keeping_status(status_file, command) if way == "closed terminal" else CHECKED.format(command=command),
    )
    coredash = tree.root
    if way == "q":
        pane.send("q")
    elif way == "SIGTERM":
        coredash.send_signal(signal.SIGTERM)
    else:
        pane.kill_session()
    gone = wait_exit(job, FREEZE_S + 5)
    assert gone is not None, "the job never ended"
    took = wait_exit(coredash, 10)
    assert took is not None, f"coredash still running 10 s after the job ended ({way})"
    assert took < EXIT_WITHIN, f"took {took:.2f} s to exit once the job was over ({way})"
    if way != "closed terminal":  # (the terminal's hangup reaches the job's process group too, and ends it)
        assert gone > 0.5, "the job was cut short"  # q and SIGTERM waited for the job to end
    assert_nothing_left(pane, tree)
    if way == "closed terminal":
        assert read_status(status_file) == 0
        return
    assert_terminal_restored(pane)


def test_more_signals_during_the_quit_do_not_undo_it(pane: TmuxPane) -> None:
    tree = start_loaded(pane, CHECKED.format(command=coredash_command("--mode", "process", *LOAD)))
    coredash = tree.root
    began = time.monotonic()
    # A supervisor or an impatient user repeating the signal while coredash shuts down.
    while wait_exit(coredash, 0.05) is None and time.monotonic() - began < 10:
        with contextlib.suppress(psutil.NoSuchProcess):
            coredash.send_signal(signal.SIGTERM)
    took = time.monotonic() - began
    assert took < EXIT_WITHIN, f"took {took:.2f} s to exit"
    assert_nothing_left(pane, tree)
    assert_terminal_restored(pane)


def test_a_stop_signal_while_starting_up_quits_cleanly(pane: TmuxPane) -> None:
    pane.run(CHECKED.format(command=coredash_command("--mode", "process", *LOAD)))
    tree = ProcessTree(pane.coredash())
    coredash = tree.root
    wait_for_the_forkserver(tree)
    coredash.send_signal(signal.SIGTERM)  # the engine is up, the dashboard not yet
    took = wait_exit(coredash, 10)
    assert took is not None, "a SIGTERM during start-up was lost"
    assert_nothing_left(pane, tree)
    assert_terminal_restored(pane)


BENCH = ("bench", "--task", "count_primes", "--size", "300000", "--jobs", "200", "--workers", "2")


@pytest.mark.parametrize(
    ("mode", "way"),
    [
        (Mode.THREAD, "ctrl+c"),
        (Mode.PROCESS, "ctrl+c"),
        (Mode.PROCESS_PER_JOB, "ctrl+c"),
        (Mode.PROCESS, "SIGTERM"),
        (Mode.PROCESS_PER_JOB, "closed terminal"),
        (Mode.BLOCKING, "ctrl+c"),  # read once the job in hand (0.25 s) is over
    ],
    ids=lambda value: value.value if isinstance(value, Mode) else value,
)
def test_stopping_bench_mid_batch_leaves_nothing(
    pane: TmuxPane, tmp_path: Path, mode: Mode, way: str
) -> None:
    command = coredash_command(*BENCH, "--no-serial", "--modes", mode.value)
    status_file = tmp_path / "status.json"
    pane.run(
        keeping_status(status_file, command) if way == "closed terminal" else CHECKED.format(command=command)
    )
    tree = ProcessTree(pane.coredash())
    bench = tree.root
    pane.wait_for(
        lambda screen: bool(tree.scan() or True) and f"{mode.value} x1" in screen and "/200" in screen,
        30,
        "the bench to run its first batch",
    )
    time.sleep(0.3)  # well into the batch
    tree.scan()
    if way == "ctrl+c":
        pane.send("C-c")
        status, message = 130, "coredash: interrupted"
    elif way == "SIGTERM":
        bench.send_signal(signal.SIGTERM)
        status, message = 143, "coredash: stopped by SIGTERM"
    else:
        pane.kill_session()
        status, message = 128 + signal.SIGHUP, ""
    took = wait_exit(bench, 10)
    assert took is not None and took < EXIT_WITHIN, f"exit took {took} s"
    assert_nothing_left(pane, tree)
    if way == "closed terminal":
        assert read_status(status_file) == status  # stopped like ctrl+c, not 120 from a failed flush
        return
    assert_terminal_restored(pane, status)
    assert message in pane.history()


def wait_for_the_forkserver(tree: ProcessTree) -> None:
    deadline = time.monotonic() + 20
    while not any("forkserver" in " ".join(child.cmdline()) for child in tree.scan()):
        assert time.monotonic() < deadline, "the engine never started"
        time.sleep(0.005)


def test_ctrl_c_over_and_over_stops_bench_without_a_traceback(pane: TmuxPane, tmp_path: Path) -> None:
    # ctrl+c reaches every process in the terminal's foreground group, the forkserver
    # (still importing the task modules) and pool workers being started included.
    status_file = tmp_path / "status.json"
    pane.run(keeping_status(status_file, coredash_command(*BENCH, "--no-serial", "--modes", "process")))
    tree = ProcessTree(pane.coredash())
    wait_for_the_forkserver(tree)
    began = time.monotonic()
    while wait_exit(tree.root, 0.03) is None and time.monotonic() - began < 10:
        pane.send("C-c")
        tree.scan()
    took = time.monotonic() - began
    assert took < EXIT_WITHIN, f"took {took:.2f} s to stop"
    assert read_status(status_file) == 130
    assert_nothing_left(pane, tree)
    time.sleep(0.3)  # a worker that outlived coredash would print now
    history = pane.history()
    assert "coredash: interrupted" in history
    assert "Traceback" not in history and "Error" not in history, history


def test_ctrl_c_while_the_dashboard_starts_stops_it_or_is_a_key(pane: TmuxPane) -> None:
    pane.run(CHECKED.format(command=coredash_command(*LOAD)))
    tree = ProcessTree(pane.coredash())
    wait_for_the_forkserver(tree)
    time.sleep(0.05)  # the forkserver is importing the task modules now
    pane.send("C-c")
    # Before the dashboard has the keyboard, ctrl+c stops coredash (exit 130); after,
    # it is a key, and Textual says how to quit. Either way: no traceback.
    screen = pane.wait_for(
        lambda screen: wait_exit(tree.root, 0) is not None or "ctrl+q to quit" in screen, 10, "an answer"
    )
    if wait_exit(tree.root, 0) is None:
        assert "Traceback" not in screen
        pane.send("q")
        assert wait_exit(tree.root, 10) is not None
        status = 0
    else:
        status = 130
        assert "coredash: interrupted" in pane.history()
    assert_nothing_left(pane, tree)
    assert_terminal_restored(pane, status)


def test_the_dashboard_runs_its_workers_nicer_than_itself(pane: TmuxPane) -> None:
    """--worker-nice defaults to 5 in the dashboard: under full load the UI still gets a core."""
    tree = start_loaded(pane, CHECKED.format(command=coredash_command("--mode", "process", *LOAD)))
    coredash = tree.root
    niceness = {process.pid: process.nice() for process in tree.scan() if process.is_running()}
    assert coredash.nice() == 0
    assert sum(1 for nice in niceness.values() if nice == 5) >= WORKERS, niceness
    pane.send("q")
    assert wait_exit(coredash, 10) is not None
    assert_nothing_left(pane, tree)


# --- interpreters: jobs in coredash's own process that no one can kill ---------------------------

needs_interpreters = pytest.mark.skipif(
    not REGISTRY.info("interpreters").available,
    reason=f"interpreters: {REGISTRY.info('interpreters').reason_unavailable}",
)
INTERP_TASKS = str(Path(__file__).parent / "scripts" / "interp_tasks.py")


@needs_interpreters
def test_quitting_mid_batch_stops_running_interpreter_jobs_at_their_checkpoint(pane: TmuxPane) -> None:
    load = ("--mode", "interpreters", "--task", "hang", "--size", "3600", "--jobs", "20", "--workers", "2")
    tree = start_loaded(pane, CHECKED.format(command=coredash_command(*load)))
    pane.send("q")
    took = wait_exit(tree.root, 10)
    assert took is not None and took < EXIT_WITHIN, f"exit took {took} s"
    assert_nothing_left(pane, tree)
    assert_terminal_restored(pane)
    assert "ignored the cancel request" not in pane.history()  # both stopped at a checkpoint


@needs_interpreters
def test_quitting_with_interpreter_jobs_that_never_checkpoint_is_bounded_and_says_so(pane: TmuxPane) -> None:
    """No one can stop such a job: coredash waits a moment, says so, and exits without it."""
    load = ("--mode", "interpreters", "--tasks", INTERP_TASKS, "--task", "stubborn", "--size", "3600")
    tree = start_loaded(
        pane, CHECKED.format(command=coredash_command(*load, "--jobs", "20", "--workers", "2"))
    )
    pane.send("q")
    took = wait_exit(tree.root, 10)
    # The engine's grace for cancelled jobs (1 s), then the quit path's for stray threads (0.8 s).
    assert took is not None and took < 4.0, f"exit took {took} s"
    assert_nothing_left(pane, tree)
    assert_terminal_restored(pane)
    # One or both of the two running jobs (the second may not have begun when q came).
    words = r"[12] thread job\(s\) ignored the cancel\s+request;\s+exiting\s+without them"
    said = re.search(words, pane.history())
    assert said is not None, pane.history()
