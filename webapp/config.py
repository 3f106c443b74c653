"""Configuration: the one module that reads the environment.

Everything else receives a :class:`Config` (or the Flask ``app.config`` built
from it), so tests and the benchmark can build a config explicitly and no
module discovers settings on its own.  A ``.env`` file is read when present;
real environment variables win over it.
"""
from __future__ import annotations

import contextlib
import os
import re
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from webapp.core.validation import TICKER_RE

DEFAULT_SYMBOLS = (
    "AAPL MSFT AMZN GOOGL TSLA META NVDA NFLX BRK.B JNJ V PG DIS JPM KO"
).split()

PROVIDERS = ("sim", "finnhub", "alpaca", "polygon", "stream")
STREAM_PROVIDERS = ("sim", "finnhub", "alpaca", "polygon", "none")
DEV_SECRET_KEY = "dev-only-not-secret"  # signs sessions when SECRET_KEY is unset; make run sets one
_NEEDS = {"finnhub": ("FINNHUB_API_KEY",), "alpaca": ("ALPACA_API_KEY_ID", "ALPACA_API_SECRET_KEY"),
          "polygon": ("POLYGON_API_KEY",)}


class ConfigError(ValueError):
    """A setting has a value the product cannot run with."""


def _normalise_database_url(url: str | None) -> str | None:
    """Pin the psycopg2 driver.

    Heroku hands out ``postgres://`` and SQLAlchemy 2.1 maps a bare
    ``postgresql://`` to psycopg 3; we ship psycopg2 (and psycogreen for it),
    so both spellings are rewritten to ``postgresql+psycopg2://``.
    """
    if not url:
        return None
    return re.sub(r"^postgres(ql)?://", "postgresql+psycopg2://", url)


def _int(env: Mapping[str, str], name: str, default: int, minimum: int = 1) -> int:
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be an integer, got {raw!r}") from None
    if value < minimum:
        raise ConfigError(f"{name} must be at least {minimum}, got {value}")
    return value


