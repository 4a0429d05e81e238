"""coredash: watch Python's executors use (or fail to use) your cores, live.

This module must stay importable on old Pythons (no 3.11-only syntax) so that
``coredash`` can tell a user on Python < 3.11 what is wrong in one sentence.
"""

__version__ = "0.1.0"

MIN_PYTHON = (3, 11)
