"""account_flatten on Hyperliquid with an adapter that did not place the orders.

The venue lists our resting orders under their cloid (the 16-byte hash of our client order
id), not under our client order id; a trader built afresh (another process, another call)
has no memory of what it sent. The flatten must still recognise them as ours, through the
cloid order_submit recorded on the Order before sending, cancel them, record the venue's
answer on our Order rows, and close the positions."""

from decimal import Decimal as D

import pytest
from eth_account import Account

from alpha_platform.common.config import clear_config_cache
from exchanges.adapters.registry import create_trader
from exchanges.services import adapter_runtime, venue_spec
from tests.factories import make_account
from tests.fakes.hyperliquid_server import HyperliquidFakeServer
from trading.models import Order, Position
from trading.services import order_submit

pytestmark = pytest.mark.django_db


def fresh_trader(account):
    """A new adapter instance, never reused: nothing it knows comes from an earlier call."""
    return create_trader(venue_spec(account), credentials=account.credentials(), runtime=adapter_runtime())


@pytest.fixture
def hl(monkeypatch):
    with HyperliquidFakeServer() as server:
        for name in ("HYPERLIQUID_API_URL", "HYPERLIQUID_TESTNET_API_URL"):
            monkeypatch.setenv(name, server.url)
        clear_config_cache()
        yield server
    clear_config_cache()


@pytest.fixture
def hl_account(user, hl):
    main, agent = Account.create(), Account.create()
    hl.fund(main.address, "10000")
    hl.approve_agent(main.address, agent.address)
    return make_account(user, venue="hyperliquid", credentials={
        "private_key": "0x" + agent.key.hex().removeprefix("0x"), "account_address": main.address})


def submit(account, **kw):
    trader = fresh_trader(account)
    try:
        return order_submit(account=account, symbol="BTC/USDT", source="api", trader=trader, **kw).order
    finally:
        trader.close()


def test_flatten_with_a_fresh_adapter_cancels_our_resting_orders_and_closes_positions(user, hl, hl_account,
                                                                                     monkeypatch):
    import trading.services.kill_switch as ks

    opened = submit(hl_account, side="BUY", position_side="LONG", quantity=D("0.01"))
    assert opened.status == Order.Status.FILLED
    resting = submit(hl_account, side="BUY", position_side="LONG", quantity=D("0.01"), order_type="LIMIT",
                     price=D("50000"))
    assert resting.status == Order.Status.NEW and resting.venue_client_order_id.startswith("0x")
    # The venue knows it by its cloid only.
    [listed] = fresh_trader(hl_account).get_open_orders()
    assert listed.client_order_id != resting.client_order_id

    built = []

    def new_adapter_per_call(account, **kw):
        trader = fresh_trader(account)
        built.append(trader)
        return trader

    monkeypatch.setattr(ks, "trader_for_account", new_adapter_per_call)
    report = ks.account_flatten(account=hl_account, actor="kill_switch:test")

    assert len(built) == 1 and report["errors"] == [], report
    assert (report["cancelled"], report["closed"]) == (1, 1)
    resting.refresh_from_db()
    assert resting.status == Order.Status.CANCELLED and resting.closed_at is not None
    assert resting.exchange_order_id == listed.order_id
    venue = fresh_trader(hl_account)
    assert venue.get_open_orders() == [] and venue.get_positions() == []
    assert not Position.objects.filter(account=hl_account, status="open").exists()
    closing = Order.objects.get(account=hl_account, source=Order.Source.SYSTEM, reduce_only=True)
    assert closing.status == Order.Status.FILLED and closing.side == "SELL"
    # Nothing of ours was taken for a stranger's order: no order row was made for the cancel.
    assert Order.objects.filter(account=hl_account).count() == 3
