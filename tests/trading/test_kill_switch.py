"""Kill switches: the user's (flatten and halt), the global halt, the daily loss trip."""

from datetime import timedelta
from decimal import Decimal as D

import pytest
from django.utils import timezone

from agents.models import AgentConfig
from exchanges.services import trader_for_account
from risk.models import KillSwitch, RiskEvent, RiskProfile
from risk.services import global_halt_lift, global_halt_trip
from tests.factories import make_account, make_agent
from trading.models import BalanceSnapshot, Order, Position
from trading.services import kill_switch_lift, kill_switch_trip, order_submit
from trading.tasks import kill_switch_flatten_task

pytestmark = pytest.mark.django_db


def flatten(switch):
    kill_switch_flatten_task(switch.pk)


def submit(account, symbol, side, position_side, qty, **kw):
    return order_submit(account=account, symbol=symbol, side=side, position_side=position_side,
                        quantity=D(qty), source=kw.pop("source", "api"), **kw)


def test_user_kill_switch_flattens_everything_and_halts_agents(user, other_user, market):
    paper = make_account(user, name="p1")
    second = make_account(user, name="p2")
    agent = make_agent(user, paper)
    others_agent = make_agent(other_user)
    assert submit(paper, "BTC/USDT", "BUY", "LONG", "0.02").order.status == "FILLED"
    assert submit(second, "ETH/USDT", "SELL", "SHORT", "0.5").order.status == "FILLED"
    resting = submit(paper, "BTC/USDT", "BUY", "LONG", "0.01", order_type="LIMIT", price="40000").order
    assert resting.status == "NEW"

    switch = kill_switch_trip(user=user, label="user:alice", reason="stop", by=user)
    assert switch.active and switch.tripped_by_label == "user:alice" and switch.tripped_by == user
    flatten(switch)  # what the worker does with the task queued on commit

    switch.refresh_from_db()
    assert switch.flatten_state == "done"
    assert not Position.objects.filter(owner=user, status="open").exists()
    for account in (paper, second):
        trader = trader_for_account(account)
        assert trader.get_positions() == [] and trader.get_open_orders() == []
    resting.refresh_from_db()
    assert resting.status == Order.Status.CANCELLED
    closes = Order.objects.filter(owner=user, source="system", reduce_only=True)
    assert closes.count() == 2 and all(o.status == "FILLED" for o in closes)
    summary = {r["account_id"]: r for r in switch.summary["accounts"].values()}
    assert summary[paper.pk]["closed"] == 1 and summary[paper.pk]["cancelled"] == 1
    assert summary[second.pk]["closed"] == 1
    agent.refresh_from_db()
    others_agent.refresh_from_db()
    assert agent.status == AgentConfig.Status.HALTED
    assert others_agent.status == AgentConfig.Status.ACTIVE
    assert RiskEvent.objects.filter(user=user, kind="kill_switch", actor="user:alice").exists()

    # While it is on: no new exposure; a second trip changes nothing.
    assert submit(paper, "BTC/USDT", "BUY", "LONG", "0.01").verdict.rule == "user_halted"
    assert kill_switch_trip(user=user, label="again", reason="x").pk == switch.pk
    assert KillSwitch.objects.filter(user=user).count() == 1

    assert kill_switch_lift(user=user, by=user) == 1
    # The flattening closes lost their fees and slippage: the loss cool-down applies.
    assert submit(paper, "BTC/USDT", "BUY", "LONG", "0.01").verdict.rule == "loss_cooldown"
    RiskProfile.objects.filter(user=user).update(loss_cooldown_seconds=0)
    assert submit(paper, "BTC/USDT", "BUY", "LONG", "0.01").order.status == "FILLED"


def test_global_halt_stops_manual_orders_until_lifted(user, staff_user, market):
    account = make_account(user)
    with pytest.raises(PermissionError):
        global_halt_trip(by=user, reason="not staff")
    global_halt_trip(by=staff_user, reason="exchange incident")
    result = submit(account, "BTC/USDT", "BUY", "LONG", "0.01", source="admin")
    assert result.order.status == Order.Status.REJECTED and result.verdict.rule == "global_halt"
    halt = KillSwitch.objects.get(scope="global")
    # Every user is shown "an operator"; the row keeps who, for staff.
    assert halt.tripped_by_label == "an operator" and halt.tripped_by == staff_user
    assert global_halt_lift(by=staff_user) == 1
    assert submit(account, "BTC/USDT", "BUY", "LONG", "0.01").order.status == Order.Status.FILLED


def test_daily_loss_limit_trips_the_kill_switch(user, market):
    account = make_account(user)
    agent = make_agent(user, account)
    # Equity at the start of the UTC day was 12,000; now the paper account holds 10,000:
    # a loss of 2,000 = 16.7% of 12,000, over the 15% limit.
    midnight = timezone.now().replace(hour=0, minute=0, second=0, microsecond=0)
    BalanceSnapshot.objects.create(account=account, taken_at=midnight - timedelta(minutes=1),
                                   total_balance=D("12000"), available_balance=D("12000"),
                                   margin_balance=D("12000"))
    result = submit(account, "BTC/USDT", "BUY", "LONG", "0.01")
    assert result.order.status == Order.Status.REJECTED and result.verdict.rule == "daily_loss"
    switch = KillSwitch.objects.get(user=user, active=True)
    assert switch.tripped_by_label == "daily_loss_limit" and switch.tripped_by is None
    assert RiskEvent.objects.filter(user=user, kind="daily_loss").exists()
    agent.refresh_from_db()
    assert agent.status == AgentConfig.Status.HALTED


