"""Reconciliation: bring the database in line with what the venue says, and record
every discrepancy as a RiskEvent (kind=reconcile).

- The venue's open orders are fetched once. An order we hold as open (PENDING, NEW,
  PARTIALLY_FILLED, UNKNOWN) that is in that list unchanged (same status, same executed
  quantity) needs nothing more; any other is looked up by client order id, and what the
  venue says is applied (an UNKNOWN order that turns up FILLED gets its fill).
- An order's fate is decided on evidence only: one "not found" proves nothing (a venue may
  take a request after the client's timeout, or list an order late). An order the venue
  does not know is marked LOST only after ``RECONCILE_LOST_AFTER_LOOKUPS`` failed look-ups
  (one per pass) AND once ``RECONCILE_LOST_AFTER_SECONDS`` have passed since it was sent
  (settings; 3 and 60 by default), as hummingbot's lost-order tracking does. A LOST order
  that the venue lists later is brought back and applied.
- Venue orders are matched to ours by client order id OR by the venue's form of it
  (``Order.venue_client_order_id``, e.g. Hyperliquid's cloid, and the trader's
  ``venue_client_order_id``), so an adapter with no memory of what it sent (a fresh
  instance) still recognises our orders. Open orders at the venue that match none of
  ours are reported.
- Client order ids are unique per account only: every look-up here is within the
  account being reconciled (its venue's list, its own orders), never across accounts.
- The venue's liquidations (its own ``autoclose-N`` orders: never open, so neither rule
  above finds them) are read since the newest one recorded and each recorded once, with
  its fills, its Position row marked liquidated and a RiskEvent (trading.services.liquidations).
- Positions are synced; a change without a fill of ours (liquidation, manual trading on
  the venue) is reported. A change that the fills of ours not yet folded into the
  Position row (applied in this pass, or since the last one: a fill whose position read
  failed) account for exactly, plus at most what our orders awaiting confirmation may
  have executed, is ours and is not reported.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db.models import Max, Q
from django.utils import timezone

from alpha_platform.common.money import ZERO
from alpha_platform.common.vocabulary import is_opening
from exchanges.adapters.base import ExchangeTrader, OrderResult
from exchanges.adapters.errors import ExchangeError, OrderNotFound
from exchanges.models import ExchangeAccount
from exchanges.services import trader_for_account
from risk.models import RiskEvent
from risk.services import risk_event_record
from trading.events import order_event
from trading.models import Fill, Order, Position
from trading.services.funding import funding_record, funding_since
from trading.services.liquidations import liquidation_record, liquidations_since
from trading.services.positions import STATUS_MAP, balance_snapshot_record, order_apply_result, positions_sync

logger = logging.getLogger(__name__)


def lost_rule() -> tuple[int, timedelta]:
    """(failed look-ups, time since sending) after which an order the venue does not know is LOST."""
    lookups = int(settings.RECONCILE_LOST_AFTER_LOOKUPS)
    seconds = float(settings.RECONCILE_LOST_AFTER_SECONDS)
    return max(1, lookups), timedelta(seconds=max(0.0, seconds))


@dataclass
class ReconcileReport:
    account_id: int
    orders_checked: int = 0
    orders_updated: int = 0
    orders_lost: int = 0
    orders_recovered: int = 0  # LOST orders the venue listed after all
    unknown_venue_orders: list[str] = field(default_factory=list)
    liquidations_recorded: list[str] = field(default_factory=list)  # client order ids
    funding_recorded: int = 0  # funding payments recorded in this pass
    position_changes: list[dict[str, Any]] = field(default_factory=list)
    explained_position_changes: list[dict[str, Any]] = field(default_factory=list)  # by fills of ours
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


def _venue_keys(result: OrderResult) -> list[str]:
    """The ids a venue order can be matched to ours by: ours, and the venue's form of it."""
    return [_norm(k) for k in (result.client_order_id, result.venue_client_order_id) if k]


def _norm(key: str) -> str:
    # Hyperliquid cloids are hex: compare them in one case. Other ids are compared as they are.
    return key.lower() if key[:2] in ("0x", "0X") else key


def _our_keys(order: Order, trader: ExchangeTrader) -> list[str]:
    """The ids the venue may list ``order`` under: its client order id, the venue's form of
    it recorded when it was sent, and the form the trader derives now (for orders recorded
    before the venue's form was stored, or attached orders)."""
    keys = [order.client_order_id]
    if order.venue_client_order_id:
        keys.append(order.venue_client_order_id)
    try:
        derived = trader.venue_client_order_id(order.client_order_id)
    except Exception:  # noqa: BLE001 - a trader that cannot derive it matches by the others
        derived = ""
    if derived:
        keys.append(derived)
    return [_norm(k) for k in keys]


