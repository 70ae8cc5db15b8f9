"""The paper venue without a database: MemoryPaperStore, a scripted price path and a clock
the test moves. Every expected figure is worked out here by hand from the config
(taker 0.0005, maker 0.0002, slippage 2 bps, maintenance margin rate 0.005, starting
balance 10000 USDT, quantity step 0.000001, tick 0.01)."""

from __future__ import annotations

import math
import statistics
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal as D
from pathlib import Path

import pytest

from alpha_platform.common.config import load_config
from exchanges.adapters.base import (
    ExchangeTrader,
    MarginMode,
    OrderRequest,
    OrderSide,
    OrderStatus,
    OrderType,
    PositionSide,
    VenueSpec,
)
from exchanges.adapters.errors import (
    BadPrecision,
    InsufficientFunds,
    InvalidOrderError,
    OrderNotFound,
    UnknownSymbol,
)
from exchanges.adapters.paper import MemoryPaperStore, PaperTrader, SimulatedMarket
from exchanges.adapters.paper.market import TIMEFRAMES
from exchanges.adapters.paper.trader import build_market
from exchanges.adapters.registry import adapter_class
from exchanges.adapters.resilience import AdapterRuntime

ROOT = Path(__file__).resolve().parents[2]
CONFIG = load_config(ROOT / "config" / "exchanges.yaml", environment="testing")
PAPER = CONFIG.venue_block("paper")
T0 = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
BTC, ETH = "BTC/USDT", "ETH/USDT"


# --------------------------------------------------------------------------- test doubles
class Clock:
    def __init__(self, start: datetime = T0) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> datetime:
        self.now += timedelta(seconds=seconds)
        return self.now


class ScriptedMarket:
    """Prices from keyframes, linear in between, flat after the last one."""

    def __init__(self, clock: Clock, **prices: str) -> None:
        self.clock = clock
        self.points: dict[str, list[tuple[datetime, D]]] = {}
        for key, price in prices.items():
            self.points[f"{key}/USDT"] = [(clock.now, D(price))]

    def set(self, symbol: str, price: str, *, after: float = 0.0) -> None:
        """The price is ``price`` ``after`` seconds from now (the clock does not move)."""
        at = self.clock.now + timedelta(seconds=after)
        self.points[symbol].append((at, D(price)))

    @property
    def symbols(self) -> list[str]:
        return list(self.points)

    def price(self, symbol: str, at: datetime) -> D:
        points = self.points[symbol]
        if at <= points[0][0]:
            return points[0][1]
        for (t0, p0), (t1, p1) in zip(points, points[1:]):
            if t0 <= at <= t1:
                if t1 == t0:
                    return p1
                w = D(str((at - t0).total_seconds() / (t1 - t0).total_seconds()))
                return (p0 + (p1 - p0) * w).quantize(D("0.01"))
        return points[-1][1]

    def path_extremes(self, symbol: str, start: datetime, end: datetime) -> tuple[D, D]:
        prices = [self.price(symbol, start), self.price(symbol, end)]
        prices += [p for t, p in self.points[symbol] if start < t < end]
        return min(prices), max(prices)


def make_trader(market, clock: Clock, store: MemoryPaperStore | None = None, *,
                account_ref: str = "acct-test", **extra) -> PaperTrader:
    spec = VenueSpec(venue="paper", config=PAPER, symbol_map=CONFIG.symbol_map("paper"),
                     account_ref=account_ref)
    runtime = AdapterRuntime(paper_store=store or MemoryPaperStore(),
                             extra={"now": clock, "market": market, **extra})
    return PaperTrader(spec=spec, credentials=None, runtime=runtime)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def market(clock: Clock) -> ScriptedMarket:
    return ScriptedMarket(clock, BTC="60000", ETH="3000")


@pytest.fixture
def trader(market: ScriptedMarket, clock: Clock) -> PaperTrader:
    return make_trader(market, clock)


def wallet(trader: PaperTrader) -> D:
    return trader.get_balance().total_balance


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


