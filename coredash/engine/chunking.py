"""Which queued jobs go to a worker together: tiny jobs travel in chunks.

One executor call (one pickle, one IPC round trip, one loop wake-up) for many
jobs, so coredash's bookkeeping costs less than the executor call it wraps. Only
a task (and size) whose measured run time is under TINY_JOB_S is chunked, into
units of about CHUNK_TARGET_S of work: short enough that the dashboard still sees
workers change jobs several times a frame.
"""

from __future__ import annotations

from collections import deque
from typing import Any

from coredash.engine.model import JobRecord

TINY_JOB_S = 0.002
CHUNK_TARGET_S = 0.01
MAX_CHUNK = 256  # the loop digests a chunk's results in one go: keep that a few ms

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


def chunk_size(head: JobRecord, estimate: float | None, queued: int, workers: int) -> int:
    """How many jobs like ``head`` to send in one executor call (1: no chunking)."""
    if head.exclusive or head.alone or estimate is None or estimate >= TINY_JOB_S:
        return 1  # not measured yet, or big enough to be worth its own call
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
            or (record.params is not head.params and estimates.key(record) != key)
        ):
            break
        unit.append(queue.popleft())
    return unit
