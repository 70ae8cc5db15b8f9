"""Reconciliation records the paper venue's liquidations: its ``autoclose-N`` order is never
open, so only the venue's liquidation list brings it to the platform (issue 13, fault 2)."""

from decimal import Decimal as D

import pytest

from exchanges.services import trader_for_account
from risk.models import RiskEvent, RiskProfile
from tests.factories import make_account
from trading.models import Fill, Order, Position
from trading.selectors import pnl_by_account
from trading.services import account_reconcile, order_submit

pytestmark = pytest.mark.django_db


def _short_and_liquidate(account, market):
    RiskProfile.objects.filter(user=account.owner).update(
        max_leverage=10, max_position_notional_usd=D("100000"), max_position_percent=D("1"),
        max_total_exposure_percent=D("1"), max_exchange_exposure_percent=D("1"))
    order = order_submit(account=account, symbol="BTC/USDT", side="SELL", position_side="SHORT",
                         quantity=D("0.18"), leverage=10, source="api").order
    assert order.status == Order.Status.FILLED, order.error
    market.set("BTC/USDT", "120000")  # far beyond the short's liquidation price
    return order


def _venue(account):
    trader = trader_for_account(account)
    try:
        balance = trader.get_balance()
        [liq] = trader.get_liquidations(None)
        return balance, liq
    finally:
        trader.close()


def test_reconcile_records_a_liquidation_with_its_fill_position_pnl_and_risk_event(user, other_user, market):
    account = make_account(user)
    bystander = make_account(other_user)
    bystander_order = order_submit(account=bystander, symbol="BTC/USDT", side="BUY", position_side="LONG",
                                   quantity=D("0.01"), source="api").order
    opening = _short_and_liquidate(account, market)

    report = account_reconcile(account=account)
    balance, liq = _venue(account)
    assert report.errors == []
    assert liq.client_order_id.startswith("autoclose-") and liq.raw_data["liquidation"] is True
    [venue_fill] = liq.fills
    assert venue_fill.realized_pnl < 0

    order = Order.objects.get(account=account, client_order_id=liq.client_order_id)
    assert order.source == Order.Source.SYSTEM and order.actor == "venue:liquidation"
    assert order.status == Order.Status.FILLED and order.exchange_order_id == liq.order_id
    assert (order.side, order.position_side, order.quantity) == ("BUY", "SHORT", D("0.18"))
    [fill] = order.fills.all()
    assert (fill.trade_id, fill.price, fill.quantity, fill.fee, fill.realized_pnl) == (
        venue_fill.trade_id, venue_fill.price, venue_fill.quantity, venue_fill.fee, venue_fill.realized_pnl)

    [position] = Position.objects.filter(account=account)
    assert position.status == Position.Status.LIQUIDATED and position.size == 0
    assert position.realized_pnl == venue_fill.realized_pnl
    assert position.closed_at is not None

    [row] = [r for r in pnl_by_account(user=user) if r["account"] == account]
    fees = sum(Fill.objects.filter(account=account).values_list("fee", flat=True), D(0))
    assert row["realized"] == venue_fill.realized_pnl
    assert row["fees"] == fees == opening.fees + venue_fill.fee
    start = D(balance.raw_data["starting_balance"])
    assert start + row["realized"] - row["fees"] == balance.total_balance

    event = RiskEvent.objects.get(user=user, rule="liquidation")
    assert event.symbol == "BTC/USDT" and event.details["client_order_id"] == liq.client_order_id
    # The venue's own close is recorded, not reported as a position that vanished unexplained.
    assert not RiskEvent.objects.filter(user=user, kind=RiskEvent.Kind.RECONCILE).exclude(
        rule="liquidation").exists()

    # The other user's account is untouched.
    assert list(Order.objects.filter(account=bystander)) == [bystander_order]
    assert Position.objects.get(account=bystander).status == Position.Status.OPEN
    assert not RiskEvent.objects.filter(user=other_user, kind=RiskEvent.Kind.RECONCILE).exists()
    # ... and its own pass finds no liquidation of its venue account.
    assert account_reconcile(account=bystander).liquidations_recorded == []
    assert Order.objects.filter(account=bystander).count() == 1


def test_reconcile_twice_records_a_liquidation_once(user, market):
    account = make_account(user)
    _short_and_liquidate(account, market)

    account_reconcile(account=account)
    counts = (Order.objects.count(), Fill.objects.count(), Position.objects.count(),
              RiskEvent.objects.filter(rule="liquidation").count())
    account_reconcile(account=account)

    assert (Order.objects.count(), Fill.objects.count(), Position.objects.count(),
            RiskEvent.objects.filter(rule="liquidation").count()) == counts == (2, 2, 1, 1)
    assert Position.objects.get(account=account).status == Position.Status.LIQUIDATED


def test_a_liquidation_after_the_position_row_was_closed_still_lands(user, market):
    """A pass that saw the position gone before the liquidation was listed (or a stream
    that closed the row) leaves a closed row: the liquidation fixes it up."""
    account = make_account(user)
    _short_and_liquidate(account, market)
    trader = trader_for_account(account)
    from trading.services.positions import positions_sync

    positions_sync(account=account, venue_positions=trader.get_positions(), expected=True)
    trader.close()
    assert Position.objects.get(account=account).status != Position.Status.OPEN

    account_reconcile(account=account)

    position = Position.objects.get(account=account)
    fill = Fill.objects.get(account=account, order__client_order_id__startswith="autoclose-")
    assert position.status == Position.Status.LIQUIDATED
    assert position.realized_pnl == fill.realized_pnl
