"""Reconciliation against the Binance and Hyperliquid fakes, not only the paper venue.

- Hyperliquid with a new adapter instance for every call (no in-memory cloid map): our
  resting orders are recognised by ``Order.venue_client_order_id`` (the cloid), orders the
  platform did not place are still reported.
- A LOST order that the venue lists after all is brought back and applied.
- A position change explained by a fill of ours whose position read failed is not reported
  as "without an order of ours"; a change made outside the platform still is.
"""

from __future__ import annotations

from decimal import Decimal as D

import pytest
from eth_account import Account

from alpha_platform.common.config import clear_config_cache
from exchanges.adapters.base import OrderRequest, OrderSide, OrderType, PositionSide
from exchanges.adapters.ccxt import BinanceUsdmTrader
from exchanges.adapters.errors import ExchangeUnavailable
from exchanges.adapters.registry import create_trader
from exchanges.services import adapter_runtime, trader_for_account, venue_spec
from risk.models import RiskEvent
from tests.exchanges.test_late_venue_binance import short_timeout_config, wait_until
from tests.factories import make_account
from tests.fakes.binance_server import FakeBinanceFutures
from tests.fakes.hyperliquid_server import HyperliquidFakeServer
from trading.models import Order, Position
from trading.services import account_reconcile, order_submit

pytestmark = pytest.mark.django_db
API_KEY, API_SECRET = "A1" * 32, "S2" * 32


@pytest.fixture
def venues(monkeypatch, settings, tmp_path):
    with FakeBinanceFutures(api_key=API_KEY, api_secret=API_SECRET) as binance, HyperliquidFakeServer() as hl:
        for name in ("BINANCE_FAPI_URL", "BINANCE_FAPI_TESTNET_URL"):
            monkeypatch.setenv(name, binance.url)
        for name in ("HYPERLIQUID_API_URL", "HYPERLIQUID_TESTNET_API_URL"):
            monkeypatch.setenv(name, hl.url)
        short_timeout_config(settings, tmp_path)
        BinanceUsdmTrader.clear_market_cache()
        yield binance, hl
    clear_config_cache()
    BinanceUsdmTrader.clear_market_cache()


@pytest.fixture
def binance(venues):
    return venues[0]


@pytest.fixture
def hl(venues):
    return venues[1]


def binance_account(user):
    return make_account(user, venue="binance_futures", credentials={"api_key": API_KEY, "api_secret": API_SECRET})


def hl_account(user, hl):
    main, agent = Account.create(), Account.create()
    hl.fund(main.address, "10000")
    hl.approve_agent(main.address, agent.address)
    return make_account(user, venue="hyperliquid", credentials={
        "private_key": "0x" + agent.key.hex().removeprefix("0x"), "account_address": main.address})


def fresh_trader(account):
    """A new adapter instance, as a process that never placed the account's orders has."""
    return create_trader(venue_spec(account), credentials=account.credentials(), runtime=adapter_runtime())


def submit(account, quantity, **kw):
    return order_submit(account=account, symbol="BTC/USDT", side="BUY", position_side="LONG", quantity=D(quantity),
                        source="api", trader=kw.pop("trader", None) or fresh_trader(account), **kw).order


def test_hyperliquid_resting_orders_are_ours_to_a_fresh_adapter(user, hl):
    account = hl_account(user, hl)
    ours = submit(account, "0.01", order_type="LIMIT", price=D(60000), client_order_id="hl-rest-1")
    assert ours.status == Order.Status.NEW and ours.venue_client_order_id.startswith("0x")
    # Placed at the venue by someone else (by hand, another tool): not ours.
    stranger = fresh_trader(account)
    stranger.place_order(OrderRequest(symbol="BTC/USDT", side=OrderSide.BUY, position_side=PositionSide.LONG,
                                      order_type=OrderType.LIMIT, quantity=D("0.01"), price=D(59000),
                                      client_order_id="by-hand-1"))
    stranger.close()

    for _ in range(2):  # each pass with a new instance
        trader = fresh_trader(account)
        try:
            report = account_reconcile(account=account, trader=trader)
        finally:
            trader.close()
        assert report.orders_checked == 1 and report.orders_updated == 0
        assert len(report.unknown_venue_orders) == 1  # only the stranger's
        assert report.unknown_venue_orders[0] != ours.venue_client_order_id
    assert RiskEvent.objects.filter(kind="reconcile").count() == 2
    assert not RiskEvent.objects.filter(kind="reconcile", details__client_order_id=ours.venue_client_order_id).exists()

    # The resting order fills when the price comes down: applied through a fresh adapter too.
    hl.set_mark("BTC", "59500")
    trader = fresh_trader(account)
    try:
        report = account_reconcile(account=account, trader=trader)
    finally:
        trader.close()
    ours.refresh_from_db()
    assert ours.status == Order.Status.FILLED and ours.executed_quantity == D("0.01") and ours.fills.exists()
    assert report.position_changes == []  # the fill of ours explains the new position
    position = Position.objects.get(account=account, status="open")
    assert position.size == hl.position(account.credentials().reveal("account_address"), "BTC")["szi"]


