"""Process, signal and terminal lifecycle: how coredash starts its helpers and stops, once.

Shared by the dashboard (``coredash.app``), ``coredash bench`` and the command
line. A stop signal (ctrl+c, SIGTERM, a closed terminal's SIGHUP) must end
coredash once, cleanly: worker processes and multiprocessing's helpers ended,
their temporary files removed, and one last line on stderr if anyone can read it.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Any

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
# The stop signals the dashboard turns into a quit (ctrl+c is a key there).
QUIT_SIGNALS = (signal.SIGTERM, signal.SIGHUP)


class Stopped(KeyboardInterrupt):
    """A stop signal (SIGTERM, a closed terminal's SIGHUP), unwound like ctrl+c."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


# --- signals --------------------------------------------------------------------


def stop_at_once(signum: int, frame: object) -> None:
    """The first stop signal: deaf to the rest, then unwind like ctrl+c.

    A person who sees no answer presses ctrl+c again and again. Each press
    used to raise a new KeyboardInterrupt wherever it landed: in asyncio's own
    clean-up, or halfway through the progress bar's exit, which once swallowed
    the "interrupted" line. One signal is enough to stop; the rest are ignored.
    """
    ignore_stop_signals()
    if signum == signal.SIGINT:
        raise KeyboardInterrupt
    raise Stopped(signum)


def stop_at_the_first_signal() -> None:
    """ctrl+c, SIGTERM and SIGHUP end a headless run at once, and only once.

    Left to their defaults, SIGTERM and SIGHUP would end coredash on the spot,
    leaving the process pool and multiprocessing's helpers behind with their
    temporary files. Installing a handler for SIGINT also keeps asyncio.run
    from installing its own, which raises again on every further ctrl+c.
    """
    for signum in STOP_SIGNALS:
        with contextlib.suppress(ValueError, OSError):  # not the main thread; no such signal
            signal.signal(signum, stop_at_once)


def ignore_stop_signals(signums: Iterable[int] = STOP_SIGNALS) -> None:
    """On the way out already: one more ctrl+c must not print a traceback from the exit.

    (An ignored signal stays ignored at exit, when Python resets its own handlers.)
    """
    for signum in signums:
        with contextlib.suppress(ValueError, OSError):
            signal.signal(signum, signal.SIG_IGN)


@contextlib.contextmanager
def signals_blocked(signums: Iterable[int]) -> Iterator[bool]:
    """Hold these signals pending meanwhile; says whether it could (signal masks exist)."""
    try:
        before = signal.pthread_sigmask(signal.SIG_BLOCK, set(signums))
    except (AttributeError, OSError, ValueError):  # no signal masks on this platform
        before = None
    try:
        yield before is not None
    finally:
        if before is not None:
            signal.pthread_sigmask(signal.SIG_SETMASK, before)


@contextlib.contextmanager
def ctrl_c_at_once() -> Iterator[None]:
    """ctrl+c stops plain code (the bench's serial loop) at once; asyncio.run's handler would wait."""
    try:
        previous = signal.signal(signal.SIGINT, stop_at_once)
    except ValueError:  # not the main thread
        yield
        return
    yield
    # Not on the way out of a ctrl+c: stop_at_once has made further ones ignored.
    signal.signal(signal.SIGINT, previous)


class StopSignals:
    """ctrl+c, SIGTERM or SIGHUP while the engine runs: cancel the current task at its next await, once.

    asyncio.run's own handling raises KeyboardInterrupt wherever a second ctrl+c
    lands: in the middle of starting a pool worker, or of closing the engine, it
    left workers behind that printed tracebacks after coredash had exited. A
    cancellation only ever lands on an await. On the way out the signal becomes
    KeyboardInterrupt (ctrl+c) or Stopped, which the command line reports.
    """

    def __init__(self) -> None:
        self.signum: int | None = None
        self._task: asyncio.Task[Any] | None = None
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> StopSignals:
        loop = asyncio.get_running_loop()
        self._task = asyncio.current_task()
        for signum in STOP_SIGNALS:
            previous = signal.getsignal(signum)
            try:
                loop.add_signal_handler(signum, self._stop, signum)
            except (NotImplementedError, RuntimeError, ValueError):
                continue  # not the main thread, or no such signal here
            self._previous[signum] = previous
        return self

    def _stop(self, signum: int) -> None:
        if self.signum is None and self._task is not None:
            self.signum = signum
            self._task.cancel()

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: Any) -> None:
        loop = asyncio.get_running_loop()
        # Blocked while the handlers change hands: asyncio puts Python's own
        # KeyboardInterrupt handler back for a moment, and a ctrl+c landing then
        # would interrupt the clean-up. Once stopping, further signals are ignored
        # (one that arrived meanwhile is dropped when its action becomes "ignore").
        with signals_blocked(STOP_SIGNALS):
            for signum, previous in self._previous.items():
                loop.remove_signal_handler(signum)
                if self.signum is None and previous is not None:
                    signal.signal(signum, previous)
            if self.signum is not None:
                ignore_stop_signals()
        if self.signum is None or (kind is not None and not issubclass(kind, asyncio.CancelledError)):
            return
        if self._task is not None:
            self._task.uncancel()
        if self.signum == signal.SIGINT:
            raise KeyboardInterrupt
        raise Stopped(self.signum)


