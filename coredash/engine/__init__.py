"""coredash's scheduling engine: no UI in here (an import-linter contract keeps it so).

Drive it from any asyncio loop::

    async with Engine(mode="process", workers=4) as engine:
        batch = engine.submit_batch("count_primes", count=8)
        summary = await engine.wait_batch(batch)
"""

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
    Mode,
    PoolNotice,
)
from coredash.engine.platform import (
    current_core,
    default_start_method,
    gil_enabled,
    python_label,
    usable_cpus,
)

__all__ = [
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
