"""Paper protection: attached stop-loss and take-profit (one triggers, the other expires;
wrong side refused; a resting parent's protection waits), and reduce-only orders."""

from __future__ import annotations

from decimal import Decimal as D

import pytest

from exchanges.adapters.base import (
    OrderRequest,
    OrderSide,
    OrderStatus,
    OrderType,
    PositionSide,
)
from exchanges.adapters.errors import (
    InvalidOrderError,
    OrderNotFound,
)
from exchanges.adapters.paper import PaperTrader
from tests.exchanges.paper.support import (
    BTC,
    wallet,
)


# --------------------------------------------------------------------------- triggers
def open_protected_long(trader: PaperTrader, **kw) -> object:
    return trader.open_long(BTC, D("0.5"), client_order_id="entry", leverage=10,
                            stop_loss=D("58000"), take_profit=D("63000"), **kw)


def test_attached_stop_loss_triggers_and_the_take_profit_expires(trader, market, clock):
    entry = open_protected_long(trader)
    sl, tp = entry.attached
    assert (sl.order_type, sl.side, sl.stop_price, sl.reduce_only, sl.status) == (
        OrderType.STOP_MARKET, OrderSide.SELL, D("58000"), True, OrderStatus.NEW)
    assert (tp.order_type, tp.stop_price, tp.client_order_id) == (
        OrderType.TAKE_PROFIT_MARKET, D("63000"), "entry-tp")
    assert len(trader.get_open_orders(BTC)) == 2

    market.set(BTC, "57900", after=30)
    market.set(BTC, "58500", after=60)
    clock.advance(60)
    stop = trader.get_order(BTC, client_order_id="entry-sl")
    # 58000 * 0.9998 = 57988.40; realized 0.5 * (57988.4 - 60012) = -1011.8;
    # fee 0.0005 * 0.5 * 57988.4 = 14.4971
    assert stop.status == OrderStatus.FILLED and stop.executed_price == D("57988.40")
    assert stop.fills[0].realized_pnl == D("-1011.8") and stop.fees == D("14.4971")
    assert trader.get_order(BTC, client_order_id="entry-tp").status == OrderStatus.EXPIRED
    assert trader.get_positions() == [] and trader.get_open_orders() == []
    assert wallet(trader) == D("8958.6999")  # 9984.997 - 1011.8 - 14.4971


def test_attached_take_profit_triggers_and_the_stop_loss_expires(trader, market, clock):
    open_protected_long(trader)
    market.set(BTC, "63100", after=60)
    clock.advance(90)
    take = trader.get_order(BTC, client_order_id="entry-tp")
    # 63000 * 0.9998 = 62987.40; realized 0.5 * (62987.4 - 60012) = 1487.7;
    # fee 0.0005 * 0.5 * 62987.4 = 15.74685
    assert take.status == OrderStatus.FILLED and take.executed_price == D("62987.40")
    assert take.fills[0].realized_pnl == D("1487.7") and take.fees == D("15.74685")
    assert trader.get_order(BTC, client_order_id="entry-sl").status == OrderStatus.EXPIRED
    assert wallet(trader) == D("11456.95015")  # 9984.997 + 1487.7 - 15.74685


def test_protection_on_the_wrong_side_is_refused_and_nothing_is_kept(trader):
    with pytest.raises(InvalidOrderError):
        trader.open_long(BTC, D("0.1"), client_order_id="bad", leverage=10, stop_loss=D("61000"))
    assert wallet(trader) == D("10000")
    assert trader.get_positions() == []
    with pytest.raises(OrderNotFound):
        trader.get_order(BTC, client_order_id="bad")


def test_stop_that_would_trigger_at_once_is_refused(trader):
    trader.open_long(BTC, D("0.1"), client_order_id="l", leverage=10)
    with pytest.raises(InvalidOrderError) as err:
        trader.place_order(OrderRequest(
            symbol=BTC, side=OrderSide.SELL, position_side=PositionSide.LONG,
            order_type=OrderType.STOP_MARKET, quantity=D("0.1"), stop_price=D("60500"),
            reduce_only=True, client_order_id="late-stop"))
    assert err.value.code == "-2021"


def test_attached_orders_of_a_resting_limit_wait_for_it(trader, market, clock):
    entry = trader.place_order(OrderRequest(
        symbol=BTC, side=OrderSide.BUY, position_side=PositionSide.LONG, order_type=OrderType.LIMIT,
        quantity=D("0.1"), price=D("59000"), client_order_id="dip", leverage=10,
        stop_loss=D("58000")))
    assert entry.status == OrderStatus.NEW and entry.attached[0].status == OrderStatus.NEW
    market.set(BTC, "57000", after=60)  # passes the limit, then the stop
    clock.advance(60)
    assert trader.get_order(BTC, client_order_id="dip").status == OrderStatus.FILLED
    stop = trader.get_order(BTC, client_order_id="dip-sl")
    assert stop.status == OrderStatus.FILLED and stop.executed_price == D("57988.40")
    assert trader.get_positions() == []
    # fees 0.0002 * 5900 = 1.18 and 0.0005 * 5798.84 = 2.89942; loss 0.1 * (57988.4 - 59000)
    assert wallet(trader) == D("10000") - D("1.18") - D("2.89942") - D("101.16")


def test_cancelling_an_unfilled_parent_cancels_its_protection(trader):
    trader.place_order(OrderRequest(
        symbol=BTC, side=OrderSide.BUY, position_side=PositionSide.LONG, order_type=OrderType.LIMIT,
        quantity=D("0.1"), price=D("59000"), client_order_id="p", leverage=10, take_profit=D("65000")))
    trader.cancel_order(BTC, client_order_id="p")
    assert trader.get_order(BTC, client_order_id="p-tp").status == OrderStatus.CANCELLED


# --------------------------------------------------------------------------- reduce-only
def test_reduce_only_never_opens_or_increases(trader):
    with pytest.raises(InvalidOrderError) as err:
        trader.close_long(BTC, D("0.1"), client_order_id="nothing")
    assert err.value.code == "-2022"
    trader.open_short(BTC, D("0.1"), client_order_id="s", leverage=10)
    with pytest.raises(InvalidOrderError):  # a reduce-only SELL would grow the short
        trader.close_long(BTC, D("0.1"), client_order_id="wrong-way")
    with pytest.raises(InvalidOrderError):
        trader.place_order(OrderRequest(
            symbol=BTC, side=OrderSide.SELL, position_side=PositionSide.SHORT,
            order_type=OrderType.STOP_MARKET, quantity=D("0.1"), stop_price=D("55000"),
            reduce_only=True, client_order_id="wrong-stop"))
    [position] = trader.get_positions()
    assert position.side == PositionSide.SHORT and position.size == D("0.1")


def test_reduce_only_larger_than_the_position_is_clipped(trader):
    trader.open_long(BTC, D("0.5"), client_order_id="l", leverage=10)  # 60012, fee 15.003
    result = trader.close_long(BTC, D("0.8"), client_order_id="c")
    assert result.status == OrderStatus.FILLED
    assert result.executed_quantity == D("0.5") and result.raw_data["requested_quantity"] == "0.800000"
    # 59988 - 60012 = -24 per BTC -> -12; fee 0.0005 * 0.5 * 59988 = 14.997
    assert result.fills[0].realized_pnl == D("-12") and result.fees == D("14.997")
    assert trader.get_positions() == []
    assert wallet(trader) == D("9958")  # 9984.997 - 12 - 14.997
