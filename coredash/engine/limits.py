"""Every limit on what a user may ask for, with the one validator each, shared by all front ends.

argparse, the picker and the engine call these; each raises ``LimitError`` with
a short message that names the allowed range.
"""

from __future__ import annotations

import math

MAX_SIZE = 10**12
MAX_JOBS = 100_000  # more jobs than this in one batch is a typo, not an experiment
MAX_JOB_TIMEOUT_S = 7 * 24 * 3600
MIN_MEMORY_LIMIT_MB = 256  # a worker's address-space limit below this stops Python itself from starting
MAX_MEMORY_LIMIT_MB = 1 << 30  # 1 PiB: past anything real, and still a valid rlimit
MAX_NICE = 19


class LimitError(ValueError):
    """A value outside its limit; the message is for the user."""


def max_workers_allowed(cpus: int | None = None) -> int:
    """More workers than this is a typo, not an experiment."""
    if cpus is None:
        from coredash.engine.platform import usable_cpus

        cpus = usable_cpus()
    return max(32, 16 * cpus)


def _whole(value: object) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise LimitError(f"expected a whole number, got {value!r}")
    return value


def check_size(value: object) -> int:
    size = _whole(value)
    if not 1 <= size <= MAX_SIZE:
        raise LimitError(f"must be from 1 to {MAX_SIZE:,}, got {size:,}")
    return size


def check_jobs(value: object) -> int:
    jobs = _whole(value)
    if not 1 <= jobs <= MAX_JOBS:
        raise LimitError(f"must be from 1 to {MAX_JOBS:,} jobs per batch, got {jobs:,}")
    return jobs


def check_workers(value: object, cpus: int | None = None) -> int:
    limit = max_workers_allowed(cpus)
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= limit:
        raise LimitError(f"workers must be a whole number from 1 to {limit}, not {value!r}")
    return value


def check_job_timeout(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value):
        raise LimitError(f"job_timeout must be a number of seconds, not {value!r}")
    if not 0 < value <= MAX_JOB_TIMEOUT_S:
        raise LimitError(f"job_timeout must be above 0 and at most {MAX_JOB_TIMEOUT_S} s, not {value!r}")
    return float(value)


def check_memory_limit(value: object) -> int:
    if (
        not isinstance(value, int)
        or isinstance(value, bool)
        or not MIN_MEMORY_LIMIT_MB <= value <= MAX_MEMORY_LIMIT_MB
    ):
        raise LimitError(
            f"memory_limit_mb must be from {MIN_MEMORY_LIMIT_MB} (a Python worker needs that much "
            f"address space to start) to {MAX_MEMORY_LIMIT_MB}, not {value!r}"
        )
    return value


def check_nice(value: object) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= MAX_NICE:
        raise LimitError(f"worker_nice must be a whole number from 0 to {MAX_NICE}, not {value!r}")
    return value
