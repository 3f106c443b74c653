"""Helpers shared by tests: capture real Socket.IO emits, run and read ticks, check schemas."""
from __future__ import annotations

import json
import threading
import time
from datetime import timedelta
from decimal import Decimal
from fractions import Fraction
from typing import Any

import jsonschema
import redis
from rq import Queue, SimpleWorker

from tests.conftest import utc
from webapp import names
from webapp.core.latest import Latest
from webapp.extensions import db, get_redis
from webapp.services import context
from webapp.tick.context import TickServices
from webapp.tick.rules import RuleEngine


class EmitCapture:
    """Listens on the Socket.IO message-queue channel, as a web process would."""

    def __init__(self, url: str) -> None:
        self._client = redis.Redis.from_url(url)
        self._pubsub = self._client.pubsub(ignore_subscribe_messages=True)
        self._pubsub.subscribe(names.SOCKETIO_CHANNEL)
        self.messages: list[dict[str, Any]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            msg = self._pubsub.get_message(timeout=0.05)
            if msg and msg["type"] == "message":
                self.messages.append(json.loads(msg["data"]))

    def settle(self, quiet: float = 0.3) -> list[dict[str, Any]]:
        """Wait until nothing new arrived for ``quiet`` seconds; return all so far."""
        n = -1
        while n != len(self.messages):
            n = len(self.messages)
            time.sleep(quiet)
        return self.messages

    def events(self, event: str) -> list[tuple[str, dict[str, Any]]]:
        return [(m["room"], m["data"][0]) for m in self.settle()
                if m.get("method") == "emit" and m["event"] == event]

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        self._pubsub.close()


def user_id(name: str, admin: bool = False) -> int:
    """The id of user ``name``, made (password ``password-<name>``) if it does not exist yet."""
    from webapp.store import users

    got = users.by_name(db.session, name) or users.create(db.session, name, f"password-{name}", admin=admin)
    return got.id


def token_for(name: str, scopes: tuple[str, ...] | None = None, admin: bool = False, **kwargs: Any) -> str:
    """A new token of user ``name`` (made if needed) with ``scopes`` (default: every scope the role has)."""
    from webapp.store import tokens, users

    uid = user_id(name, admin)
    is_admin = users.get(db.session, uid).is_admin
    chosen = scopes or tuple(s for s in tokens.SCOPES if s != "admin" or is_admin)
    return tokens.create(db.session, uid, f"{name}-test", chosen, admin=is_admin, **kwargs)[1]


def reference(prices: list[float], period: int) -> list[str | None]:
    """The definition, written out plainly with exact fractions."""
    exact = [Fraction(Decimal(repr(p))) for p in prices]
    smas = [
        sum(exact[i - period + 1 : i + 1]) / period if i >= period - 1 else None
        for i in range(len(exact))
    ]
    alerts: list[str | None] = []
    for i in range(len(exact)):
        if i == 0 or smas[i] is None or smas[i - 1] is None:
            alerts.append(None)
        elif exact[i] > smas[i] and exact[i - 1] <= smas[i - 1]:
            alerts.append("bullish")
        elif exact[i] < smas[i] and exact[i - 1] >= smas[i - 1]:
            alerts.append("bearish")
        else:
            alerts.append(None)
    return alerts


START = utc("2026-11-20T15:00:00")  # a Friday, market open


def minutes(n: int, start=START):
    return [start + timedelta(minutes=i) for i in range(n)]


def run_via_rq(app, times) -> list[dict]:
    """Enqueue the real job for each time and drain the queue with a burst worker."""
    conn = get_redis()
    queue = Queue(app.config["TRACKER"].QUEUE_NAME, connection=conn)
    jobs = [queue.enqueue("jobs.tick.tick", t.isoformat()) for t in times]
    SimpleWorker([queue], connection=conn).work(burst=True)
    for job in jobs:
        job.refresh()
        assert job.get_status() == "finished", job.latest_result().exc_string
    return [job.return_value() for job in jobs]


def stored_quotes(pg) -> dict[str, list[tuple]]:
    with pg.cursor() as cur:
        cur.execute("SELECT ticker, time, price::float8, sma::float8 FROM quotes ORDER BY ticker, time")
        out: dict[str, list[tuple]] = {}
        for row in cur.fetchall():
            out.setdefault(row[0], []).append(row[1:])
    return out


def stored_alerts(pg) -> list[tuple]:
    with pg.cursor() as cur:
        cur.execute("SELECT ticker, time, kind, price::float8, sma::float8 FROM alerts ORDER BY ticker, time")
        return cur.fetchall()


def alerts_are_the_reference(pg, times) -> tuple[dict[str, list[tuple]], list[tuple]]:
    """Assert every ticker has a quote for each of ``times`` once and the stored alerts are the
    plain SMA-5 reference's (none false, none missed); returns the quotes and (ticker, time, kind)."""
    quotes = stored_quotes(pg)
    assert all([r[0] for r in rows] == times for rows in quotes.values())  # each minute once
    expected = sorted((t, rows[i][0], kind) for t, rows in quotes.items()
                      for i, kind in enumerate(reference([r[1] for r in rows], 5)) if kind)
    stored = [(a[0], a[1], a[2]) for a in stored_alerts(pg)]
    assert stored == expected  # no false alert, none missed
    return quotes, stored


def hot_state(rdb, tickers, period=5):
    """Per ticker: its reading as users see it, window ticks and SMA period, from
    whichever shard's table holds it; and its window list."""
    latest = Latest.merged([Latest.unpack(rdb.get(k)) for k in rdb.keys(names.latest_key() + "*")], period)
    rows = latest.rows_of(tickers)
    views = latest.views(rows, START, None)
    docs = {v["ticker"]: {"v": v, "w": latest.cols["win"][r, period - latest.cols["wlen"][r]:].tolist(),
                          "n": latest.period}
            for v, r in zip(views, rows.tolist(), strict=True)}
    windows = {t: [float(p) for p in rdb.lrange(names.window_key(t), 0, -1)] for t in tickers}
    return docs, windows


def scripted_services(app, provider) -> TickServices:
    base = context.tick_services()
    return TickServices(base.config, provider, base.hot, db.session, base.publisher, spool=base.spool,
                        rules=RuleEngine())


def walk(client, url: str, key: str) -> tuple[list[dict], int]:
    """Every item of a cursor-paged endpoint, and how many pages it took."""
    items, cursor, pages = [], None, 0
    while True:
        resp = client.get(url + (f"&cursor={cursor}" if cursor else "")).get_json()
        items += resp[key]
        pages += 1
        cursor = resp["next_cursor"]
        if cursor is None:
            return items, pages


def schema_for(spec: dict, path: str, status: str = "200") -> dict:
    op = spec["paths"][path]["get"]
    ref = op["responses"][status]["content"]["application/json"]["schema"]
    return {**ref, "components": spec["components"]}


def check(spec: dict, path: str, resp, status: int = 200) -> dict:
    assert resp.status_code == status, resp.get_json()
    body = resp.get_json()
    jsonschema.validate(body, schema_for(spec, path, str(status)),
                        format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER)
    return body


def pretend_processes_run(app) -> None:
    """What health checks of the other processes: a scheduler heartbeat and its tick
    job, and an RQ worker registered on the queue (as the real processes leave them)."""
    from jobs.scheduler import make_scheduler, register
    from jobs.worker import make_worker

    cfg = app.config["TRACKER"]
    conn = get_redis()
    scheduler = make_scheduler(conn, cfg)
    register(scheduler, cfg)
    scheduler.heartbeat()
    make_worker(conn, cfg.QUEUE_NAME).register_birth()


def run_async(main) -> None:
    """``asyncio.run(main())`` in a thread of its own.

    The session's Playwright (sync API) keeps an event loop running in the
    main thread once the browser tests have started it, and asyncio refuses
    to start a second one there.
    """
    import threading

    failed: list[BaseException] = []

    def run() -> None:
        import asyncio

        try:
            asyncio.run(main())
        except BaseException as exc:
            failed.append(exc)

    t = threading.Thread(target=run)
    t.start()
    t.join()
    if failed:
        raise failed[0]