# --------------------------------------------------------------------------- idempotency
def test_duplicate_client_order_id_is_refused_and_the_first_is_found(trader):
    first = trader.open_long(BTC, D("0.1"), client_order_id="dup", leverage=10)
    with pytest.raises(InvalidOrderError) as err:
        trader.open_long(BTC, D("0.2"), client_order_id="dup")
    assert err.value.code == "-4116"
    found = trader.get_order(BTC, client_order_id="dup")
    assert found.order_id == first.order_id and found.executed_quantity == D("0.1")
    assert trader.get_positions()[0].size == D("0.1")


# --------------------------------------------------------------------------- symbols
def test_symbol_rules_and_formatting_come_from_the_config(trader):
    rules = trader.symbol_rules(BTC)
    assert (rules.quantity_step, rules.price_tick, rules.min_notional, rules.max_leverage) == (
        D("0.000001"), D("0.01"), D("5.0"), 20)
    assert trader.format_quantity(BTC, D("0.1234567")) == D("0.123456")
    assert trader.format_price(BTC, D("60000.005")) == D("60000.00")
    assert trader.validate_symbol(BTC) and not trader.validate_symbol("DOGE/USDT")
    with pytest.raises(UnknownSymbol):
        trader.get_market_price("DOGE/USDT")
    with pytest.raises(BadPrecision):
        trader.open_long(BTC, D("0.0000001"), client_order_id="dust", leverage=10)
    with pytest.raises(InvalidOrderError) as err:  # 0.00005 * 60012 = 3.0006 < 5
        trader.open_long(BTC, D("0.00005"), client_order_id="tiny")
    assert err.value.code == "-4164"


# --------------------------------------------------------------------------- the seed's scenario
def test_seed_scenario_open_read_protect_close_balance(trader, market, clock):
    opened = trader.open_long(BTC, D("0.1"), client_order_id="seed-open", leverage=5)
    assert opened.status == OrderStatus.FILLED and opened.executed_price == D("60012")
    [position] = trader.get_positions([BTC])
    assert (position.symbol, position.side, position.size) == (BTC, PositionSide.LONG, D("0.1"))

    stop = trader.place_order(OrderRequest(
        symbol=BTC, side=OrderSide.SELL, position_side=PositionSide.LONG,
        order_type=OrderType.STOP_MARKET, quantity=position.size, stop_price=D("57000"),
        reduce_only=True, client_order_id="seed-sl"))
    assert stop.status == OrderStatus.NEW

    clock.advance(300)
    market.set(BTC, "61000")
    closed = trader.close_long(BTC, position.size, client_order_id="seed-close")
    # 61000 * 0.9998 = 60987.80; realized 0.1 * 975.8 = 97.58; fee 0.0005 * 6098.78 = 3.04939
    assert closed.executed_price == D("60987.80") and closed.fills[0].realized_pnl == D("97.58")
    assert trader.get_order(BTC, client_order_id="seed-sl").status == OrderStatus.EXPIRED

    balance = trader.get_balance()
    # 10000 - 3.0006 (0.0005 * 6001.2) + 97.58 - 3.04939
    assert balance.total_balance == balance.available_balance == D("10091.53001")
    assert balance.unrealized_pnl == 0 and trader.get_positions() == []


# --------------------------------------------------------------------------- the store
def test_a_book_survives_a_new_trader_and_a_failed_block_saves_nothing(market, clock):
    store = MemoryPaperStore()
    make_trader(market, clock, store).open_long(BTC, D("0.1"), client_order_id="x", leverage=10)
    again = make_trader(market, clock, store)
    assert again.get_positions()[0].size == D("0.1")
    with pytest.raises(RuntimeError):
        with store.book("acct-test", starting_balance=D("1")) as book:
            book.wallet_balance = D("0")
            raise RuntimeError("boom")
    assert wallet(again) == D("9996.9994")  # 10000 - 0.0005 * 6001.2
    assert make_trader(market, clock, store, account_ref="other").get_positions() == []


# --------------------------------------------------------------------------- the simulated market
SIM_SYMBOLS = PAPER["parameters"]["market_data"]["symbols"]
SEED = PAPER["parameters"]["market_data"]["seed"]


