"""Paper orders: wiring from the registry and the config, market fills (slippage, taker
fee, realised and unrealised PnL, flips), limit orders (reserve, maker fills when the path
crosses, IOC), cancels."""

from __future__ import annotations

from decimal import Decimal as D

import pytest

from exchanges.adapters.base import (
    ExchangeTrader,
    OrderRequest,
    OrderSide,
    OrderStatus,
    OrderType,
    PositionSide,
)
from exchanges.adapters.errors import (
    OrderNotFound,
)
from exchanges.adapters.paper import PaperTrader
from exchanges.adapters.registry import adapter_class
from tests.exchanges.paper.support import (
    BTC,
    ETH,
    PAPER,
    make_trader,
    wallet,
)


# --------------------------------------------------------------------------- wiring
def test_registry_builds_the_paper_trader_and_it_meets_the_protocol(trader):
    assert adapter_class(PAPER) is PaperTrader
    assert isinstance(trader, ExchangeTrader)
    assert "credentials" not in repr(trader).lower()


def test_fresh_account_starts_from_the_configured_balance(trader):
    balance = trader.get_balance()
    assert balance.total_balance == balance.available_balance == balance.margin_balance == D("10000")
    assert balance.currency == "USDT" and balance.exchange == "paper"
    assert trader.get_positions() == [] and trader.get_open_orders() == []


def test_starting_balance_from_the_runtime_wins_over_the_config(market, clock):
    trader = make_trader(market, clock, starting_balance="2500")
    assert wallet(trader) == D("2500")


# --------------------------------------------------------------------------- market orders
def test_market_buy_fills_at_price_plus_slippage_and_pays_the_taker_fee(trader):
    result = trader.open_long(BTC, D("0.5"), client_order_id="buy-1", leverage=10)

    # 60000 * (1 + 2/10000) = 60012; fee 0.0005 * 0.5 * 60012 = 0.0005 * 30006 = 15.003
    assert result.status == OrderStatus.FILLED
    assert result.executed_quantity == D("0.5") and result.executed_price == D("60012")
    assert result.fees == D("15.003")
    assert [f.price for f in result.fills] == [D("60012")]

    [position] = trader.get_positions()
    assert position.side == PositionSide.LONG and position.size == D("0.5")
    assert position.entry_price == D("60012") and position.mark_price == D("60000")
    assert position.unrealized_pnl == D("-6")  # 0.5 * (60000 - 60012)
    assert position.margin == D("3000")  # 0.5 * 60000 / 10
    assert position.leverage == D("10")
    assert position.percentage_pnl == D("-0.20")  # -6 / 3000

    balance = trader.get_balance()
    assert balance.total_balance == D("9984.997")  # 10000 - 15.003
    assert balance.unrealized_pnl == D("-6")
    assert balance.margin_balance == D("9978.997")  # wallet + uPnL
    assert balance.available_balance == D("6978.997")  # 9978.997 - 3000
    assert balance.maintenance_margin == D("150")  # 0.005 * 30000


def test_market_sell_fills_at_price_minus_slippage(trader):
    result = trader.open_short(ETH, D("2"), client_order_id="sell-1", leverage=5)
    # 3000 * (1 - 0.0002) = 2999.40; fee 0.0005 * 2 * 2999.4 = 2.9994
    assert result.executed_price == D("2999.40") and result.fees == D("2.9994")
    [position] = trader.get_positions()
    assert position.side == PositionSide.SHORT and position.size == D("2")
    assert position.unrealized_pnl == D("-1.2")  # -2 * (3000 - 2999.4)
    assert wallet(trader) == D("9997.0006")


def test_realized_and_unrealized_pnl_through_reduce_add_and_close(trader, market, clock):
    trader.open_long(BTC, D("0.5"), client_order_id="o1", leverage=10)  # fill 60012, fee 15.003
    clock.advance(60)
    market.set(BTC, "62000")
    [position] = trader.get_positions()
    assert position.unrealized_pnl == D("994")  # 0.5 * (62000 - 60012)

    part = trader.close_long(BTC, D("0.2"), client_order_id="c1")
    # fill 62000 * 0.9998 = 61987.60; realized 0.2 * (61987.6 - 60012) = 395.12;
    # fee 0.0005 * 0.2 * 61987.6 = 6.19876
    assert part.executed_price == D("61987.60")
    assert part.fills[0].realized_pnl == D("395.12") and part.fees == D("6.19876")
    assert wallet(trader) == D("10373.91824")  # 9984.997 + 395.12 - 6.19876
    [position] = trader.get_positions()
    assert position.size == D("0.3") and position.entry_price == D("60012")
    assert position.unrealized_pnl == D("596.4")  # 0.3 * (62000 - 60012)
    assert D(position.raw_data["realized_pnl"]) == D("395.12")

    add = trader.open_long(BTC, D("0.5"), client_order_id="o2")
    assert add.executed_price == D("62012.40")
    [position] = trader.get_positions()
    # (0.3 * 60012 + 0.5 * 62012.4) / 0.8 = 49009.8 / 0.8 = 61262.25
    assert position.size == D("0.8") and position.entry_price == D("61262.25")

    close = trader.close_long(BTC, D("0.8"), client_order_id="c2")
    # 0.8 * (61987.6 - 61262.25) = 580.28; fee 0.0005 * 0.8 * 61987.6 = 24.79504
    assert close.fills[0].realized_pnl == D("580.28") and close.fees == D("24.79504")
    assert trader.get_positions() == []
    balance = trader.get_balance()
    # 10373.91824 - 15.5031 (fee of o2: 0.0005 * 0.5 * 62012.4) + 580.28 - 24.79504
    assert balance.total_balance == D("10913.9001")
    assert balance.available_balance == balance.total_balance
    assert D(balance.raw_data["realized_pnl_total"]) == D("975.40")  # 395.12 + 580.28
    assert D(balance.raw_data["fees_total"]) == D("61.4999")  # 15.003 + 6.19876 + 15.5031 + 24.79504


