"""The rules page in a real browser: create a rule, watch it fire live with its explanation, mute it,
add a webhook and read a delivery's log."""
from __future__ import annotations

import re

import pytest

from tests.browser.conftest import shot
from tests.fakes.webhook_receiver import Receiver
from tests.helpers import minutes, token_for, user_id
from tests.processes import WebProcess
from webapp.core.delivery import networks
from webapp.delivery.worker import DeliveryWorker
from webapp.extensions import db
from webapp.services import stocks, ticks

pytestmark = pytest.mark.slow


@pytest.fixture
def hooks_web(service_urls, clean):
    proc = WebProcess(*service_urls, WEBHOOK_ALLOWED_CIDRS="127.0.0.1/32").start()
    yield proc
    proc.stop()


def test_create_a_rule_see_it_fire_mute_it_and_read_a_delivery_log(hooks_web, app, page) -> None:
    times = minutes(40)
    for at in times[:8]:  # some history for the SMA
        ticks.run_tick_now(at)
    token = token_for("browser", admin=True)
    receiver = Receiver([]).up()

    page.goto(hooks_web.url + "/alerts/rules")
    page.locator("#connection").filter(has_text="live").wait_for(timeout=10_000)
    assert "read only" in page.inner_text("#token-state")
    page.fill("#token", token)
    page.click("#save-token")
    page.locator("#token-state").filter(has_text="changes allowed").wait_for()

    # a forbidden webhook address is refused, saying why; the receiver (allowed here) is added
    page.fill("#hook-form input[name=url]", "http://169.254.169.254/latest")
    page.click("#hook-form button[type=submit]")
    page.locator("#hook-error").filter(has_text="metadata").wait_for()
    page.fill("#hook-form input[name=url]", receiver.url)
    page.click("#hook-form button[type=submit]")
    secret_text = page.locator("#hook-secret").filter(has_text="whsec_")
    secret_text.wait_for()
    receiver.secrets.append(re.search(r"whsec_\S+", secret_text.inner_text()).group(0))
    page.locator("#hooks tbody tr[data-endpoint]").first.wait_for()

    form = page.locator("#rule-form")
    form.locator("input[name=name]").fill("AAPL crosses its SMA 5")
    form.locator("input[name=a]").fill("close")
    form.locator("select[name=op]").select_option("crossing")
    form.locator("input[name=b]").fill("sma(5)")
    form.locator("input[name=tickers]").fill("AAPL")
    form.locator("input[name=cooldown]").fill("0")
    form.locator("select[name=webhook]").select_option(index=1)
    page.locator("#replay").filter(has_text=re.compile(r"would have fired \d+ times? in the last 5 sessions")
                                   ).wait_for()
    form.locator("input[name=b]").fill("sma(nine)")  # a typo is refused as you type, saying what
    page.locator("#form-error").filter(has_text='"sma(nine)" is not an operand').wait_for()
    form.locator("input[name=b]").fill("sma(5)")
    form.locator("button[type=submit]").click()
    row = page.locator("#rules tbody tr[data-rule]", has_text="AAPL crosses its SMA 5")
    row.wait_for()
    builtin = page.locator("#rules tbody tr[data-rule]").first  # the built-in SMA crossover, listed first
    assert "built in" in builtin.inner_text() and builtin.locator("button", has_text="Delete").count() == 0
    assert "close crossing sma(5)" in row.inner_text() and "active" in row.inner_text()

    for at in times[8:]:
        ticks.run_tick_now(at)
    fired = page.locator("#events tbody tr[data-id]").first
    fired.wait_for(timeout=15_000)
    text = fired.inner_text()
    assert "AAPL" in text and re.search(r"close \d+\.\d\d crossed (above|below) sma\(5\) \d+\.\d\d; "
                                         r"previous close \d+\.\d\d", text), text
    shot(page, "rules-fired")

    # delivered to the receiver; the page shows the delivery's attempt log
    worker = DeliveryWorker(db.engine, None, networks(("127.0.0.1/32",)), concurrency=4)
    while worker.run_once():
        pass
    assert receiver.accepted() and all(r.verified for r in receiver.got)
    page.locator("#hooks tbody tr[data-endpoint] button", has_text="Deliveries").first.click()
    log = page.locator("#deliveries tbody tr[data-delivery]").first
    log.wait_for()
    assert "delivered" in log.inner_text() and "200" in log.inner_text() and "ok" in log.inner_text()

    # the chart draws the rule's fires as markers beside the built-in SMA alerts
    with app.app_context():
        from webapp.store import alert_events

        fires = len(alert_events.events(db.session, alert_events.ALL_OWNERS, ticker="AAPL", limit=500))
        crossings = len(stocks.alert_feed("AAPL"))
    # (to its owner only: a stranger's chart shows the SMA alerts and none of this user's fires)
    chart = page.context.new_page()
    chart.goto(hooks_web.url + "/stocks/AAPL?range=all")
    chart.locator("#connection").filter(has_text="live").wait_for(timeout=10_000)
    chart.wait_for_timeout(1000)  # the fires would come from /api/alert-events after the connect
    assert int(chart.locator("#chart").get_attribute("data-markers")) == crossings
    chart.goto(hooks_web.url + "/login?next=/stocks/AAPL%3Frange%3Dall")
    chart.fill("input[name=username]", "browser")
    chart.fill("input[name=password]", "password-browser")
    chart.click(".login button[type=submit]")
    chart.wait_for_url(lambda url: "/stocks/AAPL" in url)
    chart.wait_for_function(
        f"Number(document.getElementById('chart').dataset.markers) >= {fires + crossings}")
    shot(chart, "chart-rule-markers")
    chart.close()

    fired.locator("button.mute").click()
    row.filter(has_text="muted (paused)").wait_for()
    shot(page, "rules-muted")

    # the endpoint can be deleted from the page, after a confirmation
    page.once("dialog", lambda d: d.accept())
    page.locator("#hooks tbody tr[data-endpoint] button", has_text="Delete").first.click()
    page.locator("#hooks tbody tr[data-endpoint]").first.wait_for(state="detached")


