"""Issue 12, fault 3 on Hyperliquid: an order the venue applies after the client's timeout,
lists late, answers 5xx after applying, or fills only in part, loses and duplicates nothing.

``order_submit`` -> the risk gate -> the Hyperliquid adapter the platform builds from its
configuration (pointed at the fake, client timeout 1 s) -> the official SDK (signing, HTTP)
-> ``tests.fakes.hyperliquid_server``; then ``account_reconcile``, which builds a fresh
adapter of its own (no memory of the cloids sent), settles what the answer did not. Each
test counts the fake's ``order`` actions: exactly one per client order id.
"""

from __future__ import annotations

import time
from decimal import Decimal as D

import pytest
from eth_account import Account

from alpha_platform.common.config import clear_config_cache
from exchanges.adapters.hyperliquid import cloid_for
from risk.models import RiskEvent
from tests.exchanges.test_late_venue_binance import short_timeout_config, wait_until
from tests.factories import make_account
from tests.fakes.hyperliquid_server import HyperliquidFakeServer
from trading.models import Order, Position
from trading.services import account_reconcile, order_submit

pytestmark = pytest.mark.django_db


@pytest.fixture
def hl(monkeypatch, settings, tmp_path):
    with HyperliquidFakeServer() as server:
        for name in ("HYPERLIQUID_API_URL", "HYPERLIQUID_TESTNET_API_URL"):
            monkeypatch.setenv(name, server.url)
        short_timeout_config(settings, tmp_path)
        settings.RECONCILE_LOST_AFTER_LOOKUPS = 3
        settings.RECONCILE_LOST_AFTER_SECONDS = 30
        yield server
    clear_config_cache()


@pytest.fixture
def wallet(hl):
    main, agent = Account.create(), Account.create()
    hl.fund(main.address, "10000")
    hl.approve_agent(main.address, agent.address)
    return main, agent


@pytest.fixture
def account(user, wallet):
    main, agent = wallet
    return make_account(user, venue="hyperliquid", credentials={
        "private_key": "0x" + agent.key.hex().removeprefix("0x"), "account_address": main.address})


def buy(account, quantity="0.01", **kw):
    return order_submit(account=account, symbol="BTC/USDT", side="BUY", position_side="LONG",
                        quantity=D(quantity), source="api", **kw).order


def venue_order(hl, wallet, cid):
    return hl.order_by_cloid(wallet[0].address, cloid_for(cid))


def listed(order) -> bool:
    """The fake has the order and its queries show it (past ``visibility_delay``)."""
    return order is not None and time.time() >= order.visible_at


def assert_positions_match_the_venue(account, hl, wallet, coin="BTC", symbol="BTC/USDT"):
    venue = hl.position(wallet[0].address, coin)
    rows = list(Position.objects.filter(account=account, symbol=symbol, status="open"))
    if venue is None:
        assert rows == []
    else:
        [row] = rows
        assert (row.side, row.size) == ("LONG" if venue["szi"] > 0 else "SHORT", abs(venue["szi"]))


def test_late_acceptance_is_pending_then_filled_by_reconciliation(account, hl, wallet):
    hl.inject(kind="order", fault="late", delay=3.0)  # applied after the timeout and the look-ups
    order = buy(account, client_order_id="hl-late-1")
    assert order.status == Order.Status.UNKNOWN
    assert order.venue_client_order_id == cloid_for("hl-late-1")

    wait_until(lambda: venue_order(hl, wallet, "hl-late-1"))
    report = account_reconcile(account=account)
    order.refresh_from_db()
    assert order.status == Order.Status.FILLED and order.executed_quantity == D("0.01")
    assert sum(f.quantity for f in order.fills.all()) == D("0.01")
    assert len(hl.exchange_requests("order")) == 1 and len(hl.placed_orders()) == 1
    assert_positions_match_the_venue(account, hl, wallet)
    assert report.position_changes == [] and report.unknown_venue_orders == []
    assert not RiskEvent.objects.filter(kind="reconcile").exists()


def test_a_5xx_after_applying_and_a_late_listing_end_filled(account, hl, wallet):
    hl.visibility_delay = 3.0
    hl.inject(kind="order", fault="lost_500")
    order = buy(account, client_order_id="hl-vis-1")
    assert order.status == Order.Status.UNKNOWN  # orderStatus said unknownOid: no proof

    for _ in range(3):
        account_reconcile(account=account)
    order.refresh_from_db()
    assert order.status == Order.Status.UNKNOWN and order.lookup_failures == 3

    wait_until(lambda: listed(venue_order(hl, wallet, "hl-vis-1")))
    report = account_reconcile(account=account)
    order.refresh_from_db()
    assert order.status == Order.Status.FILLED and order.executed_quantity == D("0.01")
    assert order.fills.exists()
    assert len(hl.exchange_requests("order")) == 1
    assert_positions_match_the_venue(account, hl, wallet)
    assert report.position_changes == []
    # Nor did the passes that saw the position before the order was listed: the order of
    # ours awaiting confirmation may explain it.
    assert not RiskEvent.objects.filter(kind="reconcile").exists()


def test_a_market_order_filled_in_part_with_its_answer_lost(account, hl, wallet):
    hl.set_liquidity("BTC", "0.004")  # an IOC: 0.004 fills, the rest is cancelled by the venue
    hl.inject(kind="order", fault="late", delay=3.0)
    order = buy(account, "0.01", client_order_id="hl-part-1")
    assert order.status == Order.Status.UNKNOWN

    wait_until(lambda: venue_order(hl, wallet, "hl-part-1"))
    account_reconcile(account=account)
    order.refresh_from_db()
    assert order.status == Order.Status.EXPIRED and order.executed_quantity == D("0.004")
    assert sum(f.quantity for f in order.fills.all()) == D("0.004")
    assert len(hl.exchange_requests("order")) == 1
    assert_positions_match_the_venue(account, hl, wallet)


def test_a_limit_order_filled_in_part_rests_and_is_recognised_as_ours(account, hl, wallet):
    hl.set_liquidity("BTC", "0.003")
    hl.inject(kind="order", fault="lost")
    hl.visibility_delay = 2.0
    order = buy(account, "0.01", order_type="LIMIT", price=D(65100), client_order_id="hl-part-2")
    assert order.status == Order.Status.UNKNOWN

    wait_until(lambda: listed(venue_order(hl, wallet, "hl-part-2")))
    report = account_reconcile(account=account)  # a fresh adapter: it lists the order by cloid only
    order.refresh_from_db()
    assert order.status == Order.Status.PARTIALLY_FILLED and order.executed_quantity == D("0.003")
    assert report.unknown_venue_orders == []
    assert len(hl.exchange_requests("order")) == 1
    assert_positions_match_the_venue(account, hl, wallet)

    # A second pass: the venue lists it unchanged under its cloid, matched without a look-up.
    lookups = len(hl.info_requests("orderStatus"))
    report = account_reconcile(account=account)
    assert report.unknown_venue_orders == [] and len(hl.info_requests("orderStatus")) == lookups
