"""order_submit when the platform's own state fails (issue 12, faults 5 and 6): Redis down
or frozen, the database failing before sending or right after a fill; and the fate of an
order decided only on evidence (FAILED = certainly not sent; UNKNOWN = may have been sent).
"""

import socket
import threading
from decimal import Decimal as D

import pytest
from django.db import OperationalError as DbOperationalError

from alpha_platform.common.errors import PlatformUnavailable
from exchanges.adapters.errors import CircuitOpenError, GuardUnavailable, OrderStatusUnknown, RateLimited
from exchanges.services import adapter_runtime, reset_adapter_runtime, trader_for_account
from risk.models import RiskEvent
from tests.factories import make_account
from trading.models import Fill, Order, Position
from trading.services import order_submit

pytestmark = pytest.mark.django_db


def buy_btc(account, qty="0.01", **kw):
    return order_submit(account=account, symbol="BTC/USDT", side="BUY", position_side="LONG", quantity=D(qty),
                        source="api", **kw)


def paper_orders(account):
    book = adapter_runtime().paper_store.load(account.account_ref)
    return list(book.orders.values()) if book else []


def nothing_written():
    return Order.objects.count() == 0 and RiskEvent.objects.count() == 0


def closed_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class FrozenRedis:
    """A loopback socket that accepts connections and never answers."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.conns = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self):
        self.sock.settimeout(0.1)
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
                self.conns.append(conn)
            except OSError:
                continue

    def close(self):
        self.stop.set()
        self.thread.join(2)
        for c in self.conns:
            c.close()
        self.sock.close()


@pytest.fixture
def redis_at(settings, market):
    """Point the platform's Redis at another address for this test (then back)."""
    def point(port):
        settings.REDIS_URL = f"redis://127.0.0.1:{port}/0"
        reset_adapter_runtime()
        adapter_runtime().extra["market"] = market
    yield point
    reset_adapter_runtime()


def test_redis_down_is_a_clear_refusal_with_nothing_written(user, market, redis_at):
    account = make_account(user)
    redis_at(closed_port())
    with pytest.raises(PlatformUnavailable) as caught:
        buy_btc(account)
    assert "nothing was sent" in caught.value.message
    assert caught.value.extra.get("retry_after_seconds")
    assert nothing_written()


def test_a_frozen_redis_is_a_clear_refusal_with_nothing_written(user, market, redis_at):
    account = make_account(user)
    frozen = FrozenRedis()
    try:
        redis_at(frozen.port)
        with pytest.raises(PlatformUnavailable):
            buy_btc(account)
    finally:
        frozen.close()
    assert nothing_written()


def test_the_database_failing_before_sending_is_a_clear_refusal(user, market):
    from django.db import connection

    account = make_account(user)

    def fail_the_risk_lock(execute, sql, params, many, context):
        if "risk_riskprofile" in sql and "FOR UPDATE" in sql.upper() or (
                connection.vendor == "sqlite" and "risk_riskprofile" in sql):
            raise DbOperationalError("server closed the connection unexpectedly")
        return execute(sql, params, many, context)

    with connection.execute_wrapper(fail_the_risk_lock), pytest.raises(PlatformUnavailable):
        buy_btc(account)
    assert nothing_written()
    assert paper_orders(account) == []


class Refusing:
    def __init__(self, inner, exc):
        self.inner, self.exc = inner, exc
        self.sent = 0

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def place_order(self, request):
        raise self.exc


@pytest.mark.parametrize("exc", [GuardUnavailable("guard state unreadable"), CircuitOpenError("circuit open"),
                                 RateLimited("rate limited")])
def test_a_guard_that_fails_before_sending_marks_the_order_failed_not_sent(user, market, exc):
    account = make_account(user)
    result = buy_btc(account, trader=Refusing(trader_for_account(account), exc))
    order = Order.objects.get(pk=result.order.pk)
    assert order.status == Order.Status.FAILED and order.closed_at is not None
    assert "not sent" in order.error.lower()
    assert not order.is_open  # it does not hold a reservation for 30-40 s


def test_a_lost_answer_is_unknown_pending_confirmation(user, market):
    account = make_account(user)
    result = buy_btc(account, trader=Refusing(trader_for_account(account), OrderStatusUnknown("answer lost")))
    order = Order.objects.get(pk=result.order.pk)
    assert order.status == Order.Status.UNKNOWN and order.is_open
    assert "pending confirmation" in order.error.lower()


class DatabaseFailsAfterFill:
    """The venue fills the order; from then on every database statement fails."""

    def __init__(self, inner):
        self.inner = inner
        self.down = False

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def place_order(self, request):
        result = self.inner.place_order(request)
        self.down = True
        return result

    def wrapper(self, execute, sql, params, many, context):
        if self.down:
            raise DbOperationalError("server closed the connection unexpectedly")
        return execute(sql, params, many, context)


def test_a_database_failure_right_after_a_fill_returns_the_order(user, market):
    from django.db import connection

    account = make_account(user)
    trader = DatabaseFailsAfterFill(trader_for_account(account))
    with connection.execute_wrapper(trader.wrapper):
        result = buy_btc(account, "0.02", trader=trader)
    # The caller gets the order as the venue reported it.
    assert result.order.status == Order.Status.FILLED
    assert result.order.executed_quantity == D("0.02")
    assert len(paper_orders(account)) == 1
    # The row could not be updated: it stays in flight (counted by every risk check) for
    # reconciliation, which finds it at the venue by its client order id.
    row = Order.objects.get(pk=result.order.pk)
    assert row.status == Order.Status.PENDING and row.is_open
    assert not Fill.objects.exists()


def test_a_fill_is_recorded_with_its_position_and_folded(user, market):
    account = make_account(user)
    result = buy_btc(account, "0.02")
    order = Order.objects.get(pk=result.order.pk)
    assert order.status == Order.Status.FILLED and order.position_folded_at is not None
    assert order.reference_price == D("50000")
    assert Position.objects.get(account=account, status="open").size == D("0.02")
