"""Per-core load bars, their last minute of history, and who runs on each core.

One widget draws every core (the line API: one ``render_line`` per row). Measured
for the reference notes: 16 ProgressBar widgets at 10 Hz cost ~25 % of a core,
one widget drawing all cores ~3 %. ``core_grid_lines`` is a pure function, so the
drawing is unit-tested without an app.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

from rich.segment import Segment
from rich.style import Style
from textual.geometry import Region
from textual.strip import Strip
from textual.widget import Widget

from coredash.view_model import CoreMark, load_level
from coredash.widgets._parts import bar_text

EIGHTHS_UP = " ▁▂▃▄▅▆▇█"  # 0/8 .. 8/8 of a cell, filled from the bottom
MAX_GRAPH_ROWS = 6

Span = tuple[str, str]  # (text, style name): style names map to component classes
Line = list[Span]


@dataclass(frozen=True)
class CoreGridData:
    per_core: tuple[float, ...] = ()
    history: tuple[tuple[float, ...], ...] = ()  # per core, oldest first, one value per second
    usable: frozenset[int] = frozenset()
    marks: dict[int, list[CoreMark]] = field(default_factory=dict)


def bar(percent: float, width: int) -> Line:
    """A horizontal load bar with eighth-cell resolution, coloured by load."""
    filled, empty = bar_text(percent / 100, width)
    return [(filled, load_level(percent)), (empty, "empty")]


def sparkline(values: Sequence[float], width: int) -> Line:
    """One row of history, newest on the right, padded on the left."""
    shown = list(values)[-width:] if width > 0 else []
    line: Line = [(" " * (width - len(shown)), "empty")] if width > len(shown) else []
    for value in shown:
        index = round(max(0.0, min(100.0, value)) / 100 * 8)
        line.append((EIGHTHS_UP[index] if index else "▁", load_level(value) if index else "empty"))
    return line


def graph_rows(values: Sequence[float], width: int, rows: int) -> list[Line]:
    """A ``rows``-tall history graph, newest on the right; top row first."""
    shown = list(values)[-width:] if width > 0 else []
    pad = width - len(shown)
    lines: list[Line] = []
    for row in range(rows):
        floor = (rows - 1 - row) * 8  # eighths below this row
        bottom = row == rows - 1
        line: Line = [("▁" * pad if bottom else " " * pad, "axis")] if pad > 0 else []
        for value in shown:
            level = max(0.0, min(100.0, value)) / 100 * rows * 8
            filled = round(min(8.0, max(0.0, level - floor)))
            if filled:
                line.append((EIGHTHS_UP[filled], load_level(value)))
            else:
                line.append(("▁" if bottom else " ", "axis"))
        lines.append(line)
    return lines


MAX_MARKS = 3


def _marks_text(marks: Sequence[CoreMark]) -> str:
    text = " ".join(f"◆{mark.label}" for mark in marks[:MAX_MARKS])
    if len(marks) > MAX_MARKS:
        text += f" +{len(marks) - MAX_MARKS} more"
    return text


def _core_header(core: int, data: CoreGridData, label_width: int, bar_width: int) -> Line:
    percent = data.per_core[core]
    usable = not data.usable or core in data.usable
    line: Line = [(f"cpu{core}".ljust(label_width), "label" if usable else "off")]
    line += bar(percent, bar_width) if usable else [("░" * bar_width, "off")]
    line.append((f"{percent:4.0f}%", load_level(percent) if usable else "off"))
    marks = data.marks.get(core, [])
    if marks:
        line.append(("  " + _marks_text(marks), "mark"))
    elif not usable:
        line.append(("  not in coredash's affinity", "off"))
    return line


def line_width(line: Line) -> int:
    return sum(len(text) for text, _ in line)


def fit(line: Line, width: int) -> Line:
    """Crop or pad a line to exactly ``width`` cells."""
    out: Line = []
    used = 0
    for text, style in line:
        if used >= width:
            break
        text = text[: width - used]
        out.append((text, style))
        used += len(text)
    if used < width:
        out.append((" " * (width - used), "empty"))
    return out


def core_grid_lines(data: CoreGridData, width: int, height: int) -> list[Line]:
    """Lay out every core in ``width`` x ``height`` cells."""
    cores = len(data.per_core)
    if cores == 0 or width < 10 or height < 1:
        return [fit([("waiting for the first CPU sample…", "label")], max(width, 1))]
    label_width = len(f"cpu{cores - 1}") + 1
    rows_per_core = height // cores if height >= cores else 0
    lines: list[Line] = []
    if rows_per_core >= 3:
        # Roomy (few cores): a bar line, then a multi-row history graph.
        graph_height = min(MAX_GRAPH_ROWS, rows_per_core - 1 - (1 if rows_per_core > 3 else 0))
        bar_width = max(8, min(48, width // 3))
        graph_width = width - label_width
        for core in range(cores):
            lines.append(fit(_core_header(core, data, label_width, bar_width), width))
            series = data.history[core] if core < len(data.history) else ()
            for row in graph_rows(series, graph_width, graph_height):
                lines.append(fit([(" " * label_width, "empty"), *row], width))
            if rows_per_core > 3 and core < cores - 1:
                lines.append(fit([], width))
        return lines
    # Compact: one line per core, in as many columns as the height needs.
    columns = max(1, math.ceil(cores / max(1, height)))
    per_column = math.ceil(cores / columns)
    column_width = width // columns
    bar_width = max(6, min(24, column_width // 3))
    cells: list[Line] = []
    for core in range(cores):
        head = _core_header(core, data, label_width, bar_width)
        room = column_width - line_width(head) - 2
        series = data.history[core] if core < len(data.history) else ()
        if room >= 8:
            head = [*head, ("  ", "empty"), *sparkline(series, room)]
        cells.append(fit(head, column_width))
    for row_index in range(per_column):
        line: Line = []
        for column in range(columns):
            index = column * per_column + row_index
            line += cells[index] if index < cores else fit([], column_width)
        lines.append(fit(line, width))
    return lines


class CoreGrid(Widget):
    """All cores in one widget: bars, history graphs, worker marks."""

    COMPONENT_CLASSES = {
        "core-grid--low",
        "core-grid--mid",
        "core-grid--high",
        "core-grid--empty",
        "core-grid--axis",
        "core-grid--label",
        "core-grid--off",
        "core-grid--mark",
    }

    DEFAULT_CSS = """
    CoreGrid {
        height: 1fr;
        min-height: 3;
    }
    CoreGrid > .core-grid--low { color: $success; }
    CoreGrid > .core-grid--mid { color: $warning; }
    CoreGrid > .core-grid--high { color: $error; }
    CoreGrid > .core-grid--empty { color: $foreground 22%; }
    CoreGrid > .core-grid--axis { color: $foreground 22%; }
    CoreGrid > .core-grid--label { color: $foreground; text-style: bold; }
    CoreGrid > .core-grid--off { color: $foreground 50%; }
    CoreGrid > .core-grid--mark { color: $text-accent; text-style: bold; }
    """

    def __init__(self, *, name: str | None = None, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(name=name, id=id, classes=classes)
        self._grid_data = CoreGridData()
        self._lines: list[Line] = []
        self._laid_out_for: tuple[int, int] = (-1, -1)
        self._styles: dict[str, Style] = {}  # style name -> Rich style, until the next update

    @property
    def data(self) -> CoreGridData:
        return self._grid_data

    def update_data(self, data: CoreGridData) -> None:
        """Repaint only the rows whose text or colours changed (idle: the bars, not the graphs)."""
        self._grid_data = data
        self._styles.clear()
        size = (self.size.width, self.size.height)
        if size != self._laid_out_for:
            self._laid_out_for = (-1, -1)
            self.refresh()
            return
        old, new = self._lines, core_grid_lines(data, *size)
        self._lines = new
        changed = [
            y for y in range(max(len(old), len(new))) if y >= len(old) or y >= len(new) or old[y] != new[y]
        ]
        if changed:
            self.refresh(*(Region(0, y, size[0], 1) for y in changed))

    def notify_style_update(self) -> None:
        self._styles.clear()
        super().notify_style_update()

    def get_content_height(self, container: object, viewport: object, width: int) -> int:
        # With height: auto (narrow layouts) each core gets one line.
        return max(1, len(self._grid_data.per_core))

    def _ensure_layout(self) -> None:
        size = (self.size.width, self.size.height)
        if size != self._laid_out_for:
            self._lines = core_grid_lines(self._grid_data, *size)
            self._laid_out_for = size

    def render_line(self, y: int) -> Strip:
        self._ensure_layout()
        if y >= len(self._lines):
            return Strip.blank(self.size.width, self.rich_style)
        styles = self._styles
        segments = []
        for text, name in self._lines[y]:
            style = styles.get(name)
            if style is None:
                if "" not in styles:
                    styles[""] = self.rich_style  # walks every ancestor: once per update
                style = styles[name] = styles[""] + self.get_component_rich_style(f"core-grid--{name}")
            segments.append(Segment(text, style))
        return Strip(segments, self.size.width)
