"""Pushed order updates applied through the stream ingest: matched within the account
(by client order id or the venue's form of it), never moving an order back, and a
repeated or late trade never counted twice."""

from datetime import UTC, datetime
from decimal import Decimal as D

import pytest

from exchanges.adapters.base import (
    FillInfo,
    OrderResult,
    OrderSide,
    OrderStatus,
    OrderType,
    PositionSide,
)
from exchanges.adapters.base import Position as VenuePosition
from tests.factories import make_account
from trading.models import Fill, Order, Position
from trading.services import order_submit
from trading.services.streams import stream_order_ingest, stream_positions_ingest

pytestmark = pytest.mark.django_db


def resting_buy(account, cid="my-limit-1"):
    order = order_submit(account=account, symbol="BTC/USDT", side="BUY", position_side="LONG", quantity=D("0.02"),
                         source="api", order_type="LIMIT", price=D("49000"), client_order_id=cid).order
    assert order.status == Order.Status.NEW
    return order


def update(order, status, executed, trades=(), *, cid=None, venue_cid="", order_id=None):
    fills = tuple(FillInfo(trade_id=t, quantity=q, price=D("49000"), timestamp=datetime.now(UTC)) for t, q in trades)
    return OrderResult(symbol="BTC/USDT", order_id=order.exchange_order_id if order_id is None else order_id,
                       client_order_id=cid or order.client_order_id,
                       side=OrderSide.BUY, order_type=OrderType.LIMIT, quantity=D("0.02"), price=D("49000"),
                       executed_quantity=D(executed), executed_price=D("49000") if D(executed) else None,
                       status=status, fees=D("0"), timestamp=datetime.now(UTC), exchange="paper", fills=fills,
                       venue_client_order_id=venue_cid)


def test_partial_then_filled_then_late_and_repeated_messages(user, market):
    account = make_account(user)
    order = resting_buy(account)
    t1, t2 = ("t-1", D("0.01")), ("t-2", D("0.01"))
    stream_order_ingest(account=account, result=update(order, OrderStatus.PARTIALLY_FILLED, "0.01", [t1]))
    stream_order_ingest(account=account, result=update(order, OrderStatus.FILLED, "0.02", [t1, t2]))
    # Late (out of order) and repeated messages: nothing moves back, nothing counts twice.
    stream_order_ingest(account=account, result=update(order, OrderStatus.NEW, "0"))
    stream_order_ingest(account=account, result=update(order, OrderStatus.PARTIALLY_FILLED, "0.01", [t1]))
    stream_order_ingest(account=account, result=update(order, OrderStatus.FILLED, "0.02", [t1, t2]))
    stream_order_ingest(account=account, result=update(order, OrderStatus.CANCELLED, "0.02"))
    order.refresh_from_db()
    assert (order.status, order.executed_quantity) == (Order.Status.FILLED, D("0.02"))
    assert sorted(Fill.objects.filter(order=order).values_list("trade_id", flat=True)) == ["t-1", "t-2"]


def test_a_trade_arriving_after_a_catch_up_recorded_the_execution_is_not_counted_again(user, market):
    account = make_account(user)
    order = resting_buy(account)
    # A catch-up whose look-up listed no trades: the platform's aggregate fill.
    stream_order_ingest(account=account, result=update(order, OrderStatus.FILLED, "0.02"))
    stream_order_ingest(account=account, result=update(order, OrderStatus.FILLED, "0.02", [("t-9", D("0.02"))]))
    assert sum(Fill.objects.filter(order=order).values_list("quantity", flat=True)) == D("0.02")


def test_matched_by_the_venue_form_of_the_id_and_within_the_account_only(user, other_user, market):
    mine, theirs = make_account(user), make_account(other_user)
    order = resting_buy(mine)
    other = resting_buy(theirs)
    Order.objects.filter(pk=order.pk).update(venue_client_order_id="0xabc")
    result = update(order, OrderStatus.FILLED, "0.02", [("t-1", D("0.02"))], cid="0xabc", venue_cid="0xabc")
    assert stream_order_ingest(account=mine, result=result).pk == order.pk
    stranger = update(order, OrderStatus.FILLED, "0.02", cid="not-ours", order_id="999")
    assert stream_order_ingest(account=mine, result=stranger) is None
    # The venue's order id names the order too (a client library that replaced our id).
    assert stream_order_ingest(account=theirs, result=update(other, OrderStatus.NEW, "0", cid="x-1")).pk == other.pk
    other.refresh_from_db()
    assert other.status == Order.Status.NEW and not Fill.objects.filter(order=other).exists()


def test_pushed_position_without_leverage_keeps_ours_and_a_liquidation_is_recorded(user, market):
    account = make_account(user)
    order_submit(account=account, symbol="BTC/USDT", side="BUY", position_side="LONG", quantity=D("0.02"),
                 source="api", leverage=3)
    row = Position.objects.get(account=account, status="open")
    pushed = VenuePosition(symbol="BTC/USDT", side=PositionSide.LONG, size=D("0.03"), entry_price=D("50000"),
                           mark_price=D("50000"), unrealized_pnl=D("0"), percentage_pnl=D("0"), leverage=D("0"),
                           margin=D("0"), timestamp=datetime.now(UTC), exchange="paper")
    stream_positions_ingest(account=account, positions=[pushed], symbols=["BTC/USDT"])
    row.refresh_from_db()
    assert (row.size, row.leverage) == (D("0.03"), D("3"))
    stream_positions_ingest(account=account, positions=[], symbols=["BTC/USDT"], liquidated_symbols=["BTC/USDT"])
    row.refresh_from_db()
    assert row.status == Position.Status.LIQUIDATED and row.size == 0
