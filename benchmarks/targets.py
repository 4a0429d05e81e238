"""Printing measured figures against their targets, the same way in every benchmark script.

Every figure is a ratio or a median taken side by side in one run (the machines
are shared and noisy), printed with its target and PASS, MISS or INFO (reported,
no target). ``TargetReport.exit_code()`` is 1 when any target was missed, so a
quiet machine can gate a release on it; CI does not run benchmarks.

    report = TargetReport("coarse jobs")
    report.check("coredash process / fastest peer", 1.01, "<=", 1.02, unit="×")
    report.info("jobs/s, thread mode", 41234, unit="jobs/s")
    report.print()
"""

from __future__ import annotations

import json
import operator
import platform
import statistics
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import psutil

_COMPARE: dict[str, Callable[[float, float], bool]] = {
    "<=": operator.le,
    ">=": operator.ge,
    "<": operator.lt,
    ">": operator.gt,
}


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def machine() -> str:
    """One line that says where the figures came from."""
    freq = psutil.cpu_freq()
    mhz = f", {freq.max or freq.current:.0f} MHz" if freq else ""
    return (
        f"{platform.system()} {platform.machine()}, {psutil.cpu_count(logical=True)} logical cores"
        f"{mhz}, {psutil.virtual_memory().total / 2**30:.0f} GiB, Python {platform.python_version()}"
    )


@dataclass
class Figure:
    name: str
    value: float
    unit: str = ""
    target: str | None = None  # e.g. "<= 1.02"; None: reported, not judged
    passed: bool | None = None
    note: str = ""

    @property
    def verdict(self) -> str:
        if self.passed is None:
            return "INFO"
        return "PASS" if self.passed else "MISS"


@dataclass
class TargetReport:
    title: str
    figures: list[Figure] = field(default_factory=list)

    def check(
        self, name: str, value: float, op: str, target: float, *, unit: str = "", note: str = ""
    ) -> Figure:
        figure = Figure(name, value, unit, f"{op} {target:g}{unit}", _COMPARE[op](value, target), note)
        self.figures.append(figure)
        return figure

    def info(self, name: str, value: float, *, unit: str = "", note: str = "") -> Figure:
        figure = Figure(name, value, unit, None, None, note)
        self.figures.append(figure)
        return figure

    def print(self) -> None:
        print(f"\n== {self.title}  ({machine()})")
        width = max((len(f.name) for f in self.figures), default=10)
        for f in self.figures:
            value = f"{f.value:,.3f}".rstrip("0").rstrip(".") + f.unit
            target = f"target {f.target}" if f.target else ""
            note = f"  ({f.note})" if f.note else ""
            print(f"  {f.verdict:<4}  {f.name:<{width}}  {value:>14}  {target:<16}{note}")

    def missed(self) -> list[Figure]:
        return [f for f in self.figures if f.passed is False]

    def exit_code(self) -> int:
        return 1 if self.missed() else 0

    def finish(self, json_path: Path | None = None) -> int:
        """Print, write the JSON if asked, and return the exit status (1 on a MISS)."""
        self.print()
        if json_path is not None:
            self.write_json(json_path)
        return self.exit_code()

    def write_json(self, path: Path) -> None:
        data = {"title": self.title, "machine": machine(), "figures": [asdict(f) for f in self.figures]}
        path.write_text(json.dumps(data, indent=2) + "\n")
