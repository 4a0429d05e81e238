"""The task queues: what waits, what runs on each worker, and the batch's progress."""

from __future__ import annotations

from dataclasses import dataclass

from textual.app import RenderResult
from textual.reactive import reactive
from textual.widget import Widget

from coredash.engine import JobState
from coredash.units import format_seconds
from coredash.view_model import BatchProgress, WorkerRow
from coredash.widgets._parts import FAINT, MUTED, Row, cell, content, hbar

NEXT_SHOWN = 4
MAX_WORKER_ROWS = 8


@dataclass(frozen=True)
class WorkersData:
    queued_total: int = 0
    queued_next: tuple[tuple[int, str, str | None], ...] = ()  # (job id, task, label)
    rows: tuple[WorkerRow, ...] = ()
    progress: BatchProgress | None = None
    note: str | None = None  # what the worker count means here, where it is not N jobs at once


def queue_row(data: WorkersData) -> Row:
    if not data.queued_total:
        return [("queue ", "bold"), ("empty", MUTED)]
    row: Row = [("queue ", "bold"), (f"{data.queued_total} waiting", "bold $warning"), (" · next: ", MUTED)]
    for index, (job_id, task, label) in enumerate(data.queued_next[:NEXT_SHOWN]):
        if index:
            row.append((", ", MUTED))
        row.append(f"#{job_id} {task}")
        if label:
            row.append((f" ({label})", "$text-accent"))
    if data.queued_total > NEXT_SHOWN:
        row.append((" …", MUTED))
    return row


def worker_table_rows(data: WorkersData, width: int) -> list[Row]:
    # worker 7 + job 7 + task + elapsed 9 + where + core 5 + busy 6
    task_width = max(8, min(18, width - 34 - 24))
    # 24, or more where there is room and a row needs it ("interpreter 12 · tid 1234567").
    wanted = max([24, *(len(worker.where) + 2 for worker in data.rows[:MAX_WORKER_ROWS])])
    where_width = max(12, min(wanted, width - 34 - task_width))
    rows: list[Row] = [
        [
            cell("worker", 7, "bold"),
            cell("job", 7, "bold"),
            cell("task", task_width, "bold"),
            cell("elapsed", 9, "bold", ">"),
            cell("  where", where_width, "bold"),
            cell("core", 5, "bold", ">"),
            cell("busy", 6, "bold", ">"),
        ]
    ]
    shown, hidden = data.rows[:MAX_WORKER_ROWS], data.rows[MAX_WORKER_ROWS:]
    for worker in shown:
        name = cell(f"w{worker.slot + 1}", 7, "bold $text-accent")
        job = worker.job
        if job is None:
            rows.append([name, ("idle", FAINT)])
            continue
        task = f"{job.task} ({job.label})" if job.label else job.task
        state_style = "" if job.state is JobState.RUNNING else MUTED
        busy = "–" if worker.cpu_cores is None else f"{worker.cpu_cores * 100:3.0f}%"
        rows.append(
            [
                name,
                cell(f"#{job.id}", 7, state_style),
                cell(task, task_width, state_style),
                cell(format_seconds(worker.elapsed_s), 9, state_style, ">"),
                cell(f"  {worker.where}", where_width, state_style),
                cell("–" if worker.core is None else str(worker.core), 5, "bold", ">"),
                cell(busy, 6, "", ">"),
            ]
        )
    if data.note:
        rows.append([(data.note, "bold $text-error")])
    if hidden:
        running = sum(1 for worker in hidden if worker.job is not None)
        rows.append(
            [(f"… {len(hidden)} more workers, {running} of them busy (the core marks show all)", MUTED)]
        )
    return rows


def progress_row(progress: BatchProgress | None, width: int) -> Row:
    if progress is None:
        return [("no batch yet: press ", MUTED), ("r", "bold $text-accent"), (" to run one", MUTED)]
    batch = progress.batch
    summary = batch.summary
    head = f"batch {batch.id} {batch.task} ×{batch.count} "
    bar_width = max(8, min(40, width - len(head) - 34))
    style = "$success" if summary is not None and summary.complete else "$accent"
    row: Row = [(head, "bold")]
    if batch.first_dispatched is None:
        return [*row, ("queued: waiting for free workers", MUTED)]
    row += hbar(progress.ended / batch.count, bar_width, style)
    row.append((f" {progress.ended}/{batch.count}", "bold"))
    if summary is not None:
        row.append((f"  done in {format_seconds(summary.makespan_s)} ({summary.mode})", MUTED))
        if summary.failed or summary.cancelled:
            row.append((f"  {summary.failed} failed, {summary.cancelled} cancelled", "bold $text-error"))
    else:
        eta = "ETA –" if progress.eta_s is None else f"ETA {format_seconds(progress.eta_s)}"
        row.append((f"  {format_seconds(progress.elapsed_s)} · {eta}", MUTED))
    if progress.waiting_batches:
        row.append((f"  +{progress.waiting_batches} batch(es) queued", "$text-warning"))
    return row


class WorkersPanel(Widget):
    DEFAULT_CSS = """
    WorkersPanel {
        height: auto;
    }
    """

    data: reactive[WorkersData] = reactive(WorkersData)

    def render(self) -> RenderResult:
        width = self.size.width
        # Progress before the worker table, so many workers never push it out of view.
        rows = [
            queue_row(self.data),
            progress_row(self.data.progress, width),
            *worker_table_rows(self.data, width),
        ]
        return content(rows)
