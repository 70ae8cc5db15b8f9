"""Bringing Position, Fill and BalanceSnapshot rows in line with what a venue reports."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal

from django.db import IntegrityError, transaction
from django.utils import timezone

from alpha_platform.common.money import dec_str
from alpha_platform.common.safe_json import json_safe
from exchanges.adapters.base import Balance, OrderResult
from exchanges.adapters.base import Position as VenuePosition
from exchanges.models import ExchangeAccount
from trading.events import balance_event, order_event, position_event
from trading.models import BalanceSnapshot, Fill, Order, Position

logger = logging.getLogger(__name__)

# Order status from the adapter's vocabulary to ours (same names, kept explicit).
STATUS_MAP = {
    "NEW": Order.Status.NEW, "PARTIALLY_FILLED": Order.Status.PARTIALLY_FILLED, "FILLED": Order.Status.FILLED,
    "CANCELLED": Order.Status.CANCELLED, "REJECTED": Order.Status.REJECTED, "EXPIRED": Order.Status.EXPIRED,
    "FAILED": Order.Status.FAILED,
}
TERMINAL = {Order.Status.FILLED, Order.Status.CANCELLED, Order.Status.REJECTED, Order.Status.EXPIRED,
            Order.Status.FAILED, Order.Status.LOST}


@dataclass
class PositionChanges:
    opened: list[Position] = field(default_factory=list)
    updated: list[Position] = field(default_factory=list)
    closed: list[Position] = field(default_factory=list)
    unexpected: list[dict] = field(default_factory=list)  # changes without a fill of ours


def _json_safe(raw: dict) -> dict:
    """A venue's raw answer as stored: no NaN/Infinity (PostgreSQL jsonb refuses them), no
    NUL characters, Decimals and dates as text, bounded."""
    safe = json_safe(raw)
    return safe if isinstance(safe, dict) else {"value": safe}


@transaction.atomic
def order_apply_result(*, order: Order, result: OrderResult) -> Order:
    """Record a venue's answer on our order: status, execution, fees, fills; and the
    attached protective orders as child orders. Idempotent: fills are unique by trade id."""
    order = Order.objects.select_for_update().get(pk=order.pk)
    before = (order.status, order.executed_quantity)
    order.exchange_order_id = result.order_id or order.exchange_order_id
    order.status = STATUS_MAP.get(str(result.status), Order.Status.NEW)
    order.executed_quantity = min(result.executed_quantity, order.quantity)
    order.executed_price = result.executed_price
    order.fees = result.fees
    order.fee_currency = result.fee_currency or order.fee_currency
    order.raw_data = _json_safe(result.raw_data)
    order.lookup_failures = 0
    if order.executed_quantity > before[1]:
        # New execution: not in any Position row yet, whatever was folded before.
        order.position_folded_at = None
    if order.status in TERMINAL and order.closed_at is None:
        order.closed_at = timezone.now()
    order.save()
    for fill in result.fills:
        Fill.objects.get_or_create(order=order, trade_id=fill.trade_id, defaults=dict(
            account=order.account, symbol=order.symbol, side=order.side, quantity=fill.quantity,
            price=fill.price, fee=fill.fee, realized_pnl=fill.realized_pnl, filled_at=fill.timestamp))
    if not result.fills and order.executed_quantity > before[1] and order.executed_price:
        # Venues that report no trade list: one synthetic fill for the newly executed part.
        Fill.objects.get_or_create(order=order, trade_id=f"{order.exchange_order_id or order.client_order_id}-agg",
                                   defaults=dict(account=order.account, symbol=order.symbol, side=order.side,
                                                 quantity=order.executed_quantity - before[1],
                                                 price=order.executed_price, fee=order.fees,
                                                 filled_at=result.timestamp))
    for child in result.attached:
        _attached_record(order=order, child=child)
    if (order.status, order.executed_quantity) != before:
        action = {Order.Status.FILLED: "filled", Order.Status.PARTIALLY_FILLED: "partially_filled",
                  Order.Status.CANCELLED: "cancelled", Order.Status.REJECTED: "rejected",
                  Order.Status.EXPIRED: "cancelled"}.get(order.status, "updated")
        order_event(order, action)
    return order


def _attached_record(*, order: Order, child: OrderResult) -> None:
    """A protective order the venue attached to ``order``, as a child Order of the same
    account. Client order ids are unique per account only, so the child is looked up in
    the parent's account: another account's order with the same id is never touched."""
    fields = dict(owner=order.owner, parent=order, source=Order.Source.SYSTEM,
                  actor=f"attached:{order.client_order_id}", exchange_order_id=child.order_id,
                  symbol=order.symbol, side=str(child.side), position_side=order.position_side,
                  order_type=str(child.order_type), reduce_only=True, quantity=child.quantity or order.quantity,
                  stop_price=child.stop_price, price=child.price,
                  status=STATUS_MAP.get(str(child.status), Order.Status.NEW),
                  submitted_at=order.submitted_at, raw_data=_json_safe(child.raw_data),
                  venue_client_order_id=child.venue_client_order_id
                  if child.venue_client_order_id != child.client_order_id else "")
    existing = Order.objects.select_for_update().filter(account=order.account,
                                                        client_order_id=child.client_order_id).first()
    if existing is not None and existing.parent_id != order.pk:
        # An unrelated order of this account already has the id (the venue accepted both, so
        # it will not happen there): keep that order as it is rather than rewrite it.
        logger.warning("order %s: attached order %s not recorded, the account already has an order with that id",
                       order.client_order_id, child.client_order_id)
        return
    if existing is None:
        child_order = Order.objects.create(account=order.account, client_order_id=child.client_order_id, **fields)
    else:
        for name, value in fields.items():
            setattr(existing, name, value)
        existing.save()
        child_order = existing
    order_event(child_order, "created")


def _realized_since(account: ExchangeAccount, symbol: str, since) -> Decimal:
    total = Decimal("0")
    for value in Fill.objects.filter(account=account, symbol=symbol, filled_at__gte=since).values_list(
            "realized_pnl", flat=True):
        total += value
    return total


# How long after its fill was recorded an order is taken to be in any position state read
# by a caller that does not say when its read began (the read happens just before the
# sync, and a read slower than this has timed out).
FOLD_GRACE = timedelta(seconds=60)


def _older(row: Position, vp: VenuePosition | None, read_started_at: datetime | None) -> bool:
    """Whether the state a writer holds (``vp``, or the position's absence when None, read
    from ``read_started_at``) is older than the one ``row`` already holds."""
    if read_started_at is not None and row.read_started_at is not None and read_started_at < row.read_started_at:
        return True
    return (vp is not None and vp.timestamp is not None and row.venue_state_at is not None
            and vp.timestamp < row.venue_state_at)


def _values(vp: VenuePosition, read_started_at: datetime | None) -> dict:
    return dict(size=vp.size, entry_price=vp.entry_price, mark_price=vp.mark_price,
                unrealized_pnl=vp.unrealized_pnl, percentage_pnl=vp.percentage_pnl,
                leverage=vp.leverage if vp.leverage > 0 else Decimal("1"), margin=vp.margin,
                liquidation_price=vp.liquidation_price, margin_type=vp.margin_type or "cross",
                position_id=vp.position_id or "", raw_data=_json_safe(vp.raw_data),
                venue_state_at=vp.timestamp, read_started_at=read_started_at)


@transaction.atomic
def positions_sync(*, account: ExchangeAccount, venue_positions: Sequence[VenuePosition],
                   symbols: Iterable[str] | None = None, expected: bool = True,
                   read_started_at: datetime | None = None) -> PositionChanges:
    """Make the account's open Position rows match the venue's list.

    ``symbols`` limits the sync to those symbols (after an order); None syncs all.
    ``expected`` is False during reconciliation: then a change is also reported as
    unexpected (a liquidation, or trading outside the platform).
    ``read_started_at`` is when the caller began reading ``venue_positions``: a row holding
    a state read later, or stamped later by the venue, is left alone (writers that commit
    out of order never overwrite a newer state); and every fill of ours recorded before it
    is in the state read, so those orders are marked folded and stop counting as unfolded
    fills in the risk picture. Without it, fills recorded ``FOLD_GRACE`` ago are folded.
    """
    now = timezone.now()
    changes = PositionChanges()
    scope = set(symbols) if symbols is not None else None
    # The account row is the lock every writer of its positions takes first: two syncs of
    # the same account (two fills, a fill and reconciliation) run one after the other, so
    # neither creates the open row the other is creating, and the second sees the first's.
    ExchangeAccount.objects.select_for_update().filter(pk=account.pk).first()
    venue = {(p.symbol, str(p.side)): p for p in venue_positions if scope is None or p.symbol in scope}
    ours = {(p.symbol, p.side): p for p in Position.objects.select_for_update().filter(
        account=account, status=Position.Status.OPEN) if scope is None or p.symbol in scope}
    # The newest closed row per leg, for a state older than a close already recorded.
    closed_keys = {key for key in venue if key not in ours}
    latest_closed: dict[tuple[str, str], Position] = {}
    if closed_keys:
        for row in Position.objects.filter(account=account, symbol__in={k[0] for k in closed_keys}).exclude(
                status=Position.Status.OPEN).order_by("updated_at", "id"):
            latest_closed[(row.symbol, row.side)] = row
    for key, vp in venue.items():
        row = ours.get(key)
        values = _values(vp, read_started_at)
        if row is None:
            last = latest_closed.get(key)
            if last is not None and _older(last, vp, read_started_at):
                logger.info("positions_sync account %s %s: state older than the close recorded; ignored",
                            account.pk, key)
                continue
            row, created = _position_create(account=account, vp=vp, values=values, now=now)
            (changes.opened if created else changes.updated).append(row)
            if created and not expected:
                changes.unexpected.append({"symbol": vp.symbol, "side": str(vp.side), "change": "appeared",
                                           "venue_size": dec_str(vp.size)})
        else:
            if _older(row, vp, read_started_at):
                logger.info("positions_sync account %s %s: state older than the row's; ignored", account.pk, key)
                continue
            if not expected and row.size != vp.size:
                changes.unexpected.append({"symbol": vp.symbol, "side": str(vp.side), "change": "size changed",
                                           "our_size": dec_str(row.size), "venue_size": dec_str(vp.size)})
            for name, value in values.items():
                setattr(row, name, value)
            row.save()
            changes.updated.append(row)
        position_event(row)
    for key, row in ours.items():
        if key in venue:
            continue
        if _older(row, None, read_started_at):
            continue
        liquidated = False
        if row.liquidation_price is not None and row.mark_price:
            liq = row.liquidation_price
            liquidated = (row.side == "LONG" and row.mark_price <= liq) or (row.side == "SHORT" and row.mark_price >= liq)
        row.status = Position.Status.LIQUIDATED if liquidated else Position.Status.CLOSED
        row.realized_pnl = _realized_since(account, row.symbol, row.opened_at)
        row.size = Decimal("0")
        row.unrealized_pnl = Decimal("0")
        row.closed_at = now
        row.read_started_at = read_started_at or row.read_started_at
        row.save()
        changes.closed.append(row)
        if not expected:
            changes.unexpected.append({"symbol": row.symbol, "side": row.side,
                                       "change": "liquidated" if liquidated else "disappeared"})
        position_event(row)
    fills = Order.objects.filter(account=account, executed_quantity__gt=0, position_folded_at__isnull=True,
                                 updated_at__lte=read_started_at or now - FOLD_GRACE)
    if scope is not None:
        fills = fills.filter(symbol__in=scope)
    fills.update(position_folded_at=now)
    return changes


def _position_create(*, account: ExchangeAccount, vp: VenuePosition, values: dict,
                     now: datetime) -> tuple[Position, bool]:
    """The open row for a leg, created in a savepoint: should another writer have created
    it in the meantime (one that did not take the account lock), its row is re-read and
    updated if this state is not older, rather than an IntegrityError escaping."""
    try:
        with transaction.atomic():
            return Position.objects.create(account=account, owner=account.owner, symbol=vp.symbol,
                                           side=str(vp.side), opened_at=now, **values), True
    except IntegrityError:
        row = Position.objects.select_for_update().filter(account=account, symbol=vp.symbol, side=str(vp.side),
                                                          status=Position.Status.OPEN).first()
        if row is None:
            raise
        if not _older(row, vp, values.get("read_started_at")):
            for name, value in values.items():
                setattr(row, name, value)
            row.save()
        return row, False


def balance_snapshot_record(*, account: ExchangeAccount, balance: Balance) -> BalanceSnapshot:
    snapshot = BalanceSnapshot.objects.create(
        account=account, taken_at=balance.timestamp or timezone.now(), currency=balance.currency,
        total_balance=max(balance.total_balance, Decimal("0")),
        available_balance=max(balance.available_balance, Decimal("0")),
        margin_balance=balance.margin_balance, unrealized_pnl=balance.unrealized_pnl,
        margin_used=balance.margin_used, maintenance_margin=balance.maintenance_margin,
        can_trade=balance.can_trade, account_type=balance.account_type, raw_data=_json_safe(balance.raw_data))
    balance_event(snapshot, account.owner_id)
    return snapshot
