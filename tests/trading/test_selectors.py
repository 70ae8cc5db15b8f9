"""PnL per position, account, agent and day; balances and the equity curve."""

from datetime import timedelta
from decimal import Decimal as D

import pytest
from django.utils import timezone

from agents.selectors import agent_pnl
from tests.factories import make_account, make_agent
from trading.models import BalanceSnapshot, Position
from trading.selectors import account_balances, equity_curve, pnl_by_account, pnl_by_day, pnl_today
from trading.services import client_order_id_for, order_submit

pytestmark = pytest.mark.django_db


def trade(account, side, qty, **kw):
    position_side = kw.pop("position_side", "LONG")
    return order_submit(account=account, symbol="BTC/USDT", side=side, position_side=position_side,
                        quantity=D(qty), source="api", **kw).order


def test_round_trip_pnl_everywhere(user, other_user, market):
    account = make_account(user)
    make_account(other_user)  # another user's data never counts
    trade(account, "BUY", "0.02")  # fills at 50,010 (2 bps), fee 0.5001
    market.set("BTC/USDT", "51000")
    trade(account, "SELL", "0.02", reduce_only=True)  # fills at 50,989.8, fee 0.509898
    realized = (D("50989.8") - D("50010")) * D("0.02")  # 19.596
    fees = D("0.5001") + D("0.509898")

    position = Position.objects.get(account=account)
    assert position.status == "closed" and position.realized_pnl == realized

    [row] = pnl_by_account(user=user)
    assert (row["realized"], row["fees"], row["unrealized"]) == (realized, fees, 0)
    [day] = pnl_by_day(user=user)
    assert day["day"] == timezone.now().date() and day["net"] == realized - fees and day["fills"] == 2

    today = pnl_today(user=user)
    assert today["realized"] == realized and today["fees"] == fees
    # No snapshot from before today: the day starts at the first one (taken after the first fill).
    first = BalanceSnapshot.objects.filter(account=account).order_by("taken_at").first()
    assert today["day_start_equity"] == first.margin_balance
    assert today["change"] == D("10000") + realized - fees - first.margin_balance

    rows, totals = account_balances(user=user)
    assert [r.account for r in rows] == [account]
    assert totals["margin_balance"] == D("10000") + realized - fees


def test_agent_pnl_counts_only_its_orders(user, market, settings):
    from agents.models import Decision, ToolCall

    account = make_account(user)
    agent = make_agent(user, account)
    decision = Decision.objects.create(agent=agent, owner=user, status="executed", model_name="x",
                                       started_at=timezone.now())
    opened = trade(account, "BUY", "0.02", client_order_id=client_order_id_for(decision_id=decision.pk, index=0))
    ToolCall.objects.create(decision=decision, index=0, name="open_long", status="ok", order=opened)
    market.set("BTC/USDT", "51000")
    closed = trade(account, "SELL", "0.02", reduce_only=True,
                   client_order_id=client_order_id_for(decision_id=decision.pk, index=1))
    ToolCall.objects.create(decision=decision, index=1, name="close_long", status="ok", order=closed)
    trade(account, "BUY", "0.01")  # a manual order: not the agent's
    pnl = agent_pnl(agent=agent)
    assert pnl["realized"] == (D("50989.8") - D("50010")) * D("0.02")
    assert pnl["fees"] == D("0.5001") + D("0.509898")


def test_equity_curve_per_account_and_total(user):
    a = make_account(user, name="a")
    b = make_account(user, name="b")
    t0 = timezone.now() - timedelta(hours=1)
    for account, minute, equity in [(a, 0, "100"), (b, 1, "50"), (a, 2, "110")]:
        BalanceSnapshot.objects.create(account=account, taken_at=t0 + timedelta(minutes=minute),
                                       total_balance=D(equity), available_balance=D(equity), margin_balance=D(equity))
    curve = equity_curve(user=user, since=t0 - timedelta(minutes=1))
    assert [v for _, v in curve["accounts"]["a"]] == ["100", "110"]
    assert [v for _, v in curve["total"]] == ["100", "150", "160"]
