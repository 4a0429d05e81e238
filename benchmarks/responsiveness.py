"""Does the dashboard stay responsive while the jobs saturate every core? Loop lag and key-to-screen.

    .venv/bin/python benchmarks/responsiveness.py [--seconds 30] [--presses 24] [--quick] [--json out.json]

The real app runs in a real terminal (tmux, 160x45, 4 Hz), started through
coredash's own command line by this script in ``--app-child`` mode, which swaps
the app's loop-lag monitor for one that keeps every wake-up (the same monitor
the dashboard shows: it sleeps 50 ms and records how late it wakes). ``r``
starts a long batch of ``count_primes`` at workers = cores, and then:

1. Loop lag: every wake-up over ``--seconds`` of full load, p50 and p99. A bare
   asyncio loop (``--probe`` mode: the same monitor, nothing else) runs beside
   it, and each wake-up also records how long the loop thread sat runnable in
   the run queue (``/proc/thread-self/schedstat``): lag minus that wait is what
   coredash's own work (callbacks, the GIL) cost, apart from a busy machine.
2. Key press to screen update: ``+`` and ``-`` alternately (3 workers, then 2
   again; each rebuilds the pool), ``--presses`` times, 0.3-0.6 s apart. A tmux
   control-mode client (one pipe, no process started per command) sends each
   key and then reads the status line with ``capture-pane`` every ``--poll-ms``
   until it shows the new worker count. The figure judged is the time from
   just before the key is sent to the end of the first read that shows the
   change: an upper bound. The lower bound (to the start of the last read that
   did not show it) and the mean read round trip are printed too, so the
   polling granularity is in plain sight.

Process mode is judged (p99 lag <= 20 ms, key-to-screen median and p95 <= 100 ms).
Thread mode with the same pure-Python jobs is INFO: there the UI thread must win
the GIL from the job threads, which is what coredash exists to show.

The app runs with its default ``--worker-nice`` (job workers nicer than the UI,
so the UI thread does not wait in the run queue behind them); ``--worker-nice 0``
shows what the lag is without that.

Needs tmux (``apt-get install tmux``); exits 2 without it.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import random
import re
import shlex
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import psutil
from dashboard_vs_btop import (
    REPO,
    TmuxSession,
    interrupt_on_sigterm,
    require_tools,
    stop_all,
    terminal_env,
)
from targets import TargetReport, median

if TYPE_CHECKING:
    from coredash.loop_lag import LoopLagMonitor

SCRIPT = Path(__file__).resolve()
PYTHON = REPO / ".venv" / "bin" / "python"
WORKERS_SHOWN = re.compile(r"(?<!\d)(\d+) workers?\b")
JOBS = 5000  # far more than the run needs: the cores stay busy until q cancels the rest


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest rank, as the dashboard's own monitor computes it."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


# --- the app (--app-child) and a bare asyncio loop beside it (--probe) ------------------


def cpu_wait_s() -> float:
    """How long this thread has waited, runnable, for a CPU (Linux schedstat); 0 where unknown."""
    try:
        with open("/proc/thread-self/schedstat") as stat:
            return int(stat.read().split()[1]) / 1e9
    except (OSError, IndexError, ValueError):
        return 0.0


def recording_monitor(wakeups: list[tuple[float, float, float]]) -> type[LoopLagMonitor]:
    """coredash's loop-lag monitor, keeping every wake-up: (when, how late, CPU wait so far)."""
    from coredash.loop_lag import LoopLagMonitor

    class RecordingMonitor(LoopLagMonitor):
        def record(self, at: float, lag: float) -> None:
            super().record(at, lag)
            wakeups.append((at, lag, cpu_wait_s()))

    return RecordingMonitor


