"""Book depth, time in force and per-symbol filters of the paper venue (issue 13).

The shipped config (environment "production") carries the depth and filters; the expected
figures are worked out here from its levels (level i at mark x (1 +/- (slippage_bps + i x
spacing_bps) / 10000), ``quantity`` each), not from the engine's helpers."""

from __future__ import annotations

import copy
from decimal import Decimal as D

import pytest

from exchanges.adapters.base import OrderRequest, OrderSide, OrderStatus, OrderType, PositionSide, VenueSpec
from exchanges.adapters.errors import InvalidOrderError
from exchanges.adapters.paper import MemoryPaperStore, PaperTrader
from exchanges.adapters.resilience import AdapterRuntime
from tests.exchanges.paper.test_brackets import SHIPPED, SHIPPED_PAPER
from tests.exchanges.paper.support import BTC, ETH, ScriptedMarket, wallet

TAKER, MAKER = D("0.0005"), D("0.0002")


def shipped_trader(market, clock, config=SHIPPED_PAPER, **extra) -> PaperTrader:
    spec = VenueSpec(venue="paper", config=config, symbol_map=SHIPPED.symbol_map("paper"),
                     account_ref="acct-depth")
    runtime = AdapterRuntime(paper_store=MemoryPaperStore(), extra={"now": clock, "market": market, **extra})
    return PaperTrader(spec=spec, credentials=None, runtime=runtime)


def btc_levels(side: str) -> list[tuple[D, D]]:
    """The shipped BTC book at a mark of 60000: (price, quantity) per level. Every price is
    a multiple of 6 (60000 x 1bp), so on BTC's 0.10 tick with no rounding."""
    params = SHIPPED_PAPER["parameters"]
    depth = params["depth"][BTC]
    slip, spacing, size = D(str(params["slippage_bps"])), D(str(depth["spacing_bps"])), D(str(depth["quantity"]))
    sign = 1 if side == "buy" else -1
    return [(D("60000") * (1 + sign * (slip + i * spacing) / 10000), size) for i in range(int(depth["levels"]))]


def request(symbol, side, quantity, *, kind=OrderType.LIMIT, price=None, tif="GTC", cid="o", reduce_only=False):
    return OrderRequest(symbol=symbol, side=side, position_side=PositionSide.LONG if side == OrderSide.BUY
                        else PositionSide.SHORT, order_type=kind, quantity=D(quantity),
                        price=D(price) if price is not None else None, client_order_id=cid,
                        time_in_force=tif, reduce_only=reduce_only)


@pytest.fixture
def market(clock):
    return ScriptedMarket(clock, BTC="60000", ETH="3000")


def test_the_shipped_btc_book_is_what_the_figures_below_assume():
    assert btc_levels("buy")[:3] == [(D("60012"), D("2")), (D("60018"), D("2")), (D("60024"), D("2"))]
    assert len(btc_levels("buy")) == 10


def test_a_market_order_walks_three_levels(market, clock):
    trader = shipped_trader(market, clock, starting_balance="100000")
    bought = trader.open_long(BTC, D("5"), client_order_id="walk", leverage=10)
    levels = btc_levels("buy")
    taken = [(levels[0][0], D("2")), (levels[1][0], D("2")), (levels[2][0], D("1"))]
    notional = sum(p * q for p, q in taken)
    assert bought.status == OrderStatus.FILLED and bought.executed_quantity == D("5")
    assert [(f.price, f.quantity) for f in bought.fills] == taken  # one fill per level
    assert bought.executed_price == notional / 5 == D("60016.8")
    assert bought.fees == notional * TAKER == D("150.042")
    [position] = trader.get_positions()
    assert position.entry_price == D("60016.8")

    sold = trader.close_long(BTC, D("5"), client_order_id="back")
    bids = btc_levels("sell")
    back = [(bids[0][0], D("2")), (bids[1][0], D("2")), (bids[2][0], D("1"))]
    assert [(f.price, f.quantity) for f in sold.fills] == back
    realized = sum(q * (p - D("60016.8")) for p, q in back)
    assert realized == D("-168")
    assert sum(f.realized_pnl for f in sold.fills) == realized
    sell_fees = sum(p * q for p, q in back) * TAKER
    assert sold.fees == sell_fees
    assert wallet(trader) == D("100000") - notional * TAKER + realized - sell_fees
    assert trader.get_positions() == []


def test_a_market_order_beyond_the_depth_fills_what_is_there_and_the_rest_expires(market, clock):
    trader = shipped_trader(market, clock, starting_balance="200000")
    levels = btc_levels("buy")
    whole = sum(q for _, q in levels)  # 20 BTC
    result = trader.open_long(BTC, D("25"), client_order_id="big", leverage=20)
    notional = sum(p * q for p, q in levels)
    assert result.status == OrderStatus.EXPIRED
    assert result.executed_quantity == whole == D("20")
    assert result.executed_price == notional / whole == D("60039")
    assert result.fees == notional * TAKER
    assert len(result.fills) == 10
    [position] = trader.get_positions()
    assert position.size == D("20")
    assert trader.get_open_orders() == []


def test_ioc_fills_what_the_depth_allows_within_its_limit_and_expires_the_rest(market, clock):
    trader = shipped_trader(market, clock, starting_balance="100000")
    trader.set_leverage(BTC, 10)
    result = trader.place_order(request(BTC, OrderSide.BUY, "10", price="60030", tif="IOC", cid="ioc"))
    within = [(p, q) for p, q in btc_levels("buy") if p <= D("60030")]  # 60012 .. 60030: 4 levels
    assert len(within) == 4
    assert result.status == OrderStatus.EXPIRED and result.executed_quantity == D("8")
    assert result.executed_price == sum(p * q for p, q in within) / 8 == D("60021")
    assert trader.get_open_orders() == []


