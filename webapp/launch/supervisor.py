"""Run the Procfile's processes for ``make run``, and keep them running.

honcho (which ``make run`` used before) stops every process when one exits,
so a 3-second Redis restart that killed the scheduler took the web and the
worker down with it, for good.  Here each process is supervised on its own,
as Heroku or systemd would: one that exits is logged and restarted with
exponential backoff (reset once it has stayed up a minute), and the others
go on.  Every child gets ``PR_SET_PDEATHSIG`` so that it is sent SIGTERM when
the launcher dies, even by SIGKILL: nothing is left behind serving a port.
"""
from __future__ import annotations

import ctypes
import logging
import os
import shlex
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger(__name__)

PR_SET_PDEATHSIG = 1
BACKOFF_START, BACKOFF_MAX, STABLE_SECONDS = 1.0, 30.0, 60.0
STOP_GRACE_SECONDS = 10.0
COLOURS = ("36", "33", "32", "35", "34", "31")


def read_procfile(path: Path) -> dict[str, str]:
    """``name: command`` lines, in order (comments and blank lines skipped)."""
    out: dict[str, str] = {}
    for line in path.read_text().splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        name, _, command = line.partition(":")
        out[name.strip()] = command.strip()
    return out


def die_with_parent() -> None:
    """In the child, before exec: SIGTERM when the parent dies (Linux; elsewhere a no-op)."""
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except OSError:
        pass


@dataclass
class Child:
    name: str
    argv: list[str]
    colour: str
    proc: subprocess.Popen | None = None
    started: float = 0.0
    backoff: float = BACKOFF_START
    restarts: int = 0
    due: float = 0.0  # when a restart is due (monotonic)
    reader: threading.Thread | None = field(default=None, repr=False)


class Supervisor:
    """Start the named Procfile processes; restart any that exits until :meth:`stop`."""

    def __init__(self, procfile: Path, names: Sequence[str], env: Mapping[str, str], cwd: Path) -> None:
        commands = read_procfile(procfile)
        missing = [n for n in names if n not in commands]
        if missing:
            raise ValueError(f"{procfile} has no process named {', '.join(missing)}")
        self.env, self.cwd = dict(env), cwd
        width = max(len(n) for n in names)
        self.children = [Child(n.ljust(width), shlex.split(commands[n]), COLOURS[i % len(COLOURS)])
                         for i, n in enumerate(names)]
        self._stopping = threading.Event()
        self._out_lock = threading.Lock()

    def _print(self, child: Child, text: str) -> None:
        stamp = time.strftime("%H:%M:%S")
        prefix = f"\033[{child.colour}m{stamp} {child.name} |\033[0m " if sys.stdout.isatty() else \
            f"{stamp} {child.name} | "
        with self._out_lock:
            sys.stdout.write(prefix + text.rstrip("\n") + "\n")
            sys.stdout.flush()

    def _pump(self, child: Child, proc: subprocess.Popen) -> None:
        assert proc.stdout is not None
        for raw in iter(proc.stdout.readline, b""):
            self._print(child, raw.decode("utf-8", "replace"))

    def _start(self, child: Child) -> None:
        child.proc = subprocess.Popen(
            child.argv, cwd=self.cwd, env=self.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, preexec_fn=die_with_parent,
        )
        child.started = time.monotonic()
        child.reader = threading.Thread(target=self._pump, args=(child, child.proc), daemon=True)
        child.reader.start()
        self._print(child, f"started with pid {child.proc.pid}")

    def start(self) -> None:
        for child in self.children:
            self._start(child)

    def poll(self) -> None:
        """One round: restart what exited and is due.  Called about every 0.2 s."""
        now = time.monotonic()
        for child in self.children:
            if self._stopping.is_set():
                return
            if child.proc is not None and child.proc.poll() is not None:
                code = child.proc.returncode
                if child.reader is not None:
                    child.reader.join(1)
                if now - child.started >= STABLE_SECONDS:
                    child.backoff = BACKOFF_START
                child.due = now + child.backoff
                self._print(child, f"exited with code {code}; restarting in {child.backoff:.0f} s "
                                   f"(restart #{child.restarts + 1})")
                log.warning("%s exited with code %s; restarting in %.0f s", child.name.strip(), code,
                            child.backoff)
                child.backoff = min(BACKOFF_MAX, child.backoff * 2)
                child.restarts += 1
                child.proc = None
            elif child.proc is None and now >= child.due:
                self._start(child)

    def run(self) -> None:
        """Supervise until :meth:`stop` is called (from a signal handler or another thread)."""
        self.start()
        while not self._stopping.wait(0.2):
            self.poll()

    def stop(self) -> None:
        """SIGTERM every child, wait for them, SIGKILL what is left."""
        self._stopping.set()
        alive = [c.proc for c in self.children if c.proc is not None and c.proc.poll() is None]
        for proc in alive:
            try:
                proc.send_signal(signal.SIGTERM)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + STOP_GRACE_SECONDS
        for proc in alive:
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
        for child in self.children:
            if child.reader is not None:
                child.reader.join(1)


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
