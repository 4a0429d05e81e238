"""The seed's third example as written: ``process.start()``, then ``process.join()`` on the loop.

Every other backend awaits its workers; this one blocks coredash's own event
loop on purpose, to show what that costs: while a job runs nothing is drawn, no
key is read, no timer fires and no second job can be dispatched. When the loop
is free again the lag meter shows the stall and a notice gives its length.

Safe by construction, because nothing on the loop can help while it is blocked:

* One job at a time: the scheduler hands a ``blocks_loop`` backend one job, and
  the loop could not start a second one anyway.
* The job timeout and ``CAP_S`` are enforced here, by ``join(timeout)``: the
  engine's timers cannot fire during the join. Past either, the child is killed.
* The result comes back in an unlinked temporary file, not a pipe. A child whose
  result is larger than the pipe buffer would block on a pipe nobody reads (the
  parent is in ``join()``) and never exit; writing a file never waits for a
  reader. Unlinked at once, it leaves nothing behind whatever happens.
* A Python-level signal handler that raises (ctrl+c in ``coredash bench``) does
  so inside ``join()``: the child is killed and reaped before the exception goes on.
* Between two jobs the loop runs free for ``FREE_LOOP_S``, so the keys pressed
  during a freeze are handled (``q`` quits) and a frame is drawn.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import tempfile
import time
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import TYPE_CHECKING

from coredash.engine.backends._processes import WorkerDied, kill_process, load_result, start_job_process
from coredash.engine.backends.base import (
    Backend,
    BackendContext,
    NotStarted,
    Outcome,
    Unit,
    timeout_text,
)
from coredash.engine.limits import MAX_BLOCKING_JOB_S
from coredash.engine.model import JobRecord, JobState
from coredash.engine.worker import JobSpec, WorkerResult
from coredash.taskapi import CancelFlag
from coredash.units import format_seconds

if TYPE_CHECKING:
    from coredash.engine.modes import ModeInfo

# Before each job the loop runs free: a tenth of the last freeze (FREE_LOOP_S at
# most, MIN_FREE_S at least), then until it runs a timer on time (what waited during
# the freeze has run: the keys pressed, the notice, a redraw), but never more than
# BREATHER_MAX_S in all. (A fixed 50 ms was not enough on 2 busy cores: drawing the
# notice took longer, and a key pressed during the freeze waited for the next one.
# A stream of tiny jobs, each a 20 ms freeze, gets 5 ms breathers.)
FREE_LOOP_S = 0.05
MIN_FREE_S = 0.005
ON_TIME_S = 0.005
BREATHER_MAX_S = 0.5
# One toast per stall would stack up over a batch: at most one per toast lifetime,
# the later stalls counted in the next one.
NOTICE_EVERY_S = 8.0
# The stalls still uncounted when the batch ends are told this long after the last
# one, once no job is left in flight here: the batch's last freezes are not lost.
FLUSH_AFTER_S = 0.3


class OverLimit(Exception):
    """join(timeout) returned with the child still running: it was killed."""

    def __init__(self, pid: int | None, timed_out: bool) -> None:
        super().__init__(pid, timed_out)
        self.pid = pid
        self.timed_out = timed_out  # the job timeout (True) or the cap on one blocking job


class BlockingBackend(Backend):
    # The most one job may block the loop; the picker, the CLI and the engine refuse
    # sizes expected to run longer, and a job that does is killed at it.
    CAP_S: float = MAX_BLOCKING_JOB_S

    def __init__(self, info: ModeInfo, ctx: BackendContext) -> None:
        super().__init__(info, ctx)
        self._process: BaseProcess | None = None
        self._last_notice = float("-inf")
        self._last_blocked = FREE_LOOP_S * 10  # as if after a long freeze: the first job gets the most
        self._unreported: list[float] = []  # stalls since the last notice
        self._flush: asyncio.TimerHandle | None = None

    async def _call(self, unit: Unit) -> list[WorkerResult]:
        # Never chunked (abilities.chunks is False): one job, one process.
        results = []
        for record, spec, cancel in zip(unit.records, unit.specs, unit.cancels, strict=True):
            await _breathe(min(FREE_LOOP_S, max(MIN_FREE_S, self._last_blocked / 10)))
            results.append(self._run_blocking(record, spec, cancel))
        return results

    def _run_blocking(self, record: JobRecord, spec: JobSpec, cancel: CancelFlag) -> WorkerResult:
        """Start the job's process and join() it: the event loop waits right here."""
        if self.closed:
            raise NotStarted("coredash closed before it started")
        if cancel.is_set():
            raise NotStarted("cancelled before it started")
        fd, path = tempfile.mkstemp(prefix="coredash-result-")
        os.unlink(path)
        began = time.monotonic()
        try:
            process = self._start(spec, fd)
            try:
                self._join(record, process, began)
            except BaseException:
                # A job past its limit, or ctrl+c raised inside join(): no child outlives it.
                kill_process(process)
                process.join()
                process.close()
                raise
            finally:
                self._process = None
                self.ctx.read_reports()  # which pid, which core, when: sent while the loop was blocked
                self._last_blocked = time.monotonic() - began
                self._tell(self._last_blocked)
            data = _read_all(fd)
        finally:
            os.close(fd)
        exitcode, pid = process.exitcode, process.pid
        process.close()
        result = load_result(data)
        if result is not None:
            return result
        raise WorkerDied(pid, exitcode)

    def _start(self, spec: JobSpec, fd: int) -> BaseProcess:
        # The child writes its result through this end; run_child_job only needs a
        # fileno() to os.write to, and a Connection travels to forkserver/spawn children.
        writer = Connection(os.dup(fd), readable=False)
        try:
            process = start_job_process(self.ctx, spec, writer)
        finally:
            writer.close()
        self._process = process
        return process

    def _join(self, record: JobRecord, process: BaseProcess, began: float) -> None:
        """The seed's ``process.join()``, with the limits the engine's timers cannot apply now."""
        job_timeout = self.ctx.job_timeout
        timed_out = job_timeout is not None and job_timeout <= self.CAP_S
        limit = job_timeout if job_timeout is not None and timed_out else self.CAP_S
        deadline = began + limit  # until the start report is in: from the start() call
        while True:
            process.join(max(0.0, deadline - time.monotonic()))
            if process.exitcode is not None:
                return
            # The limit counts from the job's own start, as the engine's timer does;
            # its start report is in the pipe by now (a child slow to start gets more).
            self.ctx.read_reports()
            if record.state is JobState.RUNNING and record.started is not None:
                later = record.started + limit
                if later > time.monotonic() + 0.001:
                    deadline = later
                    continue
            raise OverLimit(process.pid, timed_out)

    def _judge_exception(self, unit: Unit, exc: Exception) -> list[Outcome] | None:
        if isinstance(exc, OverLimit):
            if exc.timed_out:
                why = f"{timeout_text(self.ctx.job_timeout)}: its process pid {exc.pid} was killed"
            else:
                why = (
                    f"hit the {format_seconds(self.CAP_S)} time limit on one blocking job: its process "
                    f"pid {exc.pid} was killed (the event loop was blocked all along)"
                )
            return [Outcome.failed(why)] * len(unit.records)
        if isinstance(exc, WorkerDied):
            return [Outcome.failed(f"worker died: {exc}")] * len(unit.records)
        return None

    def _tell(self, blocked: float) -> None:
        """Say how long the loop was blocked, now that a notice can be drawn."""
        now = time.monotonic()
        if now - self._last_notice < NOTICE_EVERY_S:
            self._unreported.append(blocked)
            self._flush_later()
            return
        text = (
            f"process.join() blocked the event loop for {blocked:.2f} s: nothing was drawn and no key "
            "was read."
        )
        if self._unreported:
            more = len(self._unreported)
            text += (
                f" ({more} more freeze{'s' if more != 1 else ''} since the last notice, the longest "
                f"{max(self._unreported):.2f} s.)"
            )
        alternative = self._awaiting_twin()
        if alternative is not None:
            label = alternative.label.capitalize()
            text += f" {label} ({alternative.key}) awaits the same process without blocking."
        self._unreported.clear()
        self._last_notice = now
        self.ctx.notice(text)

    def _flush_later(self) -> None:
        if self._flush is not None:
            self._flush.cancel()
        self._flush = asyncio.get_running_loop().call_later(FLUSH_AFTER_S, self._flush_unreported)

    def _flush_unreported(self) -> None:
        self._flush = None
        if not self._unreported or self.closed:
            return
        if self.inflight:  # the batch goes on: its next freeze will be counted too
            self._flush_later()
            return
        count, longest = len(self._unreported), max(self._unreported)
        total = sum(self._unreported)
        self._unreported.clear()
        self._last_notice = time.monotonic()
        self.ctx.notice(
            f"process.join() blocked the event loop {count} more time{'s' if count != 1 else ''} "
            f"({total:.2f} s in all, the longest {longest:.2f} s): the screen was frozen for each job."
        )

    def _awaiting_twin(self) -> ModeInfo | None:
        """The registered mode that runs jobs this way but awaits them (read from abilities)."""
        from coredash.engine.modes import REGISTRY

        wanted = dataclasses.replace(self.info.abilities, blocks_loop=False)
        return next((info for info in REGISTRY if info.abilities == wanted and info.available), None)

    def kill(self, record: JobRecord) -> bool:
        # Only reachable between two joins (the loop is blocked during one), or from a
        # start report read after it: the process is over by then.
        process = self._process
        if process is None:
            return False
        kill_process(process)
        return True

    def shutdown(self) -> None:
        pass  # nothing long-lived to release

    def close(self) -> None:
        self.closed = True
        if self._flush is not None:
            self._flush.cancel()
        if self._process is not None:
            kill_process(self._process)

    def live_pids(self) -> list[int]:
        process = self._process
        return [process.pid] if process is not None and process.pid is not None else []


async def _breathe(free: float) -> None:
    """Let the loop do what waited during the last freeze, before the next one."""
    began = time.monotonic()
    await asyncio.sleep(free)
    while time.monotonic() - began < BREATHER_MAX_S:
        before = time.monotonic()
        await asyncio.sleep(ON_TIME_S)
        if time.monotonic() - before < 2 * ON_TIME_S:
            return  # the timer ran on time: nothing else held the loop


def _read_all(fd: int) -> bytes:
    size = os.fstat(fd).st_size
    chunks = []
    offset = 0
    while offset < size:
        chunk = os.pread(fd, size - offset, offset)
        if not chunk:
            break
        chunks.append(chunk)
        offset += len(chunk)
    return b"".join(chunks)
