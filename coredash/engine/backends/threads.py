"""Threads: a ThreadPoolExecutor inside coredash's own process, sharing its GIL."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

from coredash.engine.backends import THREAD_NAME_PREFIX
from coredash.engine.backends.base import Backend, BackendContext, NotStarted, Unit
from coredash.engine.worker import WorkerResult, lower_priority, run_job, run_jobs, warm_up

if TYPE_CHECKING:
    from coredash.engine.modes import ModeInfo


class ThreadBackend(Backend):
    def __init__(self, info: ModeInfo, ctx: BackendContext) -> None:
        super().__init__(info, ctx)
        # Never the loop's default executor: Textual's own thread workers use that one.
        self.executor = ThreadPoolExecutor(
            max_workers=ctx.size,
            thread_name_prefix=THREAD_NAME_PREFIX,
            initializer=lower_priority,
            initargs=(ctx.limits.nice,),
        )

    async def _call(self, unit: Unit) -> list[WorkerResult]:
        if self.closed:
            raise NotStarted("coredash closed before it started")
        loop = asyncio.get_running_loop()
        report = self.ctx.report_in_process
        if len(unit.specs) == 1:
            return [
                await loop.run_in_executor(self.executor, run_job, unit.specs[0], report, unit.cancels[0])
            ]
        return await loop.run_in_executor(self.executor, run_jobs, unit.specs, report, unit.cancels)

    async def warm_up(self) -> None:
        loop = asyncio.get_running_loop()
        await asyncio.gather(*(loop.run_in_executor(self.executor, warm_up, 0.01) for _ in range(self.size)))

    def shutdown(self) -> None:
        self.executor.shutdown(wait=False)

    def close(self) -> None:
        self.closed = True
        self.executor.shutdown(wait=False, cancel_futures=True)
