"""The chart page as a trader uses it: candles and volume, timeframes, the legend, indicators, live."""
from __future__ import annotations

import re
from datetime import timedelta

import numpy as np
import pytest
import requests

from tests.browser.conftest import shot
from tests.browser.test_pages import LIVE
from tests.helpers import START, minutes, run_via_rq, token_for
from webapp.core import indicator_series as ind

pytestmark = pytest.mark.slow

STUDIES = "sma:5,ema:3,bb:5:2,rsi:5,macd:3:6:3"


def legend(page) -> dict[str, float]:
    """The legend's numbers by label: O H L C V, then each study's."""
    ohlc = page.inner_text("#legend-ohlc")
    out = {k: float(v.replace(",", "")) for k, v in re.findall(r"\b([OHLCV]) ([\d.,]+)", ohlc)}
    for part in page.inner_text("#legend-studies").split(" · "):
        name, _, value = part.rpartition(" ")
        if value != "–":
            out[name] = float(value)
    return out


def test_candles_timeframes_legend_indicators_and_the_live_candle(web, app, page) -> None:
    run_via_rq(app, minutes(40))
    page.goto(web.url + "/stocks/AAPL?range=all&interval=1m")
    page.wait_for_function(LIVE.format(n=1))
    chart = page.locator("#chart")
    assert chart.get_attribute("data-studies") == "sma:5/value"  # the tracker's own SMA by default
    page.fill("#indicators", STUDIES)  # adding indicators from the form keeps them in the URL
    page.click(".studies button")
    page.wait_for_url(lambda url: "indicators=" in url and "rsi" in url)
    page.wait_for_function(LIVE.format(n=1))
    history = requests.get(web.url + "/api/stocks/AAPL/history?interval=1m&limit=5000").json()["items"]
    assert chart.get_attribute("data-points") == str(len(history)) == "40"
    drawn = chart.get_attribute("data-studies").split(",")
    assert {"sma:5/value", "bb:5:2/upper", "rsi:5/value", "macd:3:6:3/histogram"} <= set(drawn)
    assert page.locator("#chart canvas").count() >= 3  # the price pane and the RSI and MACD panes
    assert chart.get_attribute("data-rsi-levels") == "70,30"  # RSI is read against its 70 and 30 lines
    shot(page, "chart-candles-indicators")

    # the legend: the last bar, then the bar under the crosshair
    close = np.array([h["close"] for h in history])
    last = legend(page)
    end = history[-1]
    assert (last["O"], last["C"], last["V"]) == (end["open"], end["close"], end["volume"])
    assert last["sma:5"] == pytest.approx(ind.sma(close, 5)[-1], abs=0.006)
    box = chart.bounding_box()
    page.mouse.move(box["x"] + box["width"] * 0.5, box["y"] + box["height"] * 0.3)
    page.wait_for_function("document.getElementById('chart').dataset.legendTime !== "
                           f"'{int(START.timestamp()) + 39 * 60}'")
    at = int(chart.get_attribute("data-legend-time"))
    i = next(k for k, h in enumerate(history) if int(START.timestamp()) + 60 * k == at)
    hovered = legend(page)
    assert (hovered["O"], hovered["H"], hovered["L"], hovered["C"]) == \
        (history[i]["open"], history[i]["high"], history[i]["low"], history[i]["close"])
    # the indicator values are the pure module's over the same bars
    assert hovered["sma:5"] == pytest.approx(ind.sma(close, 5)[i], abs=0.006)
    assert hovered["ema:3"] == pytest.approx(ind.ema(close, 3)[i], abs=0.006)
    assert hovered["bb:5:2 upper"] == pytest.approx(ind.bollinger(close, 5, 2)[1][i], abs=0.006)
    assert hovered["rsi:5"] == pytest.approx(ind.rsi(close, 5)[i], abs=0.006)
    assert hovered["macd:3:6:3 signal"] == pytest.approx(ind.macd(close, 3, 6, 3)[1][i], abs=0.006)
    shot(page, "chart-legend-hover")
    page.mouse.move(0, 0)

    # a new minute draws a new candle, live
    run_via_rq(app, [START + timedelta(minutes=40)])
    page.wait_for_function("document.getElementById('chart').dataset.points === '41'")

    # switching timeframe fetches that timeframe's bars, without reloading the page
    page.evaluate("window.__same_page = true")
    page.click('.intervals a[data-interval="5m"]')
    page.wait_for_function("document.getElementById('chart').dataset.interval === '5m'")
    five = requests.get(web.url + "/api/stocks/AAPL/history?interval=5m&limit=5000").json()["items"]
    assert chart.get_attribute("data-points") == str(len(five)) == "9"
    assert page.evaluate("window.__same_page") is True and "interval=5m" in page.url
    alerts = requests.get(web.url + "/api/alerts?ticker=AAPL&limit=500").json()["alerts"]
    assert chart.get_attribute("data-markers") == str(len(alerts))
    five_minute_kinds = {(int(a["time"][14:16]) // 5, a["kind"]) for a in alerts}
    assert chart.get_attribute("data-marker-groups") == str(len(five_minute_kinds)) != str(len(alerts))
    assert legend(page)["C"] == five[-1]["close"]
    # the next minute falls in the same 5-minute bar: that candle moves, none is added
    run_via_rq(app, [START + timedelta(minutes=41)])
    newest = requests.get(web.url + "/api/stocks/AAPL").json()["latest"]["price"]
    page.wait_for_function(f"document.getElementById('legend-ohlc').textContent.includes('C {newest:.2f}')")
    assert chart.get_attribute("data-points") == "9"
    five = requests.get(web.url + "/api/stocks/AAPL/history?interval=5m&limit=5000").json()["items"]
    shown = legend(page)
    assert (shown["O"], shown["H"], shown["L"], shown["C"]) == \
        (five[-1]["open"], five[-1]["high"], five[-1]["low"], five[-1]["close"])
    shot(page, "chart-5m-live")


def test_a_drawn_level_becomes_an_alert_rule(web, app, page) -> None:
    from webapp.extensions import db
    from webapp.store import users

    users.create(db.session, "leveller", "correct horse battery")
    run_via_rq(app, minutes(10))
    page.goto(web.url + "/login?next=/stocks/AAPL%3Frange%3Dall")
    page.fill('input[name="username"]', "leveller")
    page.fill('input[name="password"]', "correct horse battery")
    page.click('.login button[type="submit"]')
    page.wait_for_url(lambda url: "/stocks/AAPL?range=all" in url)
    page.wait_for_function(LIVE.format(n=1))
    page.click("#draw-level")
    box = page.locator("#chart").bounding_box()
    page.mouse.click(box["x"] + box["width"] * 0.5, box["y"] + box["height"] * 0.25)
    page.wait_for_function("document.getElementById('chart').dataset.levels === '1'")
    level = float(page.get_attribute("#levels li", "data-price"))
    bars = requests.get(web.url + "/api/stocks/AAPL/history?interval=1m").json()["items"]
    prices = [h["close"] for h in bars]
    assert min(prices) - 5 < level < max(prices) + 5  # where the click was, on the price scale
    page.reload()  # kept in this browser
    page.wait_for_function("document.getElementById('chart').dataset.levels === '1'")
    page.click("#levels .alert-me")
    page.wait_for_selector("#levels li[data-rule]")
    rule_id = int(page.get_attribute("#levels li", "data-rule"))
    mine = {"Authorization": f"Bearer {token_for('leveller', ('read',))}"}  # a rule is its owner's
    rule = requests.get(web.url + f"/api/rules/{rule_id}", headers=mine).json()
    assert rule["condition"]["op"] == "crossing" and rule["condition"]["b"] == {"const": level}
    assert rule["scope"] == {"tickers": ["AAPL"]}
    shot(page, "chart-level-alert")
    page.click("#levels .remove")
    page.wait_for_function("document.getElementById('chart').dataset.levels === '0'")


def test_six_indicators_from_the_picker_keep_the_price_pane_readable(web, app, browser) -> None:
    """Issue 26 item 13: indicators were typed as text, and with six of them the price pane shrank to
    about 200 px with band labels over the axis.  A menu adds each (a chip's × removes it); every
    pane below the price adds its own height, so the price pane keeps its size; overlay lines put no
    labels on the price axis (the legend names them)."""
    run_via_rq(app, minutes(40))
    page = browser.new_context(viewport={"width": 1280, "height": 900}, bypass_csp=True).new_page()
    page.goto(web.url + "/stocks/AAPL?range=all&interval=1m&indicators=none")
    page.wait_for_function(LIVE.format(n=1))
    alone = page.evaluate("document.getElementById('chart').getBoundingClientRect().height")
    for key in ("sma:20", "ema:9", "vwap", "bb:20:2", "rsi:14", "macd:12:26:9"):
        page.select_option("#add-study", key)
        page.wait_for_url(lambda url, key=key: key.replace(":", "%3A") in url or key in url)
        page.wait_for_function(LIVE.format(n=1))
    chart = page.locator("#chart")
    drawn = {d.split("/")[0] for d in chart.get_attribute("data-studies").split(",")}
    assert drawn == {"sma:20", "ema:9", "vwap", "bb:20:2", "rsi:14", "macd:12:26:9"}
    page.wait_for_function("(document.getElementById('chart').dataset.paneHeights || '')"
                           ".split(',').length === 3")
    heights = [int(h) for h in chart.get_attribute("data-pane-heights").split(",")]
    assert heights[0] >= 0.8 * alone - 40, (heights, alone)  # the price pane about as tall as alone
    assert all(h >= 90 for h in heights[1:]), heights  # RSI and MACD readable too
    shot(page, "chart-six-indicators")
    page.locator("#study-chips button", has_text="rsi:14").click()  # a chip's × removes one
    page.wait_for_url(lambda url: "rsi" not in url)
    assert "rsi:14/value" not in page.locator("#chart").get_attribute("data-studies")
    page.context.close()
