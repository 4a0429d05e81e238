"""Bad input: one clear line and exit 2 for the command line, an inline message in the
picker, a notice for a tiny terminal, and a working dashboard whatever the locale or
colour settings; never a traceback, never a hang."""

from __future__ import annotations

import re
import subprocess
import sys
import time

import pytest
from textual.widgets import Input, Static

from coredash.app import CoredashApp
from coredash.cli import run
from coredash.engine import Engine, JobState
from coredash.screens.picker import JobPickerScreen
from tests.terminal import TmuxPane, coredash_command, wait_exit

HUGE = "9" * 30
EVERY_OPTION = [
    # the dashboard
    (["--workers", "abc"], "--workers: expected a whole number"),
    (["--workers", "0"], "--workers: must be at least 1"),
    (["--workers", "-1"], "--workers: must be at least 1"),
    (["--workers", HUGE], "workers is too many"),
    (["--workers", "2.5"], "--workers: expected a whole number"),
    (["--workers"], "--workers: expected one argument"),
    (["--jobs", "abc"], "--jobs: expected a whole number"),
    (["--jobs", "0"], "--jobs: must be at least 1"),
    (["--jobs", "-1"], "--jobs: must be at least 1"),
    (["--jobs", HUGE], "--jobs: at most 100,000 jobs per batch"),
    (["--size", "abc"], "--size: expected a whole number"),
    (["--size", "0"], "--size: must be at least 1"),
    (["--size", "-1"], "--size: must be at least 1"),
    (["--size", HUGE], "--size: at most 1,000,000,000,000"),
    (["--size", "9" * 5000], "--size: expected a whole number"),  # past int()'s digit limit
    (["--refresh", "abc"], "--refresh: expected a number"),
    (["--refresh", "0"], "refresh rate must be between"),
    (["--refresh", "-1"], "refresh rate must be between"),
    (["--refresh", HUGE], "refresh rate must be between"),
    (["--refresh", "nan"], "refresh rate must be between"),
    (["--mode", "fibers"], "unknown mode 'fibers'"),
    (["--mode", ""], "unknown mode ''"),
    (["--task", "nope"], "unknown task 'nope'"),
    (["--task", ""], "unknown task ''"),
    (["--task", "sleep", "--size", str(10**13)], "--size: at most"),
    (["--task", "payload", "--size", "100000"], "over its limit"),
    (["--job-timeout", "abc"], "--job-timeout: expected a number of seconds"),
    (["--job-timeout", "0"], "--job-timeout: must be above 0"),
    (["--job-timeout", "-1"], "--job-timeout: must be above 0"),
    (["--job-timeout", HUGE], "--job-timeout: must be above 0 and at most"),
    (["--job-timeout", "nan"], "--job-timeout: must be above 0"),
    (["--memory-limit", "abc"], "--memory-limit: expected a whole number"),
    (["--memory-limit", "0"], "--memory-limit: must be at least"),
    (["--memory-limit", "-5"], "--memory-limit: must be at least"),
    (["--memory-limit", "99999999999999"], "--memory-limit: must be at most"),
    (["--chunk", "0"], "--chunk: must be at least 1"),
    (["--chunk", "-4"], "--chunk: must be at least 1"),
    (["--chunk", HUGE], "--chunk: at most 1,000 jobs per call"),
    (["--chunk", "9" * 5000], "--chunk: expected auto, off or a whole number"),  # past int()'s digits
    (["--chunk", "some"], "--chunk: expected auto, off or a whole number"),
    (["--chunk", "2.5"], "--chunk: expected auto, off or a whole number"),
    (["--chunk", ""], "--chunk: expected auto, off or a whole number"),
    (["--chunk"], "--chunk: expected one argument"),
    (["--start-method", "teleport"], "--start-method: invalid choice"),
    (["--tasks", "/no/such/file.py"], "task file not found"),
    (["--tasks", "/"], "is a folder"),
    (["--bogus"], "unrecognized arguments: --bogus"),
    (["--record", "/dev/null"], "cannot record to /dev/null: it is not a folder"),
    (["--record", "/proc/coredash-records"], "cannot record to /proc/coredash-records: "),
    (["--record"], "--record: expected one argument"),
    # coredash bench
    (["bench"], "required: --task"),
    (["bench", "--task", "nope"], "unknown task 'nope'"),
    (["bench", "--task", "tiny", "--jobs", "0"], "--jobs: must be at least 1"),
    (["bench", "--task", "tiny", "--jobs", HUGE], "--jobs: at most"),
    (["bench", "--task", "tiny", "--size", "-3"], "--size: must be at least 1"),
    (["bench", "--task", "tiny", "--size", HUGE], "--size: at most"),
    (["bench", "--task", "tiny", "--modes", "fibers"], "unknown mode 'fibers'"),
    (["bench", "--task", "tiny", "--modes", ","], "give at least one mode"),
    (["bench", "--task", "tiny", "--workers", "0"], "--workers: must be at least 1"),
    (["bench", "--task", "tiny", "--workers", "a,b"], "--workers: expected a whole number"),
    (["bench", "--task", "tiny", "--workers", ","], "give at least one worker count"),
    (["bench", "--task", "tiny", "--workers", f"1,{HUGE}"], "workers is too many"),
    (["bench", "--task", "tiny", "--repeat", "0"], "--repeat: must be at least 1"),
    (["bench", "--task", "tiny", "--repeat", "x"], "--repeat: expected a whole number"),
    (["bench", "--task", "tiny", "--json", "/no/such/folder/out.json"], "does not exist"),
    (["bench", "--task", "tiny", "--job-timeout", "0"], "--job-timeout: must be above 0"),
    (["bench", "--task", "tiny", "--memory-limit", "-1"], "--memory-limit: must be at least"),
    (["bench", "--task", "tiny", "--chunk", "0"], "--chunk: must be at least 1"),
    (["bench", "--task", "tiny", "--chunk", HUGE], "--chunk: at most 1,000"),
    (["bench", "--task", "tiny", "--chunk", "often"], "--chunk: expected auto, off or a whole number"),
    (["bench", "--task", "tiny", "--record", "/dev/null"], "cannot record to /dev/null: it is not a folder"),
    (["bench", "--task", "tiny", "--record", "/proc/coredash-records"], "cannot record to /proc/"),
    # coredash tasks
    (["tasks", "--tasks", "/no/such/file.py"], "task file not found"),
    (["tasks", "--start-method", "x"], "--start-method: invalid choice"),
    (["tasks", "--bogus"], "unrecognized arguments: --bogus"),
    (["frobnicate"], "unknown command 'frobnicate'"),
]


