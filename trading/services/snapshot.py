"""The risk snapshot an order is checked against.

Two phases, so the user's risk lock is never held across a network call:
1. ``live_read`` (no lock): the target account's balance, positions and price from
   the venue. A failed read stays None, and the policy rejects (fail closed).
2. ``risk_snapshot`` (under the lock): the rest from the database: the user's other
   accounts (positions, latest balance snapshot), orders in flight (reservations),
   recent order counts, today's PnL, halts. Orders that filled after the live read
   started are counted as reservations, so a fill racing the read is never missed.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from django.db.models import Exists, OuterRef, Q, Subquery, Sum
from django.utils import timezone

from alpha_platform.common.config import get_config
from exchanges.adapters.base import Balance, ExchangeTrader
from exchanges.adapters.base import Position as VenuePosition
from exchanges.adapters.errors import ExchangeError
from exchanges.models import ExchangeAccount
from risk.policy import PositionView, Snapshot
from risk.services import global_halt_active, user_halt_active
from trading.models import BalanceSnapshot, Fill, Order, Position

logger = logging.getLogger(__name__)
D0 = Decimal("0")


@dataclass
class LiveRead:
    account: ExchangeAccount
    symbol: str
    started_at: datetime
    balance: Balance | None = None
    positions: list[VenuePosition] | None = None
    price: Decimal | None = None
    errors: tuple[str, ...] = ()


def live_read(*, account: ExchangeAccount, trader: ExchangeTrader, symbol: str) -> LiveRead:
    read = LiveRead(account=account, symbol=symbol, started_at=timezone.now())
    errors: list[str] = []
    for name, call in (("price", lambda: trader.get_market_price(symbol)),
                       ("balance", trader.get_balance),
                       ("positions", trader.get_positions)):
        try:
            setattr(read, name, call())
        except ExchangeError as exc:
            errors.append(f"{name}: {type(exc).__name__}: {exc.message}")
            logger.warning("risk read of %s failed for account %s: %s", name, account.pk, type(exc).__name__)
    read.errors = tuple(errors)
    return read


def _venue_limits(venue: str, symbol: str, venue_symbol: str | None) -> tuple[Decimal, int]:
    cfg = get_config().venue(venue)
    trading = cfg.get("trading", {})
    min_notional = Decimal(str(trading.get("position_sizing", {}).get("min_notional", 0)))
    leverage = trading.get("leverage", {})
    per_symbol = leverage.get("per_symbol") or {}
    max_lev = int(per_symbol.get(venue_symbol or "", per_symbol.get(symbol, leverage.get("maximum", 1))))
    return min_notional, max_lev


def _order_view(order: Order, price: Decimal | None) -> PositionView | None:
    remaining = order.quantity - order.executed_quantity if order.status != Order.Status.FILLED else order.quantity
    mark = order.price or order.stop_price or price
    if remaining <= 0 or not mark:
        return None
    return PositionView(account_id=order.account_id, venue=order.account.venue, symbol=order.symbol,
                        side=order.position_side, size=remaining, mark_price=mark)


def equity_figures(*, user, now: datetime, live: tuple[ExchangeAccount, Decimal] | None = None
                   ) -> tuple[Decimal | None, Decimal | None]:
    """(equity now, equity at the start of the UTC day) across the user's accounts.

    ``live`` gives one account's current equity read from the venue; the others are
    valued at their latest balance snapshot. An account with open positions and no
    snapshot makes equity unknown (None): its value cannot be guessed. An account with
    no snapshot from before today counts at its current equity for the day's start.
    """
    day_start = now.replace(hour=0, minute=0, second=0, microsecond=0)
    snapshots = BalanceSnapshot.objects.filter(account=OuterRef("pk"))
    accounts = (ExchangeAccount.objects.filter(owner=user).exclude(status=ExchangeAccount.Status.DISABLED)
                .annotate(latest=Subquery(snapshots.order_by("-taken_at").values("margin_balance")[:1]),
                          before_day=Subquery(snapshots.filter(taken_at__lte=day_start).order_by("-taken_at")
                                              .values("margin_balance")[:1]),
                          within_day=Subquery(snapshots.filter(taken_at__gte=day_start).order_by("taken_at")
                                              .values("margin_balance")[:1]),
                          has_open=Exists(Position.objects.filter(account=OuterRef("pk"),
                                                                  status=Position.Status.OPEN)))
                .values_list("pk", "latest", "before_day", "within_day", "has_open"))
    equity = D0
    start = D0
    for pk, latest, before_day, within_day, has_open in accounts:  # one query, whatever the number of accounts
        if live is not None and pk == live[0].pk:
            current = live[1]
        elif latest is None:
            if has_open:
                return None, None
            continue
        else:
            current = latest
        equity += current
        opening = before_day if before_day is not None else within_day
        start += opening if opening is not None else current
    return equity, start


def risk_snapshot(*, user, read: LiveRead, now: datetime | None = None,
                  exclude_order_ids: tuple[int, ...] = ()) -> Snapshot:
    now = now or timezone.now()
    account = read.account
    day_start = now.replace(hour=0, minute=0, second=0, microsecond=0)

    # Positions: live for the target account, recorded rows for the user's other accounts.
    positions: list[PositionView] | None = None
    if read.positions is not None:
        positions = [PositionView(account_id=account.pk, venue=account.venue, symbol=p.symbol, side=str(p.side),
                                  size=p.size, mark_price=p.mark_price) for p in read.positions]
        for row in Position.objects.filter(owner=user, status=Position.Status.OPEN).exclude(
                account=account).select_related("account"):
            positions.append(PositionView(account_id=row.account_id, venue=row.account.venue, symbol=row.symbol,
                                          side=row.side, size=row.size, mark_price=row.mark_price))

    equity, day_start_equity = (equity_figures(user=user, now=now, live=(account, read.balance.margin_balance))
                                if read.balance is not None else (None, None))

    # Reservations: opening orders in flight anywhere, and orders that filled after the
    # live read began (their effect may be missing from it).
    reserved: list[PositionView] = []
    in_flight = Order.objects.filter(owner=user, reduce_only=False).filter(
        Q(status__in=[Order.Status.PENDING, Order.Status.NEW, Order.Status.PARTIALLY_FILLED, Order.Status.UNKNOWN])
        | Q(account=account, status__in=[Order.Status.FILLED, Order.Status.PARTIALLY_FILLED],
            updated_at__gte=read.started_at)
    ).exclude(pk__in=exclude_order_ids).exclude(order_type__in=["STOP_MARKET", "TAKE_PROFIT_MARKET"]).select_related("account")
    for order in in_flight:
        opening = (order.side == "BUY") == (order.position_side == "LONG")
        if not opening:
            continue
        view = _order_view(order, read.price if order.symbol == read.symbol else None)
        if view is not None:
            reserved.append(view)

    sent = Order.objects.filter(owner=user).exclude(status=Order.Status.REJECTED).exclude(source=Order.Source.SYSTEM)
    realized_today = Fill.objects.filter(account__owner=user, filled_at__gte=day_start).aggregate(
        s=Sum("realized_pnl"))["s"] or D0
    unrealized = sum((p.unrealized_pnl for p in read.positions or []), D0) + (
        Position.objects.filter(owner=user, status=Position.Status.OPEN).exclude(account=account).aggregate(
            s=Sum("unrealized_pnl"))["s"] or D0)
    last_loss = Fill.objects.filter(account__owner=user, realized_pnl__lt=0).order_by("-filled_at").values_list(
        "filled_at", flat=True).first()
    venue_symbol = get_config().symbol_map(account.venue).get(read.symbol)
    min_notional, max_lev = _venue_limits(account.venue, read.symbol, venue_symbol)
    return Snapshot(
        now=now, equity=equity, positions=tuple(positions) if positions is not None else None, price=read.price,
        reserved=tuple(reserved), day_start_equity=day_start_equity, realized_pnl_today=realized_today,
        unrealized_pnl=unrealized,
        orders_last_minute=sent.filter(created_at__gte=now - timedelta(minutes=1)).count(),
        orders_last_hour=sent.filter(created_at__gte=now - timedelta(hours=1)).count(),
        last_losing_close_at=last_loss, venue_min_notional=min_notional, venue_max_leverage=max_lev,
        user_halted=user_halt_active(user.pk) is not None, global_halt=global_halt_active() is not None,
    )
