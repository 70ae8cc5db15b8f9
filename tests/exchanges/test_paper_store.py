"""The paper venue's books in the database: they survive a new trader (a restart, another
worker), a failed block saves nothing, and concurrent writers on one account are
serialised by the row lock (SQLite and PostgreSQL)."""

from __future__ import annotations

import threading
import time
import traceback
from decimal import Decimal as D

import pytest
from django.db import connection

from exchanges.adapters.base import OrderStatus
from exchanges.adapters.paper import PaperStore
from exchanges.models import PaperAccountState
from exchanges.paper_store import DjangoPaperStore
from tests.exchanges.paper.support import BTC, Clock, ScriptedMarket, make_trader
from tests.factories import make_account


class SlowMarket:
    """Takes its time inside the lock, so an unserialised writer would surely interleave."""

    def __init__(self, inner: ScriptedMarket, delay: float = 0.002) -> None:
        self.inner, self.delay = inner, delay
        self.symbols = inner.symbols

    def price(self, symbol, at):
        time.sleep(self.delay)
        return self.inner.price(symbol, at)

    def path_extremes(self, symbol, start, end):
        return self.inner.path_extremes(symbol, start, end)


@pytest.mark.django_db
def test_book_survives_a_new_trader_instance():
    clock = Clock()
    market = ScriptedMarket(clock, BTC="60000")
    assert isinstance(DjangoPaperStore(), PaperStore)
    first = make_trader(market, clock, DjangoPaperStore(), account_ref="acct-persist")
    first.open_long(BTC, D("0.5"), client_order_id="p-open", leverage=10, stop_loss=D("55000"))

    clock.advance(60)
    market.set(BTC, "61000")
    second = make_trader(market, clock, DjangoPaperStore(), account_ref="acct-persist")
    [position] = second.get_positions()
    assert position.size == D("0.5") and position.entry_price == D("60012")
    assert position.unrealized_pnl == D("494")  # 0.5 * (61000 - 60012)
    assert [o.client_order_id for o in second.get_open_orders(BTC)] == ["p-open-sl"]
    assert second.get_order(BTC, client_order_id="p-open").status == OrderStatus.FILLED
    assert second.get_balance().total_balance == D("9984.997")  # 10000 - 0.0005 * 30006

    row = PaperAccountState.objects.get(account_ref="acct-persist")
    assert row.wallet_balance == D("9984.997") and row.starting_balance == D("10000")
    assert row.open_positions == {BTC: {"quantity": "0.500000", "entry_price": "60012.00"}}
    assert row.open_orders == 1 and row.last_sync_at == clock.now
    assert PaperAccountState.objects.filter(open_positions__has_key=BTC).count() == 1


@pytest.mark.django_db
def test_a_failed_block_saves_nothing_and_load_is_a_snapshot():
    store = DjangoPaperStore()
    with store.book("acct-rollback", starting_balance=D("500")) as book:
        assert book.wallet_balance == D("500")
    with pytest.raises(RuntimeError):
        with store.book("acct-rollback", starting_balance=D("500")) as book:
            book.wallet_balance = D("1")
            raise RuntimeError("the engine refused")
    assert store.load("acct-rollback").wallet_balance == D("500")
    assert store.load("nobody") is None
    store.delete("acct-rollback")
    assert not PaperAccountState.objects.filter(account_ref="acct-rollback").exists()


@pytest.mark.django_db
def test_the_book_of_an_exchange_account_goes_with_it(user):
    account = make_account(user)
    clock = Clock()
    trader = make_trader(ScriptedMarket(clock, BTC="60000"), clock, DjangoPaperStore(),
                         account_ref=account.account_ref)
    trader.open_long(BTC, D("0.1"), client_order_id="a-1", leverage=10)
    row = PaperAccountState.objects.get(account_ref=account.account_ref)
    assert row.account_id == account.pk
    account.delete()
    assert not PaperAccountState.objects.filter(pk=row.pk).exists()


@pytest.mark.django_db(transaction=True)
def test_concurrent_orders_on_one_account_never_corrupt_the_book():
    store = DjangoPaperStore()
    clock = Clock()
    market = SlowMarket(ScriptedMarket(clock, BTC="60000"))
    per_thread, threads = 8, 2
    barrier = threading.Barrier(threads)
    errors: list[str] = []

    def worker(n: int) -> None:
        try:
            trader = make_trader(market, clock, store, account_ref="acct-race")  # like another worker
            barrier.wait()
            for i in range(per_thread):
                trader.open_long(BTC, D("0.01"), client_order_id=f"w{n}-{i}", leverage=10)
        except BaseException:  # noqa: BLE001 - reported below
            errors.append(traceback.format_exc())
        finally:
            connection.close()

    pool = [threading.Thread(target=worker, args=(n,)) for n in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join(timeout=120)
    assert not any(t.is_alive() for t in pool), "a writer is still waiting for the lock"
    assert not errors, "\n".join(errors)

    count = per_thread * threads
    book = store.load("acct-race")
    # every fill at 60012, fee 0.0005 * 0.01 * 60012 = 0.30006 each
    assert book.wallet_balance == D("10000") - count * D("0.30006")
    assert book.positions[BTC].quantity == count * D("0.01")
    assert book.positions[BTC].entry_price == D("60012")
    assert len(book.orders) == count == len(book.fills)
    assert len({o.order_id for o in book.orders.values()}) == count
    assert {o.client_order_id for o in book.orders.values()} == {
        f"w{n}-{i}" for n in range(threads) for i in range(per_thread)}
    row = PaperAccountState.objects.get(account_ref="acct-race")
    assert row.wallet_balance == book.wallet_balance


def _statements_of_one_round_trip(trader, tag: str) -> tuple[int, int]:
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as opened:
        trader.open_long(BTC, D("0.01"), client_order_id=f"{tag}-open", leverage=10)
    with CaptureQueriesContext(connection) as closed:
        trader.close_long(BTC, D("0.01"), client_order_id=f"{tag}-close")
    return len(opened.captured_queries), len(closed.captured_queries)


@pytest.mark.django_db
def test_an_orders_statements_do_not_grow_with_the_accounts_history():
    """Orders are records of their own: a block reads the state and the open orders, so an
    account with 400 past orders costs what a new one costs, statement for statement, and
    the bytes of its state do not grow."""
    clock = Clock()
    market = ScriptedMarket(clock, BTC="60000")
    trader = make_trader(market, clock, DjangoPaperStore(), account_ref="acct-history")
    trader.get_balance()
    fresh = _statements_of_one_round_trip(trader, "first")
    state_bytes = len(str(PaperAccountState.objects.get(account_ref="acct-history").book))
    for i in range(200):
        clock.advance(1)
        _statements_of_one_round_trip(trader, f"h{i}")
    assert _statements_of_one_round_trip(trader, "last") == fresh
    row = PaperAccountState.objects.get(account_ref="acct-history")
    assert len(str(row.book)) <= state_bytes + 16  # a few more digits in the sequence
    assert row.order_records.count() == 2 * 202
    assert trader.get_order(BTC, client_order_id="first-open").status == OrderStatus.FILLED
    assert max(fresh) <= 8, fresh
