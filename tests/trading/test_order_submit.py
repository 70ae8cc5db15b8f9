"""order_submit on the paper venue: the risk gate, idempotency, races, fail-closed reads,
venue failures. Figures: paper taker fee 0.05%, slippage 2 bps; default profile: equity
10,000 USD, per-symbol cap 20% of equity (2,000 USD), venue 30%, total 50%."""

import threading
from decimal import Decimal as D
from pathlib import Path

import pytest
from django.core.exceptions import ValidationError
from django.db import connection

from exchanges.adapters.errors import ExchangeUnavailable, OrderStatusUnknown
from exchanges.services import adapter_runtime, trader_for_account
from risk.models import RiskEvent
from tests.factories import make_account
from trading.models import Fill, Order, Position
from trading.services import client_order_id_for, order_submit

pytestmark = pytest.mark.django_db


def buy_btc(account, qty, **kw):
    return order_submit(account=account, symbol="BTC/USDT", side="BUY", position_side="LONG", quantity=D(qty),
                        source=kw.pop("source", "api"), **kw)


def paper_orders(account):
    book = adapter_runtime().paper_store.load(account.account_ref)
    return list(book.orders.values()) if book else []


def test_allowed_order_is_filled_and_recorded(user, market):
    account = make_account(user)
    result = buy_btc(account, "0.02")
    order = result.order
    assert order.status == Order.Status.FILLED
    assert order.risk_event.allowed and order.risk_event.rule == "all"
    assert order.client_order_id.startswith("at-m")
    # 50,000 * (1 + 0.0002) = 50,010; fee 0.0005 * 0.02 * 50,010 = 0.5001
    assert order.executed_price == D("50010")
    assert order.fees == D("0.5001")
    fill = Fill.objects.get(order=order)
    assert (fill.quantity, fill.price) == (D("0.02"), D("50010"))
    position = Position.objects.get(account=account, status="open")
    assert (position.side, position.size, position.entry_price) == ("LONG", D("0.02"), D("50010"))


def test_rejected_order_never_reaches_the_venue(user, market):
    account = make_account(user)
    result = buy_btc(account, "0.05")  # 2,500 USD > 20% of 10,000
    assert result.order.status == Order.Status.REJECTED
    assert result.verdict.rule == "position_notional_pct"
    assert "2,500" in result.verdict.message and "2,000" in result.verdict.message
    assert result.order.risk_event.allowed is False
    assert result.order.error == result.verdict.message
    assert paper_orders(account) == []
    assert not Fill.objects.exists() and not Position.objects.exists()


@pytest.mark.parametrize("bad", [
    dict(quantity="-1"), dict(quantity="abc"), dict(side="HOLD"), dict(symbol="DOGE/USDT"),
    dict(order_type="LIMIT"), dict(leverage="2.5"), dict(client_order_id="bad id with spaces"),
])
def test_malformed_request_writes_nothing(user, market, bad):
    account = make_account(user)
    args = dict(account=account, symbol="BTC/USDT", side="BUY", position_side="LONG", quantity="0.01", source="api")
    args.update(bad)
    with pytest.raises(ValidationError):
        order_submit(**args)
    assert Order.objects.count() == 0 and RiskEvent.objects.count() == 0
    assert paper_orders(account) == []


def test_retried_submission_makes_one_venue_order(user, market):
    account = make_account(user)
    first = buy_btc(account, "0.01", client_order_id=client_order_id_for(decision_id=99, index=0), source="agent")
    again = buy_btc(account, "0.01", client_order_id=client_order_id_for(decision_id=99, index=0), source="agent")
    assert again.duplicate and again.order.pk == first.order.pk
    assert Order.objects.count() == 1
    assert len(paper_orders(account)) == 1


def test_client_order_ids_are_per_account(user, market):
    a = make_account(user, name="a")
    b = make_account(user, name="b")
    first = buy_btc(a, "0.01", client_order_id="x-1")
    second = buy_btc(b, "0.01", client_order_id="x-1")
    assert not second.duplicate and second.order.pk != first.order.pk
    assert (first.order.account_id, second.order.account_id) == (a.pk, b.pk)


