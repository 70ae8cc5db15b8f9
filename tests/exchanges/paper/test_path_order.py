"""The price path walked in time order (issue 13, faults 1, 3 and 4): triggers execute in
the order the price reaches them, an attached order sees only prices from after its parent
filled, and a cross-margin liquidation closes the position that lost, at its own market's
price at that moment, after cancelling the account's open orders (as Binance does).

Expected values come from the USD-M definitions (docs: usdm-reference), not from the
engine: a taker pays 5 bps and fills 2 bps worse than the price, rounded against it to the
0.01 tick; the account is liquidated when wallet + uPnL = maintenance margin (0.5% of each
position's notional at its own mark)."""

from __future__ import annotations

from datetime import timedelta
from decimal import ROUND_CEILING, ROUND_FLOOR
from decimal import Decimal as D

import pytest

from exchanges.adapters.base import (
    OrderRequest,
    OrderSide,
    OrderStatus,
    OrderType,
    PositionSide,
)
from tests.exchanges.paper.support import (
    BTC,
    ETH,
    T0,
    ScriptedMarket,
    make_trader,
    wallet,
)
from tests.fakes.markets import FixedMarket

SOL = "SOL/USDT"
TICK = D("0.01")
SLIP = D("0.0002")
TAKER = D("0.0005")
MMR = D("0.005")


def taker_buy(price: D) -> D:
    return (price * (1 + SLIP)).quantize(TICK, rounding=ROUND_CEILING)


def taker_sell(price: D) -> D:
    return (price * (1 - SLIP)).quantize(TICK, rounding=ROUND_FLOOR)


def fee(quantity: D, price: D) -> D:
    return quantity * price * TAKER


# --------------------------------------------------------------------------- fault 3
def test_triggers_execute_in_the_order_the_price_reaches_them(clock):
    """SL 148 and TP 153 on a long; 150 -> 153.5 -> 146.5 in one sync: the take-profit is
    reached first (at about 17 s), so it fills and the stop expires with the position."""
    market = ScriptedMarket(clock, SOL="150")
    trader = make_trader(market, clock)
    trader.open_long(SOL, D("10"), client_order_id="l", leverage=5, stop_loss=D("148"), take_profit=D("153"))
    entry = taker_buy(D("150"))
    market.set(SOL, "153.5", after=20)
    market.set(SOL, "146.5", after=40)
    clock.advance(60)

    assert trader.get_positions() == []
    tp = trader.get_order(SOL, client_order_id="l-tp")
    sl = trader.get_order(SOL, client_order_id="l-sl")
    assert tp.status == OrderStatus.FILLED and tp.executed_price == taker_sell(D("153"))
    assert sl.status in (OrderStatus.EXPIRED, OrderStatus.CANCELLED) and sl.executed_quantity == 0
    exit_price = taker_sell(D("153"))
    expected = D("10000") - fee(D("10"), entry) + 10 * (exit_price - entry) - fee(D("10"), exit_price)
    assert wallet(trader) == expected
    # It filled when the path reached 153 (150 + 3.5 * t / 20 = 153 at t = 17.14 s), not at
    # the end of the sync.
    [fill] = trader.store.load(trader.account_ref).orders[tp.order_id].fills
    assert T0 + timedelta(seconds=17) <= fill.timestamp <= T0 + timedelta(seconds=18)


def test_a_stop_reached_first_fills_before_a_take_profit_reached_later(clock):
    market = ScriptedMarket(clock, SOL="150")
    trader = make_trader(market, clock)
    trader.open_long(SOL, D("10"), client_order_id="l", leverage=5, stop_loss=D("148"), take_profit=D("153"))
    market.set(SOL, "147", after=20)   # the stop first
    market.set(SOL, "160", after=40)   # then far past the take-profit
    clock.advance(60)
    assert trader.get_order(SOL, client_order_id="l-sl").status == OrderStatus.FILLED
    assert trader.get_order(SOL, client_order_id="l-tp").executed_quantity == 0
    assert trader.get_positions() == []


# --------------------------------------------------------------------------- fault 4
@pytest.fixture
def btc65(clock):
    market = ScriptedMarket(clock, BTC="65000", ETH="3000")
    return market, make_trader(market, clock)