def _float(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a number, got {raw!r}") from None
    if not value > 0:
        raise ConfigError(f"{name} must be positive, got {value}")
    return value


def _bound(env: Mapping[str, str], name: str, default: float | None) -> float | None:
    """An optional non-negative number; ``none`` (or ``off``) switches the bound off."""
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    if raw.strip().lower() in ("none", "off"):
        return None
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a number or 'none', got {raw!r}") from None
    if not value >= 0:
        raise ConfigError(f"{name} must not be negative, got {value}")
    return value


def _rate(value: str, name: str = "API_RATE_LIMIT") -> str:
    """A rate like ``600/minute`` or ``10 per second`` (the ``limits`` notation)."""
    from limits import parse_many

    try:
        parse_many(value)
    except ValueError:
        raise ConfigError(
            f"{name}={value!r}: use e.g. 600/minute or '10/second;300/minute'") from None
    return value


def limits_storage_uri(redis_url: str) -> str:
    """``limits`` spells a unix-socket Redis URL ``redis+unix://``."""
    if redis_url.startswith("unix://"):
        return "redis+unix://" + redis_url[len("unix://"):]
    return redis_url


def _bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    if raw.strip().lower() in {"1", "true", "yes", "on"}:
        return True
    if raw.strip().lower() in {"0", "false", "no", "off"}:
        return False
    raise ConfigError(f"{name} must be true or false, got {raw!r}")


def parse_symbols(raw: str) -> tuple[str, ...]:
    """Split a SYMBOLS value (commas or spaces), upper-case, dedupe, validate."""
    out: list[str] = []
    for part in re.split(r"[,\s]+", raw.strip()):
        if not part:
            continue
        ticker = part.upper()
        if not TICKER_RE.fullmatch(ticker):
            raise ConfigError(
                f"SYMBOLS has {part!r}: a ticker is 1-10 characters of A-Z 0-9 . -"
            )
        if ticker not in out:
            out.append(ticker)
    if not out:
        raise ConfigError("SYMBOLS is empty")
    return tuple(out)


def check_tick_seconds(value: int) -> int:
    """Ticks must land on clock boundaries so every process agrees on the slot."""
    if (value < 60 and 60 % value == 0) or (value >= 60 and value % 60 == 0 and 3600 % value == 0):
        return value
    raise ConfigError(
        f"TICK_SECONDS={value}: use a divisor of 60 (1-30) or a multiple of 60 that divides 3600"
    )


def _cidrs(text: str) -> tuple[str, ...]:
    """``WEBHOOK_ALLOWED_CIDRS``: comma-separated networks; a typo is refused, not ignored."""
    import ipaddress

    out = []
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        try:
            out.append(str(ipaddress.ip_network(part, strict=False)))
        except ValueError:
            raise ConfigError(f"WEBHOOK_ALLOWED_CIDRS: {part!r} is not a network like 127.0.0.1/32") from None
    return tuple(out)


@dataclass(frozen=True)
class Config:
    """Typed settings.  Field names are the environment variable names."""

    DATABASE_URL: str | None = None
    REDIS_URL: str | None = None
    PORT: int = 5000
    WEB_HOST: str | None = None  # address gunicorn binds: 0.0.0.0 (Procfile) / 127.0.0.1 (make run) if unset
    SECRET_KEY: str = field(default=DEV_SECRET_KEY, repr=False)
    PAGES_SIGN_IN_REQUIRED: bool = False  # pages (not only writes) need a signed-in user
    MARKET_DATA_PROVIDER: str = "sim"
    FINNHUB_API_KEY: str | None = field(default=None, repr=False)
    FINNHUB_BASE_URL: str = "https://finnhub.io/api/v1"
    FINNHUB_CALLS_PER_MINUTE: int = 60
    FINNHUB_CALLS_PER_SECOND: int = 30
    FINNHUB_TIMEOUT_SECONDS: float = 5.0
    FINNHUB_MAX_RETRY_AFTER: float = 10.0
    ALPACA_API_KEY_ID: str | None = field(default=None, repr=False)
    ALPACA_API_SECRET_KEY: str | None = field(default=None, repr=False)
    ALPACA_FEED: str = "iex"
    ALPACA_BASE_URL: str = "https://data.alpaca.markets"
    POLYGON_API_KEY: str | None = field(default=None, repr=False)
    POLYGON_BASE_URL: str = "https://api.polygon.io"
    SNAPSHOT_TIMEOUT_SECONDS: float = 15.0
    # the stream process (jobs/stream.py): trades over the providers' WebSockets
    STREAM_PROVIDER: str = "sim"  # sim, finnhub, alpaca, polygon, or none (no stream process work)
    STREAM_URL: str | None = None  # the provider's WebSocket URL, when not its default (tests, sandboxes)
    STREAM_SIM_TRADES_PER_SECOND: float = 5.0  # per symbol, for the simulated stream
    STREAM_SIM_HALTS: bool = True  # the simulated stream halts a ticker for two minutes now and then
    STREAM_STALL_SECONDS: float = 60.0  # no market data this long while the market is open: reconnect
    STREAM_QUEUE_FRAMES: int = 10_000  # frames the reader may queue ahead of processing; past it, dropped
    REDIS_RETRY_MAX_SECONDS: float = 2.0  # a process retries a lost Redis at least this often
    STREAM_LEADER_TTL_SECONDS: float = 6.0  # a dead leader's lock expires this soon; a standby takes over
    STREAM_GRACE_MS: int = 1000  # a bar closes this long after it ends (late prints still join it)
    STREAM_MAX_SYMBOLS: int | None = None  # the plan's symbol cap, when not the provider's known one
    STREAM_GAP_PROVIDER: str | None = None  # a snapshot provider that refills incomplete stream bars
    STREAM_ALWAYS_OPEN: bool = False  # the feed trades around the clock (alpaca test): watch stalls always
    SYMBOLS: tuple[str, ...] = tuple(DEFAULT_SYMBOLS)
    SMA_PERIOD: int = 5
    TICK_SECONDS: int = 60
    TICK_SHARDS: int = 1  # split each tick into this many RQ jobs, for more workers
    TICK_LOCK_TTL_SECONDS: int = 10  # renewed while a tick runs; a killed tick frees it this soon
    # the evaluate process (jobs/evaluate.py): alert rules judged on the print, per symbol shard
    EVALUATE_LEASE_SECONDS: float = 5.0  # a dead process's shards are taken over this soon
    # the evaluate process's niceness: on a shared host the stream (which must apply every trade, and
    # whose hand-offs every judgment waits for) gets a core first; the evaluator coalesces what waits
    EVALUATE_NICE: int = 10
    PROVISIONAL_STREAM_MAXLEN: int = 10_000  # entries kept per shard's stream (one per 100 ms flush)
    SPOOL_MAX_TICKS: int = 180  # ticks of rows kept in Redis while Postgres is down (oldest dropped)
    CATCH_UP_SLOTS: int = 60  # slots run late after a stall (sim, replay); older are recorded missed
    SIM_SEED: int = 42
    SIM_FOLLOWS_MARKET_HOURS: bool = False
    HOT_TTL_SECONDS: int = 3600
    QUOTE_RETENTION_DAYS: int = 30  # minute quotes kept; daily bars are kept forever
    ALERT_EVENT_RETENTION_DAYS: int = 90  # alert events, their deliveries and attempt logs kept
    INTRABAR_RETENTION_DAYS: int = 5  # what the evaluate process judged, per ticker and second, for replays
    BACKFILL_MINUTE_SESSIONS: int = 10  # a newly tracked symbol's minute history, in sessions (0: none)
    BACKFILL_DAILY_DAYS: int = 365  # and its daily bars, in calendar days before those
    MAX_SUBSCRIBE_TICKERS: int = 100
    SOCKET_EVENT_RATE_LIMIT: str = "10/second;120/minute"  # Socket.IO events one connection may send
    WEB_MAX_CLIENTS: int = 1500  # Socket.IO connections one web process serves; past it, refused
    QUEUE_NAME: str = "ticks"
    SOCKETIO_ASYNC_MODE: str | None = None
    LOG_LEVEL: str = "INFO"
    FAULT_INJECTION: bool = False  # tests/faults only: a tick may be asked to pause after its commit
    API_RATE_LIMIT: str = "600/minute"  # per client, shared by all web processes (Redis)
    API_READ_TOKEN_REQUIRED: bool = False  # reads are public unless this is set
    SIGN_IN_FAILURE_LIMIT: str = "5/minute;20/hour"  # failed sign-ins per account and per address
    MEMBER_SYMBOL_LIMIT: int = 50  # tracked symbols one member may add (an admin has no limit)
    CORS_ORIGINS: tuple[str, ...] = ()  # origins allowed to call /api from a browser
    PROXY_HOPS: int = 0  # trusted proxies in front (Heroku: 1) for client addresses
    DATA_DIR: str = ".data"  # where `make run` keeps the embedded Postgres
    # scanner (BRIEF "Facts of the field"; see webapp/core/scanner.py)
    SCANNER: bool = True
    SCAN_TOP: int = 25  # entries per list sent to scan:<list> rooms and shown
    SCAN_DEPTH: int = 100  # entries kept per sorted set (the API's largest limit)
    SCAN_MIN_PRICE: float | None = 1.0
    SCAN_MAX_PRICE: float | None = None
    SCAN_MIN_VOLUME: float | None = None  # cumulative volume today
    SCAN_MIN_RVOL: float | None = None
    SCAN_GAP_MIN_PCT: float = 2.0
    UNUSUAL_VOLUME_K: float = 2.0  # Trade Ideas' 2x; thinkorswim uses 1.4x
    UNUSUAL_VOLUME_BARS: int = 20
    UNUSUAL_VOLUME_MIN_BARS: int = 10
    RVOL_SESSIONS: int = 10
    RVOL_MIN_EXPECTED_VOLUME: float = 100.0  # below it RVOL is "not meaningful" (null, with the reason)
    # the scanner every second (webapp/evaluate/scanner.py; definitions in webapp/core/scanner_live.py)
    SCAN_LIVE: bool = True  # the evaluate processes rank the lists each second while the stream serves
    SCAN_WINDOW_SECONDS: int = 60  # running_up/down and volume_spike look back this far
    SCAN_RUNNING_MIN_VOLUME: float = 1000.0  # shares traded in the window before a move counts
    SCAN_BREAKS_MINUTES: int = 5  # hod_breaks/lod_breaks list breaks this recent
    SCAN_SPIKE_K: float = 3.0  # volume_spike: window volume >= k x the expected for that window
    SCAN_RESUMED_MINUTES: int = 10  # halted lists a resumed ticker this long after its resume
    # webhooks (jobs/deliver.py; see webapp/core/delivery.py)
    WEBHOOK_ALLOWED_CIDRS: tuple[str, ...] = ()  # private/loopback networks webhooks may call (tests)
    DELIVERY_CONCURRENCY: int = 8  # webhook requests one delivery process has in flight
    DELIVERY_POLL_SECONDS: float = 1.0  # how often it looks for due deliveries when nothing wakes it
    WEBHOOK_TIMEOUT_SECONDS: float = 10.0  # one webhook request, connect and read
    DELIVERY_LEASE_SECONDS: float = 60.0  # a killed deliverer's claims return to the queue this soon

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, *, dotenv: bool = True,
                 discover: bool = True) -> Config:
        """Build a config from ``env`` (default ``os.environ`` plus ``.env``).

        With the real environment and ``discover``, a ``DATABASE_URL`` or
        ``REDIS_URL`` left unset is taken from a running ``make run``'s
        embedded servers (:func:`running_services`), so the CLI works beside it.
        """
        if env is None:
            merged: dict[str, str] = {}
            if dotenv:
                from dotenv import dotenv_values

                merged.update({k: v for k, v in dotenv_values().items() if v is not None})
            merged.update(os.environ)
            if discover and not (merged.get("DATABASE_URL") and merged.get("REDIS_URL")):
                found = running_services(merged.get("DATA_DIR") or ".data")
                merged.update({k: v for k, v in found.items() if not merged.get(k)})
            env = merged
        def secret(name: str) -> str | None:
            return (env.get(name) or "").strip() or None

        def choice(name: str, allowed: tuple[str, ...], default: str) -> str:
            value = (env.get(name) or default).strip().lower()
            if value not in allowed:
                raise ConfigError(f"{name}={value!r}: choose one of {', '.join(allowed)}")
            missing = [n for n in _NEEDS.get(value, ()) if not secret(n)]
            if missing:
                raise ConfigError(f"{name}={value} needs {' and '.join(missing)}")
            return value

        api_key = secret("FINNHUB_API_KEY")
        provider = choice("MARKET_DATA_PROVIDER", PROVIDERS, "sim")
        stream = choice("STREAM_PROVIDER", STREAM_PROVIDERS, "sim")
        if provider == "stream" and stream == "none":
            raise ConfigError("MARKET_DATA_PROVIDER=stream needs a STREAM_PROVIDER (sim, finnhub, alpaca "
                              "or polygon), not none")
        gap = choice("STREAM_GAP_PROVIDER", ("none", "finnhub", "alpaca", "polygon"), "none")
        cap = _int(env, "STREAM_MAX_SYMBOLS", 0, minimum=1) if (env.get("STREAM_MAX_SYMBOLS") or "").strip() \
            else None
        symbols = env.get("SYMBOLS")
        tick = check_tick_seconds(_int(env, "TICK_SECONDS", 60))
        return cls(
            DATABASE_URL=_normalise_database_url(env.get("DATABASE_URL")),
            REDIS_URL=env.get("REDIS_URL") or None,
            PORT=_int(env, "PORT", 5000),
            WEB_HOST=(env.get("WEB_HOST") or "").strip() or None,
            SECRET_KEY=(env.get("SECRET_KEY") or kept_secret_key(env.get("DATA_DIR") or ".data")
                        or cls.SECRET_KEY),
            PAGES_SIGN_IN_REQUIRED=_bool(env, "PAGES_SIGN_IN_REQUIRED", False),
            MARKET_DATA_PROVIDER=provider,
            FINNHUB_API_KEY=api_key,
            FINNHUB_BASE_URL=(env.get("FINNHUB_BASE_URL") or cls.FINNHUB_BASE_URL).rstrip("/"),
            FINNHUB_CALLS_PER_MINUTE=_int(env, "FINNHUB_CALLS_PER_MINUTE", 60),
            FINNHUB_CALLS_PER_SECOND=_int(env, "FINNHUB_CALLS_PER_SECOND", 30),
            FINNHUB_TIMEOUT_SECONDS=_float(env, "FINNHUB_TIMEOUT_SECONDS", 5.0),
            ALPACA_API_KEY_ID=secret("ALPACA_API_KEY_ID"),
            ALPACA_API_SECRET_KEY=secret("ALPACA_API_SECRET_KEY"),
            ALPACA_FEED=env.get("ALPACA_FEED") or "iex",
            ALPACA_BASE_URL=(env.get("ALPACA_BASE_URL") or cls.ALPACA_BASE_URL).rstrip("/"),
            POLYGON_API_KEY=secret("POLYGON_API_KEY"),
            POLYGON_BASE_URL=(env.get("POLYGON_BASE_URL") or cls.POLYGON_BASE_URL).rstrip("/"),
            SNAPSHOT_TIMEOUT_SECONDS=_float(env, "SNAPSHOT_TIMEOUT_SECONDS", 15.0),
            STREAM_PROVIDER=stream,
            STREAM_URL=(env.get("STREAM_URL") or "").strip() or None,
            STREAM_SIM_TRADES_PER_SECOND=_float(env, "STREAM_SIM_TRADES_PER_SECOND", 5.0),
            STREAM_SIM_HALTS=_bool(env, "STREAM_SIM_HALTS", True),
            STREAM_STALL_SECONDS=_float(env, "STREAM_STALL_SECONDS", 60.0),
            STREAM_QUEUE_FRAMES=_int(env, "STREAM_QUEUE_FRAMES", 10_000),
            REDIS_RETRY_MAX_SECONDS=_float(env, "REDIS_RETRY_MAX_SECONDS", 2.0),
            STREAM_LEADER_TTL_SECONDS=_float(env, "STREAM_LEADER_TTL_SECONDS", 6.0),
            STREAM_GRACE_MS=_int(env, "STREAM_GRACE_MS", 1000, minimum=0),
            STREAM_MAX_SYMBOLS=cap,
            STREAM_GAP_PROVIDER=None if gap == "none" else gap,
            STREAM_ALWAYS_OPEN=_bool(env, "STREAM_ALWAYS_OPEN", (env.get("ALPACA_FEED") or "") == "test"),
            FINNHUB_MAX_RETRY_AFTER=_float(env, "FINNHUB_MAX_RETRY_AFTER", 10.0),
            SYMBOLS=parse_symbols(symbols) if symbols else tuple(DEFAULT_SYMBOLS),
            SMA_PERIOD=_int(env, "SMA_PERIOD", 5),
            TICK_SECONDS=tick,
            TICK_SHARDS=_int(env, "TICK_SHARDS", 1),
            TICK_LOCK_TTL_SECONDS=_int(env, "TICK_LOCK_TTL_SECONDS", 10),
            EVALUATE_LEASE_SECONDS=_float(env, "EVALUATE_LEASE_SECONDS", 5.0),
            EVALUATE_NICE=min(19, _int(env, "EVALUATE_NICE", 10, minimum=0)),
            PROVISIONAL_STREAM_MAXLEN=_int(env, "PROVISIONAL_STREAM_MAXLEN", 10_000, minimum=100),
            SPOOL_MAX_TICKS=_int(env, "SPOOL_MAX_TICKS", 180),
            CATCH_UP_SLOTS=_int(env, "CATCH_UP_SLOTS", 60, minimum=0),
            SIM_SEED=_int(env, "SIM_SEED", 42, minimum=0),
            SIM_FOLLOWS_MARKET_HOURS=_bool(env, "SIM_FOLLOWS_MARKET_HOURS", False),
            HOT_TTL_SECONDS=_int(env, "HOT_TTL_SECONDS", max(3600, 10 * tick)),
            QUOTE_RETENTION_DAYS=_int(env, "QUOTE_RETENTION_DAYS", 30),
            ALERT_EVENT_RETENTION_DAYS=_int(env, "ALERT_EVENT_RETENTION_DAYS", 90),
            INTRABAR_RETENTION_DAYS=_int(env, "INTRABAR_RETENTION_DAYS", 5),
            BACKFILL_MINUTE_SESSIONS=_int(env, "BACKFILL_MINUTE_SESSIONS", 10, minimum=0),
            BACKFILL_DAILY_DAYS=_int(env, "BACKFILL_DAILY_DAYS", 365, minimum=0),
            MAX_SUBSCRIBE_TICKERS=_int(env, "MAX_SUBSCRIBE_TICKERS", 100),
            WEB_MAX_CLIENTS=_int(env, "WEB_MAX_CLIENTS", 1500),
            SOCKET_EVENT_RATE_LIMIT=_rate(env.get("SOCKET_EVENT_RATE_LIMIT") or "10/second;120/minute",
                                          "SOCKET_EVENT_RATE_LIMIT"),
            QUEUE_NAME=env.get("QUEUE_NAME") or "ticks",
            SOCKETIO_ASYNC_MODE=env.get("SOCKETIO_ASYNC_MODE") or None,
            LOG_LEVEL=(env.get("LOG_LEVEL") or "INFO").upper(),
            FAULT_INJECTION=_bool(env, "FAULT_INJECTION", False),
            DATA_DIR=env.get("DATA_DIR") or ".data",
            API_RATE_LIMIT=_rate(env.get("API_RATE_LIMIT") or "600/minute"),
            API_READ_TOKEN_REQUIRED=_bool(env, "API_READ_TOKEN_REQUIRED", False),
            SIGN_IN_FAILURE_LIMIT=_rate(env.get("SIGN_IN_FAILURE_LIMIT") or "5/minute;20/hour",
                                        "SIGN_IN_FAILURE_LIMIT"),
            MEMBER_SYMBOL_LIMIT=_int(env, "MEMBER_SYMBOL_LIMIT", 50, minimum=0),
            CORS_ORIGINS=tuple(o for o in re.split(r"[,\s]+", env.get("CORS_ORIGINS", "")) if o),
            PROXY_HOPS=_int(env, "PROXY_HOPS", 0, minimum=0),
            SCANNER=_bool(env, "SCANNER", True),
            SCAN_TOP=_int(env, "SCAN_TOP", 25),
            SCAN_DEPTH=max(_int(env, "SCAN_DEPTH", 100), _int(env, "SCAN_TOP", 25)),
            SCAN_MIN_PRICE=_bound(env, "SCAN_MIN_PRICE", 1.0),
            SCAN_MAX_PRICE=_bound(env, "SCAN_MAX_PRICE", None),
            SCAN_MIN_VOLUME=_bound(env, "SCAN_MIN_VOLUME", None),
            SCAN_MIN_RVOL=_bound(env, "SCAN_MIN_RVOL", None),
            SCAN_GAP_MIN_PCT=_float(env, "SCAN_GAP_MIN_PCT", 2.0),
            UNUSUAL_VOLUME_K=_float(env, "UNUSUAL_VOLUME_K", 2.0),
            UNUSUAL_VOLUME_BARS=_int(env, "UNUSUAL_VOLUME_BARS", 20),
            UNUSUAL_VOLUME_MIN_BARS=_int(env, "UNUSUAL_VOLUME_MIN_BARS", 10),
            RVOL_SESSIONS=_int(env, "RVOL_SESSIONS", 10),
            RVOL_MIN_EXPECTED_VOLUME=_float(env, "RVOL_MIN_EXPECTED_VOLUME", 100.0),
            SCAN_LIVE=_bool(env, "SCAN_LIVE", True),
            SCAN_WINDOW_SECONDS=_int(env, "SCAN_WINDOW_SECONDS", 60, minimum=5),
            SCAN_RUNNING_MIN_VOLUME=_float(env, "SCAN_RUNNING_MIN_VOLUME", 1000.0),
            SCAN_BREAKS_MINUTES=_int(env, "SCAN_BREAKS_MINUTES", 5),
            SCAN_SPIKE_K=_float(env, "SCAN_SPIKE_K", 3.0),
            SCAN_RESUMED_MINUTES=_int(env, "SCAN_RESUMED_MINUTES", 10),
            WEBHOOK_ALLOWED_CIDRS=_cidrs(env.get("WEBHOOK_ALLOWED_CIDRS") or ""),
            DELIVERY_CONCURRENCY=_int(env, "DELIVERY_CONCURRENCY", 8),
            DELIVERY_POLL_SECONDS=_float(env, "DELIVERY_POLL_SECONDS", 1.0),
            WEBHOOK_TIMEOUT_SECONDS=_float(env, "WEBHOOK_TIMEOUT_SECONDS", 10.0),
            DELIVERY_LEASE_SECONDS=_float(env, "DELIVERY_LEASE_SECONDS", 60.0),
        )

    def with_overrides(self, **changes: Any) -> Config:
        """A copy with some settings changed (tests, benchmark)."""
        if "DATABASE_URL" in changes:
            changes["DATABASE_URL"] = _normalise_database_url(changes["DATABASE_URL"])
        if "TICK_SECONDS" in changes:
            check_tick_seconds(changes["TICK_SECONDS"])
        return replace(self, **changes)

    def as_flask_mapping(self) -> dict[str, Any]:
        """The values Flask and its extensions read from ``app.config``."""
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        out["SQLALCHEMY_DATABASE_URI"] = self.DATABASE_URL
        # connections kept: as many as the busiest process holds at once (a deliverer's requests each
        # record their answer, and its loop claims): past the default 5, each burst opened and closed
        # Postgres sessions (118 for 2,000 deliveries over 4 endpoints), a server process forked each
        out["SQLALCHEMY_ENGINE_OPTIONS"] = {"pool_pre_ping": True,
                                            "pool_size": max(5, self.DELIVERY_CONCURRENCY + 2)}
        out["SESSION_COOKIE_SAMESITE"] = "Lax"  # sign-in cookies stay on this site's own requests
        out["REMEMBER_COOKIE_SAMESITE"] = "Lax"
        out["WTF_CSRF_TIME_LIMIT"] = None  # valid for the session: a page left open still saves
        out["REMEMBER_COOKIE_HTTPONLY"] = True
        out["MAX_CONTENT_LENGTH"] = MAX_BODY_BYTES  # a larger body is a 413 before it is read
        return out

    def require_services(self) -> None:
        """Fail early, naming the missing setting, instead of deep in a driver."""
        missing = [n for n in ("DATABASE_URL", "REDIS_URL") if not getattr(self, n)]
        if missing:
            raise ConfigError(
                f"{' and '.join(missing)} not set and no `make run` is running here: export them, or "
                "start `make run` (embedded Redis/Postgres) and run this beside it"
            )


