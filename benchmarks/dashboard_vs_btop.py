"""What does the idle dashboard cost in a real terminal, next to btop? Measured side by side.

    .venv/bin/python benchmarks/dashboard_vs_btop.py [--seconds 30] [--repeat 3] [--quick] [--json out.json]

Starts the real ``coredash`` (no jobs, default 4 Hz) and btop (``update_ms =
250``) each in its own tmux server, one 160x45 session apiece, lets them settle,
then reads the CPU time (user + system, psutil) of each app's whole process tree
over the same ``--seconds`` window, ``--repeat`` times with fresh processes.

Two btops run alongside: the judged one shows only its CPU box, with temperature
sensors and the battery off, so it does what coredash's core panel does (per-core
load, history) and nothing coredash does not; the other keeps btop's default boxes
(cpu, mem, net, proc: it scans every process each update), reported as INFO. Each
tmux server's own CPU (parsing the app's output into its screen) is INFO too.
So is a floor: the smallest Textual app that redraws at 4 Hz (one line of text,
changed every tick), run by this script in ``--textual-floor`` mode in the same
window. What coredash costs above that floor is coredash's own.

Needs tmux and btop (not Python packages): ``apt-get install tmux btop``; without
them the script says so and exits 2. Sessions and the temporary btop config are
removed on exit, Ctrl+C included. The other dashboard benchmarks import the tmux
helpers from here.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

import psutil
from targets import TargetReport, median

REPO = Path(__file__).resolve().parent.parent
COREDASH = REPO / ".venv" / "bin" / "coredash"
PYTHON = REPO / ".venv" / "bin" / "python"
SCRIPT = Path(__file__).resolve()
SIZE = (160, 45)
BTOP_FAIR = 'update_ms = 250\nshown_boxes = "cpu"\ncheck_temp = False\nshow_battery = False\n'
BTOP_DEFAULT = "update_ms = 250\n"


def require_tools(*tools: str) -> None:
    """Exit 2 with the install command when a program the benchmark drives is missing."""
    missing = [tool for tool in tools if shutil.which(tool) is None]
    if missing:
        print(
            f"this benchmark needs {' and '.join(missing)} "
            f"({'not Python packages' if len(missing) > 1 else 'not a Python package'}): "
            f"install with `apt-get install {' '.join(missing)}` (or your system's package manager)",
            file=sys.stderr,
        )
        raise SystemExit(2)
    if not COREDASH.exists():
        print(f"{COREDASH} not found: run `.venv/bin/pip install -e '.[dev]'` first", file=sys.stderr)
        raise SystemExit(2)


def terminal_env(**extra: str) -> dict[str, str]:
    """The environment both apps get: UTF-8 (btop refuses to start without it), truecolor."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("TMUX")}
    env.update(LANG="C.UTF-8", LC_ALL="C.UTF-8", COLORTERM="truecolor", **extra)
    return env