@pytest.mark.django_db(transaction=True)
def test_two_concurrent_orders_cannot_together_pass_a_limit(user, market):
    account = make_account(user)
    barrier = threading.Barrier(2)
    results = []

    def submit():
        try:
            barrier.wait()
            results.append(buy_btc(account, "0.03").order.status)  # 1,500 USD each, 2,000 cap
        finally:
            connection.close()

    threads = [threading.Thread(target=submit) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sorted(results) == [Order.Status.FILLED, Order.Status.REJECTED]
    position = Position.objects.get(account=account, status="open")
    assert position.size == D("0.03")


class FailingReads:
    """A trader whose reads fail: the gate must reject, never pass."""

    def __init__(self, inner, fail):
        self.inner, self.fail = inner, fail
        self.placed = 0

    def __getattr__(self, name):
        if name == self.fail:
            def boom(*a, **k):
                raise ExchangeUnavailable("venue down")
            return boom
        if name == "place_order":
            self.placed += 1
        return getattr(self.inner, name)


@pytest.mark.parametrize("fail", ["get_balance", "get_positions", "get_market_price"])
def test_fail_closed_when_a_read_fails(user, market, fail):
    account = make_account(user)
    trader = FailingReads(trader_for_account(account), fail)
    result = buy_btc(account, "0.01", trader=trader)
    assert result.order.status == Order.Status.REJECTED
    assert result.verdict.rule == "data_unavailable"
    assert trader.placed == 0
    assert "venue down" in result.order.risk_event.details["read_errors"]


def test_reduce_only_passes_limits_but_cannot_flip(user, market):
    account = make_account(user)
    buy_btc(account, "0.03")
    market.set("BTC/USDT", "80000")  # the position is now 2,400 USD: above the cap, but closing is fine
    close = order_submit(account=account, symbol="BTC/USDT", side="SELL", position_side="LONG",
                         quantity=D("0.01"), reduce_only=True, source="api")
    assert close.order.status == Order.Status.FILLED and close.verdict.rule == "reduce_only"
    flip = order_submit(account=account, symbol="BTC/USDT", side="SELL", position_side="LONG",
                        quantity=D("0.05"), reduce_only=True, source="api")
    assert flip.order.status == Order.Status.REJECTED and flip.verdict.rule == "reduce_only_flip"
    assert Position.objects.get(account=account, status="open").size == D("0.02")


class VenueFault:
    def __init__(self, inner, exc):
        self.inner, self.exc = inner, exc

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def place_order(self, request):
        raise self.exc


def test_venue_5xx_leaves_the_order_pending_confirmation(user, market):
    """A 5xx to an order may come after the venue executed it: never FAILED on that."""
    account = make_account(user)
    result = buy_btc(account, "0.01", trader=VenueFault(trader_for_account(account), ExchangeUnavailable("503")))
    assert result.order.status == Order.Status.UNKNOWN
    assert "503" in result.order.error and "pending confirmation" in result.order.error


def test_unknown_fate_is_kept_for_reconciliation(user, market):
    account = make_account(user)
    result = buy_btc(account, "0.01", trader=VenueFault(trader_for_account(account), OrderStatusUnknown("lost")))
    assert result.order.status == Order.Status.UNKNOWN
    assert result.order.is_open  # it still counts as in flight for the next risk check


def test_only_order_submit_places_orders():
    """No second road: outside the adapters, place_order is called in one place only."""
    root = Path(__file__).resolve().parents[2]
    callers = []
    for path in root.glob("*/**/*.py"):
        rel = path.relative_to(root).as_posix()
        if rel.startswith(("tests/", ".venv/", "exchanges/adapters/", "bench/")):
            continue
        if ".place_order(" in path.read_text():
            callers.append(rel)
    assert callers == ["trading/services/orders.py"]
