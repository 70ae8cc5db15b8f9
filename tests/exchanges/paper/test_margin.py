"""Paper margin: insufficient margin refused without trace, resting orders' reserve,
leverage and margin-mode limits, liquidation prices (isolated and cross) and liquidation."""

from __future__ import annotations

from decimal import Decimal as D

import pytest

from exchanges.adapters.base import (
    MarginMode,
    OrderRequest,
    OrderSide,
    OrderStatus,
    OrderType,
    PositionSide,
)
from exchanges.adapters.errors import (
    InsufficientFunds,
    InvalidOrderError,
    OrderNotFound,
)
from tests.exchanges.paper.support import (
    BTC,
    ETH,
    wallet,
)


# --------------------------------------------------------------------------- margin
def test_insufficient_margin_is_refused_and_leaves_no_trace(trader):
    # default leverage 1: 0.2 * 60012 + 0.0005 * 12002.4 = 12008.4012 > 10000
    with pytest.raises(InsufficientFunds):
        trader.open_long(BTC, D("0.2"), client_order_id="too-big")
    assert wallet(trader) == D("10000") and trader.get_positions() == []
    with pytest.raises(OrderNotFound):
        trader.get_order(BTC, client_order_id="too-big")
    trader.open_long(BTC, D("0.16"), client_order_id="fits")  # 9601.92 + 4.80096 <= 10000
    # wallet 10000 - 4.80096; uPnL 0.16 * (60000 - 60012) = -1.92; initial margin 0.16 * 60000 / 1
    assert trader.get_balance().available_balance == D("393.27904")  # 9993.27904 - 9600


def test_resting_orders_count_against_available_margin(trader):
    trader.set_leverage(BTC, 10)
    trader.place_order(OrderRequest(
        symbol=BTC, side=OrderSide.BUY, position_side=PositionSide.LONG, order_type=OrderType.LIMIT,
        quantity=D("1"), price=D("59000"), client_order_id="a"))  # reserves 5900
    with pytest.raises(InsufficientFunds):  # needs 0.8 * 59000 / 10 + 0.0002 * 47200 = 4729.44 > 4100
        trader.place_order(OrderRequest(
            symbol=BTC, side=OrderSide.BUY, position_side=PositionSide.LONG, order_type=OrderType.LIMIT,
            quantity=D("0.8"), price=D("59000"), client_order_id="b"))


def test_leverage_and_margin_mode_limits(trader):
    with pytest.raises(InvalidOrderError):
        trader.set_leverage(BTC, 21)  # config maximum is 20
    with pytest.raises(InvalidOrderError):
        trader.set_leverage(BTC, 0)
    trader.set_leverage(BTC, 20)
    trader.set_margin_mode(BTC, MarginMode.CROSS)
    with pytest.raises(InvalidOrderError):
        trader.set_margin_mode(BTC, MarginMode.ISOLATED)
    trader.open_long(BTC, D("1"), client_order_id="l")  # 3000.6 + 30.006 <= 10000 at 20x
    with pytest.raises(InsufficientFunds):  # at 1x the position would need 60000
        trader.set_leverage(BTC, 1)
    assert trader.get_positions()[0].leverage == D("20")


# --------------------------------------------------------------------------- liquidation
def test_liquidation_price_formula_and_liquidation_when_crossed(trader, market, clock):
    store = trader.store
    trader.open_long(BTC, D("0.5"), client_order_id="l", leverage=20)  # 60012, fee 15.003
    [position] = trader.get_positions()
    # wallet W = 9984.997; cross, no other position: W + 0.5 (P - 60012) = 0.005 * 0.5 * P
    # P = (W - 0.5 * 60012) / (0.005 * 0.5 - 0.5) = -20021.003 / -0.4975 = 40243.2221...
    expected = ((D("9984.997") - D("0.5") * D("60012")) / (D("0.0025") - D("0.5"))).quantize(D("0.01"))
    assert expected == D("40243.22")
    assert position.liquidation_price == expected

    market.set(BTC, "40300", after=60)  # close, but above it
    clock.advance(60)
    assert trader.get_positions()[0].size == D("0.5")

    market.set(BTC, "40000", after=60)
    clock.advance(60)
    assert trader.get_positions() == []
    # closed at 40243.22: 0.5 * (40243.22 - 60012) = -9884.39; fee 0.0005 * 20121.61 = 10.060805
    assert wallet(trader) == D("90.546195")
    book = store.load(trader.account_ref)
    [liq] = [o for o in book.orders.values() if o.liquidation]
    assert liq.status == "FILLED" and liq.fills[0].liquidation and liq.fills[0].price == expected
    assert book.liquidations == 1
    assert trader.get_order(BTC, order_id=liq.order_id).raw_data["liquidation"] is True


def test_cross_liquidation_price_counts_the_other_positions(trader, market, clock):
    trader.open_long(BTC, D("0.5"), client_order_id="l", leverage=20)  # 60012, fee 15.003
    trader.open_short(ETH, D("2"), client_order_id="s", leverage=20)  # 2999.40, fee 2.9994
    w = D("10000") - D("15.003") - D("2.9994")
    mmr = D("0.005")

    def btc_liq(eth_mark: D) -> D:
        other_upnl = -2 * (eth_mark - D("2999.40"))
        other_mm = mmr * 2 * eth_mark
        return ((w + other_upnl - other_mm - D("0.5") * D("60012")) / (mmr * D("0.5") - D("0.5"))).quantize(D("0.01"))

    by_symbol = {p.symbol: p for p in trader.get_positions()}
    assert by_symbol[BTC].liquidation_price == btc_liq(D("3000")) == D("40311.96")
    clock.advance(1)
    market.set(ETH, "2500")  # the short gains 998.8: the long can fall further
    by_symbol = {p.symbol: p for p in trader.get_positions()}
    assert by_symbol[BTC].liquidation_price == btc_liq(D("2500")) < btc_liq(D("3000"))
    # the short's: (W + U_btc - M_btc + 2 * 2999.4) / (2 * 1.005), BTC at 60000
    eth_liq = ((w + D("0.5") * (60000 - D("60012")) - mmr * D("0.5") * 60000 + 2 * D("2999.40"))
               / (2 * (1 + mmr))).quantize(D("0.01"))
    assert by_symbol[ETH].liquidation_price == eth_liq


def test_a_stop_above_the_liquidation_price_fires_first(trader, market, clock):
    trader.open_long(BTC, D("0.5"), client_order_id="l", leverage=20, stop_loss=D("45000"))
    market.set(BTC, "40000", after=60)  # the path passes 45000 before 40243.22
    clock.advance(60)
    stop = trader.get_order(BTC, client_order_id="l-sl")
    assert stop.status == OrderStatus.FILLED and stop.executed_price == D("44991")  # 45000 * 0.9998
    assert trader.store.load(trader.account_ref).liquidations == 0
    # 9984.997 + 0.5 * (44991 - 60012) - 0.0005 * 0.5 * 44991
    assert wallet(trader) == D("2463.24925")
