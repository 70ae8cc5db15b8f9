"""The paper venue lists its liquidation orders (``get_liquidations``): they are never
open, so this list is how the platform learns of them (issue 13, fault 2)."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal as D

from exchanges.adapters.base import OrderSide, OrderStatus, PositionSide
from tests.exchanges.paper.support import BTC, wallet


def test_get_liquidations_lists_the_venues_closing_order_with_its_fill(trader, market, clock):
    trader.open_short(BTC, D("0.5"), client_order_id="s", leverage=20)
    assert trader.get_liquidations(None) == []
    assert trader.get_open_orders() == []

    market.set(BTC, "90000", after=60)
    clock.advance(60)
    assert trader.get_positions() == []
    [liq] = trader.get_liquidations(None)

    assert liq.client_order_id.startswith("autoclose-") and liq.raw_data["liquidation"] is True
    assert liq.status == OrderStatus.FILLED and liq.side == OrderSide.BUY
    assert liq.position_side == PositionSide.SHORT and liq.reduce_only
    assert liq.executed_quantity == liq.quantity == D("0.5")
    [fill] = liq.fills
    assert fill.quantity == D("0.5") and fill.price == liq.executed_price and fill.fee == liq.fees
    start = D(trader.get_balance().raw_data["starting_balance"])
    opening_fee = D(trader.get_order(BTC, client_order_id="s").fees)
    assert start + fill.realized_pnl - opening_fee - fill.fee == wallet(trader)
    # Not an open order: only this list shows it.
    assert trader.get_open_orders() == []


def test_get_liquidations_since_keeps_those_closed_at_or_after_it(trader, market, clock):
    trader.open_short(BTC, D("0.5"), client_order_id="s", leverage=20)
    market.set(BTC, "90000", after=60)
    clock.advance(60)
    [liq] = trader.get_liquidations(None)

    assert trader.get_liquidations(liq.timestamp) == [liq]
    assert trader.get_liquidations(liq.timestamp + timedelta(microseconds=1)) == []
    assert trader.get_liquidations(liq.timestamp - timedelta(hours=1)) == [liq]


def test_a_venue_that_cannot_list_liquidations_returns_none():
    from exchanges.adapters.base import BaseTrader

    class Bare(BaseTrader):
        place_order = get_ticker = symbol_rules = None  # the abstract venue calls, unused here

    assert Bare.get_liquidations(object()) == []  # the default, for venues without such a list
