"""The paper venue's outage switch: every call fails inside the adapter's Guard, so the
account's circuit breaker opens after the configured failures and closes after the
cool-down once the venue answers again; an order sent meanwhile is recorded, not placed."""

from __future__ import annotations

from decimal import Decimal as D
from pathlib import Path

import pytest
from django.core.management import call_command

from alpha_platform.common.config import load_config
from exchanges.adapters.base import OrderRequest, OrderSide, OrderType, PositionSide, VenueSpec
from exchanges.adapters.errors import CircuitOpenError, ExchangeUnavailable
from exchanges.adapters.paper import MemoryPaperStore, PaperTrader
from exchanges.adapters.paper.trader import OUTAGE_KEY
from exchanges.adapters.resilience import AdapterRuntime, MemoryStore
from tests.fakes.markets import FixedMarket

ROOT = Path(__file__).resolve().parents[2]
CONFIG = load_config(ROOT / "config" / "exchanges.yaml", environment="testing")
PAPER = CONFIG.venue_block("paper")
THRESHOLD = int(PAPER["circuit_breaker"]["failure_threshold"])
COOLDOWN = float(PAPER["circuit_breaker"]["cooldown_seconds"])


class Clock:
    def __init__(self) -> None:
        self.t = 1_000_000.0

    def __call__(self) -> float:
        return self.t


def _trader(clock: Clock, store: MemoryStore, book: MemoryPaperStore, changes: list) -> PaperTrader:
    runtime = AdapterRuntime(store=store, clock=clock, paper_store=book,
                             on_breaker_change=lambda key, state, reason: changes.append((key, state)),
                             extra={"market": FixedMarket({"BTC/USDT": "50000", "ETH/USDT": "3000"})})
    spec = VenueSpec(venue="paper", config=PAPER, symbol_map=CONFIG.symbol_map("paper"), account_ref="acct1")
    return PaperTrader(spec=spec, credentials=None, runtime=runtime)


def _client_ids(book: MemoryPaperStore) -> set[str]:
    loaded = book.load("acct1")
    return {o.client_order_id for o in loaded.orders.values()} if loaded else set()


def _buy(cid: str) -> OrderRequest:
    return OrderRequest(symbol="BTC/USDT", side=OrderSide.BUY, position_side=PositionSide.LONG,
                        order_type=OrderType.MARKET, quantity=D("0.01"), client_order_id=cid)


def test_outage_opens_the_breaker_and_it_closes_after_the_cooldown():
    clock, book, changes = Clock(), MemoryPaperStore(), []
    store = MemoryStore(clock=clock)
    trader = _trader(clock, store, book, changes)
    assert trader.get_market_price("BTC/USDT") == D("50000")

    store.set(OUTAGE_KEY, "maintenance")
    for _ in range(THRESHOLD):
        with pytest.raises(ExchangeUnavailable, match="simulated outage"):
            trader.get_balance()
    assert changes == [("paper:acct1", "open")]
    with pytest.raises(CircuitOpenError):  # refused before the venue is called
        trader.place_order(_buy("o-1"))
    assert _client_ids(book) == set()

    store.delete(OUTAGE_KEY)
    with pytest.raises(CircuitOpenError):
        trader.get_balance()  # still cooling down
    clock.t += COOLDOWN + 0.1
    assert trader.get_balance().total_balance > 0  # the half-open probe succeeds
    assert changes == [("paper:acct1", "open"), ("paper:acct1", "closed")]
    result = trader.place_order(_buy("o-2"))
    assert result.client_order_id == "o-2" and result.executed_quantity == D("0.01")


def test_an_order_sent_during_the_outage_is_known_not_placed():
    clock, changes = Clock(), []
    store, book = MemoryStore(clock=clock), MemoryPaperStore()
    trader = _trader(clock, store, book, changes)
    store.set(OUTAGE_KEY, "down")
    with pytest.raises(ExchangeUnavailable):  # not OrderStatusUnknown: nothing reached the book
        trader.place_order(_buy("o-3"))
    store.delete(OUTAGE_KEY)
    assert _client_ids(book) == set()
    trader.place_order(_buy("o-3"))  # the same client id, once the venue is back: one order
    assert _client_ids(book) == {"o-3"}


def test_the_half_open_probe_reopens_while_the_outage_lasts():
    clock, changes = Clock(), []
    store = MemoryStore(clock=clock)
    trader = _trader(clock, store, MemoryPaperStore(), changes)
    store.set(OUTAGE_KEY, "down")
    for _ in range(THRESHOLD):
        with pytest.raises(ExchangeUnavailable):
            trader.get_ticker("BTC/USDT")
    clock.t += COOLDOWN + 0.1
    with pytest.raises(ExchangeUnavailable):
        trader.get_ticker("BTC/USDT")  # the probe fails: open again for another cool-down
    with pytest.raises(CircuitOpenError):
        trader.get_ticker("BTC/USDT")
    assert [s for _, s in changes] == ["open", "open"]


@pytest.mark.django_db
def test_the_command_switches_it_for_every_process_and_the_account_shows_the_breaker(user, market):
    from exchanges.models import ExchangeAccount
    from exchanges.services import adapter_runtime, trader_for_account
    from tests.factories import make_account
    from trading.models import Order
    from trading.services import order_submit

    account = make_account(user)
    runtime = adapter_runtime()
    runtime.breaker_cooldown = 0.3  # the shared runtime (Redis), reset by the suite between tests
    call_command("paper_outage", "--seconds", "30")
    assert runtime.store.get(OUTAGE_KEY) == "simulated outage"
    result = order_submit(account=account, symbol="BTC/USDT", side="BUY", position_side="LONG",
                          quantity=D("0.01"), source="api")
    # The live read before the risk check fails: the order is refused (fail closed) and recorded.
    assert result.order.status in (Order.Status.REJECTED, Order.Status.FAILED)
    trader = trader_for_account(account)
    with pytest.raises(CircuitOpenError):
        for _ in range(THRESHOLD + 1):  # a few more reads reach the threshold
            try:
                trader.get_balance()
            except ExchangeUnavailable:
                pass
    account.refresh_from_db()
    assert account.status == ExchangeAccount.Status.ERROR and "Circuit breaker open" in account.last_error
    assert "simulated outage" in account.last_error

    call_command("paper_outage", "--off")
    assert runtime.store.get(OUTAGE_KEY) is None
    import time

    time.sleep(0.4)
    result = order_submit(account=account, symbol="BTC/USDT", side="BUY", position_side="LONG",
                          quantity=D("0.01"), source="api")
    assert result.order.status == Order.Status.FILLED
    account.refresh_from_db()
    assert account.status == ExchangeAccount.Status.OK and account.last_error == ""
