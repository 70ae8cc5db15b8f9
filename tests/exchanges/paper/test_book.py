"""Paper book bookkeeping: duplicate client order ids, symbol rules from the config, the
seed's scenario end to end, and a book that survives a new trader (a failed block saves nothing)."""

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
    BadPrecision,
    InvalidOrderError,
    UnknownSymbol,
)
from exchanges.adapters.paper import MemoryPaperStore
from tests.exchanges.paper.support import (
    BTC,
    make_trader,
    wallet,
)


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
