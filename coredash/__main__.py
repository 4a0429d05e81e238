"""Entry point for ``coredash`` and ``python -m coredash``.

Kept free of 3.11-only syntax: the version check below must run (and print one
clear sentence) before anything that needs a newer Python is imported.
"""

import sys

from coredash import MIN_PYTHON


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
    sys.exit(main())
