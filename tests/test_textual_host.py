"""The engine inside Textual's loop, and the engine's independence from any UI."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).parent / "scripts" / "engine_in_textual.py"


def run_scenario(name: str) -> dict[str, object]:
    # A fresh interpreter each time: multiprocessing's helper processes are
    # per-interpreter singletons, and the trap only bites when they start late.
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), name], capture_output=True, text=True, timeout=120, check=False
    )
    assert proc.returncode == 0, proc.stderr
    result = ast.literal_eval(proc.stdout.strip().splitlines()[-1])
    assert isinstance(result, dict)
    return result


def test_the_fds_to_keep_trap_is_real_here() -> None:
    result = run_scenario("control")
    assert result["stderr_fileno"] == -1  # Textual replaced sys.stderr
    assert "fds_to_keep" in str(result["control"])


@pytest.mark.parametrize("scenario", ["before", "inside"])
def test_engine_runs_every_mode_inside_a_textual_app(scenario: str) -> None:
    result = run_scenario(scenario)
    assert result["results"] == [("process", 3), ("process-per-job", 3), ("thread", 3)]


def test_engine_and_catalogue_import_without_any_ui() -> None:
    code = (
        "import sys, coredash.engine, coredash.taskapi, tasks.cpu, tasks.native, tasks.misc\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('textual', 'rich')))"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert proc.stdout.strip() == "[]"
