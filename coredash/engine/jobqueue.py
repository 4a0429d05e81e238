"""coredash's own queue: what waits for a worker slot, first come first served.

A batch's job records are made a slice at a time, and only when the queue runs
low: queueing 100,000 jobs at once froze the dashboard for half a second, and
100,000 live records made every full garbage collection take ~100 ms.
"""

from __future__ import annotations

import itertools
from collections import deque
from collections.abc import Callable, Iterator

from coredash.engine.catalog import TaskInfo
from coredash.engine.model import BatchRecord, JobRecord

SUBMIT_SLICE = 2000


class UnmadeBatch:
    """A batch whose job records from ``next`` on are not made yet."""

    __slots__ = ("batch", "cancelled", "info", "next")

    def __init__(self, batch: BatchRecord, info: TaskInfo) -> None:
        self.batch = batch
        self.info = info
        self.next = 0
        self.cancelled: str | None = None  # made straight into this end

    @property
    def left(self) -> int:
        return self.batch.count - self.next


class JobQueue:
    """Made records waiting in order, and behind them batches (and single jobs) not made yet."""

    def __init__(
        self,
        made: Callable[[JobRecord], None],
        cancelled: Callable[[JobRecord, str], None],
    ) -> None:
        self._made = made  # a record was just made: register it
        self._cancelled = cancelled  # a record was made straight into cancelled
        self.ready: deque[JobRecord] = deque()
        self._unmade: deque[UnmadeBatch | JobRecord] = deque()
        self.unmade_count = 0

    def __len__(self) -> int:
        return len(self.ready) + self.unmade_count

    def __bool__(self) -> bool:
        return bool(self.ready) or bool(self._unmade)

    @property
    def has_unmade(self) -> bool:
        return bool(self._unmade)

    def head(self, count: int) -> tuple[JobRecord, ...]:
        return tuple(itertools.islice(self.ready, count))

    def waiting(self) -> Iterator[JobRecord]:
        """Every made record still queued, including single jobs parked behind unmade batches."""
        yield from self.ready
        yield from (entry for entry in self._unmade if isinstance(entry, JobRecord))

    def add_batch(self, batch: BatchRecord, info: TaskInfo) -> None:
        self._unmade.append(UnmadeBatch(batch, info))
        self.unmade_count += batch.count

    def add(self, record: JobRecord) -> None:
        if self._unmade:  # behind the batches still waiting to be made
            self._unmade.append(record)
            self.unmade_count += 1
        else:
            self.ready.append(record)

    def put_back(self, record: JobRecord) -> None:
        self.ready.appendleft(record)  # it already waited its turn once

    def remove(self, record: JobRecord) -> None:
        try:
            self.ready.remove(record)
        except ValueError:  # parked behind an unmade batch
            self._unmade.remove(record)
            self.unmade_count -= 1

    def refill(self) -> bool:
        """Make records while the ready queue runs low; True if more is left to make later."""
        made = 0
        while self._unmade and len(self.ready) < SUBMIT_SLICE and made < 2 * SUBMIT_SLICE:
            made += SUBMIT_SLICE
            self._make_slice()
        # Cancelled slices add nothing to the queue: the caller finishes the rest a slice at a time.
        return bool(self._unmade) and len(self.ready) < SUBMIT_SLICE

    def make_all(self) -> None:
        """Every submitted job gets its record now (closing, or a job picked by id)."""
        while self._unmade:
            self._make_slice()

    def _make_slice(self) -> None:
        entry = self._unmade[0]
        if isinstance(entry, JobRecord):
            self._unmade.popleft()
            self.unmade_count -= 1
            self.ready.append(entry)
            return
        batch, start = entry.batch, entry.next
        end = min(batch.count, start + SUBMIT_SLICE)
        entry.next = end
        self.unmade_count -= end - start
        if end == batch.count:
            self._unmade.popleft()
        for job_id in batch.job_ids[start:end]:
            record = JobRecord(
                id=job_id,
                task=entry.info.name,
                params=batch.params,
                batch_id=batch.id,
                submitted=batch.submitted,
            )
            self._made(record)
            if entry.cancelled is None:
                self.ready.append(record)
            else:
                self._cancelled(record, entry.cancelled)

    def cancel_all(self, why: str) -> list[JobRecord]:
        """Take every made record out (returned, for the caller to end); unmade ones end as made."""
        taken = list(self.ready)
        self.ready.clear()
        batches: list[UnmadeBatch] = []
        for entry in self._unmade:
            if isinstance(entry, JobRecord):
                taken.append(entry)
            else:  # their records are made, cancelled, a slice at a time
                entry.cancelled = why
                batches.append(entry)
        self._unmade = deque(batches)
        self.unmade_count = sum(entry.left for entry in batches)
        return taken

    def cancel_unmade_of(self, batch: BatchRecord, why: str) -> int:
        """Mark a batch's unmade jobs cancelled; how many that was."""
        for entry in self._unmade:
            if isinstance(entry, UnmadeBatch) and entry.batch is batch and entry.cancelled is None:
                entry.cancelled = why
                return entry.left
        return 0
