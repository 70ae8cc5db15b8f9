"""Hyperliquid orders through the SDK: the full scenario, grouped brackets, price rounding,
market orders as IOC limits, time in force and cancels, cloids from client order ids, leverage
and margin mode."""

from __future__ import annotations

from decimal import ROUND_DOWN, ROUND_UP, Decimal

import pytest

from exchanges.adapters.base import (
    ExchangeTrader,
    MarginMode,
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
from exchanges.adapters.hyperliquid import cloid_for, round_price
from tests.exchanges.hyperliquid.support import (
    FakeClock,
    make_trader,
    order_wires,
)


# ------------------------------------------------------------------------------- scenario
def test_full_scenario_open_read_protect_close_balance(server, trader, main_wallet):
    assert isinstance(trader, ExchangeTrader)
    opened = trader.open_long("BTC/USDT", Decimal("0.5"), client_order_id="dec-1-open", leverage=5)

    assert opened.status == OrderStatus.FILLED
    assert opened.executed_quantity == Decimal("0.5") and opened.executed_price == Decimal("65000")
    assert opened.fees == Decimal("14.625")  # 0.5 * 65000 * 0.045% taker, from the venue's fills
    assert opened.fee_currency == "USDC" and opened.timestamp.tzinfo is not None
    assert server.position(main_wallet.address, "BTC") == {"szi": Decimal("0.5"), "entry": Decimal("65000")}
    assert server.account(main_wallet.address).leverage["BTC"] == (5, True)
    # leverage was set before the order was sent
    kinds = [r["kind"] for r in server.exchange_requests()]
    assert kinds == ["updateLeverage", "order"]

    server.set_mark("BTC", "66000")
    [position] = trader.get_positions()
    assert (position.symbol, position.side, position.size) == ("BTC/USDT", PositionSide.LONG, Decimal("0.5"))
    assert position.entry_price == Decimal("65000") and position.mark_price == Decimal("66000")
    assert position.unrealized_pnl == Decimal("500") and position.leverage == Decimal("5")
    assert position.margin == Decimal("6600") and position.margin_type == "cross"
    state = server.clearinghouse(main_wallet.address)["assetPositions"][0]["position"]
    assert position.liquidation_price == Decimal(state["liquidationPx"]) > 0
    assert position.percentage_pnl == Decimal(state["returnOnEquity"]) * 100
    assert trader.get_positions(["ETH/USDT"]) == []

    stop = trader.place_order(OrderRequest(
        symbol="BTC/USDT", side=OrderSide.SELL, position_side=PositionSide.LONG,
        order_type=OrderType.STOP_MARKET, quantity=Decimal("0.5"), client_order_id="dec-1-sl",
        stop_price=Decimal("63000.4"), reduce_only=True))
    assert stop.status == OrderStatus.NEW and stop.stop_price == Decimal("63000")
    venue_stop = server.order_by_cloid(main_wallet.address, cloid_for("dec-1-sl"))
    assert venue_stop.status == "open" and venue_stop.tpsl == "sl" and venue_stop.is_market
    assert venue_stop.trigger_px == Decimal("63000") and venue_stop.reduce_only
    assert [o.client_order_id for o in trader.get_open_orders("BTC/USDT")] == ["dec-1-sl"]

    closed = trader.close_long("BTC/USDT", Decimal("0.5"), client_order_id="dec-2-close")
    assert closed.status == OrderStatus.FILLED and closed.reduce_only
    assert closed.fills[0].realized_pnl == Decimal("500")
    assert server.position(main_wallet.address, "BTC") is None
    # the venue cancels a reduce-only stop once there is nothing left to reduce
    assert trader.get_order("BTC/USDT", client_order_id="dec-1-sl").status == OrderStatus.CANCELLED
    assert trader.get_positions() == [] and trader.get_open_orders() == []

    balance = trader.get_balance()
    venue = server.clearinghouse(main_wallet.address)
    assert balance.margin_balance == Decimal(venue["marginSummary"]["accountValue"])
    assert balance.available_balance == Decimal(venue["withdrawable"])
    assert balance.total_balance == Decimal("10000") + Decimal("500") - opened.fees - closed.fees
    assert balance.unrealized_pnl == 0 and balance.currency == "USDC"
    # one order action per order, nothing sent twice
    assert len(server.exchange_requests("order")) == 3


def test_attached_stop_loss_and_take_profit_are_grouped_with_the_entry(server, trader, main_wallet):
    result = trader.open_short("ETH/USDT", Decimal("1"), client_order_id="dec-7",
                               stop_loss=Decimal("3300"), take_profit=Decimal("3000"))
    [action] = server.exchange_requests("order")
    assert action["body"]["action"]["grouping"] == "normalTpsl"
    sl, tp = result.attached
    assert (sl.client_order_id, sl.order_type, sl.side) == ("dec-7:sl", OrderType.STOP_MARKET, OrderSide.BUY)
    assert (tp.client_order_id, tp.order_type, tp.stop_price) == ("dec-7:tp", OrderType.TAKE_PROFIT_MARKET,
                                                                  Decimal("3000"))
    assert sl.status == tp.status == OrderStatus.NEW and sl.order_id and tp.order_id and sl.reduce_only
    wires = action["body"]["action"]["orders"]
    assert [w["t"]["trigger"]["tpsl"] for w in wires[1:]] == ["sl", "tp"]
    assert all(w["t"]["trigger"]["isMarket"] and w["r"] for w in wires[1:])

    server.set_mark("ETH", "3310")  # the stop fires, the target is cancelled with the position gone
    assert server.position(main_wallet.address, "ETH") is None
    assert trader.get_order("ETH/USDT", order_id=sl.order_id).status == OrderStatus.FILLED
    assert trader.get_order("ETH/USDT", client_order_id="dec-7:tp").status == OrderStatus.CANCELLED


def test_brackets_on_a_resting_limit_wait_for_its_fill(server, trader, main_wallet):
    result = trader.open_long("SOL/USDT", Decimal("1"), client_order_id="dec-8", order_type="LIMIT",
                              price=Decimal("140"), stop_loss=Decimal("130"))
    assert result.status == OrderStatus.NEW
    [sl] = result.attached
    assert sl.status == OrderStatus.NEW and sl.order_id == "" and sl.raw_data["status"] == "waitingForFill"
    server.set_mark("SOL", "139")
    assert trader.get_order("SOL/USDT", client_order_id="dec-8").status == OrderStatus.FILLED
    assert trader.get_order("SOL/USDT", client_order_id="dec-8:sl").status == OrderStatus.NEW


def test_bracket_on_the_wrong_side_is_refused_before_sending(server, trader):
    with pytest.raises(InvalidOrderError, match="wrong side"):
        trader.open_long("BTC/USDT", Decimal("0.01"), client_order_id="x", stop_loss=Decimal("66000"))
    assert server.exchange_requests() == []


# ------------------------------------------------------------------------------- pricing
@pytest.mark.parametrize(("price", "sz_decimals", "rounding", "expected"), [
    (Decimal("65012.345"), 5, ROUND_DOWN, Decimal("65012")),
    (Decimal("123456.7"), 5, ROUND_UP, Decimal("123457")),  # integers always allowed
    (Decimal("3107.83872"), 4, ROUND_UP, Decimal("3107.9")),
    (Decimal("149.2549"), 2, ROUND_DOWN, Decimal("149.25")),
    (Decimal("0.000123456"), 0, ROUND_DOWN, Decimal("0.000123")),  # 6 - szDecimals decimals
    (Decimal("1.234567"), 3, ROUND_DOWN, Decimal("1.234")),
])
def test_round_price_follows_the_venue_rule(price, sz_decimals, rounding, expected):
    assert round_price(price, sz_decimals, rounding) == expected


def test_market_order_is_an_ioc_limit_within_slippage(server, trader):
    server.set_mark("ETH", "3123.4", mid="3123.456")
    result = trader.open_short("ETH/USDT", Decimal("0.12345"), client_order_id="dec-3")
    [wire] = order_wires(server)
    assert wire["t"] == {"limit": {"tif": "Ioc"}} and wire["b"] is False and wire["r"] is False
    assert wire["s"] == "0.1234"  # szDecimals 4, rounded down
    # 3123.456 * (1 - 0.005) = 3107.83872 -> 5 significant figures, towards the mid
    assert wire["p"] == "3107.9"
    mid = Decimal("3123.456")
    assert (mid - Decimal(wire["p"])) / mid <= Decimal("0.005")
    assert result.status == OrderStatus.FILLED and result.executed_price == Decimal("3123.4")

    server.set_mark("BTC", "65000", mid="65000.7")
    trader.open_long("BTC/USDT", Decimal("0.001"), client_order_id="dec-4")
    wire = order_wires(server)[-1]
    assert wire["p"] == "65325" and wire["b"] is True  # 65325.7035 rounded down to 5 sig figs


def test_limit_time_in_force_mapping_and_cancel(server, trader, main_wallet):
    gtc = trader.open_long("BTC/USDT", Decimal("0.01"), client_order_id="lim-1", order_type="LIMIT",
                           price=Decimal("60000.55"))
    alo = trader.open_long("BTC/USDT", Decimal("0.01"), client_order_id="lim-2", order_type="LIMIT",
                           price=Decimal("59000"), time_in_force="ALO")
    assert [w["t"]["limit"]["tif"] for w in order_wires(server)] == ["Gtc", "Alo"]
    assert order_wires(server)[0]["p"] == "60000"  # a buy's price is never rounded up
    assert gtc.status == alo.status == OrderStatus.NEW and gtc.price == Decimal("60000")
    assert {o.client_order_id for o in trader.get_open_orders()} == {"lim-1", "lim-2"}

    cancelled = trader.cancel_order("BTC/USDT", client_order_id="lim-1")
    assert cancelled.status == OrderStatus.CANCELLED
    assert trader.cancel_order("BTC/USDT", client_order_id="lim-1").status == OrderStatus.CANCELLED
    assert trader.cancel_order("BTC/USDT", order_id=alo.order_id).status == OrderStatus.CANCELLED
    assert [r["kind"] for r in server.exchange_requests()] == ["order", "order", "cancelByCloid",
                                                                "cancelByCloid", "cancel"]
    nonces = [r["body"]["nonce"] for r in server.exchange_requests()]  # actions in quick succession
    assert len(set(nonces)) == len(nonces)
    with pytest.raises(OrderNotFound):
        trader.cancel_order("BTC/USDT", client_order_id="never-sent")
    with pytest.raises(InvalidOrderError):
        trader.open_long("BTC/USDT", Decimal("0.01"), client_order_id="lim-3", order_type="LIMIT",
                         price=Decimal("60000"), time_in_force="FOK")


# ------------------------------------------------------------------------------- cloid
def test_cloid_is_derived_from_the_client_order_id(server, trader, main_wallet):
    cloid = cloid_for("dec-42")
    assert cloid == cloid_for("dec-42") and cloid != cloid_for("dec-43")
    assert cloid.startswith("0x") and len(cloid) == 34 and int(cloid, 16) >= 0

    result = trader.open_long("SOL/USDT", Decimal("1"), client_order_id="dec-42")
    [wire] = order_wires(server)
    assert wire["c"] == cloid and result.raw_data["cloid"] == cloid
    assert result.client_order_id == "dec-42"
    assert server.order_by_cloid(main_wallet.address, cloid).oid == int(result.order_id)

    found = trader.get_order("SOL/USDT", client_order_id="dec-42")
    assert (found.order_id, found.status, found.client_order_id) == (result.order_id, OrderStatus.FILLED, "dec-42")
    assert found.executed_price == Decimal("150") and found.fees > 0
    by_oid = trader.get_order("SOL/USDT", order_id=result.order_id)
    assert by_oid.client_order_id == "dec-42"  # this trader sent it (a display nicety only)
    assert result.venue_client_order_id == found.venue_client_order_id == by_oid.venue_client_order_id == cloid
    # a trader that never saw the order (another process) finds it by the same cloid
    other = make_trader(server, trader.credentials.reveal("private_key"), main_wallet.address, FakeClock())
    assert other.get_order("SOL/USDT", client_order_id="dec-42").order_id == result.order_id

    with pytest.raises(OrderNotFound):
        trader.get_order("SOL/USDT", client_order_id="dec-unknown")


def test_duplicate_client_order_id_returns_the_existing_order(server, trader):
    first = trader.open_long("SOL/USDT", Decimal("1"), client_order_id="dec-9")
    second = trader.open_long("SOL/USDT", Decimal("1"), client_order_id="dec-9")
    assert second.order_id == first.order_id and second.status == OrderStatus.FILLED
    assert len(server.placed_orders()) == 1


# ------------------------------------------------------------------------------- leverage
def test_leverage_and_margin_mode_through_the_sdk(server, agent, main_wallet, clock, trader):
    trader.set_leverage("ETH/USDT", 7)
    [req] = server.exchange_requests("updateLeverage")
    assert req["body"]["action"] == {"type": "updateLeverage", "asset": 1, "isCross": True, "leverage": 7}
    assert server.account(main_wallet.address).leverage["ETH"] == (7, True)
    with pytest.raises(InvalidOrderError):  # above the venue's (and config's) cap: not sent
        trader.set_leverage("ETH/USDT", 26)
    with pytest.raises(InvalidOrderError, match="cross-margin only"):
        trader.set_margin_mode("ETH/USDT", MarginMode.ISOLATED)
    assert trader.symbol_rules("BTC/USDT").max_leverage == 20  # config per_symbol cap under the venue's 40

    isolated_ok = make_trader(server, agent.key.hex(), main_wallet.address, clock, cross_margin_only=False)
    isolated_ok.set_margin_mode("ETH/USDT", MarginMode.ISOLATED)
    assert server.account(main_wallet.address).leverage["ETH"] == (7, False)
    isolated_ok.set_leverage("ETH/USDT", 3)
    assert server.account(main_wallet.address).leverage["ETH"] == (3, False)
