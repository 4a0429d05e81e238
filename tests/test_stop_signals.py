"""The headless bench stops at the first ctrl+c / SIGTERM / SIGHUP and ignores the rest.

A person who gets no answer presses ctrl+c again and again; each extra signal used
to raise again wherever it landed (asyncio's clean-up, the progress bar's exit)."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Iterator

import pytest

from coredash.lifecycle import STOP_SIGNALS, Stopped, StopSignals, say, stop_at_the_first_signal


@pytest.fixture
def own_handlers() -> Iterator[None]:
    saved = {signum: signal.getsignal(signum) for signum in STOP_SIGNALS}
    yield
    for signum, handler in saved.items():
        signal.signal(signum, handler)


def send_to_self(signum: int) -> None:
    os.kill(os.getpid(), signum)
    signal.sigtimedwait([], 0)  # a call that checks for signals: Python runs the handler here


@pytest.mark.parametrize("signum", STOP_SIGNALS, ids=lambda signum: signal.Signals(signum).name)
def test_the_first_signal_stops_and_the_rest_are_ignored(own_handlers: None, signum: int) -> None:
    stop_at_the_first_signal()
    expected = KeyboardInterrupt if signum == signal.SIGINT else Stopped
    with pytest.raises(expected) as raised:
        send_to_self(signum)
    assert raised.type is expected
    if signum != signal.SIGINT:
        assert isinstance(raised.value, Stopped) and raised.value.signum == signum
    assert all(signal.getsignal(each) == signal.SIG_IGN for each in STOP_SIGNALS)
    for each in STOP_SIGNALS:
        os.kill(os.getpid(), each)  # ignored: neither raised nor fatal


def test_a_stop_inside_the_engine_run_cancels_once_then_ignores(own_handlers: None) -> None:
    stop_at_the_first_signal()
    reached_the_end = False

    async def bench() -> None:
        nonlocal reached_the_end
        with StopSignals():
            try:
                os.kill(os.getpid(), signal.SIGINT)
                await asyncio.sleep(5)  # cancelled here, on an await
            finally:
                for _ in range(3):  # the person keeps pressing ctrl+c while the engine closes
                    os.kill(os.getpid(), signal.SIGINT)
                    await asyncio.sleep(0.01)
                reached_the_end = True

    with pytest.raises(KeyboardInterrupt):
        asyncio.run(bench())
    assert reached_the_end
    assert all(signal.getsignal(each) == signal.SIG_IGN for each in STOP_SIGNALS)
    os.kill(os.getpid(), signal.SIGINT)  # still ignored after asyncio.run has finished


def test_no_stop_gives_the_handlers_back(own_handlers: None) -> None:
    stop_at_the_first_signal()

    async def bench() -> None:
        with StopSignals():
            await asyncio.sleep(0)

    asyncio.run(bench())
    with pytest.raises(KeyboardInterrupt):
        send_to_self(signal.SIGINT)


def test_the_last_word_gets_past_a_progress_bar_cut_short(capfd: pytest.CaptureFixture[str]) -> None:
    # A stop that lands inside the progress bar's exit can leave sys.stderr as
    # Rich's proxy, with its console mid-render (holding output back).
    from rich.console import Console
    from rich.progress import Progress

    console = Console(stderr=True, force_terminal=True)
    progress = Progress(console=console, transient=True)
    with progress, console:
        say("coredash: interrupted\n")
        assert "coredash: interrupted" in capfd.readouterr().err