@dataclass(frozen=True)
class _RowsBefore:
    """Where the account's Position rows stood before this pass synced them."""

    updated: dict[tuple[str, str], datetime]  # (symbol, side) -> latest row update, any status
    size: dict[tuple[str, str], Decimal]  # (symbol, side) -> open size


def _rows_before(account: ExchangeAccount) -> _RowsBefore:
    updated = {(symbol, side): at for symbol, side, at in Position.objects.filter(account=account).values_list(
        "symbol", "side").annotate(at=Max("updated_at"))}
    size = {(symbol, side): value for symbol, side, value in Position.objects.filter(
        account=account, status=Position.Status.OPEN).values_list("symbol", "side", "size")}
    return _RowsBefore(updated=updated, size=size)


def _signed(order_side: str, position_side: str, quantity: Decimal) -> Decimal:
    """What a quantity on ``order_side`` does to a ``position_side`` position."""
    return quantity if is_opening(order_side, position_side) else -quantity


def _explained(account: ExchangeAccount, change: dict[str, Any], before: _RowsBefore) -> bool:
    """Whether a position change is ours: the fills of ours not yet folded into the row
    (newer than its last update: a fill whose position read failed, or one applied since
    the last pass), plus at most what our orders still awaiting confirmation may have
    executed, add up to it exactly."""
    key = (change["symbol"], change["side"])
    fills = Fill.objects.filter(account=account, symbol=key[0], order__position_side=key[1])
    if key in before.updated:
        fills = fills.filter(filled_at__gt=before.updated[key])
    net = sum((_signed(side, key[1], qty) for side, qty in fills.values_list("side", "quantity")), ZERO)
    pending = sum((_signed(side, key[1], qty - done) for side, qty, done in Order.objects.filter(
        account=account, symbol=key[0], position_side=key[1],
        status__in=(Order.Status.PENDING, Order.Status.UNKNOWN)).values_list(
        "side", "quantity", "executed_quantity")), ZERO)
    if net == 0 and pending == 0:
        return False
    after = Decimal(change["venue_size"]) if "venue_size" in change else ZERO
    rest = after - before.size.get(key, ZERO) - net
    return min(ZERO, pending) <= rest <= max(ZERO, pending)


def account_reconcile(*, account: ExchangeAccount, trader: ExchangeTrader | None = None,
                      snapshot_balance: bool = True) -> ReconcileReport:
    report = ReconcileReport(account_id=account.pk)
    own = trader is None
    trader = trader or trader_for_account(account)
    now = timezone.now()
    lost_after_lookups, lost_after = lost_rule()
    try:
        _liquidations(account, trader, report, now=now)
        try:
            venue_orders = trader.get_open_orders()
            listed_ok = True
        except ExchangeError as exc:
            report.errors.append(f"open orders: {type(exc).__name__}")
            venue_orders, listed_ok = [], False
        listed: dict[str, OrderResult] = {}
        for vo in venue_orders:
            for key in _venue_keys(vo):
                listed.setdefault(key, vo)
        known: set[str] = set()
        for order in Order.objects.filter(account=account, status__in=Order.OPEN_STATUSES).order_by("created_at"):
            report.orders_checked += 1
            keys = _our_keys(order, trader)
            known.update(keys)
            seen = next((listed[k] for k in keys if k in listed), None)
            if _unchanged(order, seen):
                continue
            try:
                result = trader.get_order(order.symbol, order_id=order.exchange_order_id or None,
                                          client_order_id=order.client_order_id)
            except OrderNotFound:
                if seen is not None:
                    # Listed open but not found by its id (a venue's lagging index): the
                    # list is evidence enough that it exists.
                    _apply(order, seen, report)
                    continue
                _not_found(account, order, report, now=now, lookups=lost_after_lookups, window=lost_after)
                continue
            except ExchangeError as exc:
                report.errors.append(f"order {order.client_order_id}: {type(exc).__name__}")
                continue
            _apply(order, result, report)

        if listed_ok and venue_orders:
            _match_the_rest(account, venue_orders, known, report)

        before = _rows_before(account)
        read_started_at = timezone.now()
        try:
            venue_positions = trader.get_positions()
        except ExchangeError as exc:
            report.errors.append(f"positions: {type(exc).__name__}")
        else:
            changes = positions_sync(account=account, venue_positions=venue_positions, expected=False,
                                     read_started_at=read_started_at)
            for change in changes.unexpected:
                if _explained(account, change, before):
                    report.explained_position_changes.append(change)
                    continue
                report.position_changes.append(change)
                _discrepancy(account, f"Position {change['side']} {change['symbol']} {change['change']} at the venue "
                             "without an order of ours", change, change["symbol"])

        _funding(account, trader, report, now=now)
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