def test_a_signed_in_user_makes_mutes_and_deletes_a_rule_without_a_token(web, app, page) -> None:
    """The page acts as the signed-in user (session and CSRF token), as the chart's drawn level does;
    no token pasted, no "send Authorization: Bearer" message (issue 26, item 5)."""
    user_id("dana")
    page.on("dialog", lambda d: (_ for _ in ()).throw(AssertionError(f"a browser alert: {d.message}")))
    page.goto(web.url + "/login?next=/alerts/rules")
    page.fill("input[name=username]", "dana")
    page.fill("input[name=password]", "password-dana")
    page.click(".login button[type=submit]")
    page.wait_for_url(lambda url: "/alerts/rules" in url)
    page.locator("#token-state").filter(has_text="signed in: changes allowed, as you").wait_for()

    form = page.locator("#rule-form")
    form.locator("input[name=name]").fill("MSFT above 1")
    form.locator("input[name=a]").fill("close")
    form.locator("select[name=op]").select_option("greater_than")
    form.locator("input[name=b]").fill("1")
    form.locator("input[name=tickers]").fill("MSFT")
    form.locator("button[type=submit]").click()
    row = page.locator("#rules tbody tr[data-rule]", has_text="MSFT above 1")
    row.wait_for()
    assert page.inner_text("#form-error").strip() == ""
    row.locator("button", has_text="Mute").click()
    row.filter(has_text="muted (paused)").wait_for()

    # edit it: the form takes its values, Save makes version 2 (issue 26, item 15)
    row.locator("button", has_text="Edit").click()
    assert form.locator("input[name=name]").input_value() == "MSFT above 1"
    form.locator("input[name=tickers]").fill("MSFT, KO")
    page.locator("#rule-submit", has_text="Save rule").click()
    row = page.locator("#rules tbody tr[data-rule]", has_text="MSFT above 1 (v2)")
    row.wait_for()
    assert "MSFT, KO" in row.inner_text() and page.inner_text("#rule-submit") == "Create rule"

    # a rule made elsewhere (here through the API's store) shows when the page is looked at again
    with app.app_context():
        from webapp.services import rules as rules_service
        from webapp.store import rules as rules_store

        rules_store.create(db.session, rules_service.rule_spec(
            {"name": "made over the API", "scope": {"tickers": ["KO"]},
             "condition": {"op": "less_than", "a": {"field": "close"}, "b": {"const": 1}}}, user_id("dana")),
            user_id("dana"))
    page.evaluate("document.dispatchEvent(new Event('visibilitychange'))")
    page.locator("#rules tbody tr[data-rule]", has_text="made over the API").wait_for()

    row.locator("button", has_text="Delete").click()
    row.wait_for(state="detached")
    with app.app_context():
        from webapp.store import rules as rules_store

        assert [r["name"] for r in rules_store.all_rules(db.session, user_id("dana"))
                if not r.get("builtin")] == ["made over the API"]


def test_a_signal_rule_is_made_in_the_form_refused_at_the_close_and_edited_back(web, app, page) -> None:
    """"My watchlist breaking its high of day on 2× volume" as one rule from the form: the operand
    field hides for a signal, the close frequency is refused saying why, and Edit gives it back."""
    user_id("erin")
    page.goto(web.url + "/login?next=/alerts/rules")
    page.fill("input[name=username]", "erin")
    page.fill("input[name=password]", "password-erin")
    page.click(".login button[type=submit]")
    page.wait_for_url(lambda url: "/alerts/rules" in url)
    form = page.locator("#rule-form")
    form.locator("input[name=name]").fill("HOD on volume")
    form.locator("select[name=op]").select_option("new_high_of_day")
    assert not form.locator("input[name=a]").is_visible()
    form.locator("select[name=also]").select_option("volume_spike")
    form.locator("input[name=also_k]").fill("2")
    form.locator("input[name=tickers]").fill("AAPL, MSFT")
    form.locator("button[type=submit]").click()
    page.locator("#form-error").filter(has_text="judged on the print: frequency must be one of").wait_for()
    form.locator("select[name=frequency]").select_option("once_per_bar")
    form.locator("button[type=submit]").click()
    row = page.locator("#rules tbody tr[data-rule]", has_text="HOD on volume")
    row.wait_for()
    assert "new high of day and volume spike ≥ 2×" in row.inner_text()
    with app.app_context():
        from webapp.store import rules as rules_store

        (made,) = [r for r in rules_store.all_rules(db.session, user_id("erin")) if not r.get("builtin")]
    assert made["condition"] == {"op": "all",
                                 "of": [{"op": "new_high_of_day"}, {"op": "volume_spike", "k": 2.0}]}
    row.locator("button", has_text="Edit").click()
    assert form.locator("select[name=op]").input_value() == "new_high_of_day"
    assert form.locator("select[name=also]").input_value() == "volume_spike"
    assert form.locator("input[name=also_k]").input_value() == "2"
