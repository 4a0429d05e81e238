"""Regenerate the README's screenshots from real runs (real jobs, real psutil samples).

    .venv-3.13/bin/python screenshots/generate.py [--size 160x45]   # 3.13: with interpreters

One dashboard session, driven the way a user would drive it:

1. threads-pure-python.svg: count_primes on threads, mid-batch. One core's worth
   of work spread over the cores; coredash's process at ~1.0 cores (the GIL).
2. processes-pure-python.svg: the same batch on a process pool: every core busy.
3. interpreters-pure-python.svg: the same batch on subinterpreters (where the
   mode runs: 3.13 with coredash[interpreters], or 3.14): every core busy inside
   coredash's own process.
4. blocking-join.svg: right after the same batch ran with process.join() on the
   loop: the notice and the lag meter say how long the screen was frozen.
5. side-by-side.svg: after the same batch ran in every mode.
6. threads-gil-free.svg: sha256 (releases the GIL) on threads: every core busy.

Numbers depend on the machine and on what else runs on it; the script waits on
the batch's progress, never on fixed sleeps, so every shot shows what it says.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from coredash.engine import Engine, Mode

if TYPE_CHECKING:
    from coredash.app import CoredashApp

HERE = Path(__file__).resolve().parent


async def wait_for(condition: Callable[[], bool], timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError("the dashboard did not reach the state this screenshot needs")
        await asyncio.sleep(0.05)


def batch_fraction(app: CoredashApp) -> float:
    batches = app.engine.snapshot().batches
    if not batches:
        return 0.0
    batch = batches[-1]
    return batch.ended / batch.count


def batch_finished(app: CoredashApp) -> bool:
    batches = app.engine.snapshot().batches
    return bool(batches) and batches[-1].finished and not app.engine.snapshot().active


async def shoot(app: CoredashApp, name: str) -> None:
    app.tick()  # draw from a fresh sample, then give the compositor a frame
    await asyncio.sleep(0.3)
    path = app.save_screenshot(f"{name}.svg", str(HERE))
    print(f"wrote {path}")


async def run_batch(app: CoredashApp, mode: Mode, until_fraction: float | None) -> None:
    app.action_set_mode(mode.value)
    await wait_for(lambda: not app.engine.snapshot().active)
    if mode is Mode.PROCESS:
        await app.engine.warm_up()
    app.action_run_batch()
    if until_fraction is not None:
        await wait_for(lambda: batch_fraction(app) >= until_fraction)
    else:
        await wait_for(lambda: batch_finished(app))


async def session(size: tuple[int, int]) -> None:
    # Imported here, not at the top: worker processes re-run this script as their
    # __main__, and importing the UI there would be billed to every job.
    from coredash.app import CoredashApp

    engine = Engine(mode=Mode.THREAD)
    app = CoredashApp(engine, task="count_primes")  # the dashboard's default batch
    async with app.run_test(size=size):
        await asyncio.sleep(2.0)  # some idle history first
        await run_batch(app, Mode.THREAD, until_fraction=0.6)
        await shoot(app, "threads-pure-python")
        await wait_for(lambda: batch_finished(app))

        await run_batch(app, Mode.PROCESS, until_fraction=0.6)
        await shoot(app, "processes-pure-python")
        await wait_for(lambda: batch_finished(app))

        await run_batch(app, Mode.PROCESS_PER_JOB, until_fraction=None)

        why = Mode.INTERPRETERS.info.reason_unavailable
        if why is None:
            await run_batch(app, Mode.INTERPRETERS, until_fraction=0.6)
            await shoot(app, "interpreters-pure-python")
            await wait_for(lambda: batch_finished(app))
        else:
            print(f"interpreters-pure-python.svg not taken: the mode {why}")

        # The loop is blocked for each job: the shot comes after the freeze, with the
        # notice and the lag meter that report it.
        await run_batch(app, Mode.BLOCKING, until_fraction=None)
        await asyncio.sleep(0.5)
        await shoot(app, "blocking-join")
        await asyncio.sleep(6.0)  # let the notifications fade
        await shoot(app, "side-by-side")

        app.task_name, app.task_size = "sha256", engine.catalog.get("sha256").default_size
        await run_batch(app, Mode.THREAD, until_fraction=0.6)
        await shoot(app, "threads-gil-free")
        await app.action_quit()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="160x45", help="terminal size, COLSxROWS")
    args = parser.parse_args()
    columns, rows = (int(part) for part in args.size.lower().split("x"))
    asyncio.run(session((columns, rows)))


if __name__ == "__main__":
    main()
