"""The contract every executor backend keeps, and the outcome it hands the engine.

::

    Engine._dispatch ── one unit (a job, or a chunk of tiny ones) ──▶ Backend.run(unit)
        │                                                              │ _call(): the executor
        │◀── start reports (pipe or call_soon_threadsafe) ── workers ◀─┘
        │◀──────────── list[Outcome], one per job, in unit order ──────┘
        ▼
    DONE / FAILED / CANCELLED: finish the job      RERUN: queue it again (the engine
                                                   counts attempts and gives up)

A backend has a fixed size. Changing the mode or the worker count retires the
current backend (it finishes what it is running, then shuts down) and builds a
new one, so a pool's size always equals the worker count it was built for.

A backend judges its own faults: it knows what its executor's exceptions mean
(a broken pool, a dead child, a pickling error) and says, per job, what happened
in words a person understands. The engine keeps only policy.
"""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from multiprocessing.connection import Connection
from multiprocessing.context import BaseContext
from typing import TYPE_CHECKING

from coredash.engine.model import JobRecord
from coredash.engine.worker import JobSpec, Reporter, WorkerLimits, WorkerResult, one_line_error
from coredash.taskapi import CancelFlag
from coredash.units import format_seconds

if TYPE_CHECKING:
    from coredash.engine.modes import ModeInfo


class NotStarted(Exception):
    """The job was never handed to a worker (cancelled, or the executor closed first)."""


class SendError(Exception):
    """The job could not be handed to its worker (its arguments would not pickle, say)."""


class Verdict(StrEnum):
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"
    RERUN = "rerun"
    """Not this job's doing (a neighbour broke the pool, its chunk failed as a whole): run it again."""


@dataclass(frozen=True, slots=True)
class Outcome:
    verdict: Verdict
    result: WorkerResult | None = None  # what the worker measured, when it got that far
    reason: str | None = None  # one line for a person; required for FAILED and CANCELLED
    traceback: str | None = None
    alone: bool = False  # RERUN: never in a chunk again (its chunk's worker died)
    # RERUN with no known cause: the engine counts these and fails the job after
    # max_attempts with "<unexplained> N times while this job was in it, cause unknown".
    unexplained: str | None = None

    @classmethod
    def done(cls, result: WorkerResult) -> Outcome:
        return cls(Verdict.DONE, result)

    @classmethod
    def failed(cls, reason: str, trace: str | None = None, result: WorkerResult | None = None) -> Outcome:
        return cls(Verdict.FAILED, result, reason, trace)

    @classmethod
    def cancelled(cls, reason: str, result: WorkerResult | None = None) -> Outcome:
        return cls(Verdict.CANCELLED, result, reason)

    @classmethod
    def rerun(cls, *, alone: bool = False, unexplained: str | None = None) -> Outcome:
        return cls(Verdict.RERUN, alone=alone, unexplained=unexplained)


@dataclass(frozen=True, slots=True)
class BackendContext:
    """What the engine lends every backend it builds."""

    size: int  # workers
    mp_context: BaseContext
    report_conn: Connection  # the start-report pipe's writing end, for worker processes
    report_in_process: Reporter  # start reports from threads of this process
    limits: WorkerLimits
    job_timeout: float | None
    notice: Callable[[str], None]  # a PoolNotice for the user
    read_reports: Callable[[], None]  # take in start reports now (which job runs in which pid)
    engine_closed: Callable[[], bool]


@dataclass(frozen=True, slots=True)
class Unit:
    """One executor call: one job, or a chunk of tiny jobs of one task."""

    records: list[JobRecord]
    specs: list[JobSpec]
    cancels: list[CancelFlag]


def timeout_text(job_timeout: float | None) -> str:
    return f"timed out after {format_seconds(job_timeout or 0.0)} (the job timeout)"


