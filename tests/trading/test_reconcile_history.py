"""Reconciliation picks up the fill of an order that rested at the paper venue while more
than its ``history_limit`` other orders closed (issue 13, fault 5)."""

from decimal import Decimal as D

import pytest

from exchanges.adapters.base import OrderRequest, OrderSide, OrderType, PositionSide
from exchanges.services import trader_for_account
from tests.factories import make_account
from trading.models import Order
from trading.services import account_reconcile, order_submit

pytestmark = pytest.mark.django_db


def test_reconcile_records_the_fill_of_an_order_that_rested_through_the_history_limit(user, market):
    account = make_account(user)
    resting = order_submit(account=account, symbol="BTC/USDT", side="BUY", position_side="LONG",
                           quantity=D("0.001"), order_type="LIMIT", price=D("49000"), source="api").order
    assert resting.status == Order.Status.NEW
    trader = trader_for_account(account)
    for i in range(51):  # 102 orders close at the venue while it rests
        for side in (OrderSide.BUY, OrderSide.SELL):
            trader.place_order(OrderRequest(
                symbol="ETH/USDT", side=side, position_side=PositionSide.LONG, order_type=OrderType.MARKET,
                quantity=D("0.01"), reduce_only=side == OrderSide.SELL, client_order_id=f"churn-{i}-{side}"))

    market.set("BTC/USDT", "48900")  # the limit is reached
    report = account_reconcile(account=account)

    resting.refresh_from_db()
    assert report.errors == [] and report.orders_lost == 0
    assert resting.status == Order.Status.FILLED
    assert resting.executed_quantity == D("0.001") and resting.executed_price == D("49000")
    [fill] = resting.fills.all()
    # maker fee 0.0002 * 0.001 * 49000
    assert fill.quantity == D("0.001") and fill.price == D("49000") and fill.fee == D("0.0098")
