"""Where the simulated stream starts each ticker's walk after a restart (issue 26, item 11)."""
from __future__ import annotations

from webapp.services.ticks import stream_anchors


def test_a_restart_with_an_empty_redis_continues_from_the_last_stored_price(app, pg) -> None:
    with pg.cursor() as cur:  # the chart's last reading before `make run` was stopped
        cur.execute("INSERT INTO quotes (ticker, time, price, volume, source) VALUES "
                    "('AAPL', '2026-11-20T15:00:00Z', 254.10, 5, 'stream'), "
                    "('AAPL', '2026-11-20T15:01:00Z', 256.03, 5, 'stream')")
    pg.commit()
    got = stream_anchors(["AAPL", "MSFT"])
    assert got["AAPL"] == 256.03  # not the seed's 255.00
    assert got["MSFT"] == 400.0  # nothing stored: the simulated market's own start