def test_a_lost_order_that_the_venue_lists_later_is_brought_back(user, binance, settings):
    settings.RECONCILE_LOST_AFTER_LOOKUPS = 3
    settings.RECONCILE_LOST_AFTER_SECONDS = 0  # a window shorter than the venue's lag, on purpose
    account = binance_account(user)
    binance.visibility_delay = 3.0
    binance.inject("POST /fapi/v1/order", "accept_then_drop")
    order = submit(account, "0.002", order_type="LIMIT", price=D(60000), client_order_id="back-1")
    assert order.status == Order.Status.UNKNOWN
    for _ in range(3):
        account_reconcile(account=account)
    order.refresh_from_db()
    assert order.status == Order.Status.LOST

    wait_until(lambda: binance.visible(binance.order_by_client_id("BTCUSDT", "back-1")))
    report = account_reconcile(account=account)
    order.refresh_from_db()
    assert order.status == Order.Status.NEW and order.closed_at is None and order.is_open
    assert report.orders_recovered == 1 and report.unknown_venue_orders == []
    assert order.exchange_order_id == str(next(iter(binance.orders)))
    assert binance.count("POST", "/fapi/v1/order") == 1


class PositionReadFailsAfterTheOrder:
    """The account's real trader, whose position read right after an order fails (HTTP 503
    at the venue, as in issue 12's fault 2): the fill is recorded, its position is not."""

    def __init__(self, inner):
        self.inner = inner
        self.placed = False

    def place_order(self, request):
        result = self.inner.place_order(request)
        self.placed = True
        return result

    def get_positions(self, symbols=None):
        if self.placed:
            raise ExchangeUnavailable("binance_futures: fetch_positions failed: HTTP 503", venue="binance_futures")
        return self.inner.get_positions(symbols)

    def __getattr__(self, name):
        return getattr(self.inner, name)


def test_a_fill_whose_position_read_failed_explains_the_position(user, binance):
    account = binance_account(user)
    trader = PositionReadFailsAfterTheOrder(trader_for_account(account))
    order = submit(account, "0.002", trader=trader)
    assert order.status == Order.Status.FILLED
    assert not Position.objects.filter(account=account).exists()  # the read after the fill failed

    report = account_reconcile(account=account)
    assert report.position_changes == [] and [c["change"] for c in report.explained_position_changes] == ["appeared"]
    assert not RiskEvent.objects.filter(kind="reconcile").exists()
    assert Position.objects.get(account=account, status="open").size == D("0.002")

    # A trade outside the platform on the same symbol afterwards is still reported.
    outside = BinanceUsdmTrader(spec=venue_spec(account), credentials=account.credentials(), runtime=adapter_runtime())
    try:
        outside.open_long("BTC/USDT", D("0.003"), client_order_id="by-hand-2")
    finally:
        outside.close()
    report = account_reconcile(account=account)
    assert [c["change"] for c in report.position_changes] == ["size changed"]
    assert RiskEvent.objects.filter(kind="reconcile", message__contains="without an order of ours").count() == 1


def test_a_change_our_unfolded_fill_does_not_account_for_is_reported(user, binance):
    account = binance_account(user)
    submit(account, "0.002", trader=PositionReadFailsAfterTheOrder(trader_for_account(account)))
    outside = BinanceUsdmTrader(spec=venue_spec(account), credentials=account.credentials(), runtime=adapter_runtime())
    try:  # and before the next pass, someone trades on the venue by hand
        outside.open_long("BTC/USDT", D("0.003"), client_order_id="by-hand-3")
    finally:
        outside.close()
    report = account_reconcile(account=account)
    assert [(c["change"], c["venue_size"]) for c in report.position_changes] == [("appeared", "0.005")]
    assert RiskEvent.objects.filter(kind="reconcile", message__contains="without an order of ours").count() == 1
