"""Reconciliation after the paper venue's state was changed behind the platform's back."""

from datetime import timedelta
from decimal import Decimal as D

import pytest
from django.conf import settings
from django.utils import timezone

from exchanges.adapters.base import OrderRequest, OrderSide, OrderType, PositionSide
from exchanges.services import adapter_runtime, trader_for_account
from risk.models import RiskEvent
from tests.factories import make_account
from trading.models import BalanceSnapshot, Order, Position
from trading.services import account_reconcile, order_submit

pytestmark = pytest.mark.django_db


def open_long(account, qty="0.02"):
    return order_submit(account=account, symbol="BTC/USDT", side="BUY", position_side="LONG", quantity=D(qty),
                        source="api").order


def edit_book(account, fn):
    store = adapter_runtime().paper_store
    with store.book(account.account_ref, starting_balance=D("10000")) as book:
        fn(book)


def test_position_closed_behind_our_back_is_detected(user, market):
    account = make_account(user)
    open_long(account)
    edit_book(account, lambda book: book.positions.clear())  # e.g. closed by hand on the venue

    report = account_reconcile(account=account)

    assert report.position_changes == [{"symbol": "BTC/USDT", "side": "LONG", "change": "disappeared"}]
    position = Position.objects.get(account=account)
    assert position.status == Position.Status.CLOSED and position.size == 0
    event = RiskEvent.objects.get(user=user, kind="reconcile")
    assert "BTC/USDT" in event.message and event.details["change"] == "disappeared"


def test_position_changed_and_appeared_are_detected(user, market):
    account = make_account(user)
    open_long(account)

    def tamper(book):
        book.positions["BTC/USDT"].quantity = D("0.05")
        eth = next(iter(book.positions.values()))
        from dataclasses import replace

        book.positions["ETH/USDT"] = replace(eth, symbol="ETH/USDT", quantity=D("-1"), entry_price=D("3000"))

    edit_book(account, tamper)
    report = account_reconcile(account=account)
    changes = {(c["symbol"], c["change"]) for c in report.position_changes}
    assert changes == {("BTC/USDT", "size changed"), ("ETH/USDT", "appeared")}
    assert Position.objects.get(account=account, symbol="BTC/USDT", status="open").size == D("0.05")
    assert Position.objects.get(account=account, symbol="ETH/USDT", status="open").side == "SHORT"
    assert RiskEvent.objects.filter(kind="reconcile").count() == 2


def test_our_own_fills_are_not_discrepancies(user, market):
    account = make_account(user)
    open_long(account)
    report = account_reconcile(account=account)
    assert report.discrepancies == 0 and report.errors == []
    assert BalanceSnapshot.objects.filter(account=account).exists()


def test_order_unknown_to_the_venue_is_lost_only_after_several_lookups(user, market):
    account = make_account(user)
    ghost = Order.objects.create(owner=user, account=account, source="api", client_order_id="at-ghost-1",
                                 symbol="BTC/USDT", side="BUY", position_side="LONG", quantity=D("0.01"),
                                 status=Order.Status.PENDING, submitted_at=timezone.now() - timedelta(minutes=5))
    for attempt in range(1, settings.RECONCILE_LOST_AFTER_LOOKUPS):
        account_reconcile(account=account)
        ghost.refresh_from_db()
        assert ghost.status == Order.Status.PENDING and ghost.lookup_failures == attempt
    account_reconcile(account=account)
    ghost.refresh_from_db()
    assert ghost.status == Order.Status.LOST
    assert RiskEvent.objects.filter(kind="reconcile", message__contains="at-ghost-1").exists()


def test_a_young_unknown_order_is_not_lost_yet(user, market):
    account = make_account(user)
    fresh = Order.objects.create(owner=user, account=account, source="api", client_order_id="at-young-1",
                                 symbol="BTC/USDT", side="BUY", position_side="LONG", quantity=D("0.01"),
                                 status=Order.Status.UNKNOWN, submitted_at=timezone.now())
    for _ in range(settings.RECONCILE_LOST_AFTER_LOOKUPS + 1):
        account_reconcile(account=account)
    fresh.refresh_from_db()
    assert fresh.status == Order.Status.UNKNOWN  # the venue may still be indexing it


