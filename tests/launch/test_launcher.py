"""`make run`'s launcher on a machine with nothing configured: embedded Redis
and Postgres, migrations, web + worker + scheduler under a supervisor, the CLI
beside it, and every way of stopping it (Ctrl-C, SIGTERM, SIGHUP, SIGKILL)."""
from __future__ import annotations

import json
import os
import signal
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path

import psutil
import psycopg2
import pytest
import requests

from tests.processes import ROOT, free_port

pytestmark = pytest.mark.slow


def bare_env(tmp_path: Path, port: int, **extra: str) -> dict[str, str]:
    """A newcomer's environment: no URLs, our own data folder and port."""
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL", "WEB_HOST")}
    env.update({"PORT": str(port), "TICK_SECONDS": "2", "DATA_DIR": str(tmp_path), "PYTHONUNBUFFERED": "1",
                **extra})
    return env


class Launch:
    """``python -m webapp.launch`` (what ``make run`` runs) in its own session, like a terminal's job."""

    def __init__(self, tmp_path: Path, port: int, log_name: str = "run.log") -> None:
        self.tmp_path, self.port = tmp_path, port
        self.env = bare_env(tmp_path, port)
        self.log = tmp_path / log_name
        with open(self.log, "wb") as out:
            self.proc = subprocess.Popen([sys.executable, "-m", "webapp.launch"], cwd=ROOT, env=self.env,
                                         stdout=out, stderr=subprocess.STDOUT, start_new_session=True)

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_healthy(self, timeout: float = 90) -> dict:
        deadline = time.monotonic() + timeout
        body = None
        while time.monotonic() < deadline:
            try:
                resp = requests.get(f"http://127.0.0.1:{self.port}/api/health", timeout=2)
                body = resp.json()
                if resp.status_code == 200:
                    return body
            except requests.RequestException:
                pass
            assert self.proc.poll() is None, self.text()[-3000:]
            time.sleep(0.5)
        raise AssertionError((body, self.text()[-3000:]))

    def children(self) -> list[psutil.Process]:
        return psutil.Process(self.proc.pid).children(recursive=True)

    def cli(self, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
        """``flask --app wsgi ARGS`` from another terminal: no URLs in its environment either."""
        return subprocess.run([sys.executable, "-m", "flask", "--app", "wsgi", *args], cwd=ROOT,
                              env=bare_env(self.tmp_path, self.port), capture_output=True, text=True,
                              timeout=60, input=stdin)


def cmd(proc: psutil.Process) -> str:
    """A process's command line ('' for one that is gone or a zombie waiting to be reaped)."""
    try:
        return " ".join(proc.cmdline())
    except psutil.Error:
        return ""


def postgres_of(tmp_path: Path) -> list[psutil.Process]:
    return [p for p in psutil.process_iter(["cmdline"]) if str(tmp_path) in " ".join(p.info["cmdline"] or [])]


def gone(procs: list[psutil.Process]) -> list[psutil.Process]:
    """The ones still running (named for what the caller waits for: these to be gone)."""
    alive = []
    for p in procs:
        try:
            if p.is_running() and p.status() != psutil.STATUS_ZOMBIE:
                alive.append(p)
        except psutil.Error:
            pass
    return alive


def wait_gone(procs: list[psutil.Process], timeout: float = 30) -> list[psutil.Process]:
    deadline = time.monotonic() + timeout
    while gone(procs) and time.monotonic() < deadline:
        time.sleep(0.3)
    return gone(procs)


@pytest.mark.parametrize("stop", ["ctrl-c", "sigterm"])
def test_launcher_starts_everything_and_stops_cleanly(tmp_path, stop) -> None:
    run = Launch(tmp_path, free_port())
    try:
        body = run.wait_healthy()
        assert body["status"] == "ok"
        stocks = requests.get(f"http://127.0.0.1:{run.port}/api/stocks", timeout=5).json()["stocks"]
        assert len(stocks) == 15
        children = run.children()
        web = [c for c in children if "gunicorn" in cmd(c)]
        assert web
        # bound to this machine only unless WEB_HOST says otherwise
        listening = {c.laddr for p in web for c in p.net_connections("tcp") if c.status == "LISTEN"}
        assert listening == {("127.0.0.1", run.port)}, listening
        # the CLI in another terminal finds the embedded servers by itself (README's examples)
        made = run.cli("users", "create", "newcomer", "--password-stdin", stdin="long enough pw\n")
        assert made.returncode == 0, made.stderr
        token = run.cli("tokens", "create", "newcomer")
        assert token.returncode == 0, token.stderr
        assert token.stdout.strip().startswith("stk_") and "Traceback" not in token.stderr
        once = run.cli("fetch-once", "--at", "2030-01-02T15:00:00")
        assert once.returncode == 0 and "symbols 15" in once.stdout, once.stdout + once.stderr
        # as the running processes do: the minute tick reads the simulated stream (issue 26, item 17)
        assert "provider stream" in once.stdout, once.stdout
        assert "SECRET_KEY is the development default" not in once.stderr  # make run made one
        # the embedded Postgres trusts local connections, so its socket is for its owner only
        running = json.loads((tmp_path / "running.json").read_text())
        assert stat.S_IMODE((tmp_path / "running.json").stat().st_mode) == 0o600
        conn = psycopg2.connect(running["DATABASE_URL"].replace("postgresql+psycopg2:", "postgresql:"))
        with conn.cursor() as cur:
            cur.execute("SHOW unix_socket_permissions")
            assert cur.fetchone()[0] == "0700"
            cur.execute("SHOW unix_socket_directories")
            sock_dir = cur.fetchone()[0].split(",")[0].strip()
        conn.close()
        sockets = list(Path(sock_dir).glob(".s.PGSQL.*"))
        assert sockets and all(stat.S_IMODE(s.stat().st_mode) == 0o700 for s in sockets if s.is_socket())
    finally:
        if stop == "ctrl-c":
            os.killpg(run.proc.pid, signal.SIGINT)  # what Ctrl-C in a terminal does
        else:
            run.proc.send_signal(signal.SIGTERM)  # a supervisor stopping the launcher alone
        run.proc.wait(30)
    assert wait_gone(children, 5) == [], [c.cmdline() for c in gone(children)]
    assert postgres_of(tmp_path) == []  # the embedded Postgres (a daemon, not a child) is stopped too
    assert not (tmp_path / "running.json").exists()
    assert "Stock tracker: http://127.0.0.1:" in run.text()
    # without a running make run, the CLI says so in one line
    alone = run.cli("fetch-once")
    assert alone.returncode == 2 and "Traceback" not in alone.stderr
    assert alone.stderr.strip().count("\n") == 0 and "no `make run` is running" in alone.stderr


def test_a_closed_terminal_then_a_killed_launcher_leave_nothing_behind(tmp_path) -> None:
    port = free_port()
    first = Launch(tmp_path, port)
    first.wait_healthy()
    made = first.cli("users", "create", "me", "--admin", "--password-stdin", stdin="long enough pw\n")
    assert made.returncode == 0, made.stderr
    token = first.cli("tokens", "create", "me", "--scope", "read", "--scope", "symbols:write").stdout.strip()
    added = requests.post(f"http://127.0.0.1:{port}/api/symbols", json={"ticker": "AMD"},
                          headers={"Authorization": f"Bearer {token}"}, timeout=5)
    assert added.status_code in (200, 201), added.text
    everything = first.children() + postgres_of(tmp_path)
    redis = [p for p in psutil.process_iter(["cmdline", "ppid"])
             if "redis-server" in " ".join(p.info["cmdline"] or []) and p.info["ppid"] == first.proc.pid]
    assert redis, "the embedded redis-server is the launcher's child"
    everything += redis
    # the terminal closes: SIGHUP to its job, and the launcher is killed outright a moment later
    os.killpg(first.proc.pid, signal.SIGHUP)
    time.sleep(0.3)
    first.proc.kill()
    first.proc.wait(10)
    left = wait_gone(everything, 40)
    assert left == [], [p.cmdline() for p in left]
    assert not (tmp_path / "running.json").exists()
    handles = tmp_path / "pg" / ".handle_pids.json"
    assert not handles.exists() or json.loads(handles.read_text()) == []
    # the next make run starts (same port, same data) and counts the symbol added through the API
    second = Launch(tmp_path, port, "run2.log")
    try:
        second.wait_healthy()
        assert "16 symbols" in second.text(), second.text()[-2000:]
    finally:
        os.killpg(second.proc.pid, signal.SIGINT)
        second.proc.wait(30)
    assert wait_gone(postgres_of(tmp_path), 10) == []


def test_a_process_that_dies_is_restarted_and_the_others_stay(tmp_path) -> None:
    run = Launch(tmp_path, free_port())
    try:
        run.wait_healthy()
        worker = next(c for c in run.children() if "jobs.worker" in cmd(c))
        web = next(c for c in run.children() if "gunicorn" in cmd(c))
        worker.kill()
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            workers = [c for c in run.children() if "jobs.worker" in cmd(c) and c.pid != worker.pid]
            if workers:
                break
            time.sleep(0.3)
        assert workers, run.text()[-2000:]
        assert web.is_running()
        assert requests.get(f"http://127.0.0.1:{run.port}/api/stocks", timeout=5).status_code == 200
        assert "worker    | exited with code -9; restarting in 1 s" in run.text()
        run.wait_healthy(30)  # and ticks go on
    finally:
        os.killpg(run.proc.pid, signal.SIGINT)
        run.proc.wait(30)


def test_a_port_in_use_is_one_clear_line(tmp_path) -> None:
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        port = held.getsockname()[1]
        done = subprocess.run([sys.executable, "-m", "webapp.launch"], cwd=ROOT, env=bare_env(tmp_path, port),
                              capture_output=True, text=True, timeout=30)
    assert done.returncode == 1
    assert done.stderr.strip() == (f"make run: port {port} on 127.0.0.1 is in use (another `make run`?); "
                                   "stop it or choose another with PORT=…")


@pytest.mark.parametrize("argv", [
    ["-m", "webapp.launch"],
    ["-m", "flask", "--app", "wsgi", "fetch-once"],
    ["-m", "jobs.worker"],
    ["-m", "jobs.scheduler"],
    ["-m", "jobs.stream"],
    ["-m", "jobs.deliver"],
    ["-m", "gunicorn", "-k", "gevent", "-w", "1", "wsgi:app"],
])
def test_a_bad_setting_is_one_line_and_a_non_zero_exit(tmp_path, argv, service_urls) -> None:
    env = bare_env(tmp_path, free_port(), TICK_SECONDS="7", REDIS_URL=service_urls[0],
                   DATABASE_URL=service_urls[1])
    done = subprocess.run([sys.executable, *argv], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 2, done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert lines == ["ConfigError: TICK_SECONDS=7: use a divisor of 60 (1-30) or a multiple of 60 that "
                     "divides 3600"], done.stderr


def test_make_run_signs_sessions_with_a_key_of_its_own(tmp_path) -> None:
    from webapp.config import Config
    from webapp.launch.__main__ import session_key

    cfg = Config().with_overrides(DATA_DIR=str(tmp_path / "data"))
    key = session_key(cfg)
    assert len(key) > 40 and session_key(cfg) == key  # made once, kept for the next start
    assert (tmp_path / "data" / "secret_key").stat().st_mode & 0o777 == 0o600
    assert session_key(cfg.with_overrides(SECRET_KEY="set-by-me")) == "set-by-me"
