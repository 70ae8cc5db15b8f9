"""Reconciliation: bring the database in line with what the venue says, and record
every discrepancy as a RiskEvent (kind=reconcile).

- The venue's open orders are fetched once. An order we hold as open (PENDING, NEW,
  PARTIALLY_FILLED, UNKNOWN) that is in that list unchanged (same status, same executed
  quantity) needs nothing more; any other is looked up by client order id. An order the
  venue does not know is marked LOST only after ``LOST_AFTER_LOOKUPS`` failed look-ups,
  and only once it is older than ``MIN_AGE_FOR_LOST`` (a venue may be slow to index a new
  order).
- Open orders at the venue that we never placed are reported.
- Client order ids are unique per account only: every look-up here is within the
  account being reconciled (its venue's list, its own orders), never across accounts.
- Positions are synced; a change without a fill of ours (liquidation, manual trading on
  the venue) is reported.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from django.utils import timezone

from exchanges.adapters.base import ExchangeTrader, OrderResult
from exchanges.adapters.errors import ExchangeError, OrderNotFound
from exchanges.models import ExchangeAccount
from exchanges.services import trader_for_account
from risk.models import RiskEvent
from risk.services import risk_event_record
from trading.events import order_event
from trading.models import Order
from trading.services.positions import STATUS_MAP, balance_snapshot_record, order_apply_result, positions_sync

logger = logging.getLogger(__name__)

LOST_AFTER_LOOKUPS = 3
MIN_AGE_FOR_LOST = timedelta(seconds=30)


@dataclass
class ReconcileReport:
    account_id: int
    orders_checked: int = 0
    orders_updated: int = 0
    orders_lost: int = 0
    unknown_venue_orders: list[str] = field(default_factory=list)
    position_changes: list[dict[str, Any]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    @property
    def discrepancies(self) -> int:
        return self.orders_lost + len(self.unknown_venue_orders) + len(self.position_changes)


def _discrepancy(account: ExchangeAccount, message: str, details: dict[str, Any], symbol: str = "") -> None:
    risk_event_record(user=account.owner, allowed=False, rule="reconcile", kind=RiskEvent.Kind.RECONCILE,
                      message=message, details=details, symbol=symbol, venue=account.venue, actor="reconcile")


def _unchanged(order: Order, listed: OrderResult | None) -> bool:
    """The venue lists the order as open with what we already recorded: no look-up needed."""
    return (listed is not None and STATUS_MAP.get(str(listed.status)) == order.status
            and listed.executed_quantity == order.executed_quantity)


def account_reconcile(*, account: ExchangeAccount, trader: ExchangeTrader | None = None,
                      snapshot_balance: bool = True) -> ReconcileReport:
    report = ReconcileReport(account_id=account.pk)
    own = trader is None
    trader = trader or trader_for_account(account)
    now = timezone.now()
    try:
        try:
            venue_orders = trader.get_open_orders()
        except ExchangeError as exc:
            report.errors.append(f"open orders: {type(exc).__name__}")
            venue_orders = []
        listed = {vo.client_order_id: vo for vo in venue_orders if vo.client_order_id}
        for order in Order.objects.filter(account=account, status__in=Order.OPEN_STATUSES).order_by("created_at"):
            report.orders_checked += 1
            if _unchanged(order, listed.get(order.client_order_id)):
                continue
            try:
                result = trader.get_order(order.symbol, order_id=order.exchange_order_id or None,
                                          client_order_id=order.client_order_id)
            except OrderNotFound:
                order.lookup_failures += 1
                old_enough = (order.submitted_at or order.created_at) <= now - MIN_AGE_FOR_LOST
                if order.lookup_failures >= LOST_AFTER_LOOKUPS and old_enough:
                    order.status = Order.Status.LOST
                    order.closed_at = now
                    order.error = (f"The venue does not know this order after {order.lookup_failures} look-ups")
                    order.save(update_fields=["status", "closed_at", "error", "lookup_failures", "updated_at"])
                    order_event(order, "updated")
                    report.orders_lost += 1
                    _discrepancy(account, f"Order {order.client_order_id} ({order.symbol}) is unknown to the venue: "
                                 "marked lost", {"client_order_id": order.client_order_id}, order.symbol)
                else:
                    order.save(update_fields=["lookup_failures", "updated_at"])
                continue
            except ExchangeError as exc:
                report.errors.append(f"order {order.client_order_id}: {type(exc).__name__}")
                continue
            before = (order.status, order.executed_quantity)
            order = order_apply_result(order=order, result=result)
            if (order.status, order.executed_quantity) != before:
                report.orders_updated += 1

        known = set(Order.objects.filter(account=account, client_order_id__in=[
            o.client_order_id for o in venue_orders if o.client_order_id]).values_list("client_order_id", flat=True))
        for vo in venue_orders:
            if vo.client_order_id not in known:
                report.unknown_venue_orders.append(vo.client_order_id or vo.order_id)
                _discrepancy(account, f"An open {vo.side} order for {vo.quantity} {vo.symbol} exists at the venue "
                             "that the platform did not place",
                             {"order_id": vo.order_id, "client_order_id": vo.client_order_id}, vo.symbol)

        read_started_at = timezone.now()
        try:
            venue_positions = trader.get_positions()
        except ExchangeError as exc:
            report.errors.append(f"positions: {type(exc).__name__}")
        else:
            changes = positions_sync(account=account, venue_positions=venue_positions, expected=False,
                                     read_started_at=read_started_at)
            # A change is ours if an order of ours filled on that symbol since the last pass.
            for change in changes.unexpected:
                report.position_changes.append(change)
                _discrepancy(account, f"Position {change['side']} {change['symbol']} {change['change']} at the venue "
                             "without an order of ours", change, change["symbol"])

        if snapshot_balance:
            try:
                balance_snapshot_record(account=account, balance=trader.get_balance())
            except ExchangeError as exc:
                report.errors.append(f"balance: {type(exc).__name__}")
    finally:
        if own:
            trader.close()
    if report.discrepancies or report.errors:
        logger.info("reconcile account %s: %s", account.pk, report)
    return report
