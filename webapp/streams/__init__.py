"""Streaming sources (provider WebSocket feeds), one module per source.

Like :mod:`webapp.providers`, each source sits behind one small interface
(:mod:`webapp.streams.base`) and is chosen by name in config
(``STREAM_PROVIDER``); :mod:`webapp.streams.connection` keeps any of them
connected.  It sits beside ``providers`` in the layers: it may import
``core``, ``config`` and ``names``, never the stores above it.
"""
from __future__ import annotations

from webapp.config import Config
from webapp.streams.base import WebSocketSource
from webapp.streams.sim import SimTrades


def get_stream_source(config: Config) -> WebSocketSource | SimTrades:
    """The source STREAM_PROVIDER names, configured from ``config``."""
    name, url, cap = config.STREAM_PROVIDER, config.STREAM_URL, config.STREAM_MAX_SYMBOLS
    if name == "sim":
        return SimTrades(config.SIM_SEED, config.STREAM_SIM_TRADES_PER_SECOND, halts=config.STREAM_SIM_HALTS)
    if name == "finnhub":
        from webapp.streams.finnhub import FinnhubStream

        assert config.FINNHUB_API_KEY
        return FinnhubStream(config.FINNHUB_API_KEY, url, cap if cap is not None else 50)
    if name == "alpaca":
        from webapp.streams.alpaca import AlpacaStream

        assert config.ALPACA_API_KEY_ID and config.ALPACA_API_SECRET_KEY
        return AlpacaStream(config.ALPACA_API_KEY_ID, config.ALPACA_API_SECRET_KEY, config.ALPACA_FEED,
                            url, cap)
    if name == "polygon":
        from webapp.streams.polygon import PolygonStream

        assert config.POLYGON_API_KEY
        return PolygonStream(config.POLYGON_API_KEY, url)
    raise ValueError(f"no stream source {name!r}")
