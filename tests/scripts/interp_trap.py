"""Run as a script: interpreter pools whose entry point trips the 3.13 executor's spin trap.

The trap (measured): a failure outside the job function is never reported, the
worker thread spins and the future never completes. coredash's own entry point
never trips it; this script swaps in two that do, to show the watchdog bounds the
wait, fails the job with a reason and hands the next job to a fresh pool. It ends
with os._exit: a spinning executor thread cannot be joined.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from coredash.engine import Engine, PoolNotice
from coredash.engine.backends.interpreters import InterpreterBackend
from coredash.engine.worker import run_interpreter_job
from tests.scripts.interp_tasks import spoiled_entry


def entry_in_main(*args: Any) -> bytes:
    """Defined in __main__, which is another module inside an interpreter: it cannot unpickle there."""
    return run_interpreter_job(*args)


async def trip(entry: Any) -> dict[str, Any]:
    InterpreterBackend.entry = staticmethod(entry)
    engine = Engine(mode="interpreters", workers=1, keep_results=True)
    notices: list[str] = []
    engine.subscribe(lambda event: notices.append(event.message) if isinstance(event, PoolNotice) else None)
    try:
        began = time.monotonic()
        job = engine.submit("tiny", {"n": 1})
        await asyncio.wait_for(engine.wait_idle(), 30)
        took = time.monotonic() - began
        InterpreterBackend.entry = staticmethod(run_interpreter_job)
        after = engine.submit("tiny", {"n": 2})
        await asyncio.wait_for(engine.wait_idle(), 30)
        return {
            "state": job.state.value,
            "error": job.error,
            "took": took,
            "after": after.state.value,
            "after_result": after.result_repr,
            "notices": notices,
        }
    finally:
        await engine.close()


async def main() -> None:
    InterpreterBackend.result_grace_s = 1.0
    InterpreterBackend.start_cap_s = 1.5
    report = {"spoiled result": await trip(spoiled_entry), "entry in __main__": await trip(entry_in_main)}
    print(json.dumps(report), flush=True)


if __name__ == "__main__":
    asyncio.run(main())
    os._exit(0)
