"""Market-data providers, one module per source, chosen by name in config."""
from __future__ import annotations

import redis

from webapp.config import Config
from webapp.providers.base import FetchResult, Provider

__all__ = ["FetchResult", "Provider", "get_provider"]


def get_provider(config: Config, client: redis.Redis) -> Provider:
    """The provider MARKET_DATA_PROVIDER names, configured from ``config``."""
    if config.MARKET_DATA_PROVIDER == "sim":
        from webapp.providers.sim import SimProvider

        return SimProvider(config.SIM_SEED, config.TICK_SECONDS, config.SIM_FOLLOWS_MARKET_HOURS)
    if config.MARKET_DATA_PROVIDER == "finnhub":
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
    raise ValueError(f"unknown provider {config.MARKET_DATA_PROVIDER!r}")
