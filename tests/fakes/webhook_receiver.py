"""A real webhook receiver on a local port: verifies every request with ``standardwebhooks``.

Its behaviour is a script: ``answers`` (a list of what to do with the next
requests, then ``default``), each one of ``200``, ``500``, ``410``,
``("429", seconds)`` (with ``Retry-After``), ``"redirect"`` (a 302 to
``/elsewhere``), ``"stall"`` (sleep past the sender's timeout) or
``"hold"`` (block until ``release`` is set: a request in flight when the
test kills the sender) or ``"long"`` (a 200 with a body longer than the
sender keeps).  ``down()`` closes the port; ``up()`` opens it again.
``keep_alive`` answers HTTP/1.1 and keeps connections open, as most
receivers do (each request notes its client port, ``peer``); else each
answer closes its connection.
"""
from __future__ import annotations

import json
import socket
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from standardwebhooks.webhooks import Webhook, WebhookVerificationError


@dataclass
class Received:
    webhook_id: str
    timestamp: int
    verified: bool
    body: dict[str, Any] | None
    answered: Any
    at: float
    peer: int = 0  # the sender's port: one per connection


@dataclass
class Receiver:
    secrets: list[str]
    answers: list[Any] = field(default_factory=list)
    default: Any = 200
    stall_seconds: float = 3.0
    keep_alive: bool = False
    port: int = 0
    got: list[Received] = field(default_factory=list)
    in_flight: int = 0
    max_in_flight: int = 0
    release: threading.Event = field(default_factory=threading.Event)
    held: threading.Event = field(default_factory=threading.Event)
    _server: ThreadingHTTPServer | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook?source=test"

    def up(self) -> Receiver:
        if not self.port:
            with socket.socket() as s:
                s.bind(("127.0.0.1", 0))
                self.port = s.getsockname()[1]
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1" if self.keep_alive else "HTTP/1.0"
            disable_nagle_algorithm = True

            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                receiver._handle(self)

        server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        server.daemon_threads = True
        server.allow_reuse_address = True
        self._server = server
        threading.Thread(target=server.serve_forever, daemon=True).start()
        return self

    def down(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def _verify(self, body: bytes, headers: dict[str, str]) -> tuple[bool, Any]:
        for secret in self.secrets:
            try:
                return True, Webhook(secret).verify(body, headers)
            except WebhookVerificationError:
                continue
        return False, None

    def _handle(self, h: BaseHTTPRequestHandler) -> None:
        body = h.rfile.read(int(h.headers.get("content-length", "0")))
        headers = {k.lower(): v for k, v in h.headers.items()}
        ok, parsed = self._verify(body, headers)
        with self._lock:
            answer = self.answers.pop(0) if self.answers else self.default
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            self.got.append(Received(headers.get("webhook-id", ""), int(headers.get("webhook-timestamp", 0)),
                                     ok, parsed, answer, time.monotonic(), h.client_address[1]))
        try:
            if answer == "stall":
                time.sleep(self.stall_seconds)
                answer = 200
            if answer == "hold":
                self.held.set()
                self.release.wait(30)
                answer = 200
            if answer == "redirect":
                h.send_response(302)
                h.send_header("Location", "/elsewhere")
            elif isinstance(answer, tuple):
                h.send_response(429)
                h.send_header("Retry-After", str(answer[1]))
            else:
                h.send_response(200 if answer == "long" else int(answer))
            reply = json.dumps({"ok": answer in (200, "long")}
                               | ({"pad": "x" * 8192} if answer == "long" else {})).encode()
            h.send_header("Content-Length", str(len(reply)))
            h.end_headers()
            h.wfile.write(reply)
        except OSError:
            pass  # the sender gave up (timeout) or was killed
        finally:
            with self._lock:
                self.in_flight -= 1

    def accepted(self) -> list[Received]:
        """Requests that verified and were answered 2xx."""
        return [r for r in self.got if r.verified and r.answered in (200, "stall", "hold", "long")]

    def wait_for(self, n: int, timeout: float = 20.0) -> list[Received]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and len(self.got) < n:
            time.sleep(0.05)
        return self.got
