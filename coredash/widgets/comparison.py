"""Thread vs process at one glance: the latest batch of one task and size in each mode.

Makespan bars share one scale (shorter is better); parallelism bars are scaled to
the usable cores (Σ job CPU time ÷ makespan: how many cores the batch really kept
busy). Speedup needs a serial baseline measured with a job running alone. jobs/s
and the chunk setting show what one IPC round trip per job costs tiny jobs.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from textual.app import RenderResult
from textual.reactive import reactive
from textual.widget import Widget

from coredash.engine import REGISTRY, Mode
from coredash.engine.gil import Expectation
from coredash.engine.modes import DEFAULT_MODE
from coredash.units import format_rate, format_seconds
from coredash.view_model import Comparison, format_params
from coredash.widgets._parts import FAINT, MUTED, Row, cell, content, hbar


# Bars in the theme's colours; labels in its text variants (readable on light themes).
def bar_colour(mode: Mode) -> str:
    return f"${mode.info.colour}"


def text_colour(mode: Mode) -> str:
    return f"$text-{mode.info.colour}"


def _mode_keys() -> Row:
    """Every mode's key and label, from the registry: "t threads, p process pool, …"."""
    row: Row = [("  ", "")]
    for index, info in enumerate(REGISTRY):
        if index:
            row.append((", ", MUTED))
        row += [(info.key, "bold $text-accent"), (f" {info.label}", MUTED)]
    row.append((".", MUTED))
    return row


@dataclass(frozen=True)
class ComparisonData:
    comparison: Comparison | None = None
    usable_cpus: int = 1
    current_mode: Mode = DEFAULT_MODE
    # What the current mode should do with this task on this build (engine.gil).
    expect: Expectation | None = None
    lag_p99_ms: dict[int, float] = field(default_factory=dict)  # batch id -> the loop's lag while it ran


def _fitting(width: int, *choices: str) -> str:
    """The first text that fits ``width``, else the last (cropped by ``cell``)."""
    return next((text for text in choices if len(text) <= width), choices[-1])


def comparison_rows(data: ComparisonData, width: int) -> list[Row]:
    found = data.comparison
    if found is None:
        return [
            [
                ("Run a batch (", MUTED),
                ("r", "bold $text-accent"),
                (") in each mode to compare them here:", MUTED),
            ],
            _mode_keys(),
        ]
    # marker 2 + mode 16 + bar + makespan 9 + gap 2 + bar + parallelism 6 + speedup 9 + efficiency 6
    # + jobs/s 8; the tail (under "chunk") keeps room for "  auto (≈40) ·" before the bars grow
    fixed, tail_room = 58, 18
    bar_width = max(4, min(26, (width - fixed - tail_room) // 2))
    longest = found.longest_makespan or 1.0
    rows: list[Row] = [
        [
            (f"{found.task} {format_params(found.params)}", "bold"),
            ("  latest complete batch per mode", MUTED),
        ],
        [
            cell("", 18),
            cell("makespan", bar_width + 9, "bold"),
            cell(
                _fitting(bar_width + 8, f"  parallelism /{data.usable_cpus}", "  parallel"),
                bar_width + 8,
                "bold",
            ),
            cell("speedup", 9, "bold", ">"),
            cell("effic", 6, "bold", ">"),
            cell("jobs/s", 8, "bold", ">"),
            ("  lag p99 · chunk", "bold"),
        ],
    ]
    stale = False
    for mode, summary in found.rows:
        marker = "▶ " if mode == data.current_mode else "  "
        name: Row = [(marker, "bold $text-accent"), cell(mode.label, 16, f"bold {text_colour(mode)}")]
        if summary is None:
            reason = mode.info.reason_unavailable
            if reason is not None:
                rows.append([*name, (f"unavailable: {reason}", FAINT)])
                continue
            how: Row = [("r", "bold $text-accent")]
            if mode != data.current_mode:
                how = [(mode.info.key, "bold $text-accent"), (" then ", FAINT), *how]
            rows.append([*name, ("not run yet: press ", FAINT), *how])
            continue
        row: Row = [*name]
        row += hbar(summary.makespan_s / longest, bar_width, bar_colour(mode))
        row.append(cell(format_seconds(summary.makespan_s), 9, "bold", ">"))
        row.append("  ")
        row += hbar(summary.parallelism / max(1, data.usable_cpus), bar_width, bar_colour(mode))
        row.append(cell(f"{summary.parallelism:.2f}", 6, "bold", ">"))
        speedup = "–" if summary.speedup is None else f"{summary.speedup:.2f}×"
        efficiency = "–" if summary.efficiency is None else f"{summary.efficiency:.0%}"
        if summary.efficiency is not None and summary.efficiency > 1.02:
            efficiency += "*"  # faster than one core per worker allows: see the note below
            stale = True
        row += [cell(speedup, 9, "bold", ">"), cell(efficiency, 6, "", ">")]
        row.append(cell(format_rate(summary.jobs_per_s), 8, "bold", ">"))
        # How it was chunked comes first: two rows of one mode differ by it. A stall the
        # UI could feel (the monitor's red, 100 ms) comes before even that.
        # The loop's lag p99 during the batch leads (the blocking join's proof), then
        # how the jobs were sent.
        parts = [summary.chunk_text.removeprefix("chunk "), f"×{summary.jobs} on {summary.workers}w"]
        if mode.abilities.blocks_loop:
            parts.insert(0, "1 at a time")  # whatever the worker count: why its makespan is the sum
        lag = data.lag_p99_ms.get(summary.batch_id)
        parts.insert(0, "–" if lag is None else format_seconds(lag / 1000))
        tail = "  " + " · ".join(parts)
        room = width - (fixed + 2 * bar_width)
        if room >= 10:
            row.append((tail if len(tail) <= room else tail[: room - 1] + "…", MUTED))
        rows.append(row)
    baseline = next((s for _, s in found.rows if s is not None and s.serial_s is not None), None)
    if baseline is not None and baseline.serial_s is not None:
        per_job = format_seconds(baseline.serial_s / baseline.jobs)
        rows.append(
            [(f"speedup: vs {per_job} per job, run alone in a fresh process (serial baseline)", MUTED)]
        )
    # A mode that blocks the loop: what its row proves.
    for mode in dict.fromkeys(m for m, s in found.rows if s is not None and m.abilities.blocks_loop):
        note = f"{mode.label}: 1 job at a time whatever the workers, so makespan ≈ Σ run, lag ≈ one job"
        rows.append([(note, MUTED)])
    if stale:
        rows.append(
            [("* over 100 %: the baseline ran in other conditions; x clears it and r re-measures", FAINT)]
        )
    expect = data.expect
    if expect is not None:
        rows.append(
            [
                (f"{data.current_mode.label}: {expect.outlook}", text_colour(data.current_mode)),
                (f" here: {expect.why}", MUTED),
            ]
        )
    return rows


class ComparisonPanel(Widget):
    DEFAULT_CSS = """
    ComparisonPanel {
        height: auto;
    }
    """

    data: reactive[ComparisonData] = reactive(ComparisonData)

    def render(self) -> RenderResult:
        return content(comparison_rows(self.data, self.size.width))
