"""The venue's order history (issue 13, fault 5): an order that rested while more than a
hundred other orders closed, and then filled, must still be there when the platform asks
about it, with its fill, and the ledger must add up from the fills the venue reports.
Orders are records of their own: a block holds the open ones and looks closed ones up, so
the venue forgets nothing and a call does not load the account's history.

Figures (BTC 60000, ETH 3000; slippage 2 bps, taker 0.0005, maker 0.0002):
- ETH 0.01 market buy fills at 3000 * 1.0002 = 3000.6, fee 0.0005 * 30.006 = 0.015003;
  the closing sell at 3000 * 0.9998 = 2999.4, fee 0.0005 * 29.994 = 0.014997, realized
  0.01 * (2999.4 - 3000.6) = -0.012: each round trip costs 0.012 + 0.03 = 0.042.
- the BTC 0.001 limit buy at 59000 fills at its price as maker: fee 0.0002 * 59 = 0.0118.
"""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal as D

import pytest

from exchanges.adapters.base import (
    OrderRequest,
    OrderSide,
    OrderStatus,
    OrderType,
    PositionSide,
)
from exchanges.adapters.errors import InvalidOrderError
from exchanges.adapters.paper import MemoryPaperStore
from exchanges.adapters.paper.store import PaperBook, PaperOrder
from tests.exchanges.paper.support import BTC, ETH, T0, make_trader, wallet

ROUND_TRIPS = 51  # 102 closed orders after the resting one (the old book kept the newest 100)


def rest_limit(trader):
    return trader.place_order(OrderRequest(
        symbol=BTC, side=OrderSide.BUY, position_side=PositionSide.LONG, order_type=OrderType.LIMIT,
        quantity=D("0.001"), price=D("59000"), client_order_id="rest-1"))


def churn(trader, clock, round_trips=ROUND_TRIPS):
    """Open and close a small ETH long ``round_trips`` times; the results, as reported."""
    results = []
    for i in range(round_trips):
        clock.advance(1)
        results.append(trader.open_long(ETH, D("0.01"), client_order_id=f"o-{i}"))
        clock.advance(1)
        results.append(trader.close_long(ETH, D("0.01"), client_order_id=f"c-{i}"))
    assert all(r.status == OrderStatus.FILLED for r in results)
    return results


def ledger(results):
    fills = [f for r in results for f in r.fills]
    return sum((f.realized_pnl for f in fills), D(0)), sum((f.fee for f in fills), D(0))


def test_an_order_resting_through_the_history_limit_keeps_its_fill(trader, market, clock):
    rested = rest_limit(trader)
    assert rested.status == OrderStatus.NEW
    results = churn(trader, clock)

    market.set(BTC, "58900", after=30)
    clock.advance(60)
    filled = trader.get_order(BTC, client_order_id="rest-1")

    assert filled.status == OrderStatus.FILLED and filled.order_id == rested.order_id
    assert filled.executed_quantity == D("0.001") and filled.executed_price == D("59000")
    assert [(f.quantity, f.price, f.fee) for f in filled.fills] == [(D("0.001"), D("59000"), D("0.0118"))]
    realized, fees = ledger([*results, filled])
    assert realized == ROUND_TRIPS * D("-0.012")
    assert fees == ROUND_TRIPS * D("0.03") + D("0.0118")
    assert wallet(trader) == D("10000") + realized - fees == D("9997.8462")
    # Looked up by its venue id as well, and once more (the trim after this look-up keeps it).
    assert trader.get_order(BTC, order_id=rested.order_id).fills == filled.fills


def test_orders_filled_early_in_a_sync_longer_than_the_retention_are_all_kept(trader, market, clock):
    """More than ``history_limit`` limits fill in the first minute of three untouched days
    (the sync plays the path in one-minute windows): longer ago than the retention, but in
    the block that is about to report them."""
    market.max_sync_segments = 10**6
    count = 101
    for i in range(count):
        trader.place_order(OrderRequest(
            symbol=BTC, side=OrderSide.BUY, position_side=PositionSide.LONG, order_type=OrderType.LIMIT,
            quantity=D("0.001"), price=D("59000"), client_order_id=f"rest-{i}"))
    market.set(BTC, "58900", after=30)
    start = clock.now
    clock.advance(3 * 24 * 3600)

    assert trader.get_open_orders(BTC) == []
    results = [trader.get_order(BTC, client_order_id=f"rest-{i}") for i in range(count)]
    assert all(r.status == OrderStatus.FILLED and len(r.fills) == 1 for r in results)
    assert all(start < r.fills[0].timestamp <= start + timedelta(minutes=1) for r in results)
    realized, fees = ledger(results)
    assert realized == 0 and fees == count * D("0.0118")
    assert wallet(trader) == D("10000") - fees == D("9998.8082")


def test_every_order_stays_retrievable_however_old_and_a_block_holds_only_the_open_ones(market, clock):
    store = MemoryPaperStore()
    trader = make_trader(market, clock, store)
    rest_limit(trader)
    results = churn(trader, clock)
    clock.advance(2 * 24 * 3600)
    trader.open_long(ETH, D("0.01"), client_order_id="late")

    book = store.load(trader.account_ref)  # the whole history, for display
    assert len(book.orders) == 2 * ROUND_TRIPS + 2 == len(book.fills) + 1  # the resting limit has none
    oldest = trader.get_order(ETH, client_order_id=results[0].client_order_id)
    assert oldest.status == OrderStatus.FILLED and oldest.fills[0].price == D("3000.6")
    resting = trader.get_order(BTC, client_order_id="rest-1").order_id
    with store.book(trader.account_ref, starting_balance=D("10000")) as held:
        assert set(held.orders) == {resting}
        found = held.find_order(client_order_id=results[1].client_order_id)
        assert found is not None and found.status == OrderStatus.FILLED.value


def test_a_client_order_id_from_long_ago_is_still_refused_as_a_duplicate(market, clock):
    trader = make_trader(market, clock, MemoryPaperStore())
    churn(trader, clock)
    clock.advance(3 * 24 * 3600)
    with pytest.raises(InvalidOrderError) as refused:
        trader.open_long(ETH, D("0.01"), client_order_id="o-0")
    assert refused.value.code == "-4116"


def test_a_book_of_the_old_format_is_read_and_its_orders_moved_to_records(clock):
    book = PaperBook.new("acct-old", D("10000"), now=T0)
    book.orders["1"] = PaperOrder(order_id="1", client_order_id="old-1", symbol="BTCUSDT", side="BUY",
                                  order_type="MARKET", quantity=D("1"), status="FILLED",
                                  created_at=T0, updated_at=T0)
    store = MemoryPaperStore()
    legacy = {**book.to_dict(), "format": 1, "fills": []}
    store._docs["acct-old"] = legacy
    with store.book("acct-old", starting_balance=D("10000")) as held:
        assert held.orders == {}  # closed: not in hand
        assert held.find_order(client_order_id="old-1").order_id == "1"
    assert "orders" not in store._docs["acct-old"]
    assert store.load("acct-old").orders["1"].client_order_id == "old-1"
