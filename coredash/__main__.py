"""Entry point for ``coredash`` and ``python -m coredash``.

Kept free of 3.11-only syntax: the version check below must run (and print one
clear sentence) before anything that needs a newer Python is imported.
"""

import os
import sys

from coredash import MIN_PYTHON


def _forget_the_current_folder():
    # type: () -> None
    """`python -m coredash` puts the current folder first on sys.path, where a
    project's own tasks.py would shadow coredash's `tasks` catalogue. Nothing
    is imported from there (user task files are loaded by path), so drop it,
    unless it is the folder coredash itself was found in (a source checkout)."""
    if not sys.path:
        return
    first = os.path.abspath(sys.path[0] or os.curdir)
    home = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    if first == os.path.abspath(os.curdir) and first != home:
        del sys.path[0]


def main(argv=None):
    # type: (list[str] | None) -> int
    # (a type comment, not annotations: this file must parse on old Pythons)
    if sys.version_info < MIN_PYTHON:
        found = "%d.%d" % sys.version_info[:2]
        sys.stderr.write(
            "coredash needs Python %d.%d or newer, but this is Python %s.\n"
            % (MIN_PYTHON[0], MIN_PYTHON[1], found)
        )
        return 1
    from coredash.cli import run

    return run(sys.argv[1:] if argv is None else argv)


if __name__ == "__main__":
    _forget_the_current_folder()
    sys.exit(main())