def test_unknown_order_that_the_venue_filled_is_recovered(user, market):
    account = make_account(user)
    # The venue took the order, but our side never heard back.
    trader = trader_for_account(account)
    trader.place_order(OrderRequest(symbol="BTC/USDT", side=OrderSide.BUY, position_side=PositionSide.LONG,
                                    order_type=OrderType.MARKET, quantity=D("0.01"), client_order_id="at-lost-1"))
    ours = Order.objects.create(owner=user, account=account, source="agent", client_order_id="at-lost-1",
                                symbol="BTC/USDT", side="BUY", position_side="LONG", quantity=D("0.01"),
                                status=Order.Status.UNKNOWN, submitted_at=timezone.now())
    report = account_reconcile(account=account)
    ours.refresh_from_db()
    assert ours.status == Order.Status.FILLED and ours.executed_quantity == D("0.01")
    assert report.orders_updated == 1
    assert ours.fills.count() == 1
    # The position it opened shows up, explained by the fill of ours applied in the same pass.
    assert Position.objects.get(account=account, status="open").size == D("0.01")
    assert report.position_changes == [] and report.explained_position_changes[0]["change"] == "appeared"


def test_venue_order_we_never_placed_is_reported(user, market):
    account = make_account(user)
    trader_for_account(account).place_order(OrderRequest(
        symbol="BTC/USDT", side=OrderSide.BUY, position_side=PositionSide.LONG, order_type=OrderType.LIMIT,
        quantity=D("0.01"), price=D("30000"), client_order_id="manual-on-venue"))
    report = account_reconcile(account=account)
    assert report.unknown_venue_orders == ["manual-on-venue"]
    assert RiskEvent.objects.filter(kind="reconcile", details__client_order_id="manual-on-venue").exists()


def test_workers_starting_together_queue_one_start_up_pass(monkeypatch):
    from trading import tasks

    sent = []
    monkeypatch.setattr(tasks.reconcile_all_task, "delay", lambda: sent.append(1))
    for _ in range(3):  # three workers come up within the same minute
        tasks._reconcile_on_worker_start()
    assert sent == [1]


class CountingTrader:
    """The account's real paper trader, counting the per-order look-ups reconciliation makes."""

    def __init__(self, account):
        self.inner = trader_for_account(account)
        self.lookups = []

    def get_order(self, symbol, **kwargs):
        self.lookups.append(kwargs.get("client_order_id"))
        return self.inner.get_order(symbol, **kwargs)

    def __getattr__(self, name):
        return getattr(self.inner, name)


def test_open_orders_the_venue_lists_unchanged_need_no_look_up(user, market):
    account = make_account(user)
    resting = order_submit(account=account, symbol="BTC/USDT", side="BUY", position_side="LONG", quantity=D("0.01"),
                           order_type="LIMIT", price=D("40000"), source="api").order
    other = order_submit(account=account, symbol="BTC/USDT", side="BUY", position_side="LONG", quantity=D("0.01"),
                         order_type="LIMIT", price=D("41000"), source="api").order
    assert resting.status == other.status == Order.Status.NEW

    trader = CountingTrader(account)
    report = account_reconcile(account=account, trader=trader)
    assert report.orders_checked == 2 and trader.lookups == [] and report.orders_updated == 0

    # Cancelled at the venue behind our back: no longer listed, so it is looked up and settled.
    trader.inner.cancel_order("BTC/USDT", client_order_id=other.client_order_id)
    report = account_reconcile(account=account, trader=trader)
    other.refresh_from_db()
    assert trader.lookups == [other.client_order_id]
    assert other.status == Order.Status.CANCELLED and report.orders_updated == 1
    resting.refresh_from_db()
    assert resting.status == Order.Status.NEW