def test_fok_fills_all_or_nothing(market, clock):
    trader = shipped_trader(market, clock, starting_balance="100000")
    trader.set_leverage(BTC, 10)
    before = trader.get_balance()
    result = trader.place_order(request(BTC, OrderSide.BUY, "10", price="60030", tif="FOK", cid="fok"))
    assert result.status == OrderStatus.EXPIRED and result.executed_quantity == 0 and not result.fills
    after = trader.get_balance()
    assert after.total_balance == before.total_balance == D("100000")
    assert after.available_balance == before.available_balance
    assert trader.get_positions() == [] and trader.get_open_orders() == []

    whole = trader.place_order(request(BTC, OrderSide.BUY, "8", price="60030", tif="FOK", cid="fok-2"))
    assert whole.status == OrderStatus.FILLED and whole.executed_quantity == D("8")


def test_gtx_expires_when_it_would_take_liquidity_and_rests_when_it_would_not(market, clock):
    trader = shipped_trader(market, clock, starting_balance="100000")
    crossing = trader.place_order(request(BTC, OrderSide.BUY, "1", price="60000", tif="GTX", cid="gtx-x"))
    assert crossing.status == OrderStatus.EXPIRED and crossing.executed_quantity == 0
    assert trader.get_positions() == [] and wallet(trader) == D("100000")
    resting = trader.place_order(request(BTC, OrderSide.BUY, "1", price="59990", tif="GTX", cid="gtx-r"))
    assert resting.status == OrderStatus.NEW
    assert [o.client_order_id for o in trader.get_open_orders()] == ["gtx-r"]


def test_a_marketable_gtc_limit_rests_its_remainder_as_maker_and_fills_when_the_path_reaches_it(market, clock):
    trader = shipped_trader(market, clock, starting_balance="100000")
    trader.set_leverage(BTC, 10)
    result = trader.place_order(request(BTC, OrderSide.BUY, "8", price="60024", cid="gtc"))
    within = [(p, q) for p, q in btc_levels("buy") if p <= D("60024")]  # 3 levels, 6 BTC
    assert result.status == OrderStatus.PARTIALLY_FILLED and result.executed_quantity == D("6")
    assert [(f.price, f.quantity, f.fee) for f in result.fills] == [(p, q, p * q * TAKER) for p, q in within]
    [open_order] = trader.get_open_orders()
    assert open_order.client_order_id == "gtc"

    # The remainder is a bid at 60024 with the path at 60000 (under it): on the path's next
    # prices it fills, at its price, as maker.
    clock.advance(2)
    done = trader.get_order(BTC, client_order_id="gtc")
    assert done.status == OrderStatus.FILLED and done.executed_quantity == D("8")
    last = done.fills[-1]
    assert last.price == D("60024") and last.quantity == D("2")
    assert last.fee == D("2") * D("60024") * MAKER
    taker_fees = sum(p * q for p, q in within) * TAKER
    assert done.fees == taker_fees + last.fee


# --------------------------------------------------------------------------- symbol filters
def test_symbol_rules_are_the_symbols_own(market, clock):
    trader = shipped_trader(market, clock)
    rules = trader.symbol_rules(BTC)
    row = SHIPPED_PAPER["parameters"]["symbol_filters"][BTC]
    assert rules.price_tick == D(str(row["tick_size"])) == D("0.1")
    assert rules.quantity_step == rules.min_quantity == D(str(row["step_size"])) == D("0.001")
    assert trader.format_quantity(BTC, D("0.12345")) == D("0.123")
    assert trader.format_price(BTC, D("60000.06")) == D("60000.1")


@pytest.mark.parametrize(("quantity", "price", "code"), [
    ("0.01", "60000.05", "-4014"),   # off BTC's 0.10 tick
    ("0.0005", "59000", "-1111"),    # below BTC's 0.001 step
    ("0.0015", "59000", "-1111"),    # not a multiple of it
])
def test_the_symbols_tick_and_step_are_enforced_with_binances_codes(market, clock, quantity, price, code):
    trader = shipped_trader(market, clock)
    with pytest.raises(InvalidOrderError) as refused:
        trader.place_order(request(BTC, OrderSide.BUY, quantity, price=price, cid="f"))
    assert refused.value.code == code
    assert trader.get_open_orders() == [] and wallet(trader) == D("10000")


def test_the_symbols_min_notional_is_enforced(market, clock):
    config = copy.deepcopy(dict(SHIPPED_PAPER))
    config["parameters"] = {**config["parameters"], "symbol_filters": {
        **config["parameters"]["symbol_filters"], ETH: {"tick_size": 0.01, "step_size": 0.001, "min_notional": 20}}}
    trader = shipped_trader(market, clock, config=config)
    with pytest.raises(InvalidOrderError) as refused:  # 0.005 x ~3000 = 15 < 20
        trader.open_long(ETH, D("0.005"), client_order_id="small")
    assert refused.value.code == "-4164"
    assert trader.open_long(ETH, D("0.007"), client_order_id="enough").status == OrderStatus.FILLED
    assert trader.open_long(BTC, D("0.001"), client_order_id="btc").status == OrderStatus.FILLED  # 60 >= 5
