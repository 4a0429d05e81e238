"""Run the engine inside a real Textual app, in a fresh interpreter (see test_textual_host.py).

Scenarios: "control" shows the trap is real here (a bare forkserver pool created
while Textual runs fails); "before" builds the engine before the app starts, as
coredash does; "inside" builds it while the app runs (the stderr guard's job).
"""

import asyncio
import sys

from textual.app import App


async def main(scenario):
    from coredash.engine import Engine

    engine = Engine(mode="process", workers=2) if scenario == "before" else None
    app = App()
    out = {}
    async with app.run_test():
        out["stderr_fileno"] = sys.stderr.fileno()
        if scenario == "control":
            import multiprocessing
            from concurrent.futures import ProcessPoolExecutor

            try:
                with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("forkserver")) as pool:
                    out["control"] = pool.submit(abs, -1).result()
            except Exception as exc:
                out["control"] = f"{type(exc).__name__}: {exc}"
        else:
            if engine is None:
                engine = Engine(mode="process", workers=2)
            results = []
            for mode in ("process", "process-per-job", "thread"):
                engine.set_mode(mode)
                batch = engine.submit_batch("tiny", 3)
                s = await engine.wait_batch(batch)
                results.append((mode, s.done))
            out["results"] = results
            await engine.close()
    print(repr(out))


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
