"""coredash in a real terminal: a tmux pane with an interactive shell, as a user runs it.

Each pane gets its own tmux server (``-L``) so tests never touch anyone else's
sessions, and a fresh TMPDIR so temporary files coredash leaves behind show up.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from pathlib import Path

import psutil

REPO = Path(__file__).resolve().parent.parent
# Terminal modes a full-screen app switches on; all must be off again after it exits.
PANE_FLAGS = (
    "alternate_on",
    "cursor_flag",
    "mouse_any_flag",
    "mouse_all_flag",
    "mouse_button_flag",
    "mouse_standard_flag",
    "mouse_sgr_flag",
    "wrap_flag",
    "keypad_cursor_flag",
)
NORMAL_FLAGS = {
    "alternate_on": "0",  # back on the normal screen
    "cursor_flag": "1",  # cursor shown
    "mouse_any_flag": "0",
    "mouse_all_flag": "0",
    "mouse_button_flag": "0",
    "mouse_standard_flag": "0",
    "mouse_sgr_flag": "0",
    "wrap_flag": "1",  # line wrapping back on
    "keypad_cursor_flag": "0",
}
_names = itertools.count()
# A dashboard worker row: "w1  #7  count_primes ..." (busy) or "w2  idle".
WORKER_ROW = re.compile(r"(?<![◆\w])w\d+ {2,}(#\d+|idle)")


def require_tmux() -> str:
    found = shutil.which("tmux")
    if found is None:  # .ci/run installs it; never skip these tests silently
        raise RuntimeError("tmux is needed for the terminal tests (apt-get install tmux)")
    return found


def coredash_command(*args: str) -> str:
    """The shell command that runs coredash with this interpreter, quoted for the pane."""
    return shlex.join([sys.executable, "-m", "coredash", *args])


def keeping_status(status_file: Path, command: str) -> str:
    """``command`` run under a parent that outlives a closed terminal and records its exit status.

    The parent ignores SIGHUP and SIGINT; the command gets the defaults back, so a
    closed terminal or ctrl+c reaches it exactly as a program run straight from the shell.
    """
    return shlex.join([sys.executable, "-m", "tests.terminal", str(status_file)]) + " " + command


def read_status(status_file: Path, timeout: float = 5) -> int:
    deadline = time.monotonic() + timeout
    while not status_file.exists():
        if time.monotonic() > deadline:
            raise AssertionError("the exit status was never recorded")
        time.sleep(0.02)
    return int(json.loads(status_file.read_text())["status"])


def dashboard_saturated(screen: str, workers: int) -> bool:
    """Every worker row busy with a batch job (not the serial baseline) and jobs still queued."""
    rows = [line for line in screen.splitlines() if WORKER_ROW.search(line)]
    busy = [row for row in rows if "idle" not in row and "(ser" not in row]
    return len(rows) == workers == len(busy) and " waiting" in screen


class TmuxPane:
    """One tmux pane running an interactive bash, on a private tmux server."""

    def __init__(self, tmp_path: Path, width: int = 160, height: int = 45, env: dict[str, str] | None = None):
        self.tmux = require_tmux()
        self.socket = f"coredash-test-{os.getpid()}-{next(_names)}"
        # Short: multiprocessing puts a socket in here, and socket paths are limited to 107 bytes.
        self.tmpdir = Path(tempfile.mkdtemp(prefix="cdt-"))
        self.home = tmp_path
        base = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(tmp_path),
            "TMPDIR": str(self.tmpdir),
            "LANG": "C.UTF-8",
            "PYTHONDONTWRITEBYTECODE": "1",
        }
        base.update(env or {})
        self.env = base
        # The server is started with a clean environment: only what is listed here
        # reaches the shell (tmux sets TERM itself).
        self._tmux_env = {key: value for key, value in base.items() if key != "TERM"}
        rcfile = tmp_path / "bashrc"
        rcfile.write_text("PS1='$ '\n")
        self._run(
            "-f",
            "/dev/null",
            "new-session",
            "-d",
            "-s",
            "main",
            "-x",
            str(width),
            "-y",
            str(height),
            "-c",
            str(REPO),
            f"bash --noprofile --rcfile {shlex.quote(str(rcfile))} -i",
        )
        self._run("set-option", "-g", "remain-on-exit", "off")
        self.socket_path = Path(self.display("#{socket_path}"))
        self.shell_pid = int(self.display("#{pane_pid}"))
        self.wait_for(lambda screen: screen.rstrip().endswith("$"), 10, "the shell prompt")

    # --- tmux -----------------------------------------------------------------

    def _run(self, *args: str, check: bool = True) -> str:
        proc = subprocess.run(
            [self.tmux, "-L", self.socket, *args],
            capture_output=True,
            text=True,
            env=self._tmux_env,
            timeout=10,
            check=False,
        )
        if check and proc.returncode != 0:
            raise RuntimeError(f"tmux {' '.join(args)}: {proc.stderr.strip()}")
        return proc.stdout

    def display(self, fmt: str) -> str:
        return self._run("display-message", "-p", "-t", "main", fmt).strip()

    def flags(self) -> dict[str, str]:
        values = self.display(" ".join(f"#{{{flag}}}" for flag in PANE_FLAGS)).split()
        return dict(zip(PANE_FLAGS, values, strict=True))

    def send(self, *keys: str) -> None:
        """Keys by tmux name (``q``, ``C-q``, ``Enter``)."""
        self._run("send-keys", "-t", "main", *keys)

    def type(self, text: str) -> None:
        self._run("send-keys", "-t", "main", "-l", text)

    def run(self, command: str) -> None:
        self.type(command)
        self.send("Enter")

    def screen(self) -> str:
        return self._run("capture-pane", "-p", "-t", "main", check=False)

    def history(self) -> str:
        """The whole pane, scrollback included."""
        return self._run("capture-pane", "-p", "-t", "main", "-S", "-", check=False)

    def resize(self, width: int, height: int) -> None:
        self._run("resize-window", "-t", "main", "-x", str(width), "-y", str(height))

    def wait_for(self, condition: Callable[[str], bool] | str, timeout: float = 30, what: str = "") -> str:
        check = (lambda screen: condition in screen) if isinstance(condition, str) else condition
        deadline = time.monotonic() + timeout
        while True:
            screen = self.screen()
            if check(screen):
                return screen
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"timed out after {timeout} s waiting for {what or condition!r}:\n{screen}"
                )
            time.sleep(0.05)

    def kill_session(self) -> None:
        """Close the terminal: tmux hangs the pane's terminal up, as closing a window does."""
        self._run("kill-session", "-t", "main", check=False)

    def close(self) -> None:
        self._run("kill-server", check=False)
        self.socket_path.unlink(missing_ok=True)  # tmux leaves its socket behind
        shutil.rmtree(self.tmpdir, ignore_errors=True)

    # --- processes --------------------------------------------------------------

    def coredash(self, timeout: float = 10) -> psutil.Process:
        """The coredash process the shell started (not a ``$(...)`` subshell, not a wrapper)."""
        shell = psutil.Process(self.shell_pid)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for process in shell.children(recursive=True):
                try:
                    if process.cmdline()[1:3] == ["-m", "coredash"]:
                        return process
                except psutil.Error:
                    continue
            time.sleep(0.02)
        raise AssertionError("coredash did not start")

    def temp_files(self) -> list[str]:
        return sorted(str(path.relative_to(self.tmpdir)) for path in self.tmpdir.rglob("*"))


