"""The risk snapshot an order is checked against.

Two phases, so the user's risk lock is never held across a network call:
1. ``live_read`` (no lock): the target account's balance, positions and price from
   the venue. A failed read stays None, and the policy rejects (fail closed).
2. ``risk_snapshot`` (under the lock): the rest from the database: the user's other
   accounts (positions, latest balance snapshot), orders in flight (reservations),
   recent order counts, today's PnL, halts.

The picture of exposure counts, on every account and symbol:
- the target account's positions as the venue reports them now;
- the other accounts' open Position rows, each valued at the freshest mark known for
  its symbol (never below the row's own);
- every opening order in flight (PENDING, NEW, PARTIALLY_FILLED, UNKNOWN; any type),
  for what is left to fill, valued at the highest of its own reference price (the mark
  the gate used when it was accepted), its limit/stop/executed price and the freshest
  mark of its symbol;
- every fill not yet folded into a Position row (``Order.position_folded_at`` unset:
  set by positions_sync once a position state read after the fill is written), and, on
  the target account, every fill recorded since its live read began.
What has no figure at all is listed in ``Snapshot.unvalued`` and refuses opening orders
(rule ``exposure_unvalued``): never counted as zero. A bounded number of queries, however
many accounts, symbols and orders (tests/trading/test_exposure_picture.py counts them).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from django.db import DatabaseError
from django.db.models import Exists, OuterRef, Q, Subquery, Sum
from django.utils import timezone
from redis.exceptions import RedisError

from alpha_platform.common.config import get_config
from alpha_platform.common.errors import PlatformUnavailable
from alpha_platform.common.money import ZERO
from alpha_platform.common.vocabulary import is_opening
from exchanges.adapters.base import Balance, ExchangeTrader
from exchanges.adapters.base import Position as VenuePosition
from exchanges.adapters.errors import ExchangeError, GuardUnavailable
from exchanges.models import ExchangeAccount
from risk.policy import PositionView, Snapshot
from risk.services import global_halt_active, user_halt_active
from trading.models import BalanceSnapshot, Fill, Order, Position

logger = logging.getLogger(__name__)
PLATFORM_DOWN = ("The platform's own state (its database or its Redis) cannot be read right now; the order "
                 "was refused and nothing was sent. Try again in a moment.")


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
    """Raises PlatformUnavailable when the platform's own state (the guard's Redis, the
    database) cannot be read: that is our failure, not the venue's, and it refuses the
    order before anything is written."""
    read = LiveRead(account=account, symbol=symbol, started_at=timezone.now())
    errors: list[str] = []
    for name, call in (("price", lambda: trader.get_market_price(symbol)),
                       ("balance", trader.get_balance),
                       ("positions", trader.get_positions)):
        try:
            setattr(read, name, call())
        except (GuardUnavailable, RedisError, DatabaseError) as exc:
            logger.warning("risk read of %s for account %s: platform state unreadable: %s", name, account.pk,
                           type(exc).__name__)
            raise PlatformUnavailable(PLATFORM_DOWN, extra={"retry_after_seconds": 5}) from exc
        except ExchangeError as exc:
            errors.append(f"{name}: {type(exc).__name__}: {exc.message}")
            logger.warning("risk read of %s failed for account %s: %s", name, account.pk, type(exc).__name__)
    read.errors = tuple(errors)
    return read


def _venue_limits(venue: str, symbol: str, venue_symbol: str | None) -> tuple[Decimal, int]:
    trading = get_config().venue(venue).trading
    per_symbol = trading.leverage.per_symbol
    max_lev = per_symbol.get(venue_symbol or "", per_symbol.get(symbol, trading.leverage.maximum))
    return trading.position_sizing.min_notional, max_lev


class _Marks:
    """The freshest mark known for each symbol, from what the picture already holds: the
    target account's live read (freshest of all), the Position rows' marks and the orders'
    own reference prices, each with the time it was taken. No query of its own."""

    def __init__(self) -> None:
        self._best: dict[str, tuple[datetime, Decimal]] = {}

    def offer(self, symbol: str, price: Decimal | None, at: datetime | None) -> None:
        if price is None or price <= 0 or at is None:
            return
        best = self._best.get(symbol)
        if best is None or at > best[0]:
            self._best[symbol] = (at, price)

    def get(self, symbol: str) -> Decimal | None:
        best = self._best.get(symbol)
        return best[1] if best else None


def _order_exposure(order: Order, read: LiveRead) -> Decimal:
    """Base quantity an opening order still adds to the picture: what is left to fill while
    it is in flight, plus what filled and is not yet in a Position row we hold (for the
    target account, only fills recorded after its live read began: earlier ones are in it)."""
    size = ZERO
    if order.status in Order.OPEN_STATUSES:
        size += order.quantity - order.executed_quantity
    if order.executed_quantity > 0 and (order.updated_at >= read.started_at
                                        if order.account_id == read.account.pk
                                        else order.position_folded_at is None):
        size += order.executed_quantity
    return size


def _order_price(order: Order, marks: _Marks) -> Decimal | None:
    """The worst (highest) of the order's own figures and the freshest mark of its symbol:
    an order is never valued below what the gate saw or what the market says now."""
    figures = [p for p in (order.reference_price, order.price, order.stop_price, order.executed_price,
                           marks.get(order.symbol)) if p is not None and p > 0]
    return max(figures) if figures else None


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
    equity = ZERO
    start = ZERO
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

    marks = _Marks()
    marks.offer(read.symbol, read.price, read.started_at)
    for p in read.positions or ():
        marks.offer(p.symbol, p.mark_price, read.started_at)

    # One query each, whatever the number of accounts and symbols: the other accounts'
    # open positions, and every opening order that is in flight or has a fill not yet in a
    # Position row (any account, any symbol, any status: a partly filled order later
    # cancelled still holds its fill).
    # Orders first: a positions_sync of another account that commits between the two reads
    # then shows its fill twice (as an unfolded fill and in the row), never not at all.
    # For the target account, fills recorded since its live read began count even when
    # folded since: the live read may predate them.
    orders = [o for o in Order.objects.filter(owner=user, reduce_only=False).filter(
        Q(status__in=Order.OPEN_STATUSES) | Q(executed_quantity__gt=0, position_folded_at__isnull=True)
        | Q(account=account, executed_quantity__gt=0, updated_at__gte=read.started_at)
    ).exclude(pk__in=exclude_order_ids).select_related("account")
        if is_opening(o.side, o.position_side)]
    rows = list(Position.objects.filter(owner=user, status=Position.Status.OPEN).exclude(account=account)
                .select_related("account"))
    for row in rows:
        marks.offer(row.symbol, row.mark_price, row.updated_at)
    for order in orders:
        marks.offer(order.symbol, order.reference_price, order.created_at)

    unvalued: list[str] = []
    positions: list[PositionView] | None = None
    if read.positions is not None:
        positions = [PositionView(account_id=account.pk, venue=account.venue, symbol=p.symbol, side=str(p.side),
                                  size=p.size, mark_price=p.mark_price) for p in read.positions]
        for row in rows:
            # Valued at the freshest mark known for the symbol (the row's own may be old),
            # and never below the row's own.
            mark = max((m for m in (row.mark_price, marks.get(row.symbol)) if m is not None), default=None)
            if not mark:
                unvalued.append(f"position {row.side} {row.symbol} on account {row.account_id}")
                continue
            positions.append(PositionView(account_id=row.account_id, venue=row.account.venue, symbol=row.symbol,
                                          side=row.side, size=row.size, mark_price=mark))

    equity, day_start_equity = (equity_figures(user=user, now=now, live=(account, read.balance.margin_balance))
                                if read.balance is not None else (None, None))

    reserved: list[PositionView] = []
    for order in orders:
        size = _order_exposure(order, read)
        if size <= 0:
            continue
        mark = _order_price(order, marks)
        if mark is None:
            # Nothing says what it is worth: it cannot be counted as zero, so the order
            # being checked is refused (rule exposure_unvalued).
            unvalued.append(f"order {order.client_order_id} ({order.symbol})")
            continue
        reserved.append(PositionView(account_id=order.account_id, venue=order.account.venue, symbol=order.symbol,
                                     side=order.position_side, size=size, mark_price=mark))

    sent = Order.objects.filter(owner=user).exclude(status=Order.Status.REJECTED).exclude(source=Order.Source.SYSTEM)
    realized_today = Fill.objects.filter(account__owner=user, filled_at__gte=day_start).aggregate(
        s=Sum("realized_pnl"))["s"] or ZERO
    unrealized = sum((p.unrealized_pnl for p in read.positions or []), ZERO) + sum(
        (row.unrealized_pnl for row in rows), ZERO)
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
        unvalued=tuple(unvalued),
    )
