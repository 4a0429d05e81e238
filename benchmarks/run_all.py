"""Run every benchmark that has targets, then one table of every PASS and MISS.

    .venv/bin/python benchmarks/run_all.py [--quick] [--only NAME ...] [--timeout SECONDS]

Each script runs as its own subprocess (from the repository root, with this
interpreter), its output shown as it comes. ``--quick`` is passed to the scripts
that accept it, and ``--json`` to a temporary file that each script fills with
its ``TargetReport``; the figures are collected from there (a script without
``--json`` support is read from its printed PASS/MISS lines instead). The
temporary folder is removed at the end. A script that is not there is reported
as "not found" and the others still run.

Exit status: 1 if any target was missed or a script failed or timed out, else 0.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent

# The benchmark scripts that check targets (issue 4), in the order they run.
SCRIPTS = (
    "peers.py",
    "process_start.py",
    "executor_scaling.py",
    "dashboard_vs_btop.py",
    "render_scaling.py",
    "responsiveness.py",
    "load_100k.py",
)

# PASS/MISS lines as TargetReport.print writes them, and executor_scaling.py's "ok"/"MISS".
_VERDICT_LINE = re.compile(r"^\s*(PASS|MISS|ok)\s+(\S.*?)\s*$")


@dataclass
class Row:
    script: str
    verdict: str  # PASS, MISS, or a script status: not found, failed, timed out
    name: str = ""
    value: str = ""
    target: str = ""


@dataclass
class Outcome:
    script: str
    status: str = "ran"
    returncode: int | None = None
    seconds: float = 0.0
    rows: list[Row] = field(default_factory=list)


def supported_flags(script: Path) -> set[str]:
    """Which of --quick and --json the script's --help mentions."""
    try:
        shown = subprocess.run(
            [sys.executable, str(script), "--help"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        ).stdout
    except (OSError, subprocess.TimeoutExpired):
        return set()
    return {flag for flag in ("--quick", "--json") if flag in shown}


def rows_from_json(script: str, path: Path) -> list[Row] | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    reports = data if isinstance(data, list) else [data]
    rows: list[Row] = []
    for report in reports:
        if not isinstance(report, dict) or not isinstance(report.get("figures"), list):
            return None  # not a TargetReport: fall back to the printed lines
        for figure in report["figures"]:
            passed = figure.get("passed")
            if passed is None:
                continue  # INFO: reported by the script, not judged
            value = figure.get("value")
            shown = f"{value:,.3f}".rstrip("0").rstrip(".") if isinstance(value, int | float) else str(value)
            rows.append(
                Row(
                    script,
                    "PASS" if passed else "MISS",
                    str(figure.get("name", "")),
                    shown + str(figure.get("unit", "")),
                    str(figure.get("target") or ""),
                )
            )
    return rows


def rows_from_output(script: str, lines: list[str]) -> list[Row]:
    rows = []
    for line in lines:
        match = _VERDICT_LINE.match(line)
        if match:
            verdict = "PASS" if match.group(1) == "ok" else match.group(1)
            rows.append(Row(script, verdict, match.group(2)))
    return rows


def run_script(name: str, quick: bool, timeout: float, json_dir: Path) -> Outcome:
    outcome = Outcome(name)
    script = HERE / name
    if not script.is_file():
        outcome.status = "not found"
        print(f"\n##### {name}: not found (benchmarks/{name} does not exist yet)", flush=True)
        return outcome
    flags = supported_flags(script)
    command = [sys.executable, str(script)]
    if quick and "--quick" in flags:
        command.append("--quick")
    json_path = json_dir / f"{script.stem}.json"
    if "--json" in flags:
        command += ["--json", str(json_path)]
    print(f"\n##### {name}: {' '.join(command[1:])}", flush=True)
    lines: list[str] = []
    start = time.monotonic()
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    # Its own session (process group): a script that overruns is ended with every
    # process it started (pool workers, dask nannies, forkservers), not just itself.
    process = subprocess.Popen(
        command,
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    assert process.stdout is not None
    reader = threading.Thread(target=_echo, args=(process.stdout, lines), daemon=True)
    reader.start()
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        outcome.status = f"timed out after {timeout:.0f} s"
    except KeyboardInterrupt:
        _end_group(process)
        raise
    finally:
        # Leftovers of the script still holding its output (or all of it, on a
        # timeout) are ended after a grace period, so the output reaches its end.
        reader.join(timeout=0 if outcome.status != "ran" else 10)
        if reader.is_alive() or process.poll() is None:
            _end_group(process)
        reader.join(timeout=10)
        process.stdout.close()
    outcome.seconds = time.monotonic() - start
    outcome.returncode = process.returncode
    found = rows_from_json(name, json_path) if json_path.exists() else None
    outcome.rows = found if found is not None else rows_from_output(name, lines)
    if outcome.status == "ran" and process.returncode not in (0, 1):
        outcome.status = f"failed (exit code {process.returncode})"
    elif (
        outcome.status == "ran"
        and process.returncode == 1
        and not any(row.verdict == "MISS" for row in outcome.rows)
    ):
        outcome.status = "failed (exit code 1, no MISS line)"
    return outcome


def _echo(stream: IO[str], lines: list[str]) -> None:
    for line in stream:
        sys.stdout.write(line)
        sys.stdout.flush()
        lines.append(line.rstrip("\n"))


def _end_group(process: subprocess.Popen[str]) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()


def print_summary(outcomes: list[Outcome]) -> int:
    rows = [row for outcome in outcomes for row in outcome.rows]
    for outcome in outcomes:
        if outcome.status != "ran":
            verdict = next(
                v for v in ("NOT FOUND", "TIMED OUT", "FAILED") if outcome.status.upper().startswith(v)
            )
            rows.append(Row(outcome.script, verdict, outcome.status))
    print("\n##### summary: every target, measured on this machine now")
    widths = [max([len(header), *(len(getattr(r, attr)) for r in rows)]) for header, attr in _COLUMNS]
    print("  " + "  ".join(header.ljust(w) for (header, _), w in zip(_COLUMNS, widths, strict=True)))
    for row in rows:
        cells = [getattr(row, attr) for _, attr in _COLUMNS]
        print("  " + "  ".join(cell.ljust(w) for cell, w in zip(cells, widths, strict=True)).rstrip())
    for outcome in outcomes:
        if outcome.status == "ran":
            print(f"  {outcome.script}: ran in {outcome.seconds:.0f} s, exit code {outcome.returncode}")
    missed = sum(row.verdict == "MISS" for row in rows)
    broken = [o.script for o in outcomes if o.status not in ("ran", "not found")]
    absent = [o.script for o in outcomes if o.status == "not found"]
    passed = sum(row.verdict == "PASS" for row in rows)
    print(
        f"\n  {passed} PASS, {missed} MISS"
        + (f", failed: {', '.join(broken)}" if broken else "")
        + (f", not found: {', '.join(absent)}" if absent else "")
    )
    return 1 if missed or broken else 0


_COLUMNS = (
    ("script", "script"),
    ("verdict", "verdict"),
    ("figure", "name"),
    ("value", "value"),
    ("target", "target"),
)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="pass --quick to every script that has it")
    parser.add_argument(
        "--only", action="append", metavar="NAME", help="run only this script (repeatable), e.g. peers"
    )
    parser.add_argument("--timeout", type=float, default=1800, help="seconds per script before it is killed")
    args = parser.parse_args()
    scripts = list(SCRIPTS)
    if args.only:
        wanted = [name if name.endswith(".py") else f"{name}.py" for name in args.only]
        unknown = [name for name in wanted if name not in SCRIPTS]
        if unknown:
            parser.error(f"unknown benchmark {', '.join(unknown)}; choose from {', '.join(SCRIPTS)}")
        scripts = wanted
    with tempfile.TemporaryDirectory(prefix="coredash-bench-") as json_dir:
        try:
            outcomes = [run_script(name, args.quick, args.timeout, Path(json_dir)) for name in scripts]
        except KeyboardInterrupt:
            print("\ninterrupted", file=sys.stderr)
            return 130
    return print_summary(outcomes)


if __name__ == "__main__":
    sys.exit(main())