def wait_exit(process: psutil.Process, timeout: float) -> float | None:
    """Seconds until ``process`` has exited (a zombie counts: it has stopped running), or None."""
    began = time.monotonic()
    while True:
        try:
            if process.status() == psutil.STATUS_ZOMBIE:
                return time.monotonic() - began
        except psutil.NoSuchProcess:
            return time.monotonic() - began
        if time.monotonic() - began >= timeout:
            return None
        time.sleep(0.01)


class ProcessTree:
    """Every process under a root, remembered as it is seen (pid reuse cannot fool it)."""

    def __init__(self, root: psutil.Process) -> None:
        self.root = root
        self.seen: dict[int, psutil.Process] = {root.pid: root}

    def scan(self) -> list[psutil.Process]:
        try:
            children: list[psutil.Process] = self.root.children(recursive=True)
        except psutil.NoSuchProcess:
            return []
        for child in children:
            self.seen.setdefault(child.pid, child)
        return children

    def alive(self) -> list[psutil.Process]:
        found = []
        for process in self.seen.values():
            try:
                if process.is_running() and process.status() != psutil.STATUS_ZOMBIE:
                    found.append(process)
            except psutil.NoSuchProcess:
                continue
        return found

    def wait_gone(self, timeout: float) -> float | None:
        """Seconds until every process seen is gone, or None if some outlive ``timeout``."""
        began = time.monotonic()
        while self.alive():
            if time.monotonic() - began > timeout:
                return None
            time.sleep(0.02)
        return time.monotonic() - began

    def describe(self, processes: Iterable[psutil.Process]) -> str:
        lines = []
        for process in processes:
            try:
                lines.append(f"{process.pid}: {' '.join(process.cmdline())[:160]}")
            except psutil.Error:
                lines.append(f"{process.pid}: (gone)")
        return "\n".join(lines)


def _keep_status(status_file: str, argv: list[str]) -> int:
    passed_on = (signal.SIGHUP, signal.SIGINT)  # to the command, by the terminal and the shell

    def restore() -> None:
        for signum in passed_on:
            signal.signal(signum, signal.SIG_DFL)

    for signum in passed_on:
        signal.signal(signum, signal.SIG_IGN)
    child = subprocess.Popen(argv, preexec_fn=restore)
    status = child.wait()
    # Written whole, then renamed: the reader polls for the file and must never see it half-written.
    partial = Path(f"{status_file}.partial")
    partial.write_text(json.dumps({"status": status}))
    os.replace(partial, status_file)
    return 0


if __name__ == "__main__":
    sys.exit(_keep_status(sys.argv[1], sys.argv[2:]))
