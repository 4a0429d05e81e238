"""Completion times, one row per ended job, updated by diff (memray's approach).

Rows are keyed by job id; each tick only rows whose record version changed are
touched, and the table keeps the newest ``MAX_ROWS`` jobs (batch summaries keep
the totals). Selecting a row opens the job's details and traceback.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from rich.text import Text
from textual.widgets import DataTable

from coredash.engine import JobRecord, JobState
from coredash.units import format_seconds
from coredash.view_model import cpu_ratio_text, job_note

MAX_ROWS = 200
# Adding a row makes DataTable re-render every visible row (~11 cells each), so
# new rows are added in batches at most this often: under a stream of tiny jobs
# this keeps the table from dominating the monitor's own CPU.
ADD_INTERVAL_S = 1.0
# DataTable measures every cell of every added row (~0.4 ms a row): 200 new rows
# at once froze the event loop for ~80 ms. A stream adds its newest rows only; the
# table fills up to MAX_ROWS over the next syncs once the stream calms down.
MAX_ADDS_PER_SYNC = 40

COLUMNS = (
    ("job", "#"),
    ("task", "task"),
    ("mode", "mode"),
    ("state", "state"),
    ("wait", "wait"),
    ("run", "run"),
    ("overhead", "overhead"),
    ("cpu", "CPU÷wall"),
    ("where", "worker"),
    ("core", "core"),
    ("note", "result / reason"),
)
STATE_COLOUR = {
    JobState.DONE: "text-success",
    JobState.FAILED: "text-error",
    JobState.CANCELLED: "text-warning",
}
NOTE_WIDTH = 48


class JobsTable(DataTable[Text]):
    DEFAULT_CSS = """
    JobsTable {
        height: 1fr;
    }
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id, cursor_type="row", zebra_stripes=True)
        self._versions: dict[int, int] = {}
        self._last_added = float("-inf")

    def on_mount(self) -> None:
        for key, label in COLUMNS:
            self.add_column(label, key=key)
        self.watch(self.app, "theme", self._restyle, init=False)

    def _restyle(self) -> None:
        self._versions = {job_id: -1 for job_id in self._versions}  # force every row to redraw

    def _cells(self, job: JobRecord) -> dict[str, Text]:
        variables = self.app.theme_variables
        colour = variables.get(STATE_COLOUR.get(job.state, "foreground"), "")
        note = job_note(job)
        if len(note) > NOTE_WIDTH:
            note = note[: NOTE_WIDTH - 1] + "…"
        mode = job.mode.label if job.mode is not None else "–"
        if job.label:
            mode += f" ({job.label})"
        return {
            "job": Text(str(job.id), justify="right"),
            "task": Text(job.task),
            "mode": Text(mode),
            "state": Text(job.state.value, style=f"bold {colour}" if colour else "bold"),
            "wait": Text(format_seconds(job.wait_s), justify="right"),
            "run": Text(format_seconds(job.run_s), justify="right"),
            "overhead": Text(format_seconds(job.overhead_s), justify="right"),
            "cpu": Text(cpu_ratio_text(job), justify="right"),
            "where": Text(job.where),
            "core": Text("–" if job.core is None else str(job.core), justify="right"),
            "note": Text(note, style="" if job.state is JobState.DONE else colour),
        }

    def sync(self, jobs: Sequence[JobRecord]) -> None:
        """Make the rows match ``jobs`` (oldest first), touching only what changed."""
        shown = list(jobs)[-MAX_ROWS:]
        wanted = {job.id for job in shown}
        has_new = any(job.id not in self._versions for job in shown)
        if has_new and time.monotonic() - self._last_added < ADD_INTERVAL_S:
            # Not yet time to add: leave the rows as they are (removing old ones
            # now would empty the table under a fast stream of jobs).
            shown = [job for job in shown if job.id in self._versions]
        else:
            new = [job.id for job in shown if job.id not in self._versions]
            if len(new) > MAX_ADDS_PER_SYNC:
                later = set(new[:-MAX_ADDS_PER_SYNC])  # the oldest of the new: next time, if still shown
                shown = [job for job in shown if job.id not in later]
                wanted = {job.id for job in shown}
            stale = [job_id for job_id in self._versions if job_id not in wanted]
            if len(stale) > len(self._versions) // 2:
                # A stream replaced most rows: one clear() is ~100x cheaper than
                # removing rows one by one.
                self.clear()
                self._versions.clear()
            else:
                for job_id in stale:
                    self.remove_row(str(job_id))
                    del self._versions[job_id]
        added = False
        for job in shown:
            version = self._versions.get(job.id)
            if version == job.version:
                continue
            cells = self._cells(job)
            if version is None:
                self.add_row(*(cells[key] for key, _ in COLUMNS), key=str(job.id))
                added = True
            else:
                for key, value in cells.items():
                    self.update_cell(str(job.id), key, value)
            self._versions[job.id] = job.version
        if added:
            self._last_added = time.monotonic()
            self.sort("job", key=lambda cell: int(cell.plain), reverse=True)  # newest first
