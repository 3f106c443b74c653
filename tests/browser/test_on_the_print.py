"""Issue 27 as a trader meets it: a rule fires on the trade that crosses, in the open page, within
a second, with the trade in its explanation; the rules page says where each rule is judged and what
each frequency does."""
from __future__ import annotations

import subprocess
import sys
import time
from datetime import datetime

import pytest

from tests.browser.conftest import shot
from tests.browser.test_trader import PASSWORD, sign_in
from tests.evaluate.test_process import _bar, _flush, _stored_close
from tests.helpers import minutes, run_async, run_via_rq
from tests.processes import ROOT, WebProcess
from webapp.config import child_environment
from webapp.core.market import EXCHANGE_TZ
from webapp.extensions import db
from webapp.services import rules as rules_service
from webapp.store import rules as rules_store
from webapp.store import users
from webapp.store.streamstate import StreamWriter

pytestmark = pytest.mark.slow


def _stream_connected(url: str) -> None:
    import redis.asyncio as aredis

    async def go() -> None:
        client = aredis.Redis.from_url(url)
        await StreamWriter(client, 3600).flush(status={"state": "connected", "provider": "sim",
                                                       "unstreamed": []})
        await client.aclose()
    run_async(go)


def _close_bar(url: str, end: int, close: float) -> None:
    """The stream closes AAPL's bar to ``end``: the previous bar a process judges the next against
    (it waits for it, having seen none of its hand-offs)."""
    import redis.asyncio as aredis

    async def go() -> None:
        client = aredis.Redis.from_url(url)
        await StreamWriter(client, 3600).flush(
            bars={end: {"AAPL": [close, close, close - 0.02, close, 5000.0, close, 40, True, "sim"]}},
            closed_until=end)
        await client.aclose()
    run_async(go)


def test_a_cross_reaches_the_open_page_within_a_second_of_its_trade(app, pg, service_urls, browser,
                                                                    tmp_path) -> None:
    redis_url, db_url = service_urls
    run_via_rq(app, minutes(6))
    trader = users.create(db.session, "trader", PASSWORD)
    stored = _stored_close(pg, "AAPL")
    level = round(stored + 0.5, 2)
    spec = rules_service.rule_spec({
        "name": "AAPL breaks out", "scope": {"tickers": ["AAPL"]}, "frequency": "once_per_bar",
        "cooldown_seconds": 0, "condition": {"op": "crossing_up", "a": {"field": "close"},
                                             "b": {"const": level}}}, trader.id)
    rules_store.create(db.session, spec, trader.id)
    web = WebProcess(redis_url, db_url, MARKET_DATA_PROVIDER="stream").start()
    env = child_environment(REDIS_URL=redis_url, DATABASE_URL=db_url, EVALUATE_LEASE_SECONDS="1")
    with open(tmp_path / "evaluate.log", "ab") as log:
        evaluator = subprocess.Popen([sys.executable, "-m", "jobs.evaluate"], cwd=ROOT, env=env,
                                     stdout=log, stderr=subprocess.STDOUT)
    page = browser.new_context(viewport={"width": 1280, "height": 900}, bypass_csp=True).new_page()
    try:
        import redis as redis_lib

        from webapp.store.evaluation import owned_shards

        held_by_then = time.monotonic() + 20
        while not owned_shards(redis_lib.Redis.from_url(redis_url), 1):  # the process is up, holding
            assert time.monotonic() < held_by_then, (tmp_path / "evaluate.log").read_text()[-2000:]
            time.sleep(0.2)
        _stream_connected(redis_url)
        sign_in(page, web)
        page.goto(web.url + "/alerts/rules")
        row = page.locator("#rules tbody tr", has_text="AAPL breaks out")
        row.locator("td.judged").filter(has_text="on each trade").wait_for(timeout=15_000)
        # what each frequency does, in one line, as it is chosen
        page.select_option('select[name="frequency"]', "once_per_bar")
        assert "first trade in a bar" in page.inner_text("#frequency-line")
        shot(page, "rules-judged")
        page.goto(web.url + "/")  # the trader watches the dashboard
        page.wait_for_function("window.__toasts && window.__toasts.following >= 1")
        time.sleep(1.5)  # the evaluate process holds the shard and has read the rules
        now_ms = int(time.time() * 1000)
        start = now_ms // 60_000 * 60  # the open bar's start; its high printed 100 ms ago, then it fell back
        ago = now_ms / 1000 - start
        _close_bar(redis_url, start, stored)  # the bar before, at the stored close (under the level)
        _flush(redis_url, [_bar("AAPL", stored, level + 0.05, stored - 0.02, level - 0.01, ago - 0.05,
                                ago - 0.1, ago - 0.5, start=start)], now_ms)
        toast = page.locator("#toasts .toast").first
        toast.wait_for(timeout=10_000)
        text = toast.inner_text()
        assert "AAPL · AAPL breaks out" in text and f"crossed above {level:.2f}" in text
        assert "on the print: high" in text and "from the print to this page" in text
        shot(page, "rules-on-the-print")
        seconds = float(text.split(" s from the print")[0].rsplit("· ", 1)[1])
        print(f"print → page: {seconds:.2f} s")  # the benchmark measures it under load
        assert seconds < 30  # honest: it is the trade of this very test (the bench holds the target)
        # the rules page's feed lists the fire at its trade (the bar's high), not at the bar's end
        page.goto(web.url + "/alerts/rules")
        first = page.locator("#events tbody tr").first
        first.wait_for(timeout=10_000)
        high_at = datetime.fromtimestamp(int((start + ago - 0.1) * 1000) / 1000, EXCHANGE_TZ)
        assert high_at.strftime("%H:%M:%S") in first.locator("td").first.inner_text()
    finally:
        page.context.close()
        evaluator.terminate()
        evaluator.wait(10)
        web.stop()