def test_an_attached_take_profit_ignores_prices_from_before_its_parent_filled(btc65, clock):
    market, trader = btc65
    trader.place_order(OrderRequest(
        symbol=BTC, side=OrderSide.BUY, position_side=PositionSide.LONG, order_type=OrderType.LIMIT,
        quantity=D("0.1"), price=D("64000"), take_profit=D("64500"), client_order_id="dip", leverage=5))
    market.set(BTC, "63000", after=60)  # 65000 -> 63000: the buy fills at 64000 on the way down
    clock.advance(60)

    assert trader.get_order(BTC, client_order_id="dip").status == OrderStatus.FILLED
    tp = trader.get_order(BTC, client_order_id="dip-tp")
    assert tp.status == OrderStatus.NEW and tp.executed_quantity == 0  # 64500 was before the fill
    [position] = trader.get_positions()
    assert position.size == D("0.1") and position.entry_price == D("64000")
    # maker fee 2 bps on the fill, nothing realized
    assert wallet(trader) == D("10000") - D("0.1") * D("64000") * D("0.0002")

    market.set(BTC, "64600", after=60)  # now the price rises after the fill: the TP fires
    clock.advance(60)
    tp = trader.get_order(BTC, client_order_id="dip-tp")
    assert tp.status == OrderStatus.FILLED and tp.executed_price == taker_sell(D("64500"))
    assert trader.get_positions() == []


# --------------------------------------------------------------------------- fault 1
def test_cross_liquidation_closes_the_losing_position_at_its_own_price(trader, market, clock):
    """Short ETH 20 and long BTC 0.1; ETH rises through the account's liquidation point while
    BTC stays at 60,000: the ETH short is closed at the ETH price where margin balance met
    maintenance margin; the BTC long stays open; the open orders are cancelled first."""
    trader.open_long(BTC, D("0.1"), client_order_id="b", leverage=20)
    trader.open_short(ETH, D("20"), client_order_id="e", leverage=20)
    trader.place_order(OrderRequest(
        symbol=BTC, side=OrderSide.BUY, position_side=PositionSide.LONG, order_type=OrderType.LIMIT,
        quantity=D("0.01"), price=D("50000"), client_order_id="rest", leverage=20))
    btc_entry, eth_entry = taker_buy(D("60000")), taker_sell(D("3000"))
    w = D("10000") - fee(D("0.1"), btc_entry) - fee(D("20"), eth_entry)
    # W + 0.1 (60000 - Eb) - 20 (P - Ee) = MMR (0.1 * 60000 + 20 P)
    eth_liq = ((w + D("0.1") * (60000 - btc_entry) + 20 * eth_entry - MMR * D("0.1") * 60000)
               / (20 + MMR * 20)).quantize(TICK)
    assert D("3000") < eth_liq < D("4000")

    market.set(ETH, "4000", after=60)
    clock.advance(60)

    [position] = trader.get_positions()
    assert position.symbol == BTC and position.size == D("0.1")
    book = trader.store.load(trader.account_ref)
    [liq] = [o for o in book.orders.values() if o.liquidation]
    assert liq.symbol == ETH and liq.side == "BUY" and liq.executed_quantity == D("20")
    assert abs(liq.fills[0].price - eth_liq) <= TICK
    # the BTC long booked nothing; the ETH short its loss at the liquidation price
    realized = 20 * (eth_entry - liq.fills[0].price)
    assert wallet(trader) == w + realized - fee(D("20"), liq.fills[0].price)
    assert trader.get_order(BTC, client_order_id="rest").status == OrderStatus.CANCELLED
    # when ETH's path reached the liquidation price (3000 + 1000 t / 60)
    moment = (eth_liq - 3000) * 60 / 1000
    assert abs((liq.fills[0].timestamp - T0).total_seconds() - float(moment)) <= 1.5


