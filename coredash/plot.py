"""A small line chart drawn with braille dots into rich Text: ``bench --plot`` and the sweep screen.

Each character cell holds 2 × 4 dots, so a 60 × 14 cell chart has 120 × 56
points of resolution with no dependency beyond rich, and the same Text renders
in a terminal, a pipe and a Textual widget alike.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass

from rich.text import Text

from coredash.engine.amdahl import ideal
from coredash.engine.sweep import SweepCurve

# Braille dot bits by (column, row) inside a cell (Unicode's own numbering).
_DOTS = ((0x01, 0x02, 0x04, 0x40), (0x08, 0x10, 0x20, 0x80))
MODE_STYLES = ("cyan", "magenta", "green", "yellow", "blue", "red")


@dataclass(frozen=True)
class Series:
    label: str
    points: Sequence[tuple[float, float]]
    style: str
    dashed: bool = False
    marker: str | None = None  # drawn over each point, a whole cell


class Canvas:
    def __init__(self, width: int, height: int, x_range: tuple[float, float], y_max: float) -> None:
        self.width, self.height = width, height
        self.x_low, self.x_high = x_range
        self.y_max = y_max
        self.bits = [[0] * width for _ in range(height)]
        self.styles: list[list[str | None]] = [[None] * width for _ in range(height)]
        self.marks: dict[tuple[int, int], tuple[str, str]] = {}

    def dot_of(self, x: float, y: float) -> tuple[int, int]:
        span = (self.x_high - self.x_low) or 1.0
        px = round((x - self.x_low) / span * (2 * self.width - 1))
        py = round((1 - min(max(y, 0.0), self.y_max) / self.y_max) * (4 * self.height - 1))
        return px, py

    def dot(self, px: int, py: int, style: str) -> None:
        if 0 <= px < 2 * self.width and 0 <= py < 4 * self.height:
            row, col = py // 4, px // 2
            self.bits[row][col] |= _DOTS[px % 2][py % 4]
            self.styles[row][col] = style

    def line(self, series: Series) -> None:
        dots = [self.dot_of(x, y) for x, y in series.points]
        count = 0
        for (x0, y0), (x1, y1) in itertools.pairwise(dots):
            steps = max(abs(x1 - x0), abs(y1 - y0), 1)
            for step in range(steps + 1):
                count += 1
                if series.dashed and (count // 3) % 2:
                    continue
                t = step / steps
                self.dot(round(x0 + (x1 - x0) * t), round(y0 + (y1 - y0) * t), series.style)
        if series.marker is not None:
            for px, py in dots:
                self.marks[(py // 4, px // 2)] = (series.marker, series.style)

    def rows(self) -> list[Text]:
        rows = []
        for r in range(self.height):
            row = Text()
            for c in range(self.width):
                mark = self.marks.get((r, c))
                if mark is not None:
                    row.append(mark[0], style=f"bold {mark[1]}")
                elif self.bits[r][c]:
                    row.append(chr(0x2800 + self.bits[r][c]), style=self.styles[r][c] or "")
                else:
                    row.append(" ")
            rows.append(row)
        return rows


def _ticks(values: Sequence[int], width: int, x_range: tuple[float, float]) -> Text:
    """Worker counts under the axis, as many as fit without touching."""
    line = [" "] * (width + 4)
    low, high = x_range
    last_end = -2
    for value in values:
        col = round((value - low) / ((high - low) or 1.0) * (2 * width - 1)) // 2  # as Canvas.dot_of
        label = str(value)
        start = max(col - len(label) // 2, 0)
        if start <= last_end + 1 or start + len(label) > len(line):
            continue
        line[start : start + len(label)] = label
        last_end = start + len(label) - 1
    return Text("".join(line).rstrip())


def render_chart(
    series: Sequence[Series], x_values: Sequence[int], width: int = 60, height: int = 14
) -> Text:
    """Speedup (y, from 0) against workers (x): the series drawn in order, later ones on top."""
    x_range = (float(min(x_values)), float(max(x_values)))
    top = max((y for s in series for _, y in s.points), default=1.0)
    y_max = max(math.ceil(top * 1.05), 1)
    canvas = Canvas(width, height, x_range, float(y_max))
    for s in series:
        canvas.line(s)
    # Whole-number speedups on the axis, each on the row its dots fall in.
    step = max(math.ceil(y_max / (height // 2 or 1)), 1)
    labels: dict[int, str] = {}
    for value in range(0, y_max + 1, step):
        labels.setdefault(canvas.dot_of(x_range[0], value)[1] // 4, f"{value}×")
    label_width = max(len(label) for label in labels.values())
    out = Text()
    for r, row in enumerate(canvas.rows()):
        label = labels.get(r)
        out.append((label or "").rjust(label_width), style="dim")
        out.append(" ┤" if label else " │", style="dim")
        out.append_text(row)
        out.append("\n")
    out.append(" " * label_width + " └" + "─" * width + "\n", style="dim")
    out.append(" " * (label_width + 2))
    out.append_text(_ticks(x_values, width, x_range))
    out.append("  workers", style="dim")
    return out


def sweep_chart(curves: Sequence[SweepCurve], cores: int, width: int = 60, height: int = 14) -> Text:
    """Speedup against workers per mode (●), its Amdahl fit (dashed) and the ideal line (dim)."""
    x_values = sorted({p.workers for curve in curves for p in curve.points} | {1})
    if len(x_values) < 2:
        return Text("no scaling chart: measure at least two worker counts", style="dim")
    high = x_values[-1]
    samples = sorted({1 + (high - 1) * i / (2 * width) for i in range(2 * width + 1)} | {float(cores)})
    series = [Series("ideal", [(x, ideal(x, cores)) for x in samples if x <= high], "dim white")]
    legend = Text()
    legend.append("── ideal (one core per worker up to ", style="dim")
    legend.append(f"{cores} cores, flat after)", style="dim")
    for index, curve in enumerate(curves):
        style = MODE_STYLES[index % len(MODE_STYLES)]
        if curve.fit is not None:
            fit = curve.fit
            series.append(
                Series(f"{curve.mode} fit", [(x, fit.speedup(x)) for x in samples], style, dashed=True)
            )
        points = [(float(p.workers), p.speedup) for p in curve.points]
        series.append(Series(curve.mode, points, style, marker="●"))
        legend.append("\n")
        legend.append(f"● {curve.mode}", style=f"bold {style}")
        if curve.fit is None:
            legend.append(": no fit (needs a point with 2 or more workers)", style="dim")
            continue
        legend.append(f"  ╌ Amdahl {curve.fit.text} (residual {curve.fit.residual:.2f})")
        if curve.diagnosis is not None and curve.diagnosis.dominant is not None:
            legend.append(f"\n    {curve.diagnosis.text}", style="dim")
    out = Text("speedup vs 1 worker\n", style="bold")
    out.append_text(render_chart(series, x_values, width, height))
    out.append("\n")
    out.append_text(legend)
    return out
