"""Reads for the portal, the API and the admin: balances, positions, equity, PnL.

Every selector takes the user and returns only that user's data.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from django.db.models import Count, Q, Sum
from django.db.models.functions import TruncDate
from django.utils import timezone

from alpha_platform.common.money import ZERO, dec_str
from exchanges.models import ExchangeAccount
from risk.models import RiskProfile
from risk.services import actor_for_viewer, global_halt_active, user_halt_active
from trading.models import BalanceSnapshot, Fill, FundingPayment, Order, Position
from trading.services.snapshot import equity_figures


@dataclass(frozen=True)
class AccountBalance:
    account: ExchangeAccount
    snapshot: BalanceSnapshot | None

    @property
    def equity(self) -> Decimal:
        return self.snapshot.margin_balance if self.snapshot else ZERO


def account_balances(*, user) -> tuple[list[AccountBalance], dict[str, Decimal]]:
    """The latest balance snapshot of each of the user's accounts, and the totals."""
    rows = []
    totals = defaultdict(lambda: ZERO)
    for account in ExchangeAccount.objects.filter(owner=user).order_by("name"):
        snap = BalanceSnapshot.objects.filter(account=account).order_by("-taken_at").first()
        rows.append(AccountBalance(account=account, snapshot=snap))
        if snap:
            for name in ("total_balance", "available_balance", "margin_balance", "unrealized_pnl", "margin_used"):
                totals[name] += getattr(snap, name)
    return rows, dict(totals)


def open_positions(*, user, account: ExchangeAccount | None = None):
    qs = Position.objects.filter(owner=user, status=Position.Status.OPEN).select_related("account")
    return qs.filter(account=account) if account else qs.order_by("account__name", "symbol")


def positions(*, user, status: str = "open", venue: str | None = None, account_id: int | None = None,
              symbol: str | None = None):
    """The user's positions: ``status`` open (by account and symbol), closed, liquidated or
    all (newest first)."""
    if status == "open":
        qs = open_positions(user=user)
    else:
        qs = Position.objects.filter(owner=user).select_related("account").order_by("-opened_at", "-id")
        if status != "all":
            qs = qs.filter(status=status)
    if venue:
        qs = qs.filter(account__venue=venue)
    if account_id:
        qs = qs.filter(account_id=account_id)
    if symbol:
        qs = qs.filter(symbol=symbol)
    return qs


def orders(*, user, status: str | None = None, account_id: int | None = None, symbol: str | None = None,
           source: str | None = None, since: datetime | None = None):
    qs = Order.objects.filter(owner=user).select_related("account", "risk_event")
    if status:
        qs = qs.filter(status=status)
    if account_id:
        qs = qs.filter(account_id=account_id)
    if symbol:
        qs = qs.filter(symbol=symbol)
    if source:
        qs = qs.filter(source=source)
    if since:
        qs = qs.filter(created_at__gte=since)
    return qs.order_by("-created_at", "-id")


def equity_curve(*, user, since: datetime | None = None, max_points: int = 500) -> dict[str, Any]:
    """Equity over time per account and in total, for charts.

    Returns {"accounts": {name: [[iso, equity], ...]}, "total": [[iso, equity], ...]}.
    The total at a moment is the sum of each account's latest equity up to then.
    """
    since = since or timezone.now() - timedelta(days=7)
    snaps = list(BalanceSnapshot.objects.filter(account__owner=user, taken_at__gte=since)
                 .select_related("account").order_by("taken_at"))
    step = max(1, len(snaps) // max_points)
    accounts: dict[str, list] = defaultdict(list)
    latest: dict[int, Decimal] = {}
    total = []
    for i, snap in enumerate(snaps):
        latest[snap.account_id] = snap.margin_balance
        if i % step and i != len(snaps) - 1:
            continue
        stamp = snap.taken_at.isoformat()
        accounts[snap.account.name].append([stamp, dec_str(snap.margin_balance)])
        total.append([stamp, dec_str(sum(latest.values(), ZERO))])
    return {"accounts": dict(accounts), "total": total}


def pnl_today(*, user) -> dict[str, Any]:
    """Today's (UTC) PnL against the daily loss limit."""
    now = timezone.now()
    day_start = now.replace(hour=0, minute=0, second=0, microsecond=0)
    equity, start = equity_figures(user=user, now=now)
    realized = Fill.objects.filter(account__owner=user, filled_at__gte=day_start).aggregate(
        s=Sum("realized_pnl"))["s"] or ZERO
    fees = Fill.objects.filter(account__owner=user, filled_at__gte=day_start).aggregate(s=Sum("fee"))["s"] or ZERO
    unrealized = Position.objects.filter(owner=user, status=Position.Status.OPEN).aggregate(
        s=Sum("unrealized_pnl"))["s"] or ZERO
    profile = RiskProfile.objects.get(user=user)
    change = (equity - start) if equity is not None and start is not None else None
    limit = profile.daily_loss_limit_percent * start if start else None
    used = (max(ZERO, -change) / limit) if change is not None and limit else ZERO
    return {"equity": equity, "day_start_equity": start, "change": change, "realized": realized, "fees": fees,
            "unrealized": unrealized, "loss_limit": limit, "limit_used": min(used, Decimal("1")) if limit else ZERO,
            "limit_percent": profile.daily_loss_limit_percent}


def pnl_by_day(*, user, days: int = 30) -> list[dict[str, Any]]:
    since = timezone.now() - timedelta(days=days)
    rows = (Fill.objects.filter(account__owner=user, filled_at__gte=since).annotate(day=TruncDate("filled_at"))
            .values("day").annotate(realized=Sum("realized_pnl"), fees=Sum("fee"), fills=Count("id")).order_by("day"))
    return [{"day": r["day"], "realized": r["realized"], "fees": r["fees"], "net": r["realized"] - r["fees"],
             "fills": r["fills"]} for r in rows]


def pnl_by_account(*, user) -> list[dict[str, Any]]:
    out = []
    for account in ExchangeAccount.objects.filter(owner=user).order_by("name"):
        agg = Fill.objects.filter(account=account).aggregate(realized=Sum("realized_pnl"), fees=Sum("fee"))
        unrealized = Position.objects.filter(account=account, status=Position.Status.OPEN).aggregate(
            s=Sum("unrealized_pnl"))["s"] or ZERO
        funding = FundingPayment.objects.filter(account=account).aggregate(s=Sum("amount"))["s"] or ZERO
        out.append({"account": account, "realized": agg["realized"] or ZERO, "fees": agg["fees"] or ZERO,
                    "funding": funding, "unrealized": unrealized})
    return out


def halt_state(*, user) -> dict[str, Any]:
    """What the kill-switch banner shows."""
    return {"user": user_halt_active(user.pk), "global": global_halt_active()}


def open_order_count(*, user) -> int:
    return Order.objects.filter(owner=user).filter(Q(status__in=Order.OPEN_STATUSES)).count()



def order_actor_for(order: Order, viewer: Any) -> str:
    """Who placed ``order``, as ``viewer`` may see it: a staff member who acted on someone
    else's account is "an operator" to that user (the admin keeps the name, for staff)."""
    return actor_for_viewer(order.actor, viewer)