def test_a_liquidation_waits_for_the_moment_the_account_falls_short(trader, market, clock):
    """BTC first rallies (the long gains), then ETH rises: the liquidation is reached only
    when ETH passes the point computed with BTC at its price *then*, not at the end."""
    trader.open_long(BTC, D("0.1"), client_order_id="b", leverage=20)
    trader.open_short(ETH, D("20"), client_order_id="e", leverage=20)
    btc_entry, eth_entry = taker_buy(D("60000")), taker_sell(D("3000"))
    w = D("10000") - fee(D("0.1"), btc_entry) - fee(D("20"), eth_entry)
    market.set(BTC, "60000", after=30)
    market.set(ETH, "3000", after=30)
    market.set(BTC, "40000", after=60)  # BTC falls while ETH rises: both lose
    market.set(ETH, "3600", after=60)
    clock.advance(60)
    trader.get_positions()  # the touch that plays the path

    book = trader.store.load(trader.account_ref)
    liqs = [o for o in book.orders.values() if o.liquidation]
    assert liqs, "the account crossed its maintenance margin"
    first = min(liqs, key=lambda o: o.fills[0].timestamp)
    at = first.fills[0].timestamp
    seconds = D(str((at - T0).total_seconds()))
    # at that moment, each market's own price: margin balance is at the maintenance margin
    btc = D("60000") - 20000 * (seconds - 30) / 30
    eth = D("3000") + 600 * (seconds - 30) / 30
    balance = w + D("0.1") * (btc - btc_entry) - 20 * (eth - eth_entry)
    maintenance = MMR * (D("0.1") * btc + 20 * eth)
    # within one second of the crossing (the path moves ~ 467 USDT of balance a second)
    assert abs(balance - maintenance) < 500
    # the position that lost more is closed first, at its own price then
    assert first.symbol == ETH
    assert abs(first.fills[0].price - eth) <= D("25")


def test_a_market_that_gaps_through_the_liquidation_closes_no_worse_than_bankruptcy(clock):
    """ETH is quoted at 3000, then at 4000 (no price between: a gap, as after a halt): the
    short's margin is gone before any price near its liquidation price trades. The account
    loses its balance, not more (the insurance fund takes the rest, as on Binance), and the
    ledger adds up."""
    market = FixedMarket({ETH: "3000", BTC: "60000"})
    trader = make_trader(market, clock)
    trader.open_short(ETH, D("20"), client_order_id="e", leverage=20)
    entry = taker_sell(D("3000"))
    w = D("10000") - fee(D("20"), entry)
    market.set(ETH, "4000")
    clock.advance(60)
    assert trader.get_positions() == []
    book = trader.store.load(trader.account_ref)
    [liq] = [o for o in book.orders.values() if o.liquidation]
    price = liq.fills[0].price
    # W + 20 (Ee - P) - 20 P taker = 0 at the bankruptcy price
    bankruptcy = (20 * entry + w) / (20 + 20 * TAKER)
    assert D("3000") < price <= bankruptcy < D("4000") and bankruptcy - price < TICK
    balance = wallet(trader)
    assert D(0) <= balance < D("0.5")
    assert balance == D("10000") + book.realized_pnl_total - book.fees_total


def test_a_stop_that_gaps_through_its_trigger_fills_at_the_market_not_at_the_trigger(clock):
    """usdm-reference: "a stop that gaps through fills at the market, not at the trigger".
    BTC is quoted at 60,000, then at 57,000 with no price between: the stop at 59,000 fills
    at 57,000 less the slippage; the take-profit of another long, gapped past the other
    way, fills at the better market price too."""
    market = FixedMarket({BTC: "60000", ETH: "3000"})
    trader = make_trader(market, clock)
    trader.open_long(BTC, D("0.1"), client_order_id="b", leverage=5, stop_loss=D("59000"))
    trader.open_long(ETH, D("1"), client_order_id="e", leverage=5, take_profit=D("3100"))
    market.set(BTC, "57000")
    market.set(ETH, "3300")
    clock.advance(30)
    stop = trader.get_order(BTC, client_order_id="b-sl")
    take = trader.get_order(ETH, client_order_id="e-tp")
    assert stop.status == OrderStatus.FILLED and stop.executed_price == taker_sell(D("57000"))
    assert take.status == OrderStatus.FILLED and take.executed_price == taker_sell(D("3300"))
    assert trader.get_positions() == []
