"""The README's two commands are the project's contract; CI must run the second verbatim."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def readme_commands() -> list[str]:
    text = (REPO / "README.md").read_text()
    return [block.strip() for block in re.findall(r"```bash\n(.*?)```", text, flags=re.S)][:2]


def test_readme_opens_with_install_and_launch_then_test() -> None:
    launch, test = readme_commands()
    assert "pip install" in launch and launch.endswith("coredash")
    assert "pip install" in test and "[dev]" in test and test.endswith("pytest")


def test_ci_runs_the_readme_test_command_verbatim() -> None:
    _, test = readme_commands()
    ci = (REPO / ".ci" / "run").read_text()
    assert test in ci.splitlines()
