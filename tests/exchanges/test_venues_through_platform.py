"""The same scenario through the same interface on all three venues, the way the platform
builds traders: an ExchangeAccount with encrypted credentials -> trader_for_account ->
registry -> adapter (the fake Binance and Hyperliquid servers are what the real clients
talk to). Then "test connection" on each, good and bad."""

from decimal import Decimal as D

import pytest
from eth_account import Account

from exchanges.adapters.base import (
    OrderRequest,
    OrderSide,
    OrderStatus,
    OrderType,
    PositionSide,
)
from exchanges.models import ExchangeAccount
from exchanges.services import (
    exchange_account_set_credentials,
    exchange_account_test_connection,
    trader_for_account,
)
from tests.factories import make_account

pytestmark = pytest.mark.django_db
API_KEY, API_SECRET = "A1" * 32, "S2" * 32


def account_on(venue, user, fakes):
    binance, hl = fakes
    if venue == "binance_futures":
        return make_account(user, venue=venue, credentials={"api_key": API_KEY, "api_secret": API_SECRET}), None
    if venue == "hyperliquid":
        main, agent = Account.create(), Account.create()
        hl.fund(main.address, "10000")
        hl.approve_agent(main.address, agent.address)
        creds = {"private_key": "0x" + agent.key.hex().removeprefix("0x"), "account_address": main.address}
        return make_account(user, venue=venue, credentials=creds), agent
    return make_account(user, venue="paper"), None


@pytest.mark.parametrize("venue", ["binance_futures", "hyperliquid", "paper"])
def test_open_read_protect_close_balance_on_every_venue(user, market, venues, venue):
    account, _ = account_on(venue, user, venues)
    trader = trader_for_account(account)
    try:
        start = trader.get_balance().total_balance
        price = trader.get_market_price("BTC/USDT")
        quantity = trader.format_quantity("BTC/USDT", D("200") / price)

        opened = trader.open_long("BTC/USDT", quantity, client_order_id=f"at-scn-{venue[:4]}-1", leverage=2)
        assert opened.status == OrderStatus.FILLED and opened.executed_quantity == quantity
        assert opened.client_order_id == f"at-scn-{venue[:4]}-1"

        [position] = trader.get_positions()
        assert (position.symbol, position.side, position.size) == ("BTC/USDT", PositionSide.LONG, quantity)
        assert position.exchange == venue and position.entry_price > 0

        stop_price = trader.format_price("BTC/USDT", price * D("0.8"))
        stop = trader.place_order(OrderRequest(
            symbol="BTC/USDT", side=OrderSide.SELL, position_side=PositionSide.LONG,
            order_type=OrderType.STOP_MARKET, quantity=quantity, client_order_id=f"at-scn-{venue[:4]}-2",
            stop_price=stop_price, reduce_only=True))
        assert stop.status == OrderStatus.NEW
        assert f"at-scn-{venue[:4]}-2" in {o.client_order_id for o in trader.get_open_orders("BTC/USDT")}

        closed = trader.close_long("BTC/USDT", quantity, client_order_id=f"at-scn-{venue[:4]}-3")
        assert closed.status == OrderStatus.FILLED and closed.reduce_only
        assert trader.get_positions() == []
        # A venue may expire a reduce-only stop once its position is gone (the paper venue
        # does); where it still rests, cancel it.
        if f"at-scn-{venue[:4]}-2" in {o.client_order_id for o in trader.get_open_orders("BTC/USDT")}:
            cancelled = trader.cancel_order("BTC/USDT", client_order_id=f"at-scn-{venue[:4]}-2")
            assert cancelled.status == OrderStatus.CANCELLED
        assert trader.get_open_orders("BTC/USDT") == []

        balance = trader.get_balance()
        assert balance.exchange == venue and balance.timestamp.tzinfo is not None
        assert balance.unrealized_pnl == 0
        # What was paid and earned adds up: start - fees + realized PnL.
        realized = sum((f.realized_pnl for f in closed.fills), D("0"))
        assert balance.total_balance == start - opened.fees - closed.fees + realized
    finally:
        trader.close()


@pytest.mark.parametrize("venue", ["binance_futures", "hyperliquid", "paper"])
def test_test_connection_records_ok(user, market, venues, venue):
    account, _ = account_on(venue, user, venues)
    result = exchange_account_test_connection(account=account)
    assert (result.status, result.last_error) == (ExchangeAccount.Status.OK, "")
    assert result.last_checked_at is not None


def test_test_connection_records_a_clear_secret_free_error(user, venues):
    account, _ = account_on("binance_futures", user, venues)
    wrong = "W9" * 32
    exchange_account_set_credentials(account=account, credentials={"api_key": API_KEY, "api_secret": wrong})
    result = exchange_account_test_connection(account=account)
    assert result.status == ExchangeAccount.Status.ERROR
    assert result.last_error.startswith("AuthenticationError")
    assert wrong not in result.last_error and API_KEY not in result.last_error


def test_test_connection_with_an_unapproved_agent_wallet(user, venues):
    binance, hl = venues
    main = Account.create()
    hl.fund(main.address, "100")
    stranger = Account.create()  # never approved for the main account
    account = make_account(user, venue="hyperliquid", credentials={
        "private_key": "0x" + stranger.key.hex().removeprefix("0x"), "account_address": main.address})
    result = exchange_account_test_connection(account=account)
    assert result.status == ExchangeAccount.Status.ERROR
    assert result.last_error.startswith("AuthenticationError")
    assert stranger.key.hex().removeprefix("0x") not in result.last_error


@pytest.mark.parametrize("venue", ["binance_futures", "hyperliquid"])
def test_the_platforms_own_client_order_ids_reach_the_venue(user, market, venues, venue):
    """A PlatformOrderId is a str subclass; ccxt's safe_string takes only exact str and
    silently sent its own random id instead, so look-ups by our id could never find it."""
    from trading.services.orders import client_order_id_for, order_submit

    account, _ = account_on(venue, user, venues)
    binance, hl = venues
    cid = client_order_id_for(decision_id=7, index=0)
    result = order_submit(account=account, symbol="BTC/USDT", side="BUY", position_side="LONG",
                          quantity=D("0.002"), source="agent", client_order_id=cid)
    assert result.order.status == "FILLED", result.order.error
    trader = trader_for_account(account)
    try:
        found = trader.get_order("BTC/USDT", client_order_id=str(cid))  # by our id alone
    finally:
        trader.close()
    assert found.status == OrderStatus.FILLED and found.executed_quantity == D("0.002")
    if venue == "binance_futures":
        sent = [r.params.get("newClientOrderId") for r in binance.requests_to("POST", "/fapi/v1/order")]
        assert sent == [str(cid)]
