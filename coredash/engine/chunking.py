"""Which queued jobs go to a worker together: tiny jobs travel in chunks.

One executor call (one pickle, one IPC round trip, one loop wake-up) for many
jobs, so coredash's bookkeeping costs less than the executor call it wraps. With
the ``auto`` policy only a task (and size) whose measured run time is under
TINY_JOB_S is chunked, into units of about CHUNK_TARGET_S of work: short enough
that the dashboard still sees workers change jobs several times a frame. ``off``
sends every job alone (one round trip each: the cost chunking hides), and a fixed
N sends up to N measured jobs a call. A chunk never mixes tasks or batches.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # model imports this module (its records carry a ChunkPolicy)
    from coredash.engine.model import JobRecord

TINY_JOB_S = 0.002
CHUNK_TARGET_S = 0.01
MAX_CHUNK = 256  # the loop digests a chunk's results in one go: keep that a few ms
MAX_FIXED_CHUNK = 1000  # a fixed N past this stalls the loop while it digests one chunk
# A running chunk cannot be cancelled or killed job by job: a fixed N is held to
# about this much measured work per call, so c and k land within about a second.
MAX_CHUNK_WORK_S = 1.0


@dataclass(frozen=True, slots=True)
class ChunkPolicy:
    """How many jobs one executor call may carry: auto (size None), off (1) or a fixed N."""

    size: int | None = None

    @property
    def auto(self) -> bool:
        return self.size is None

    def __str__(self) -> str:
        """As typed: "auto", "off" or the number (the CLI, the picker and JSON read it back)."""
        if self.size is None:
            return "auto"
        return "off" if self.size == 1 else str(self.size)

    def describe(self, mean_chunk: float | None = None) -> str:
        """How a batch was chunked: "chunk 1", "chunk auto (≈40)", "chunk 64 (≈58)"."""
        if self.size == 1:
            return "chunk 1"
        setting = "auto" if self.size is None else str(self.size)
        if mean_chunk is None or (self.size is not None and round(mean_chunk) == self.size):
            return f"chunk {setting}"
        return f"chunk {setting} (≈{mean_chunk:.0f})"


AUTO = ChunkPolicy()
OFF = ChunkPolicy(1)

ParamsKey = tuple[tuple[str, str], ...]
EstimateKey = tuple[str, ParamsKey]


def params_key(params: dict[str, Any]) -> ParamsKey:
    return tuple(sorted((key, repr(value)) for key, value in params.items()))


class RunEstimates:
    """Measured run time per task and parameters, smoothed."""

    def __init__(self) -> None:
        self._estimates: dict[EstimateKey, float] = {}
        self._key_cache: dict[int, tuple[dict[str, Any], EstimateKey]] = {}

    def key(self, record: JobRecord) -> EstimateKey:
        # A batch's jobs share one params dict: compute its key once, not per job.
        entry = self._key_cache.get(id(record.params))
        if entry is None or entry[0] is not record.params:
            if len(self._key_cache) > 256:
                self._key_cache.clear()
            entry = (record.params, (record.task, params_key(record.params)))
            self._key_cache[id(record.params)] = entry
        return entry[1]

    def get(self, record: JobRecord) -> float | None:
        return self._estimates.get(self.key(record))

    def learn(self, record: JobRecord, run_s: float) -> None:
        key = self.key(record)
        previous = self._estimates.get(key)
        # Smoothed, so one slow job (the machine got busy) does not flip the choice.
        self._estimates[key] = run_s if previous is None else 0.8 * previous + 0.2 * run_s


def chunk_size(
    head: JobRecord, estimate: float | None, queued: int, workers: int, policy: ChunkPolicy = AUTO
) -> int:
    """How many jobs like ``head`` to send in one executor call (1: no chunking)."""
    if head.exclusive or head.alone or estimate is None or policy.size == 1:
        return 1  # a baseline, a job whose chunk broke, not measured yet, or chunking off
    if policy.size is not None:
        # The number asked for, held to about a second of measured work per call.
        return max(1, min(policy.size, int(MAX_CHUNK_WORK_S / max(estimate, 1e-6))))
    if estimate >= TINY_JOB_S:
        return 1  # big enough to be worth its own call
    # Enough work to amortise the call, spread so every worker gets a share.
    fair_share = -(-queued // max(1, workers))
    return max(1, min(MAX_CHUNK, int(CHUNK_TARGET_S / max(estimate, 1e-6)), fair_share))


def take_unit(queue: deque[JobRecord], size: int, estimates: RunEstimates) -> list[JobRecord]:
    """The next executor call's jobs: the queue's head, plus up to ``size - 1`` like jobs behind it."""
    head = queue.popleft()
    unit = [head]
    key = estimates.key(head) if size > 1 else None
    while len(unit) < size and queue:
        record = queue[0]
        if (
            record.exclusive
            or record.alone
            or record.cancel_requested
            or record.task != head.task
            or record.batch_id != head.batch_id  # a batch's figures are its own jobs'
            or (record.params is not head.params and estimates.key(record) != key)
        ):
            break
        unit.append(queue.popleft())
    return unit
