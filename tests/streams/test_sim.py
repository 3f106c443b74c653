"""The simulated trade stream: seeded, continuing from its anchor, odd lots flagged."""
from __future__ import annotations

from webapp.core.trades import bars_of
from webapp.streams.sim import SimTrades

T0 = 1_795_000_020_000


def test_the_same_span_gives_the_same_prints_and_the_walk_continues() -> None:
    sim = SimTrades(seed=7, trades_per_second=5)
    whole, end_whole = sim.between(["AAPL", "KO"], T0, T0 + 10_000, {"AAPL": 255.0, "KO": 70.0})
    again, _ = sim.between(["AAPL", "KO"], T0, T0 + 10_000, {"AAPL": 255.0, "KO": 70.0})
    assert whole == again and len(whole) > 40
    assert [t.time_ms for t in whole] == sorted(t.time_ms for t in whole)
    assert all(abs(t.price / {"AAPL": 255.0, "KO": 70.0}[t.ticker] - 1) < 0.02 for t in whole)
    assert any(t.conditions == ("I",) for t in whole) and all(t.size >= 1 for t in whole)
    # an odd lot never sets the price the walk continues from
    last_round = {t.ticker: t.price for t in whole if not t.conditions}
    assert {t: round(p, 2) for t, p in end_whole.items()} == last_round
    bars = bars_of(whole, 1, "sim")
    assert {b.ticker for b in bars.values()} == {"AAPL", "KO"}
    for (ticker, start), bar in bars.items():  # the close is the second's last round lot
        rounds = [t.price for t in whole if t.ticker == ticker and t.time_ms // 1000 == start
                  and not t.conditions]
        assert bar.close == (rounds[-1] if rounds else None)


def test_a_ticker_without_an_anchor_is_not_streamed() -> None:
    trades, after = SimTrades().between(["AAPL", "NEW"], T0, T0 + 5_000, {"AAPL": 255.0})
    assert {t.ticker for t in trades} == {"AAPL"} and "NEW" not in after


def test_a_low_priced_stock_moves_as_much_as_any_other() -> None:
    """A $6.56 stock printed 6.56 for 25 minutes: each step, rounded to the cent, was undone (issue 26,
    item 11).  The walk is kept unrounded, so its prints move as a $250 stock's do, in proportion."""
    sim = SimTrades(seed=3, trades_per_second=5)
    trades, _ = sim.between(["INTC", "AAPL"], T0, T0 + 12 * 60_000, {"INTC": 6.56, "AAPL": 256.0})
    for ticker in ("INTC", "AAPL"):
        prices = [t.price for t in trades if t.ticker == ticker]
        ticks = sum(a != b for a, b in zip(prices, prices[1:], strict=False))  # prints at a new price
        assert ticks > 20 and len(set(prices)) >= 3, (ticker, ticks, sorted(set(prices)))
    penny, _ = sim.between(["PENNY"], T0, T0 + 60_000, {"PENNY": 0.4321})
    assert len({t.price for t in penny}) > 3 and all(t.price == round(t.price, 4) for t in penny)


def test_runs_on_heavy_volume_and_halts_with_their_status_messages() -> None:
    """What the live scanner's lists are for happens in the simulated market: a minute's run up or
    down on five times the size, and two-minute halts announced at each end with nothing printed."""
    sim = SimTrades(seed=42, trades_per_second=2)
    tickers = [f"T{i}" for i in range(200)]
    minute = T0 // 60_000
    runs = [(t, m) for t in tickers for m in range(minute, minute + 30) if sim.run_of(t, m)]
    assert runs  # about 2 % of ticker-minutes
    ticker, m = runs[0]
    trades, _ = sim.between([ticker], m * 60_000, (m + 1) * 60_000, {ticker: 50.0})
    calm, _ = sim.between([ticker], (m - 1) * 60_000, m * 60_000, {ticker: 50.0})
    assert sum(t.size for t in trades) > 2.5 * sum(t.size for t in calm)
    moved = trades[-1].price / 50.0 - 1
    assert moved * sim.run_of(ticker, m) > 0.01  # the run's way, about 2 %
    halts = sim.halts_between(tickers, T0, T0 + 3_600_000)
    assert halts and halts[0].halted
    start = halts[0]
    resume = next(h for h in halts if h.ticker == start.ticker and not h.halted)
    assert resume.time_ms - start.time_ms == 120_000 and start.code
    during, _ = sim.between([start.ticker], start.time_ms, resume.time_ms, {start.ticker: 50.0})
    assert during == []


def test_its_volume_follows_the_simulated_markets_so_rvol_is_about_one() -> None:
    """Sized to the minute volume the simulated market's history has at that time of day (what the
    RVOL profile and the volume-spike list expect), a quiet minute is about 1× and a run about 5×:
    a spike stands out instead of every ticker being one."""
    from webapp.providers.sim import SimProvider

    market = SimProvider(7)
    sim = SimTrades(seed=7, trades_per_second=5, halts=False)
    sim.volume_of = market.minute_volume
    start = 29_914_020  # an epoch minute: Monday 2026-11-16, 15:00 UTC, 10:00 in New York
    ratios, runs = [], []
    for ticker in ("AAPL", "KO", "TSLA", "JPM", "DIS", "PG"):
        for minute in range(start, start + 20):
            trades, _ = sim.between([ticker], minute * 60_000, (minute + 1) * 60_000, {ticker: 100.0})
            ratio = sum(t.size for t in trades) / market.minute_volume(ticker, minute)
            (runs if sim.run_of(ticker, minute) else ratios).append(ratio)
    ratios.sort()
    assert 0.8 < ratios[len(ratios) // 2] < 1.25 and ratios[-1] < 2.0
    assert all(r > 3.0 for r in runs)
