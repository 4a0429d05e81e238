"""What to expect from a mode on this build: the one place that decides whether jobs scale.

Threads share one GIL on a normal build and run Python in parallel on a
free-threaded one (3.13t/3.14t) with the GIL off. Every view, ``coredash bench``
and ``benchmarks/executor_scaling.py`` ask ``expectation()`` instead of assuming
the GIL; it reads a mode's ``Abilities``, the task's ``releases_gil`` and a
``GilState``, never a mode's name. Tests build a ``GilState`` for builds that
cannot be installed here (no free-threaded interpreter is): that is the seam.

coredash never sets ``PYTHON_GIL`` or ``-X gil`` for a child: on a build with
the GIL either one is a fatal error at start-up.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from enum import StrEnum

from coredash.engine.modes import Abilities
from coredash.engine.platform import free_threaded_build, gil_enabled


@dataclass(frozen=True, slots=True)
class GilState:
    """The build, and whether its GIL is on right now."""

    free_threaded: bool  # a 3.13t/3.14t build (Py_GIL_DISABLED)
    enabled: bool  # the GIL is on now: always on a normal build
    # Why a free-threaded build has its GIL on: PYTHON_GIL=1, -X gil=1, or an
    # extension module that does not declare free-threading support (which turns
    # it back on for good, with a RuntimeWarning).
    because: str | None = None

    @classmethod
    def now(cls) -> GilState:
        """Read it now: an import can switch the GIL back on, so ask again rather than keep one."""
        free, enabled = free_threaded_build(), gil_enabled()
        because = None
        if free and enabled:
            because = _why_on(os.environ.get("PYTHON_GIL"), sys._xoptions.get("gil"))
        return cls(free, enabled, because)

    @property
    def label(self) -> str:
        """For the status line: "GIL on", "GIL off (free-threaded)", "GIL on again (free-threaded)"."""
        if not self.enabled:
            return "GIL off (free-threaded)"
        return "GIL on again (free-threaded)" if self.free_threaded else "GIL on"


def _why_on(env: str | None, xoption: str | bool | None) -> str:
    if xoption not in (None, False):
        return f"-X gil={xoption}"
    if env is not None:
        return f"PYTHON_GIL={env}"
    return "an extension module without free-threading support switched it back on"


class Outlook(StrEnum):
    """How a batch on N workers should compare with the same batch on one."""

    SCALES = "scales"  # close to one core per worker, up to the cores
    ONE_CORE = "one core"  # one core's worth however many workers: a shared GIL
    ONE_AT_A_TIME = "one at a time"  # jobs run one after another (the loop is blocked)
    DEPENDS = "depends on the task"  # whether the task releases the GIL is not known


@dataclass(frozen=True, slots=True)
class Expectation:
    outlook: Outlook
    why: str  # one line, for hints and the help screen
    # A running job competes with the dashboard's own loop for one GIL: the lag
    # meter's "UI waits for the GIL" applies.
    ui_waits_for_gil: bool = False

    @property
    def scales(self) -> bool:
        return self.outlook is Outlook.SCALES


def expectation(abilities: Abilities, releases_gil: bool | None, gil: GilState) -> Expectation:
    """What pure-Python (``releases_gil=False``) or GIL-free jobs do on ``abilities``' executor here."""
    if abilities.blocks_loop:
        return Expectation(
            Outlook.ONE_AT_A_TIME, "each job blocks the event loop, so the next cannot start until it ends"
        )
    if not abilities.shares_ui_gil:
        if abilities.in_process:
            return Expectation(Outlook.SCALES, "each worker runs its own interpreter, with its own GIL")
        return Expectation(Outlook.SCALES, "each worker is a process with its own interpreter and GIL")
    # Threads of coredash's own interpreter: whatever the job, while the GIL is on
    # the dashboard's loop has to win it back from them.
    ui = gil.enabled
    if not gil.enabled:
        return Expectation(
            Outlook.SCALES, "free-threaded build with the GIL off: threads run Python in parallel"
        )
    if releases_gil:
        return Expectation(
            Outlook.SCALES, "the job's C code releases the GIL, so threads run it in parallel", ui
        )
    caught = "the GIL lets one thread run Python at a time"
    if gil.free_threaded:
        caught = f"the GIL is on again ({gil.because or 'switched on'}): {caught}"
    if releases_gil is None:
        return Expectation(Outlook.DEPENDS, f"if the job holds the GIL, {caught}", ui)
    return Expectation(Outlook.ONE_CORE, caught, ui)