def run_app_child(out: Path, coredash_args: list[str]) -> int:
    """Run coredash's real command line, keeping every loop-lag wake-up; write them to ``out``."""
    import coredash.app
    from coredash.cli import run

    wakeups: list[tuple[float, float, float]] = []
    # The app builds its own monitor from this name; swap the class it finds there.
    coredash.app.LoopLagMonitor = recording_monitor(wakeups)  # type: ignore[attr-defined]
    try:
        return run(coredash_args)
    finally:
        out.write_text(json.dumps(wakeups))


def run_probe(out: Path) -> int:
    """The same monitor in a bare asyncio loop, until SIGTERM: what the machine alone costs."""
    import asyncio
    import signal

    wakeups: list[tuple[float, float, float]] = []

    async def probe() -> None:
        stop = asyncio.Event()
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
        monitor = asyncio.create_task(recording_monitor(wakeups)().run())
        await stop.wait()
        monitor.cancel()

    asyncio.run(probe())
    out.write_text(json.dumps(wakeups))
    return 0


# --- the driver -----------------------------------------------------------------------


class TmuxControl:
    """A tmux control-mode client: commands over one pipe, replies in %begin/%end blocks.

    It sits in a session of its own on the app's server, so it never resizes the
    app's window.
    """

    def __init__(self, socket: str) -> None:
        self.proc = subprocess.Popen(
            ["tmux", "-L", socket, "-C", "new-session", "-s", f"ctl-{uuid.uuid4().hex[:6]}", "sleep 1000000"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            encoding="utf-8",
            errors="replace",
            bufsize=1,
            env=terminal_env(),
            cwd=REPO,
        )
        token = f"ready-{uuid.uuid4().hex}"
        self._send(f"display-message -p {token}")
        while token not in "".join(self._reply()):  # skip the reply to new-session itself
            pass

    def _send(self, line: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()

    def _reply(self) -> list[str]:
        assert self.proc.stdout is not None
        while not (line := self.proc.stdout.readline()).startswith("%begin"):
            if not line:
                raise RuntimeError("the tmux control client ended")
        lines = []
        while not (line := self.proc.stdout.readline()).startswith(("%end", "%error")):
            if not line:
                raise RuntimeError("the tmux control client ended")
            lines.append(line.rstrip("\n"))
        if line.startswith("%error"):
            raise RuntimeError(f"tmux: {' '.join(lines)}")
        return lines

    def command(self, line: str) -> list[str]:
        self._send(line)
        return self._reply()

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=3)
            except subprocess.TimeoutExpired:
                self.proc.kill()


@dataclass(frozen=True)
class Press:
    upper_ms: float  # key sent -> end of the first read showing the change
    lower_ms: float  # key sent -> start of the last read not showing it
    reads: int
    read_ms: float  # mean time per screen read, pauses included
    shown: int | None  # the worker count on screen at the end
    lost: bool = False  # not on screen within the timeout: counted as the timeout


def workers_on_screen(control: TmuxControl, target: str) -> int | None:
    found = WORKERS_SHOWN.search(" ".join(control.command(f"capture-pane -p -t {target} -S 0 -E 0")))
    return int(found.group(1)) if found else None


def press_and_wait(
    control: TmuxControl, target: str, key: str, expected: int, poll_s: float, timeout: float = 5.0
) -> Press:
    sent = time.perf_counter()
    control.command(f"send-keys -t {target} {key}")
    last_miss = sent
    reads = 0
    while True:
        before = time.perf_counter()
        shown = workers_on_screen(control, target)
        after = time.perf_counter()
        reads += 1
        per_read = (after - sent) / reads * 1000
        if shown == expected:
            return Press((after - sent) * 1000, (last_miss - sent) * 1000, reads, per_read, shown)
        if after - sent > timeout:
            return Press(timeout * 1000, timeout * 1000, reads, per_read, shown, lost=True)
        last_miss = before
        time.sleep(poll_s)


@dataclass
class ModeResult:
    mode: str
    lag: Lags  # the app's every wake-up in the load window
    probe: Lags  # a bare asyncio loop's, same window
    lag_keys: Lags  # the app's, while keys were pressed
    idle_presses: list[Press]  # before the batch
    presses: list[Press]  # under full load
    busy_percent: float  # whole machine, over the load window
    loadavg: float  # 1-minute load average at the end of the load window (other agents included)


def press_keys(control: TmuxControl, target: str, workers: int, count: int, poll_s: float) -> list[Press]:
    """``+`` and ``-`` in turn, ``count`` times: the worker count goes up one and back."""
    presses = []
    shown = workers_on_screen(control, target)
    for _ in range(count):
        key, expected = ("+", workers + 1) if shown == workers else ("-", workers)
        press = press_and_wait(control, target, key, expected, poll_s)
        presses.append(press)
        if press.lost:
            print(f"    press {len(presses)}: '{key}' did not show {expected} workers (shown: {press.shown})")
        shown = press.shown
        time.sleep(random.uniform(0.3, 0.6))  # off the 4 Hz beat
    return presses


@dataclass(frozen=True)
class Lags:
    """Wake-ups in one window: how late each was, and that minus the time spent waiting for a CPU."""

    lag_ms: list[float]
    net_ms: list[float]  # lag not explained by the run queue: the loop's own work, the GIL, I/O


def in_window(wakeups: list[list[float]], start: float, stop: float) -> Lags:
    lag, net = [], []
    for previous, (at, late, waited) in itertools.pairwise(wakeups):
        if start <= at <= stop:
            lag.append(late * 1000)
            net.append(max(0.0, late - (waited - previous[2])) * 1000)
    return Lags(lag, net)


def run_mode(
    mode: str, seconds: float, presses: int, poll_s: float, tmp: Path, worker_nice: int | None = None
) -> ModeResult:
    cores = psutil.cpu_count() or 1
    lag_file, probe_file = tmp / f"lag-{mode}.json", tmp / f"probe-{mode}.json"
    app_args = ["--mode", mode, "--workers", str(cores), "--task", "count_primes", "--jobs", str(JOBS)]
    if worker_nice is not None:
        app_args += ["--worker-nice", str(worker_nice)]
    session = TmuxSession(
        f"coredash-{mode}", shlex.join([str(PYTHON), str(SCRIPT), "--app-child", str(lag_file), *app_args])
    )
    control: TmuxControl | None = None
    probe: subprocess.Popen[bytes] | None = None
    try:
        session.start()
        session.wait_for("Cores")
        control = TmuxControl(session.socket)
        time.sleep(1.0)
        idle = press_keys(control, session.target, cores, max(2, presses // 4), poll_s)
        probe = subprocess.Popen([str(PYTHON), str(SCRIPT), "--probe", str(probe_file)], cwd=REPO)
        session.send_keys("r")
        time.sleep(3.0)  # the serial baseline job runs alone first; then every core is busy
        psutil.cpu_percent()
        load_from = time.monotonic()
        time.sleep(seconds)
        load_to = time.monotonic()
        busy, loadavg = psutil.cpu_percent(), os.getloadavg()[0]
        keys_from = time.monotonic()
        loaded = press_keys(control, session.target, cores, presses, poll_s)
        keys_to = time.monotonic()
    finally:
        try:
            if probe is not None:
                probe.terminate()
                probe.wait(timeout=10)
            if control is not None:
                control.close()
        finally:
            stop_all([session])
    if not lag_file.exists() or not probe_file.exists():
        raise RuntimeError(f"the app ({mode} mode) or the probe wrote no loop-lag record")
    wakeups = json.loads(lag_file.read_text())
    return ModeResult(
        mode=mode,
        lag=in_window(wakeups, load_from, load_to),
        probe=in_window(json.loads(probe_file.read_text()), load_from, load_to),
        lag_keys=in_window(wakeups, keys_from, keys_to),
        idle_presses=idle,
        presses=loaded,
        busy_percent=busy,
        loadavg=loadavg,
    )


def add_figures(report: TargetReport, result: ModeResult, judged: bool) -> None:
    mode = result.mode
    lag, presses = result.lag.lag_ms, result.presses
    upper = [p.upper_ms for p in presses]

    def figure(name: str, value: float, target: float | None, note: str = "") -> None:
        if judged and target is not None:
            report.check(f"{mode}: {name}", value, "<=", target, unit=" ms", note=note)
        else:
            report.info(f"{mode}: {name}", value, unit=" ms", note=note)

    busy = f"{len(lag)} wake-ups; machine {result.busy_percent:.0f}% busy, load avg {result.loadavg:.1f}"
    figure("loop lag p99, cores saturated", percentile(lag, 0.99), 20.0, busy)
    figure("loop lag p50", median(lag), None)
    figure("loop lag max", max(lag), None)
    figure(
        "loop lag p99 net of waiting for a CPU",
        percentile(result.lag.net_ms, 0.99),
        None,
        "lag minus the loop thread's run-queue wait (schedstat): coredash's own share",
    )
    figure(
        "bare asyncio loop beside it, lag p99",
        percentile(result.probe.lag_ms, 0.99),
        None,
        f"p50 {median(result.probe.lag_ms):.1f} ms: the machine's share of the lag",
    )
    lost = sum(p.lost for p in presses)
    figure(
        "key to screen, median",
        median(upper),
        100.0,
        f"{len(presses)} presses of +/-, full load" + (f"; {lost} not shown in 5 s" if lost else ""),
    )
    figure("key to screen, p95", percentile(upper, 0.95), 100.0)
    figure(
        "key to screen, lower bound median",
        median([p.lower_ms for p in presses]),
        None,
        f"one screen read every ~{median([p.read_ms for p in presses]):.1f} ms",
    )
    figure(
        "key to screen before the batch, median",
        median([p.upper_ms for p in result.idle_presses]),
        None,
        f"{len(result.idle_presses)} presses, no jobs",
    )
    if result.lag_keys.lag_ms:
        figure("loop lag p99 while pressing keys", percentile(result.lag_keys.lag_ms, 0.99), None)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["--app-child"]:
        return run_app_child(Path(argv[1]), argv[2:])
    if argv[:1] == ["--probe"]:
        return run_probe(Path(argv[1]))
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=30.0, help="loop-lag window under full load")
    parser.add_argument("--presses", type=int, default=24, help="key presses per mode (+ and - alternately)")
    parser.add_argument("--poll-ms", type=float, default=2.0, help="pause between screen reads")
    parser.add_argument("--modes", default="process,thread", help="process (judged), thread (INFO)")
    parser.add_argument(
        "--worker-nice",
        type=int,
        default=None,
        metavar="N",
        help="pass coredash --worker-nice N (default: the app's own default)",
    )
    parser.add_argument("--quick", action="store_true", help="smoke test: 5 s, 6 presses")
    parser.add_argument("--json", type=Path, default=None, metavar="PATH")
    args = parser.parse_args(argv)
    if args.quick:
        args.seconds, args.presses = 5.0, 6
    require_tools("tmux")
    modes = [mode.strip() for mode in args.modes.split(",") if mode.strip()]

    title = "responsiveness under full load (tmux 160x45, 4 Hz)"
    if args.worker_nice is not None:
        title += f", --worker-nice {args.worker_nice}"
    report = TargetReport(title)
    with interrupt_on_sigterm(), tempfile.TemporaryDirectory(prefix="coredash-resp-") as tmp:
        for mode in modes:
            print(f"  {mode} mode: {args.seconds:g} s of full load, then {args.presses} key presses…")
            result = run_mode(
                mode, args.seconds, args.presses, args.poll_ms / 1000, Path(tmp), args.worker_nice
            )
            add_figures(report, result, judged=mode == "process")
    return report.finish(args.json)


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        print("interrupted: tmux sessions and temporary files removed", file=sys.stderr)
        sys.exit(130)
