"""Defaults shared by the dashboard, the CLI, the bench and the scripts."""

from __future__ import annotations

from coredash.engine import usable_cpus
from coredash.engine.limits import MAX_JOBS as MAX_JOBS  # (its home now: every limit lives there)

# A dashboard batch: 6 jobs a core, a few seconds on the cores' history (1 s columns).
APP_JOBS_PER_CORE = 6
# A bench batch: 4 jobs a core, enough that every worker gets several.
BENCH_JOBS_PER_CORE = 4
# The dashboard's job workers run this much nicer than coredash itself: when they
# fill every core, the UI still gets one the moment it wakes (bench: 0).
APP_WORKER_NICE = 5


def app_jobs() -> int:
    return APP_JOBS_PER_CORE * usable_cpus()


def bench_jobs() -> int:
    return BENCH_JOBS_PER_CORE * usable_cpus()
