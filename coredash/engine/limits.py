"""Every limit on what a user may ask for, with the one validator each, shared by all front ends.

argparse, the picker and the engine call these: ``check_*`` for a value,
``parse_*`` for text a person typed. Each raises ``LimitError``, whose message
names the setting and its range and whose ``problem`` reads after a field's name.
Pure: no UI, nothing heavy (a worker process may import it).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TypeGuard

from coredash.engine.chunking import AUTO, MAX_FIXED_CHUNK, OFF, ChunkPolicy

MAX_SIZE = 10**12
MAX_JOBS = 100_000  # more jobs than this in one batch is a typo, not an experiment
MAX_JOB_TIMEOUT_S = 7 * 24 * 3600
MIN_MEMORY_LIMIT_MB = 256  # a worker's address-space limit below this stops Python itself from starting
MAX_MEMORY_LIMIT_MB = 1 << 30  # 1 PiB: past anything real, and still a valid rlimit
MAX_NICE = 19
# The most one job may block the event loop (the blocking join mode): the picker,
# the command line and the engine refuse sizes expected to run longer, and a job
# that runs longer all the same is killed there. Ten seconds of a frozen dashboard
# make the point; an hour would look like a hang.
MAX_BLOCKING_JOB_S = 10.0


class LimitError(ValueError):
    """A value outside its limit, said two ways.

    ``str(error)`` names the setting and its whole range, as the engine reports
    it: "workers must be a whole number from 1 to 64, not 0". ``problem`` says
    what is wrong for a field that is already named, as argparse ("argument
    --workers: must be at least 1, got 0") and the picker ("size: …") show it.
    """

    def __init__(self, setting: str, allowed: str, value: object, problem: str) -> None:
        super().__init__(f"{setting} must be {allowed}, not {shown(value)}")
        self.setting = setting
        self.allowed = allowed
        self.value = value
        self.problem = problem


@dataclass(frozen=True)
class Limit:
    """One limit: the engine's name for the setting, and the range it allows, in words."""

    setting: str
    allowed: str

    def refuse(self, value: object, problem: str) -> LimitError:
        return LimitError(self.setting, self.allowed, value, problem)


SIZE = Limit("size", f"a whole number from 1 to {MAX_SIZE:,}")
JOBS = Limit("jobs", f"a whole number from 1 to {MAX_JOBS:,} (jobs per batch)")
JOB_TIMEOUT = Limit("job_timeout", f"a number of seconds above 0 and at most {MAX_JOB_TIMEOUT_S}")
MEMORY_LIMIT = Limit(
    "memory_limit_mb",
    f"a whole number of MiB from {MIN_MEMORY_LIMIT_MB} (a Python worker needs that much "
    f"address space to start) to {MAX_MEMORY_LIMIT_MB}",
)
NICE = Limit("worker_nice", f"a whole number from 0 to {MAX_NICE}")
CHUNK = Limit("chunk", f"auto, off or a whole number of jobs per call from 1 to {MAX_FIXED_CHUNK:,}")


def workers_limit(cpus: int | None = None) -> Limit:
    return Limit("workers", f"a whole number from 1 to {max_workers_allowed(cpus)}")


def max_workers_allowed(cpus: int | None = None) -> int:
    """More workers than this is a typo, not an experiment."""
    return max(32, 16 * _cpus(cpus))


def _cpus(cpus: int | None) -> int:
    if cpus is None:
        from coredash.engine.platform import usable_cpus

        cpus = usable_cpus()
    return cpus


def shown(value: object, limit: int = 24) -> str:
    """A value quoted for a message, cut short if it is long (a user's text or a huge number)."""
    if isinstance(value, str):
        if len(value) <= limit:
            return repr(value)
        return repr(value[:limit]) + f"… ({len(value):,} characters)"
    if isinstance(value, int) and not isinstance(value, bool):
        if abs(value) < 10**limit:
            return f"{value:,}"
        return f"a {_digits(value):,}-digit number"  # (str() refuses past 4,300 digits)
    return repr(value)


def _digits(value: int) -> int:
    value = abs(value)
    digits = int(math.log10(value)) + 1
    if 10 ** (digits - 1) > value:
        digits -= 1
    elif 10**digits <= value:
        digits += 1
    return digits


def _is_whole(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


# --- the checks: one per limit, for values (engine arguments, parsed input) ---


def check_size(value: object, most: int | None = None) -> int:
    """A task's size knob; ``most`` is the task's own, lower limit if it has one."""
    high = MAX_SIZE if most is None else min(most, MAX_SIZE)
    limit = SIZE if high == MAX_SIZE else Limit("size", f"a whole number from 1 to {high:,}")
    if not _is_whole(value):
        raise limit.refuse(value, f"expected a whole number, got {shown(value)}")
    if value < 1:
        raise limit.refuse(value, f"must be at least 1, got {shown(value)}")
    if value > high:
        raise limit.refuse(value, f"at most {high:,}, got {shown(value)}")
    return value


def check_jobs(value: object) -> int:
    """Jobs in one batch."""
    if not _is_whole(value):
        raise JOBS.refuse(value, f"expected a whole number, got {shown(value)}")
    if value < 1:
        raise JOBS.refuse(value, f"must be at least 1, got {shown(value)}")
    if value > MAX_JOBS:
        raise JOBS.refuse(value, f"at most {MAX_JOBS:,} jobs per batch, got {shown(value)}")
    return value


def check_workers(value: object, cpus: int | None = None) -> int:
    """Jobs run at once, for a machine with ``cpus`` usable cores (default: this one)."""
    cpus = _cpus(cpus)
    limit = workers_limit(cpus)
    if not _is_whole(value):
        raise limit.refuse(value, f"expected a whole number, got {shown(value)}")
    if value < 1:
        raise limit.refuse(value, f"must be at least 1, got {shown(value)}")
    most = max_workers_allowed(cpus)
    if value > most:
        raise limit.refuse(
            value, f"{shown(value)} workers is too many for {cpus} usable cores (at most {most})"
        )
    return value


def check_job_timeout(value: object) -> float:
    """Seconds a job may run before it is failed."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise JOB_TIMEOUT.refuse(value, f"expected a number of seconds, got {shown(value)}")
    if not 0 < value <= MAX_JOB_TIMEOUT_S:  # also refuses nan and inf
        raise JOB_TIMEOUT.refuse(
            value, f"must be above 0 and at most {MAX_JOB_TIMEOUT_S} s, got {shown(value)}"
        )
    return float(value)


def check_memory_limit(value: object) -> int:
    """A worker process's address-space limit, in MiB."""
    if not _is_whole(value):
        raise MEMORY_LIMIT.refuse(value, f"expected a whole number, got {shown(value)}")
    if value < MIN_MEMORY_LIMIT_MB:
        raise MEMORY_LIMIT.refuse(
            value,
            f"must be at least {MIN_MEMORY_LIMIT_MB} MiB (a Python worker needs that much), "
            f"got {shown(value)}",
        )
    if value > MAX_MEMORY_LIMIT_MB:
        raise MEMORY_LIMIT.refuse(value, f"must be at most {MAX_MEMORY_LIMIT_MB:,} MiB (1 PiB)")
    return value


def check_nice(value: object) -> int:
    """How much nicer than coredash the job workers run."""
    if not _is_whole(value):
        raise NICE.refuse(value, f"expected a whole number from 0 to {MAX_NICE}, got {shown(value)}")
    if not 0 <= value <= MAX_NICE:
        raise NICE.refuse(value, f"must be from 0 to {MAX_NICE}, got {shown(value)}")
    return value


def check_chunk(value: object) -> ChunkPolicy:
    """Jobs per executor call: a ChunkPolicy, "auto", "off", or a whole number (1 is off)."""
    if isinstance(value, ChunkPolicy):
        value = value.size if value.size is not None else "auto"
    if value is None or value == "auto":
        return AUTO
    if value == "off":
        return OFF
    if not _is_whole(value):
        raise CHUNK.refuse(value, f"expected auto, off or a whole number of jobs, got {shown(value)}")
    if value < 1:
        raise CHUNK.refuse(value, f"must be at least 1 (1 is the same as off), got {shown(value)}")
    if value > MAX_FIXED_CHUNK:
        raise CHUNK.refuse(
            value,
            f"at most {MAX_FIXED_CHUNK:,} jobs per call (more stalls the dashboard), got {shown(value)}",
        )
    return OFF if value == 1 else ChunkPolicy(value)


def blocking_refusal(expected_s: float | None, job_timeout: float | None = None) -> str | None:
    """Why a job expected to run ``expected_s`` seconds may not block the event loop (None: it may).

    Unknown run times pass: the cap itself ends such a job, with its reason.
    """
    if expected_s is None or expected_s <= MAX_BLOCKING_JOB_S:
        return None
    if job_timeout is not None and job_timeout <= MAX_BLOCKING_JOB_S:
        return None  # the job timeout ends it sooner
    from coredash.units import format_seconds

    return (
        f"each job would block the event loop for about {format_seconds(expected_s)}, and blocking "
        f"join lets one job block it for at most {MAX_BLOCKING_JOB_S:g} s "
        "(nothing is drawn and no key is read meanwhile)"
    )


# --- text a person typed: parsed, then the same checks ---


def parse_whole(text: str, limit: Limit, expected: str = "a whole number") -> int:
    """A whole number ("1_000" too), or LimitError saying that ``text`` is not one."""
    try:
        return int(text.strip().replace("_", ""))
    except ValueError:  # not a number, or more digits than int() reads
        raise limit.refuse(text, f"expected {expected}, got {shown(text)}") from None


def parse_seconds(text: str, limit: Limit) -> float:
    try:
        return float(text.strip().replace("_", ""))
    except ValueError:
        raise limit.refuse(text, f"expected a number of seconds, got {shown(text)}") from None


def parse_size(text: str, most: int | None = None) -> int:
    return check_size(parse_whole(text, SIZE), most)


def parse_jobs(text: str) -> int:
    return check_jobs(parse_whole(text, JOBS))


def parse_workers(text: str, cpus: int | None = None) -> int:
    return check_workers(parse_whole(text, workers_limit(cpus)), cpus)


def parse_job_timeout(text: str) -> float:
    return check_job_timeout(parse_seconds(text, JOB_TIMEOUT))


def parse_memory_limit(text: str) -> int:
    return check_memory_limit(parse_whole(text, MEMORY_LIMIT))


def parse_chunk(text: str) -> ChunkPolicy:
    word = text.strip().lower()
    if word in ("auto", "off"):
        return check_chunk(word)
    return check_chunk(parse_whole(text, CHUNK, "auto, off or a whole number of jobs"))


def parse_nice(text: str) -> int:
    return check_nice(parse_whole(text, NICE, f"a whole number from 0 to {MAX_NICE}"))