class TmuxSession:
    """One command in a detached 160x45 session on a private tmux server (its own socket).

    A server per app keeps each server's CPU attributable to one app, and a
    session nobody attaches to keeps its size.
    """

    def __init__(self, label: str, command: str, env: dict[str, str] | None = None) -> None:
        self.label = label
        self.socket = f"coredash-bench-{label}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self.name = "bench"
        self.command = command
        self.env = env if env is not None else terminal_env()
        self.pane_pid: int | None = None
        self.server_pid: int | None = None
        # tmux's default place (terminal_env drops TMUX_TMPDIR); known before the server starts.
        self.socket_path = Path("/tmp") / f"tmux-{os.getuid()}" / self.socket

    def tmux(self, *args: str, check: bool = True) -> str:
        done = subprocess.run(
            ["tmux", "-L", self.socket, *args],
            capture_output=True,
            text=True,
            check=False,
            cwd=REPO,
            env=self.env,
        )
        if check and done.returncode != 0:
            raise RuntimeError(f"tmux {' '.join(args)}: {done.stderr.strip()}")
        return done.stdout

    def start(self) -> TmuxSession:
        width, height = SIZE
        self.tmux("new-session", "-d", "-s", self.name, "-x", str(width), "-y", str(height), self.command)
        self.pane_pid = int(self.tmux("display-message", "-p", "-t", self.name, "#{pane_pid}").strip())
        self.server_pid = int(self.tmux("display-message", "-p", "-t", self.name, "#{pid}").strip())
        return self

    @property
    def target(self) -> str:
        return f"{self.name}:0.0"

    def capture(self, first: int | None = None, last: int | None = None) -> str:
        lines = [] if first is None else ["-S", str(first), "-E", str(first if last is None else last)]
        return self.tmux("capture-pane", "-p", "-t", self.target, *lines, check=False)

    def send_keys(self, *keys: str) -> None:
        self.tmux("send-keys", "-t", self.target, *keys, check=False)

    def wait_for(self, text: str, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if text in self.capture():
                return
            time.sleep(0.1)
        raise RuntimeError(f"{self.label} did not show {text!r} within {timeout:g} s:\n{self.capture()}")

    def stop(self, quit_keys: Sequence[str] = ("q",), grace: float = 8.0) -> None:
        """Quit the app the user's way, then end the server; kill whatever is left."""
        tree = process_tree(self.pane_pid) if self.pane_pid else []
        if self.pane_pid and psutil.pid_exists(self.pane_pid):
            self.send_keys(*quit_keys)
            _, alive = psutil.wait_procs(tree[:1], timeout=grace)
            if alive and grace > 0:
                print(f"  ({self.label} did not quit within {grace:g} s; killing it)", file=sys.stderr)
        self.tmux("kill-server", check=False)
        self.socket_path.unlink(missing_ok=True)  # tmux leaves the socket file behind
        leftovers = [p for p in tree if p.is_running()]
        for process in leftovers:
            with contextlib.suppress(psutil.Error):
                process.terminate()
        _, alive = psutil.wait_procs(leftovers, timeout=3)
        for process in alive:
            with contextlib.suppress(psutil.Error):
                process.kill()


def stop_all(sessions: Sequence[TmuxSession]) -> None:
    """Stop every session, even when Ctrl+C lands meanwhile (the rest are then killed at once)."""
    interrupted = False
    for session in sessions:
        try:
            session.stop(grace=0.0 if interrupted else 8.0)
        except KeyboardInterrupt:
            interrupted = True
            session.stop(grace=0.0)
    if interrupted:
        raise KeyboardInterrupt


def process_tree(pid: int) -> list[psutil.Process]:
    try:
        root = psutil.Process(pid)
        return [root, *root.children(recursive=True)]
    except psutil.Error:
        return []


def tree_cpu_seconds(pid: int) -> float:
    """User + system CPU of a process and all its descendants, live and reaped."""
    total = 0.0
    for process in process_tree(pid):
        with contextlib.suppress(psutil.Error):
            times = process.cpu_times()
            total += times.user + times.system + times.children_user + times.children_system
    return total


def process_cpu_seconds(pid: int) -> float:
    try:
        times = psutil.Process(pid).cpu_times()
    except psutil.Error:
        return 0.0
    return float(times.user + times.system)


@contextlib.contextmanager
def interrupt_on_sigterm() -> Iterator[None]:
    """SIGTERM unwinds like Ctrl+C, so the ``finally`` blocks clean up either way."""

    def raise_interrupt(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, raise_interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@dataclass
class Window:
    app: dict[str, float]  # label -> % of one core, the app's process tree
    server: dict[str, float]  # label -> % of one core, its tmux server


def measure_window(sessions: Sequence[TmuxSession], seconds: float) -> Window:
    def read() -> tuple[dict[str, float], dict[str, float]]:
        apps = {s.label: tree_cpu_seconds(s.pane_pid or 0) for s in sessions}
        servers = {s.label: process_cpu_seconds(s.server_pid or 0) for s in sessions}
        return apps, servers

    began = time.monotonic()
    apps0, servers0 = read()
    time.sleep(seconds)
    apps1, servers1 = read()
    elapsed = time.monotonic() - began
    return Window(
        app={label: (apps1[label] - apps0[label]) / elapsed * 100 for label in apps0},
        server={label: (servers1[label] - servers0[label]) / elapsed * 100 for label in servers0},
    )


def one_round(config_root: Path, seconds: float, settle: float) -> Window:
    sessions = [
        TmuxSession("coredash", shlex.quote(str(COREDASH))),
        TmuxSession("btop", "btop", terminal_env(XDG_CONFIG_HOME=str(config_root / "fair"))),
        TmuxSession("btop-default", "btop", terminal_env(XDG_CONFIG_HOME=str(config_root / "default"))),
        TmuxSession(
            "textual-floor", shlex.join([str(PYTHON), str(Path(__file__).resolve()), "--textual-floor"])
        ),
    ]
    try:
        for session in sessions:
            session.start()
        sessions[0].wait_for("Cores")
        sessions[1].wait_for("cpu")
        sessions[2].wait_for("proc")
        sessions[3].wait_for("textual floor")
        time.sleep(settle)  # start-up (imports, first layout) is not the steady cost
        return measure_window(sessions, seconds)
    finally:
        stop_all(sessions)


def run_textual_floor() -> int:
    """The least a Textual app that redraws at 4 Hz costs: one Static, new text every tick."""
    from textual.app import App, ComposeResult
    from textual.widgets import Static

    class Floor(App[None]):
        BINDINGS = [("q", "quit", "Quit")]

        def compose(self) -> ComposeResult:
            yield Static("textual floor", id="line")

        def on_mount(self) -> None:
            self.ticks = 0
            self.set_interval(0.25, self.tick)

        def tick(self) -> None:
            self.ticks += 1
            self.query_one("#line", Static).update(f"textual floor: tick {self.ticks}")

    Floor().run()
    return 0


def btop_configs(root: Path) -> None:
    # btop rewrites its config on exit; each round gets the same file again.
    for name, text in (("fair", BTOP_FAIR), ("default", BTOP_DEFAULT)):
        folder = root / name / "btop"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "btop.conf").write_text(text)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv == ["--textual-floor"]:
        return run_textual_floor()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=30.0, help="measured window per round")
    parser.add_argument("--repeat", type=int, default=3, help="rounds, fresh processes each (medians)")
    parser.add_argument("--settle", type=float, default=5.0, help="seconds after start before measuring")
    parser.add_argument("--quick", action="store_true", help="smoke test: 2 rounds of 5 s")
    parser.add_argument("--json", type=Path, default=None, metavar="PATH")
    args = parser.parse_args(argv)
    if args.quick:
        args.seconds, args.repeat, args.settle = 5.0, 2, 3.0
    require_tools("tmux", "btop")

    print(
        f"idle dashboards in tmux {SIZE[0]}x{SIZE[1]}, CPU % of one core, "
        f"{args.repeat} round(s) of {args.seconds:g} s, all measured in the same window"
    )
    windows: list[Window] = []
    with interrupt_on_sigterm(), tempfile.TemporaryDirectory(prefix="coredash-btop-") as tmp:
        for round_no in range(1, args.repeat + 1):
            btop_configs(Path(tmp))
            window = one_round(Path(tmp), args.seconds, args.settle)
            windows.append(window)
            cells = "  ".join(
                f"{name} {window.app[name]:5.2f}% (tmux {window.server[name]:4.2f}%)" for name in window.app
            )
            print(f"  round {round_no}: {cells}")

    def med(label: str, server: bool = False) -> float:
        return median([(w.server if server else w.app)[label] for w in windows])

    def ratios(label: str, to: str) -> list[float]:
        return [w.app[label] / w.app[to] if w.app[to] > 0 else float("inf") for w in windows]

    report = TargetReport("dashboard overhead vs btop (real terminal, idle, 4 Hz)")
    report.check(
        "coredash CPU / btop CPU (cpu box)",
        median(ratios("coredash", "btop")),
        "<=",
        1.0,
        unit="×",
        note=f"median of {len(windows)} same-window ratios",
    )
    report.info("coredash, % of a core", med("coredash"), unit="%", note="process tree, 160x45, 4 Hz")
    report.info("btop (cpu box, no sensors), % of a core", med("btop"), unit="%", note="update_ms = 250")
    report.info("btop (default boxes), % of a core", med("btop-default"), unit="%", note="cpu mem net proc")
    report.info("coredash / btop (default boxes)", median(ratios("coredash", "btop-default")), unit="×")
    report.info(
        "textual floor, % of a core",
        med("textual-floor"),
        unit="%",
        note="one Static redrawn at 4 Hz: the least any Textual app costs",
    )
    report.info(
        "textual floor / btop (cpu box)",
        median(ratios("textual-floor", "btop")),
        unit="×",
    )
    for label in ("coredash", "btop", "btop-default", "textual-floor"):
        report.info(f"tmux server of {label}, % of a core", med(label, server=True), unit="%")
    return report.finish(args.json)


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        print("interrupted: tmux sessions and temporary files removed", file=sys.stderr)
        sys.exit(130)