class StopRequests:
    """SIGTERM and SIGHUP while the dashboard is not up to handle them: remembered, not fatal.

    ``run_app`` installs this for the whole run. Before the app has mounted, a
    stop signal makes it quit as soon as it is up; after it has unmounted the
    quit is already under way, and the default action would cut short the
    terminal's restoration and the clean-up of worker processes and temporary files.
    """

    def __init__(self) -> None:
        self.received: list[int] = []

    def __call__(self, signum: int, frame: object) -> None:
        self.received.append(signum)

    def install(self) -> None:
        for signum in QUIT_SIGNALS:
            with contextlib.suppress(ValueError, OSError):  # only the main thread may
                signal.signal(signum, self)


# --- helper processes -------------------------------------------------------------


@contextlib.contextmanager
def helpers_immune_to_ctrl_c() -> Iterator[None]:
    """Start multiprocessing's helper processes (forkserver, resource tracker) deaf to ctrl+c.

    The terminal sends ctrl+c to every process in the foreground group, and the
    forkserver only starts ignoring it once it has imported the task modules: a
    ctrl+c in its first second printed a KeyboardInterrupt traceback. coredash
    ends its helpers itself. A child inherits an ignored signal; blocking it
    meanwhile keeps a ctrl+c pressed now pending for coredash, not lost.
    """
    from multiprocessing import resource_tracker

    from coredash.engine.backends._processes import stderr_with_fileno

    # The tracker guards its own start, then unblocks ctrl+c: start it first.
    with stderr_with_fileno():
        resource_tracker.ensure_running()
    with signals_blocked([signal.SIGINT]) as blocked:
        previous = None
        if blocked:
            with contextlib.suppress(ValueError):  # not the main thread
                previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
        try:
            yield
        finally:
            if previous is not None:
                signal.signal(signal.SIGINT, previous)


# --- the terminal ---------------------------------------------------------------


def terminal_hung_up() -> bool:
    """True once the terminal coredash runs in has been closed (reads and writes fail with EIO)."""
    stream = sys.__stdin__
    try:
        import termios  # Unix only
    except ImportError:
        return False
    if stream is None:
        return False
    try:
        termios.tcgetattr(stream.fileno())
    except termios.error as exc:
        return bool(exc.args) and exc.args[0] == errno.EIO
    except (OSError, ValueError):
        return False
    return False


def detach_from_terminal() -> None:
    """Point stdin, stdout and stderr at /dev/null, once the terminal has been closed.

    What is left in the output buffers has nowhere to go, and a failed flush at
    exit would turn a clean stop into exit status 120.
    """
    null = os.open(os.devnull, os.O_RDWR)
    try:
        for fd in (0, 1, 2):
            os.dup2(null, fd)
    finally:
        os.close(null)


def detach_if_hung_up() -> bool:
    """Detach from a terminal that has been closed; says whether it was."""
    if not terminal_hung_up():
        return False
    detach_from_terminal()
    return True


def say(line: str) -> None:
    """Write to stderr; if the terminal has been closed, there is no one to tell."""
    if detach_if_hung_up():
        return
    # Past a progress bar that was cut short, sys.stderr may still be Rich's proxy,
    # which holds text back while its console is mid-render: write past it.
    stream = getattr(sys.stderr, "rich_proxied_file", sys.stderr)
    try:
        stream.write(line)
        stream.flush()
    except OSError:
        detach_from_terminal()


def report_stop(stop: KeyboardInterrupt) -> int:
    """The last word on a run cut short by ctrl+c or a stop signal; returns the exit status."""
    ignore_stop_signals()
    if isinstance(stop, Stopped):
        say(f"coredash: stopped by {signal.Signals(stop.signum).name}\n")
        return 128 + stop.signum
    say("coredash: interrupted\n")
    return 130


class QuitSignals:
    """In a running app: a closed terminal (SIGHUP) or a plain ``kill`` (SIGTERM) quits like q does.

    The default action would end coredash at once and leave worker processes to
    finish their jobs as orphans. ``restore()`` puts the previous handlers back.
    """

    def __init__(self, quit: Callable[[], None]) -> None:
        self._quit = quit
        self._previous: dict[int, Any] = {}  # handled signal -> the handler before ours
        self._previous_sigcont: Any = None

    def install(self) -> None:
        loop = asyncio.get_running_loop()
        for signum in QUIT_SIGNALS:
            previous = signal.getsignal(signum)
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                loop.add_signal_handler(signum, self._quit)
                self._previous[signum] = previous
        if any(isinstance(old, StopRequests) and old.received for old in self._previous.values()):
            self._quit()  # a stop signal came while coredash was starting
        self._guard_resume()

    def _guard_resume(self) -> None:
        """Do not redraw into a terminal that has been closed.

        Textual restarts its screen on SIGCONT (the return from ctrl+z), and a
        closed terminal sends SIGCONT along with SIGHUP: the restart would add a
        second input thread, and both spin on the dead terminal while coredash
        tries to quit.
        """
        previous = signal.getsignal(signal.SIGCONT)
        if not callable(previous) or threading.current_thread() is not threading.main_thread():
            return

        def on_continue(signum: int, frame: Any) -> None:
            if not terminal_hung_up():
                previous(signum, frame)

        signal.signal(signal.SIGCONT, on_continue)
        self._previous_sigcont = previous

    def restore(self) -> None:
        loop = asyncio.get_running_loop()
        for signum, previous in self._previous.items():
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                loop.remove_signal_handler(signum)  # (this resets the default action)
                if previous is not None:
                    signal.signal(signum, previous)
        if self._previous_sigcont is not None:
            with contextlib.suppress(ValueError):
                signal.signal(signal.SIGCONT, self._previous_sigcont)
