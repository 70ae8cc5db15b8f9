"""End to end, as a person uses it: Debian's Chromium (headless, driven by Playwright)
against the real processes — daphne serving the ASGI app and a real Celery worker — on a
throwaway SQLite database and an embedded Redis.

What is asserted, on the dashboard that stays open the whole time (a marker set on the
page's window survives, so the page never reloads):
1. sign in; add a paper account; create an agent on the built-in model (builtin:trend);
2. press "Run now" on the dashboard: the worker runs the decision and its row appears in
   "Recent decisions", and the agent's "last decision" cell updates — pushed over the socket;
3. the built-in model may legitimately hold, so an order and a position are made certain by
   a manual order placed from the orders page in a second tab: its row appears in "Recent
   orders" and its position in "Open positions" on the open dashboard, and the balance card
   and the equity chart take the fill's balance snapshot. (If the agent traded, its orders
   and positions appear the same way; they are reported, not required.)
4. an operator's admin order list (another browser context) shows the new order without a
   reload, with its "live" badge on;
5. "Stop all trading" + its confirmation trips the kill switch: the red banner shows and the
   positions are closed;
6. with the server stopped the page says it is offline; restarted, it is live again.
Screenshots of the dashboard and the decision page are saved to artifacts/ (paths printed).
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import pytest

from tests.e2e.stack import ROOT, Stack

pytestmark = pytest.mark.integration

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
ARTIFACTS = Path(os.environ.get("ALPHA_ARTIFACTS_DIR", ROOT / "artifacts"))
PASSWORD = "e2e-Trader-pass-42"
TIMEOUT = 30_000  # ms, for anything the worker has to do


def _playwright():
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} is missing (apt-get install chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("playwright is not installed (pip install playwright; its own browsers are not needed)")
    return sync_playwright


def test_trading_live_in_the_browser(tmp_path):
    sync_playwright = _playwright()
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with Stack(tmp_path / "stack") as stack:
        stack.shell(
            "from django.contrib.auth import get_user_model\n"
            f"get_user_model().objects.create_user('trader', 'trader@example.invalid', '{PASSWORD}')\n"
            f"get_user_model().objects.create_superuser('operator', 'op@example.invalid', '{PASSWORD}')\n")
        try:
            with sync_playwright() as pw:
                browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
                try:
                    _scenario(browser, stack)
                finally:
                    browser.close()
        except BaseException:
            print(stack.tails(80))
            raise


def _sign_in(page, base: str, username: str) -> None:
    page.goto(f"{base}/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{base}/")


def _scenario(browser, stack: Stack) -> None:
    base = stack.url
    trader = browser.new_context(viewport={"width": 1440, "height": 1000})
    trader.set_default_timeout(TIMEOUT)
    page = trader.new_page()
    console_errors: list[str] = []
    page.on("console", lambda msg: console_errors.append(msg.text) if msg.type == "error" else None)
    page.on("pageerror", lambda exc: console_errors.append(str(exc)))
    page.on("response", lambda r: console_errors.append(f"{r.status} {r.url}") if r.status >= 400 else None)

    # 1. Sign in, add a paper account, create an agent on the built-in model.
    _sign_in(page, base, "trader")
    page.goto(f"{base}/exchanges/")
    page.fill("#id_name", "Paper")
    page.select_option("#id_venue", "paper")
    assert page.is_hidden("#field-api_key")  # the paper venue needs no credentials
    page.click("#add-account button[type=submit]")
    page.wait_for_selector("#accounts-table >> text=Paper")

    page.goto(f"{base}/agents/new/")
    page.fill("#id_name", "Trend bot")
    page.select_option("#id_account", label="Paper (paper)")
    for symbol in ("BTC/USDT", "ETH/USDT"):
        page.check(f"input[name=symbols][value='{symbol}']")
    page.fill("#id_interval_seconds", "3600")  # the schedule stays out of the way (no beat here)
    page.fill("#id_model_name", "builtin:trend")
    page.click("#save-agent")
    page.wait_for_url(re.compile(r"/agents/\d+/$"))

    # 2. The dashboard, opened once and never reloaded.
    page.goto(f"{base}/")
    page.wait_for_selector("#live-status[data-state=live]")
    page.evaluate("window.__e2eMarker = 'same page'")
    decisions_before = page.locator("#decisions-table tbody tr[data-id]").count()
    page.click("#agents-table button[data-action=run]")
    page.wait_for_selector("#toasts .toast >> text=decision was queued")
    page.wait_for_function("document.querySelectorAll('#decisions-table tbody tr[data-id]').length > %d"
                           % decisions_before)
    decision_row = page.locator("#decisions-table tbody tr[data-id]").first
    decision_id = decision_row.get_attribute("data-id")
    # The row may appear while the decision runs (its "running" push, or a region redrawn
    # mid-way): it must then turn to its outcome, live.
    finished = ["executed", "held", "rejected", "error", "skipped"]
    page.wait_for_function(
        "([id, done]) => { const b = document.querySelector(`#decisions-table tr[data-id='${id}'] .badge`);"
        " return b && done.includes(b.textContent.trim().toLowerCase()); }", arg=[decision_id, finished])
    status = decision_row.locator(".badge").inner_text().strip().lower()
    assert status in {"executed", "held", "rejected"}, f"decision {decision_id} ended {status}"
    page.wait_for_selector(f"#agents-table [data-cell=last_decision] a[href='/decisions/{decision_id}/']")
    agent_orders = page.locator("#orders-table tbody tr[data-id]").count()
    agent_positions = page.locator("#positions-table tbody tr[data-id]").count()
    print(f"\nagent decision {decision_id}: {status}; its orders on the dashboard: {agent_orders}, "
          f"positions: {agent_positions}")
    if status == "executed":
        page.wait_for_selector("#orders-table tbody tr[data-id]")

    # 4 (set-up). An operator watches the admin's order list.
    operator = browser.new_context(viewport={"width": 1280, "height": 900})
    operator.set_default_timeout(TIMEOUT)
    admin = operator.new_page()
    admin.goto(f"{base}/admin/login/?next=/admin/trading/order/")
    admin.fill("#id_username", "operator")
    admin.fill("#id_password", PASSWORD)
    admin.click("input[type=submit]")
    admin.wait_for_selector("#live-badge[data-state=live]")
    admin.evaluate("window.__e2eMarker = 'same admin page'")

    # 3. A manual order from the orders page in a second tab: order and position certain.
    tab = trader.new_page()
    tab.goto(f"{base}/orders/")
    tab.select_option("#id_order-account", label="Paper (paper)")
    tab.fill("#id_order-symbol", "SOL/USDT")
    tab.select_option("#id_order-side", "BUY")
    tab.select_option("#id_order-position_side", "LONG")
    tab.select_option("#id_order-order_type", "MARKET")
    tab.fill("#id_order-quantity", "2")
    tab.click("#place-order")
    tab.wait_for_selector(".messages li.success >> text=filled at")

    row = page.locator("#orders-table tbody tr", has_text="SOL/USDT").first
    row.wait_for()
    assert "FILLED" in row.inner_text()
    position = page.locator("#positions-table tbody tr", has_text="SOL/USDT").first
    position.wait_for()
    assert "LONG" in position.inner_text()
    page.wait_for_function("document.querySelector('.balance [data-field=margin_balance]').dataset.raw !== ''")
    chart_points = page.evaluate("window.alphaEquityChart ? window.alphaEquityChart.data.datasets[0].data.length : -1")
    assert chart_points >= 1, "the equity chart took no point from the live balance"
    assert page.evaluate("window.__e2eMarker") == "same page", "the dashboard reloaded"
    assert page.locator("#live-status").get_attribute("data-state") == "live"

    admin.locator("#result_list tbody tr", has_text="SOL/USDT").first.wait_for()
    assert admin.evaluate("window.__e2eMarker") == "same admin page", "the admin list reloaded"

    dashboard_png = ARTIFACTS / "e2e-dashboard.png"
    page.evaluate("window.scrollTo(0, 0)")
    page.screenshot(path=str(dashboard_png), full_page=True)
    admin.screenshot(path=str(ARTIFACTS / "e2e-admin-orders.png"), full_page=True)

    # The decision page: context, messages, tool calls, verdicts, tokens, cost, timings.
    decision = trader.new_page()
    decision.goto(f"{base}/decisions/{decision_id}/")
    for text in ("Tool calls", "Messages", "Context", "Prompt tokens", "Total time"):
        assert decision.locator(f"text={text}").first.is_visible(), text
    decision_png = ARTIFACTS / "e2e-decision.png"
    decision.screenshot(path=str(decision_png), full_page=True)

    # 5. One confirmed click stops everything.
    page.click("#kill-button")
    page.click("#kill-confirm")
    page.wait_for_selector("#halt-banner:not([hidden]) >> text=KILL SWITCH ON")
    page.wait_for_selector("#positions-table tbody tr.empty-row")
    # The worker's flattening, announced step by step, reaches the banner's progress line.
    page.wait_for_selector(".halt-progress:not([hidden]) >> text=/Flattened \\d+ accounts?/")
    kill_png = ARTIFACTS / "e2e-kill-switch.png"
    page.evaluate("window.scrollTo(0, 0)")
    page.screenshot(path=str(kill_png), full_page=True)
    progress = trader.new_page()
    progress.goto(f"{base}/kill-switch/")
    assert progress.locator("#kill-progress [data-kill-state]").inner_text().strip().lower() == "done"
    progress.screenshot(path=str(ARTIFACTS / "e2e-kill-switch-progress.png"), full_page=True)
    progress.close()

    # 6. The server goes away: the page says it is offline, and reconnects (with backoff)
    #    when the server is back, catching up on what it missed.
    stack.stop_web()
    page.wait_for_selector("#live-status[data-state=offline]")
    assert page.locator(".offline-note").is_visible()
    assert "Offline" in page.locator("#live-status").inner_text()
    offline_png = ARTIFACTS / "e2e-offline.png"
    page.screenshot(path=str(offline_png))
    stack.start_web()
    page.wait_for_selector("#live-status[data-state=live]")
    assert not page.locator(".offline-note").is_visible()
    console_errors[:] = [e for e in console_errors if "WebSocket" not in e and "ERR_CONNECTION_REFUSED" not in e]

    assert not [e for e in console_errors if "Failed to load resource" not in e], console_errors
    print(f"screenshots: {dashboard_png} {decision_png} {kill_png} {offline_png} {ARTIFACTS / 'e2e-admin-orders.png'}")
    if os.environ.get("E2E_KEEP_LOGS"):
        shutil.copytree(stack.tmp, ARTIFACTS / "e2e-logs", dirs_exist_ok=True,
                        ignore=shutil.ignore_patterns("*.sqlite3*"))
