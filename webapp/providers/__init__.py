"""Market-data providers, one module per source, chosen by name in config."""
from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

import redis

from webapp.config import Config
from webapp.providers.base import FetchResult, HistoryBar, HistorySource, NoHistory, Provider

__all__ = ["FetchResult", "HistorySource", "Provider", "company_names", "get_provider", "history_source"]


def get_provider(config: Config, client: redis.Redis) -> Provider:
    """The provider MARKET_DATA_PROVIDER names, configured from ``config``."""
    if config.MARKET_DATA_PROVIDER == "stream":
        from webapp.providers.stream import StreamProvider

        gap = config.STREAM_GAP_PROVIDER
        return StreamProvider(
            client, config.TICK_SECONDS, config.STREAM_PROVIDER,
            follows_market_hours=config.SIM_FOLLOWS_MARKET_HOURS if config.STREAM_PROVIDER == "sim" else True,
            wait_seconds=config.STREAM_GRACE_MS / 1000 + 2.0,
            fallback=snapshot_provider(gap, config, client) if gap else None)
    return snapshot_provider(config.MARKET_DATA_PROVIDER, config, client)


def snapshot_provider(name: str, config: Config, client: redis.Redis) -> Provider:
    """A REST (or simulated) snapshot provider by name."""
    if name == "sim":
        from webapp.providers.sim import SimProvider

        return SimProvider(config.SIM_SEED, config.TICK_SECONDS, config.SIM_FOLLOWS_MARKET_HOURS)
    if name == "finnhub":
        from webapp.config import limits_storage_uri
        from webapp.providers.finnhub import CallBudget, FinnhubProvider

        assert config.FINNHUB_API_KEY and config.REDIS_URL
        budget = CallBudget(
            client,
            limits_storage_uri(config.REDIS_URL),
            config.FINNHUB_CALLS_PER_MINUTE,
            config.FINNHUB_CALLS_PER_SECOND,
        )
        return FinnhubProvider(
            config.FINNHUB_API_KEY,
            budget,
            base_url=config.FINNHUB_BASE_URL,
            timeout=config.FINNHUB_TIMEOUT_SECONDS,
            max_retry_after=config.FINNHUB_MAX_RETRY_AFTER,
            deadline_seconds=0.75 * config.TICK_SECONDS,
        )
    if name in ("alpaca", "polygon"):
        from webapp.providers.http import Cooldown, ProviderSession

        cooldown = Cooldown(client, name)
        if name == "alpaca":
            from webapp.providers.alpaca import AlpacaProvider

            assert config.ALPACA_API_KEY_ID and config.ALPACA_API_SECRET_KEY
            http = ProviderSession(name, {"APCA-API-KEY-ID": config.ALPACA_API_KEY_ID,
                                          "APCA-API-SECRET-KEY": config.ALPACA_API_SECRET_KEY},
                                   config.SNAPSHOT_TIMEOUT_SECONDS)
            return AlpacaProvider(http, cooldown, base_url=config.ALPACA_BASE_URL, feed=config.ALPACA_FEED)
        from webapp.providers.polygon import PolygonProvider

        assert config.POLYGON_API_KEY
        http = ProviderSession(name, {"Authorization": f"Bearer {config.POLYGON_API_KEY}"},
                               config.SNAPSHOT_TIMEOUT_SECONDS)
        return PolygonProvider(http, cooldown, base_url=config.POLYGON_BASE_URL)
    raise ValueError(f"unknown provider {name!r}")


def source_name(config: Config) -> str:
    """The provider the readings come from (for ``stream``, the stream's source)."""
    return config.STREAM_PROVIDER if config.MARKET_DATA_PROVIDER == "stream" else config.MARKET_DATA_PROVIDER


def company_names(config: Config) -> dict[str, str]:
    """Company names by ticker where the provider gives them (``sim``: every symbol it lists)."""
    if source_name(config) == "sim":
        from webapp.providers.sim import NAMES

        return NAMES
    return {}


def listed(config: Config) -> frozenset[str] | None:
    """The symbols the provider can serve, when it says (``sim``: its universe); None when any valid
    ticker may be asked for (a real feed's reference data is not loaded: its backfill says whether
    it has the symbol)."""
    if source_name(config) == "sim":
        from webapp.providers.sim import LISTED

        return frozenset(LISTED)
    return None


def unlisted_reason(config: Config, ticker: str) -> str | None:
    """Why ``ticker`` cannot be tracked with this provider, or None when it can."""
    universe = listed(config)
    if universe is None or ticker in universe:
        return None
    return (f"{ticker} is not in the simulated market, which lists {len(universe)} symbols (search "
            "by ticker or company name); for real data set MARKET_DATA_PROVIDER")


def history_source(config: Config, anchor: Callable[[str], tuple[datetime, float | None]]) -> HistorySource:
    """Where a backfill reads past bars: the provider the readings come from (for ``stream``, the
    stream's source).  ``anchor`` gives a ticker's first stored reading, which ``sim`` walks back from."""
    name = source_name(config)
    if name == "sim":
        from webapp.providers.sim import SimHistory

        return SimHistory(config.SIM_SEED, anchor)
    if name == "finnhub":
        from webapp.providers.finnhub import FinnhubHistory

        return FinnhubHistory()
    if name in ("alpaca", "polygon"):
        from webapp.providers.http import ProviderSession

        if name == "alpaca":
            from webapp.providers.alpaca import AlpacaHistory

            assert config.ALPACA_API_KEY_ID and config.ALPACA_API_SECRET_KEY
            http = ProviderSession(name, {"APCA-API-KEY-ID": config.ALPACA_API_KEY_ID,
                                          "APCA-API-SECRET-KEY": config.ALPACA_API_SECRET_KEY},
                                   config.SNAPSHOT_TIMEOUT_SECONDS, max_retry_after=0)
            return AlpacaHistory(http, config.ALPACA_BASE_URL, config.ALPACA_FEED)
        from webapp.providers.polygon import PolygonHistory

        assert config.POLYGON_API_KEY
        http = ProviderSession(name, {"Authorization": f"Bearer {config.POLYGON_API_KEY}"},
                               config.SNAPSHOT_TIMEOUT_SECONDS, max_retry_after=0)
        return PolygonHistory(http, config.POLYGON_BASE_URL)
    return _NoSource(name)


class _NoSource:
    """A provider with no history endpoint we use (``none``): the backfill says so."""

    def __init__(self, name: str) -> None:
        self.name = name

    def minute_bars(self, ticker: str, start: datetime, end: datetime) -> list[HistoryBar]:
        raise NoHistory(f"no history from this provider ({self.name})")

    daily_bars = minute_bars