def test_a_non_reduce_only_order_against_a_position_flips_it(trader, market, clock):
    trader.open_long(BTC, D("0.1"), client_order_id="l", leverage=10)  # 60012
    result = trader.open_short(BTC, D("0.3"), client_order_id="s")  # one-way: sells 0.3 at 59988
    assert result.fills[0].realized_pnl == D("-2.4")  # 0.1 * (59988 - 60012)
    [position] = trader.get_positions()
    assert position.side == PositionSide.SHORT and position.size == D("0.2")
    assert position.entry_price == D("59988")


# --------------------------------------------------------------------------- limit orders
def test_limit_rests_reserves_margin_and_fills_as_maker_when_the_path_crosses(trader, market, clock):
    trader.set_leverage(BTC, 10)
    order = trader.place_order(OrderRequest(
        symbol=BTC, side=OrderSide.BUY, position_side=PositionSide.LONG, order_type=OrderType.LIMIT,
        quantity=D("0.1"), price=D("59000"), client_order_id="lim-1"))
    far = trader.place_order(OrderRequest(
        symbol=BTC, side=OrderSide.BUY, position_side=PositionSide.LONG, order_type=OrderType.LIMIT,
        quantity=D("0.1"), price=D("58000"), client_order_id="lim-2"))
    assert order.status == OrderStatus.NEW and order.executed_quantity == 0
    balance = trader.get_balance()
    # reserved: 0.1 * 59000 / 10 + 0.1 * 58000 / 10 = 590 + 580
    assert balance.available_balance == D("8830") and balance.total_balance == D("10000")
    assert {o.client_order_id for o in trader.get_open_orders(BTC)} == {"lim-1", "lim-2"}

    market.set(BTC, "58900", after=30)
    market.set(BTC, "59500", after=60)
    clock.advance(60)
    filled = trader.get_order(BTC, client_order_id="lim-1")
    assert filled.status == OrderStatus.FILLED
    assert filled.executed_price == D("59000") and filled.raw_data["maker"] is True
    assert filled.fees == D("1.18")  # 0.0002 * 0.1 * 59000
    assert trader.get_order(BTC, order_id=far.order_id).status == OrderStatus.NEW
    [position] = trader.get_positions()
    assert position.entry_price == D("59000") and position.unrealized_pnl == D("50")  # 0.1 * 500
    balance = trader.get_balance()
    assert balance.total_balance == D("9998.82")
    # 9998.82 + 50 - 0.1 * 59500 / 10 - 580
    assert balance.available_balance == D("8873.82")


def test_marketable_limit_fills_at_once_as_taker_and_ioc_expires(trader):
    trader.set_leverage(BTC, 10)
    taker = trader.place_order(OrderRequest(
        symbol=BTC, side=OrderSide.BUY, position_side=PositionSide.LONG, order_type=OrderType.LIMIT,
        quantity=D("0.1"), price=D("61000"), client_order_id="mk"))
    assert taker.status == OrderStatus.FILLED
    assert taker.executed_price == D("60012") and taker.fees == D("3.0006")  # 0.0005 * 6001.2
    ioc = trader.place_order(OrderRequest(
        symbol=BTC, side=OrderSide.BUY, position_side=PositionSide.LONG, order_type=OrderType.LIMIT,
        quantity=D("0.1"), price=D("59000"), client_order_id="ioc", time_in_force="IOC"))
    assert ioc.status == OrderStatus.EXPIRED and ioc.executed_quantity == 0
    assert trader.get_open_orders() == []


def test_cancel_releases_the_reserve_and_a_second_cancel_is_unknown(trader):
    trader.set_leverage(BTC, 10)
    trader.place_order(OrderRequest(
        symbol=BTC, side=OrderSide.BUY, position_side=PositionSide.LONG, order_type=OrderType.LIMIT,
        quantity=D("1"), price=D("59000"), client_order_id="big"))
    assert trader.get_balance().available_balance == D("4100")  # 10000 - 59000 / 10
    cancelled = trader.cancel_order(BTC, client_order_id="big")
    assert cancelled.status == OrderStatus.CANCELLED
    assert trader.get_balance().available_balance == D("10000")
    with pytest.raises(OrderNotFound):
        trader.cancel_order(BTC, client_order_id="big")
    with pytest.raises(OrderNotFound):
        trader.get_order(BTC, order_id="999")