MAX_BODY_BYTES = 1_000_000  # no request this product takes comes near it (a rule is a few KB)
PROJECT_ROOT = Path(__file__).resolve().parents[1]
RUNNING_FILE = "running.json"  # in DATA_DIR, while `make run` runs: its servers' URLs


def secret_key_file(data_dir: str) -> Path:
    """Where ``make run`` keeps the SECRET_KEY it made (0600) when none is set."""
    return (PROJECT_ROOT / data_dir / "secret_key").resolve()


def kept_secret_key(data_dir: str) -> str | None:
    """The key ``make run`` made, so a ``flask`` command or a restart signs with the same one (and
    does not warn about the development key while one is kept)."""
    try:
        return secret_key_file(data_dir).read_text().strip() or None
    except OSError:
        return None


def running_file(data_dir: str) -> Path:
    return (PROJECT_ROOT / data_dir / RUNNING_FILE).resolve()


def running_services(data_dir: str) -> dict[str, str]:
    """The URLs a running ``make run`` wrote for its embedded servers, and the provider its processes
    use (``stream`` on the defaults), so a ``flask`` command there runs as they do (``{}`` if none
    runs)."""
    import json

    try:
        info = json.loads(running_file(data_dir).read_text())
        os.kill(int(info["pid"]), 0)  # the launcher that wrote it is still alive
    except (OSError, ValueError, KeyError, TypeError):
        return {}
    return {k: str(info[k]) for k in ("DATABASE_URL", "REDIS_URL", "MARKET_DATA_PROVIDER") if info.get(k)}


@contextlib.contextmanager
def exit_on_config_error() -> Iterator[None]:
    """In a process entry point: a bad setting prints one line and exits 2, no traceback."""
    try:
        yield
    except ConfigError as exc:
        print(f"ConfigError: {exc}", file=sys.stderr, flush=True)
        raise SystemExit(2) from None


def child_environment(**overrides: str) -> dict[str, str]:
    """The environment for processes the launcher starts: ours plus ``overrides``.

    ``PATH`` gets the running interpreter's directory first, so ``gunicorn``,
    ``flask`` and ``python`` in the Procfile resolve to this virtualenv.
    """
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env.setdefault("PYTHONUNBUFFERED", "1")
    env.update(overrides)
    return env
