"""coredash's scheduling engine: no UI in here (an import-linter contract keeps it so).

Drive it from any asyncio loop::

    async with Engine(mode="process", workers=4) as engine:
        batch = engine.submit_batch("count_primes", count=8)
        summary = await engine.wait_batch(batch)
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from coredash.engine.catalog import Catalog, CatalogError, TaskInfo, TaskRef
    from coredash.engine.engine import Engine, EngineError, max_workers_allowed
    from coredash.engine.model import (
        BatchFinished,
        BatchRecord,
        BatchSummary,
        ConfigChanged,
        EngineEvent,
        EngineSnapshot,
        HistoryCleared,
        JobChanged,
        JobRecord,
        JobState,
        PoolNotice,
    )
    from coredash.engine.modes import REGISTRY, Abilities, Mode, ModeInfo
    from coredash.engine.platform import (
        current_core,
        default_start_method,
        gil_enabled,
        python_label,
        usable_cpus,
    )


# Where each public name lives. Loaded on first use (PEP 562): a spawned worker
# process imports coredash.engine.worker, and should not pay for the scheduler,
# asyncio and concurrent.futures (~80 ms) just to run a job.
_HOMES = {
    "Catalog": "catalog",
    "CatalogError": "catalog",
    "TaskInfo": "catalog",
    "TaskRef": "catalog",
    "Engine": "engine",
    "EngineError": "engine",
    "max_workers_allowed": "engine",
    "REGISTRY": "modes",
    "Abilities": "modes",
    "Mode": "modes",
    "ModeInfo": "modes",
    "current_core": "platform",
    "default_start_method": "platform",
    "gil_enabled": "platform",
    "python_label": "platform",
    "usable_cpus": "platform",
}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name, "model" if name in __all__ else None)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{home}"), name)
    globals()[name] = value  # next time, a plain lookup
    return value


__all__ = [
    "REGISTRY",
    "Abilities",
    "BatchFinished",
    "BatchRecord",
    "BatchSummary",
    "Catalog",
    "CatalogError",
    "ConfigChanged",
    "Engine",
    "EngineError",
    "EngineEvent",
    "EngineSnapshot",
    "HistoryCleared",
    "JobChanged",
    "JobRecord",
    "JobState",
    "Mode",
    "ModeInfo",
    "PoolNotice",
    "TaskInfo",
    "TaskRef",
    "current_core",
    "default_start_method",
    "gil_enabled",
    "max_workers_allowed",
    "python_label",
    "usable_cpus",
]
