"""The command line, run as a user runs it: a real subprocess each time."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from coredash.units import format_ratio, format_seconds

REPO = Path(__file__).resolve().parent.parent


def coredash(*args: str, timeout: float = 120, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "200", "NO_COLOR": "1"}
    return subprocess.run(
        [sys.executable, "-m", "coredash", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=cwd,
        env=env,
        check=False,
    )


def test_tasks_lists_the_catalogue() -> None:
    proc = coredash("tasks")
    assert proc.returncode == 0, proc.stderr
    for name in (
        "count_primes",
        "mandelbrot",
        "sha256",
        "zlib_compress",
        "sleep",
        "tiny",
        "payload",
        "fail",
        "crash",
    ):
        assert name in proc.stdout
    assert "released" in proc.stdout and "held" in proc.stdout


def test_tasks_includes_a_user_module(tmp_path: Path) -> None:
    module = tmp_path / "extra.py"
    module.write_text("def cube(n: int = 3) -> int:\n    '''Cube a number.'''\n    return n ** 3\n")
    proc = coredash("tasks", "--tasks", str(module))
    assert proc.returncode == 0, proc.stderr
    assert "cube" in proc.stdout and "Cube a number." in proc.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["bench", "--task", "nope"], "unknown task 'nope'"),
        (["bench", "--task", "tiny", "--jobs", "0"], "must be at least 1"),
        (["bench", "--task", "tiny", "--jobs", "-3"], "must be at least 1"),
        (["bench", "--task", "tiny", "--size", "zero"], "expected a whole number"),
        (["bench", "--task", "tiny", "--workers", "100000"], "too many"),
        (["bench", "--task", "tiny", "--workers", "0"], "must be at least 1"),
        (["bench", "--task", "tiny", "--modes", "fibers"], "unknown mode 'fibers'"),
        (["bench", "--task", "tiny", "--repeat", "0"], "must be at least 1"),
        (["bench", "--task", "tiny", "--json", "/no/such/folder/out.json"], "does not exist"),
        (["bench"], "required: --task"),
        (["bench", "--task", "tiny", "--tasks", "/no/such/file.py"], "task file not found"),
        (["--workers", "-1"], "must be at least 1"),
        (["--refresh", "1000"], "refresh rate"),
        (["--task", "nope"], "unknown task 'nope'"),
        (["--mode", "fibers"], "unknown mode"),
        (["frobnicate"], "unknown command 'frobnicate'"),
        (["--tasks", "x.py", "tasks"], "put options after the command: coredash tasks"),
        (["--tasks", "/tmp"], "is a folder"),
        (["bench", "--task", "payload", "--size", "100000"], "over its limit of 2,048"),
        (["--task", "payload", "--size", "100000"], "over its limit"),
        (["--bogus"], "unrecognized arguments: --bogus"),
    ],
)
def test_bad_arguments_give_one_line_and_exit_2(args: list[str], message: str) -> None:
    proc = coredash(*args)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("coredash: error: ")
    assert message in lines[0]
    assert "Traceback" not in proc.stderr + proc.stdout


def test_a_broken_task_file_is_a_clear_error(tmp_path: Path) -> None:
    module = tmp_path / "broken.py"
    module.write_text("def f(n: int = 1)\n    return n\n")
    proc = coredash("tasks", "--tasks", str(module))
    assert proc.returncode == 2
    assert proc.stderr.startswith("coredash: error: ") and "syntax error" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def test_bench_table_and_json_agree(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    proc = coredash(
        "bench",
        "--task",
        "tiny",
        "--jobs",
        "6",
        "--modes",
        "thread,process",
        "--workers",
        "2",
        "--json",
        str(out),
    )
    assert proc.returncode == 0, proc.stderr
    data = json.loads(out.read_text())
    assert data["machine"]["usable_cores"] >= 1
    assert data["machine"]["python"] == ".".join(map(str, sys.version_info[:3]))
    runs = data["runs"]
    assert [(run["mode"], run["workers"]) for run in runs] == [
        ("thread", 1),
        ("thread", 2),
        ("process", 1),
        ("process", 2),
    ]
    for run in runs:
        for key in (
            "task",
            "mode",
            "workers",
            "jobs",
            "makespan_s",
            "speedup",
            "efficiency",
            "parallelism",
            "mean_wait_s",
            "mean_overhead_s",
        ):
            assert key in run, key
        assert run["task"] == "tiny" and run["jobs"] == 6 and run["done"] == 6
        cores = data["machine"]["usable_cores"]
        assert run["efficiency"] == pytest.approx(run["speedup"] / min(run["workers"], cores))
        row = next(
            line.split()
            for line in proc.stdout.splitlines()
            if line.split()[:2] == [run["mode"], str(run["workers"])]
        )
        text = " ".join(row)
        assert format_seconds(run["makespan_s"]) in text
        assert format_ratio(run["speedup"]) in text
        assert f"{run['parallelism']:.2f}" in text
    # The 1-worker run is every mode's own baseline.
    assert runs[0]["speedup"] == 1.0 and runs[2]["speedup"] == 1.0


def test_bench_reports_failures_instead_of_crashing() -> None:
    proc = coredash(
        "bench", "--task", "crash", "--jobs", "2", "--modes", "process", "--workers", "1", "--no-serial"
    )
    assert proc.returncode == 0, proc.stderr
    row = next(line for line in proc.stdout.splitlines() if line.split()[:1] == ["process"])
    assert row.split()[-1] == "2"  # both jobs failed, and the table says so
    assert "1.00×" not in row  # and no speedup is claimed for work that did not happen


def test_python_too_old_gets_one_sentence() -> None:
    old = next(
        (
            path
            for path in sorted(Path(os.path.expanduser("~/.pyenv/versions")).glob("3.1[0]*/bin/python"))
            if path.exists()
        ),
        None,
    )
    if old is None:
        pytest.skip("no Python 3.10 on this machine")
    proc = subprocess.run([str(old), "-m", "coredash"], capture_output=True, text=True, cwd=REPO, check=False)
    assert proc.returncode == 1
    assert proc.stderr.strip() == "coredash needs Python 3.11 or newer, but this is Python 3.10."


def test_a_plain_task_file_skips_helpers_and_import_chatter(tmp_path: Path) -> None:
    module = tmp_path / "chatty.py"
    module.write_text(
        "print('IMPORT-NOISE')\n"
        "def setup():\n    return 1\n"
        "def work(n: int = 3) -> int:\n    'Does work.'\n    return n\n"
    )
    proc = coredash("tasks", "--tasks", str(module))
    assert proc.returncode == 0, proc.stderr
    assert "work" in proc.stdout
    assert "setup" not in proc.stdout  # no parameters, so no size knob: a helper, not a job
    assert "IMPORT-NOISE" not in proc.stdout + proc.stderr