def test_simulated_market_is_a_deterministic_function_of_time():
    a, b = SimulatedMarket(SEED, SIM_SYMBOLS), SimulatedMarket(SEED, SIM_SYMBOLS)
    other = SimulatedMarket(SEED + 1, SIM_SYMBOLS)
    moments = [T0 + timedelta(seconds=s * 7919.37) for s in range(-40, 40)]
    for symbol in SIM_SYMBOLS:
        assert [a.price(symbol, t) for t in moments] == [b.price(symbol, t) for t in moments]
        assert a.candles(symbol, "15m", 50, end=T0) == b.candles(symbol, "15m", 50, end=T0)
        assert [a.price(symbol, t) for t in moments] != [other.price(symbol, t) for t in moments]
    assert a.price(BTC, a.epoch) == D("65000.00")  # the start price is the price at the epoch
    assert a.price(BTC, T0).as_tuple().exponent == -2  # rounded to the venue's tick


@pytest.mark.parametrize("symbol", list(SIM_SYMBOLS))
def test_simulated_volatility_is_realistic(symbol):
    market = SimulatedMarket(SEED, SIM_SYMBOLS)
    configured = SIM_SYMBOLS[symbol]["annual_volatility"]
    prices = [float(market.price(symbol, T0 + timedelta(minutes=i))) for i in range(7 * 1440 + 1)]
    returns = [math.log(b / a) for a, b in zip(prices, prices[1:])]
    annualised = statistics.pstdev(returns) * math.sqrt(365.25 * 1440)
    assert configured / 2 < annualised < configured * 2
    assert abs(annualised / configured - 1) < 0.15  # in fact it is close to exact


def test_candles_agree_with_price():
    market = SimulatedMarket(SEED, SIM_SYMBOLS)
    end = T0 + timedelta(seconds=1234.5)
    for timeframe in ("1m", "1h", "1d"):
        candles = market.candles(ETH, timeframe, 30, end=end)
        seconds = TIMEFRAMES[timeframe]
        assert len(candles) == 30
        for candle, after in zip(candles, candles[1:]):
            assert after.timestamp - candle.timestamp == timedelta(seconds=seconds)
            assert candle.open == market.price(ETH, candle.timestamp)
            assert candle.close == market.price(ETH, candle.timestamp + timedelta(seconds=seconds)) == after.open
            assert candle.low <= min(candle.open, candle.close) <= max(candle.open, candle.close) <= candle.high
            assert candle.volume > 0
        assert candles[-1].timestamp <= end < candles[-1].timestamp + timedelta(seconds=seconds)
        assert candles[-1].close == market.price(ETH, end)


def test_path_extremes_bound_every_price_in_the_window():
    market = SimulatedMarket(SEED, SIM_SYMBOLS)
    start = T0 + timedelta(seconds=0.25)
    low, high = market.path_extremes(BTC, start, start + timedelta(seconds=200))
    inside = [market.price(BTC, start + timedelta(seconds=s / 4)) for s in range(801)]
    assert low == min(inside) and high == max(inside)  # linear within a second: exact


def test_trader_on_the_simulated_source_follows_the_clock(clock):
    spec = VenueSpec(venue="paper", config=PAPER, symbol_map=CONFIG.symbol_map("paper"), account_ref="sim")
    trader = PaperTrader(spec=spec, credentials=None,
                         runtime=AdapterRuntime(paper_store=MemoryPaperStore(), extra={"now": clock}))
    reference = build_market(PAPER, symbol_map=CONFIG.symbol_map("paper"))  # the configured walk, epoch included
    assert trader.get_market_price(BTC) == reference.price(BTC, clock.now)
    ticker = trader.get_ticker(BTC)
    assert ticker.bid < ticker.last < ticker.ask and ticker.change_24h_percent is not None
    trader.open_long(BTC, D("0.05"), client_order_id="sim-1", leverage=5,
                     stop_loss=reference.price(BTC, clock.now) * D("0.5"))
    clock.advance(3600)
    [position] = trader.get_positions()
    assert position.mark_price == reference.price(BTC, clock.now)
    candles = trader.get_candles(BTC, "5m", 24)
    assert len(candles) == 24 and candles[-1].close == position.mark_price