class Backend(ABC):
    """One executor. Subclasses implement ``_call`` and may judge their own exceptions."""

    def __init__(self, info: ModeInfo, ctx: BackendContext) -> None:
        self.info = info  # the registry's entry: read abilities from here, never the name
        self.ctx = ctx
        self.size = ctx.size
        self.inflight: dict[int, JobRecord] = {}  # jobs dispatched here and not yet returned
        self.retired = False
        self.closed = False

    @property
    def reusable(self) -> bool:
        """False once no new job should go here (a worker was killed, the pool broke)."""
        return not self.closed

    # --- what subclasses provide ------------------------------------------------

    @abstractmethod
    async def _call(self, unit: Unit) -> list[WorkerResult]:
        """Run the unit's jobs; raise what the executor raised."""

    def _judge_exception(self, unit: Unit, exc: Exception) -> list[Outcome] | None:
        """Outcomes for an exception only this executor understands (None: not one of those)."""
        return None

    async def _judge_exception_async(self, unit: Unit, exc: Exception) -> list[Outcome] | None:
        return self._judge_exception(unit, exc)

    def _describe_call_error(self, exc: Exception) -> tuple[str, str | None]:
        trace = str(exc.__cause__) if exc.__cause__ is not None else None
        return (str(exc) if isinstance(exc, SendError) else one_line_error(exc), trace)

    def kill(self, record: JobRecord) -> bool:
        """End the worker running this job, if this mode can. Returns True if it tried."""
        return False

    def new_cancel_flag(self) -> CancelFlag:
        """The flag the scheduler makes for each job sent here: one this backend's workers can read."""
        return CancelFlag()

    async def warm_up(self) -> None:  # noqa: B027  (optional hook: nothing to warm by default)
        """Start every worker now so the first batch does not pay for it."""

    def live_pids(self) -> list[int]:
        """Worker processes of this backend that may still be alive."""
        return []

    async def wait_closed(self, timeout: float) -> None:  # noqa: B027  (optional hook)
        """After close(): until the executor's own threads are done with its workers."""

    @abstractmethod
    def shutdown(self) -> None:
        """Release the executor once nothing is in flight (running jobs are not touched)."""

    @abstractmethod
    def close(self) -> None:
        """Stop everything now: cancel what waits, end process workers."""

    # --- the contract the engine calls ------------------------------------------

    async def run(self, unit: Unit) -> list[Outcome]:
        """Run a unit and say how each of its jobs ended. Never raises for a job's fault."""
        count = len(unit.records)
        try:
            results = await self._call(unit)
        except NotStarted as exc:
            return [Outcome.cancelled(str(exc))] * count
        except asyncio.CancelledError:
            why = "still running when coredash closed"
            if not self.info.abilities.can_kill:
                why += " (a thread cannot be stopped; it ignored the cancel flag)"
            return [Outcome.cancelled(why)] * count
        except Exception as exc:
            judged = await self._judge_exception_async(unit, exc)
            if judged is not None:
                return judged
            return self._judge_call_error(unit, exc)
        return [self.judge_result(r, result) for r, result in zip(unit.records, results, strict=True)]

    def _judge_call_error(self, unit: Unit, exc: Exception) -> list[Outcome]:
        """The executor call itself raised (arguments or a result that cannot be pickled...)."""
        records = unit.records
        if self.closed or all(record.cancel_requested for record in records):
            return [Outcome.cancelled("cancelled before it started")] * len(records)
        if len(records) > 1:
            # One job in the chunk spoiled the call: run them one at a time, so only
            # that job fails, with its own reason.
            self.ctx.notice(
                f"a chunk of {len(records)} {records[0].task} jobs failed as a whole "
                f"({type(exc).__name__}); re-running them one at a time"
            )
            return [Outcome.rerun(alone=True)] * len(records)
        why, trace = self._describe_call_error(exc)
        return [Outcome.failed(why, trace)]

    def judge_result(self, record: JobRecord, result: WorkerResult) -> Outcome:
        """A job the worker ran to its end, whatever that end was."""
        if result.outcome == "done":
            if record.cancel_requested:
                late = (
                    f"it was already in a worker, in a chunk of {record.chunk} tiny jobs"
                    if record.chunk > 1
                    else "finished before the cancel took effect"
                )
                result.value_repr = f"{result.value_repr or ''}  ({late})"
            return Outcome.done(result)
        if result.outcome == "cancelled":
            if record.timed_out:  # the timeout, not a person, set the flag it stopped at
                return Outcome.failed(
                    f"{timeout_text(self.ctx.job_timeout)}: stopped at a checkpoint", None, result
                )
            return Outcome.cancelled(result.error or "cancelled", result)
        return Outcome.failed(result.error or "failed", result.traceback, result)