@pytest.mark.parametrize(("args", "message"), EVERY_OPTION, ids=[" ".join(a)[:60] for a, _ in EVERY_OPTION])
def test_every_bad_option_gets_one_line_and_exit_2(
    args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # In-process (cli.run is all that `coredash` runs after the version check): about
    # 60 cases in well under a second. test_cli runs a few of the same as subprocesses.
    assert run(args) == 2
    out, err = capsys.readouterr()
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert len(lines[0]) < 250, lines[0]  # one readable line, not the input echoed back whole
    assert lines[0].startswith("coredash: error: ")
    assert message in lines[0], lines[0]
    assert out == ""


# --- the picker ------------------------------------------------------------------


async def test_picker_garbage_gets_an_inline_message_and_submits_nothing() -> None:
    app = CoredashApp(Engine(workers=1), task="sleep", size=10, jobs=2, refresh=10)
    app.auto_baseline = False
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("j")
        await pilot.pause(0.1)
        assert isinstance(app.screen, JobPickerScreen)
        picker = app.screen
        size, jobs = picker.query_one("#size", Input), picker.query_one("#jobs", Input)
        error = picker.query_one("#error", Static)

        size.focus()
        size.value = ""
        await pilot.press(*"x-1.5e3 ;'")  # letters, signs, dots, spaces: the field refuses them
        assert size.value == "153"
        for garbage_size, garbage_jobs, message in [
            ("", "2", "size: enter a whole number"),
            ("_,_", "2", "size: enter a whole number"),
            ("0", "2", "size: must be at least 1"),
            ("000", "2", "size: must be at least 1"),
            (HUGE, "2", "size: at most"),
            ("9" * 5000, "2", "size: at most"),  # past int()'s digit limit: no 5,000-digit message
            ("10", ",", "jobs: enter a whole number"),
            ("10", "0", "jobs: must be at least 1"),
            ("10", HUGE, "jobs: at most"),
        ]:
            size.value, jobs.value = garbage_size, garbage_jobs
            for key in ("ctrl+s", "enter"):  # save, and run
                await pilot.press(key)
                await pilot.pause(0.02)
                assert isinstance(app.screen, JobPickerScreen), (garbage_size, garbage_jobs)
                assert message in str(error.render()), (garbage_size, garbage_jobs, str(error.render()))
        assert not app.engine.snapshot().batches  # nothing was submitted
        assert (app.task_size, app.task_jobs) == (10, 2)  # nor changed
        size.value, jobs.value = "5", "3"  # and it still takes good input
        await pilot.press("enter")
        await pilot.pause(0.1)
        assert not isinstance(app.screen, JobPickerScreen)
        assert len(app.engine.snapshot().batches) == 1


# --- a tiny terminal -----------------------------------------------------------------


async def test_resizing_to_20x5_and_back_while_jobs_run() -> None:
    app = CoredashApp(Engine(workers=2), task="sleep", size=150, jobs=24, refresh=10)
    app.auto_baseline = False
    async with app.run_test(size=(160, 45)) as pilot:
        await pilot.press("r")
        batch = app.engine.snapshot().batches[-1]
        notice = app.query_one("#too-small", Static)
        main = app.query_one("#main")
        assert not notice.display or notice.region.area == 0
        for size in ((20, 5), (79, 23), (20, 5)):
            await pilot.resize_terminal(*size)
            await pilot.pause(0.1)
            assert notice.region.area > 0 and main.region.area == 0, size
            assert f"{size[0]}×{size[1]}" in str(notice.render())
            done = app.engine.snapshot().counts.get(JobState.DONE, 0)
            await _until(pilot, lambda done=done: app.engine.snapshot().counts.get(JobState.DONE, 0) > done)
        await pilot.resize_terminal(160, 45)
        await pilot.pause(0.1)
        assert main.region.area > 0 and notice.region.area == 0
        await _until(pilot, lambda: batch.finished)
        assert batch.summary is not None and batch.summary.done == 24


async def _until(pilot, condition, timeout: float = 20) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        await pilot.pause(0.05)


# --- locale, colour, terminal type ------------------------------------------------------


@pytest.mark.parametrize(
    "env",
    ["NO_COLOR=1", "LANG=C LC_ALL=C", "-u LANG -u LC_ALL -u PYTHONIOENCODING LC_ALL=POSIX"],
    ids=["NO_COLOR", "C-locale", "POSIX-locale"],
)
def test_the_dashboard_runs_whatever_the_locale_and_colours(pane: TmuxPane, env: str) -> None:
    args = ("--task", "count_primes", "--size", "50000", "--jobs", "6")
    pane.run(f"env {env} {coredash_command(*args)}; echo EXITED $?")
    coredash = pane.coredash()
    pane.wait_for("Threads vs processes", 30, "the dashboard")
    pane.send("r")
    pane.wait_for(lambda screen: "batch 1" in screen and "6/6" in screen, 30, "the batch to finish")
    for key in ("j", "Escape", "question_mark", "Escape", "Tab", "Enter", "Escape"):
        pane.send(key if key != "question_mark" else "?")
        time.sleep(0.15)
        assert "Traceback" not in pane.screen()
    # Back on the dashboard before q: on a busy machine the help can take a while to
    # compose, and an escape sent before it is up closes nothing (q would close it).
    for _ in range(10):
        if "Run" in pane.screen().rstrip().splitlines()[-1]:  # the dashboard's footer
            break
        pane.send("Escape")
        time.sleep(0.5)
    pane.send("q")
    assert wait_exit(coredash, 10) is not None
    screen = pane.wait_for(lambda screen: re.search(r"^EXITED \d", screen, re.MULTILINE) is not None, 5)
    assert "EXITED 0" in screen
    assert "Traceback" not in pane.history()


def test_a_dumb_terminal_gets_one_line_instead_of_garbage() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "coredash"],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "/usr/bin:/bin", "TERM": "dumb"},
        check=False,
    )
    assert proc.returncode == 2
    assert proc.stdout == ""
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "TERM=dumb" in lines[0], proc.stderr