def test_daily_loss_just_under_the_limit_trades(user, market):
    account = make_account(user)
    midnight = timezone.now().replace(hour=0, minute=0, second=0, microsecond=0)
    # 10,000 / 11,700 = a loss of 14.5%: under 15%.
    BalanceSnapshot.objects.create(account=account, taken_at=midnight - timedelta(minutes=1),
                                   total_balance=D("11700"), available_balance=D("11700"),
                                   margin_balance=D("11700"))
    assert submit(account, "BTC/USDT", "BUY", "LONG", "0.01").order.status == Order.Status.FILLED
    assert not KillSwitch.objects.filter(user=user).exists()


def test_daily_loss_watch_trips_without_an_order(user, market):
    from trading.services import daily_loss_watch
    from trading.tasks import account_reconcile_task

    account = make_account(user)
    agent = make_agent(user, account)
    assert submit(account, "BTC/USDT", "BUY", "LONG", "0.04").order.status == "FILLED"  # 2,000 USD: at the cap
    midnight = timezone.now().replace(hour=0, minute=0, second=0, microsecond=0)
    BalanceSnapshot.objects.create(account=account, taken_at=midnight - timedelta(minutes=1),
                                   total_balance=D("10000"), available_balance=D("10000"),
                                   margin_balance=D("10000"))
    assert daily_loss_watch(user=user) is None
    # Entry 50,010 (slippage), fee 1.0002. At 20,000: loss 0.04 * 30,010 + 1.0002 = 1,201.40 (12.0%).
    market.set("BTC/USDT", "20000")
    account_reconcile_task(account.pk)
    assert not KillSwitch.objects.filter(user=user).exists()
    # At 10,000: loss 0.04 * 40,010 + 1.0002 = 1,601.40 (16.0%): over 15%, no order needed to trip.
    market.set("BTC/USDT", "10000")
    account_reconcile_task(account.pk)
    switch = KillSwitch.objects.get(user=user, active=True)
    assert switch.tripped_by_label == "daily_loss_limit" and "1601.40" in switch.reason
    flatten(switch)
    assert not Position.objects.filter(account=account, status="open").exists()
    agent.refresh_from_db()
    assert agent.status == AgentConfig.Status.HALTED


def test_equity_figures_cost_one_query_and_value_every_account(user, django_assert_num_queries):
    """The daily-loss watch runs after every account's reconciliation: its equity figures must
    not cost queries per account (a user with ten agents has ten accounts)."""
    from trading.services.snapshot import equity_figures

    now = timezone.now()
    midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
    accounts = [make_account(user, name=f"paper-{i}") for i in range(5)]
    for i, account in enumerate(accounts[:4]):
        BalanceSnapshot.objects.create(account=account, taken_at=midnight - timedelta(hours=1), total_balance=D("1000"),
                                       available_balance=D("1000"), margin_balance=D("1000"))
        BalanceSnapshot.objects.create(account=account, taken_at=now - timedelta(minutes=1), total_balance=D("900"),
                                       available_balance=D("900"), margin_balance=D(900 + i))
    # accounts[4]: no snapshot and no position: it does not count.
    with django_assert_num_queries(1):
        equity, start = equity_figures(user=user, now=now)
    assert (equity, start) == (D("3606"), D("4000"))
    # An account opened today counts from its first snapshot of the day.
    BalanceSnapshot.objects.create(account=accounts[4], taken_at=now - timedelta(minutes=2), total_balance=D("500"),
                                   available_balance=D("500"), margin_balance=D("500"))
    assert equity_figures(user=user, now=now) == (D("4106"), D("4500"))
    # One account read live replaces its snapshot.
    assert equity_figures(user=user, now=now, live=(accounts[0], D("800"))) == (D("4006"), D("4500"))


def test_a_close_the_gate_refuses_does_not_stop_the_others(user, market, monkeypatch):
    """One position whose close is refused as malformed (here: a size beyond the input bounds,
    as a venue could report) is reported, and the account's other positions still close."""
    import trading.services.kill_switch as ks
    from django.core.exceptions import ValidationError

    paper = make_account(user, name="p1")
    assert submit(paper, "BTC/USDT", "BUY", "LONG", "0.02").order.status == "FILLED"
    assert submit(paper, "ETH/USDT", "BUY", "LONG", "0.5").order.status == "FILLED"
    real = ks.order_submit

    def refusing(**kw):
        if kw["symbol"] == "BTC/USDT":
            raise ValidationError({"quantity": "quantity must be at most 1,000,000,000."})
        return real(**kw)

    monkeypatch.setattr(ks, "order_submit", refusing)
    switch = kill_switch_trip(user=user, label="user:alice", reason="stop", by=user)
    flatten(switch)

    open_symbols = set(Position.objects.filter(owner=user, status="open").values_list("symbol", flat=True))
    assert open_symbols == {"BTC/USDT"}
    switch.refresh_from_db()
    assert switch.flatten_state == "failed" and switch.flatten_positions_closed == 1
    assert "BTC/USDT" in str(switch.flatten_errors) and "at most 1,000,000,000" in str(switch.flatten_errors)