def _liquidations(account: ExchangeAccount, trader: ExchangeTrader, report: ReconcileReport, *, now) -> None:
    """Before positions are synced, so the position a liquidation closed is closed by it
    (with its fill) rather than reported as gone without an order of ours."""
    try:
        results = trader.get_liquidations(liquidations_since(account=account, now=now))
    except ExchangeError as exc:
        report.errors.append(f"liquidations: {type(exc).__name__}")
        return
    for result in results:
        try:
            order = liquidation_record(account=account, result=result)
        except Exception as exc:  # noqa: BLE001 - one bad record must not stop the pass (rolled back)
            logger.exception("account %s: liquidation %s not recorded", account.pk, result.client_order_id)
            report.errors.append(f"liquidation {result.client_order_id or result.order_id}: {type(exc).__name__}")
            continue
        if order is not None:
            report.liquidations_recorded.append(order.client_order_id)


def _funding(account: ExchangeAccount, trader: ExchangeTrader, report: ReconcileReport, *, now) -> None:
    try:
        payments = trader.get_funding_payments(funding_since(account=account, now=now))
    except ExchangeError as exc:
        report.errors.append(f"funding: {type(exc).__name__}")
        return
    if payments:
        report.funding_recorded += len(funding_record(account=account, payments=payments))


def _apply(order: Order, result: OrderResult, report: ReconcileReport) -> Order:
    before = (order.status, order.executed_quantity)
    order = order_apply_result(order=order, result=result)
    if (order.status, order.executed_quantity) != before:
        report.orders_updated += 1
    return order


def _not_found(account: ExchangeAccount, order: Order, report: ReconcileReport, *, now, lookups: int,
               window: timedelta) -> None:
    """One more look-up that did not find the order: LOST only when the rule says so."""
    order.lookup_failures += 1
    old_enough = (order.submitted_at or order.created_at) <= now - window
    if order.lookup_failures >= lookups and old_enough:
        order.status = Order.Status.LOST
        order.closed_at = now
        order.error = (f"The venue does not know this order after {order.lookup_failures} look-ups over "
                       f"{int(window.total_seconds())} s or more")
        order.save(update_fields=["status", "closed_at", "error", "lookup_failures", "updated_at"])
        order_event(order, "updated")
        report.orders_lost += 1
        _discrepancy(account, f"Order {order.client_order_id} ({order.symbol}) is unknown to the venue: "
                     "marked lost", {"client_order_id": order.client_order_id}, order.symbol)
    else:
        order.save(update_fields=["lookup_failures", "updated_at"])


def _match_the_rest(account: ExchangeAccount, venue_orders: list[OrderResult], known: set[str],
                    report: ReconcileReport) -> None:
    """Venue orders that match none of our open orders: one of ours the platform gave up on
    (LOST: brought back and applied), one of ours in another state (left alone), or not ours
    (reported)."""
    rest = [vo for vo in venue_orders if not any(k in known for k in _venue_keys(vo))]
    if not rest:
        return
    keys = {k for vo in rest for k in _venue_keys(vo)}
    raw_keys = keys | {k for vo in rest for k in (vo.client_order_id, vo.venue_client_order_id) if k}
    ours: dict[str, Order] = {}
    for order in Order.objects.filter(Q(client_order_id__in=raw_keys) | Q(venue_client_order_id__in=raw_keys),
                                      account=account):
        for key in (order.client_order_id, order.venue_client_order_id):
            if key:
                ours.setdefault(_norm(key), order)
    for vo in rest:
        order = next((ours[k] for k in _venue_keys(vo) if k in ours), None)
        if order is None:
            report.unknown_venue_orders.append(vo.client_order_id or vo.order_id)
            _discrepancy(account, f"An open {vo.side} order for {vo.quantity} {vo.symbol} exists at the venue "
                         "that the platform did not place",
                         {"order_id": vo.order_id, "client_order_id": vo.client_order_id}, vo.symbol)
            continue
        if order.status == Order.Status.LOST:
            order.status = Order.Status.UNKNOWN  # open again, so that the venue's answer applies in full
            order.closed_at = None
            order.error = ""
            order.save(update_fields=["status", "closed_at", "error", "updated_at"])
            _apply(order, vo, report)
            report.orders_recovered += 1
            logger.warning("order %s was marked lost but the venue lists it: applied", order.client_order_id)
