"""Admin actions go through the services: manual orders through the risk gate, kill
switches with a confirmation, agent actions syncing the schedule."""

from decimal import Decimal as D

import pytest
from django_celery_beat.models import PeriodicTask

from agents.models import AgentConfig
from risk.models import KillSwitch
from tests.factories import make_account, make_agent
from trading.models import Order, Position

pytestmark = pytest.mark.django_db


def test_manual_order_from_admin_is_checked_and_placed(client, staff_user, user, market):
    account = make_account(user)
    client.force_login(staff_user)
    form = {"account": account.pk, "symbol": "BTC/USDT", "side": "BUY", "position_side": "LONG",
            "order_type": "MARKET", "quantity": "0.01"}
    response = client.post("/admin/trading/order/add/", form)
    order = Order.objects.get()
    assert response.status_code == 302 and order.status == "FILLED"
    assert order.source == "admin" and order.actor == "admin:operator" and order.risk_event.allowed
    response = client.post("/admin/trading/order/add/", {**form, "quantity": "1"}, follow=True)
    rejected = Order.objects.exclude(pk=order.pk).get()
    assert rejected.status == "REJECTED"
    assert "Rejected:" in response.content.decode() and rejected.risk_event.rule == "position_notional_abs"


def test_manual_order_validation_errors_shown_next_to_fields(client, staff_user, user, market):
    account = make_account(user)
    client.force_login(staff_user)
    response = client.post("/admin/trading/order/add/", {
        "account": account.pk, "symbol": "DOGE/USDT", "side": "BUY", "position_side": "LONG",
        "order_type": "LIMIT", "quantity": "0.01"})
    html = response.content.decode()
    assert response.status_code == 200
    assert "DOGE/USDT is not traded on paper" in html and "Price is required" in html
    assert not Order.objects.exists()


def test_user_kill_switch_needs_confirmation_then_flattens(client, staff_user, user, market):
    account = make_account(user)
    agent = make_agent(user, account)
    client.post("/admin/trading/order/add/", {"account": account.pk, "symbol": "BTC/USDT", "side": "BUY",
                                              "position_side": "LONG", "order_type": "MARKET", "quantity": "0.01"})
    client.force_login(staff_user)
    url = "/admin/auth/user/"
    response = client.post(url, {"action": "trip_kill_switch", "_selected_action": [user.pk]})
    assert response.status_code == 200 and "Yes, trip it" in response.content.decode()
    assert not KillSwitch.objects.exists()  # nothing happens before the confirmation
    client.post(url, {"action": "trip_kill_switch", "_selected_action": [user.pk], "confirmed": "yes",
                      "reason": "suspicious activity"})
    switch = KillSwitch.objects.get(user=user, active=True)
    assert switch.tripped_by == staff_user and switch.reason == "suspicious activity"
    assert not Position.objects.filter(owner=user, status="open").exists()
    agent.refresh_from_db()
    assert agent.status == AgentConfig.Status.HALTED


def test_global_halt_from_admin(client, staff_user, user, market):
    account = make_account(user)
    client.force_login(staff_user)
    page = client.get("/admin/risk/killswitch/global-halt/")
    assert "Yes, halt everything" in page.content.decode()
    client.post("/admin/risk/killswitch/global-halt/", {"confirmed": "yes", "reason": "incident"})
    assert KillSwitch.objects.filter(scope="global", active=True).exists()
    assert "GLOBAL HALT ON" in client.get("/admin/risk/killswitch/").content.decode()
    client.post("/admin/trading/order/add/", {"account": account.pk, "symbol": "BTC/USDT", "side": "BUY",
                                              "position_side": "LONG", "order_type": "MARKET", "quantity": "0.01"})
    assert Order.objects.get().risk_event.rule == "global_halt"
    client.post("/admin/risk/killswitch/global-halt/", {"confirmed": "yes"})
    assert not KillSwitch.objects.filter(scope="global", active=True).exists()


def test_agent_admin_actions_follow_the_schedule(client, staff_user, user):
    agent = make_agent(user, interval_seconds=30)
    task = PeriodicTask.objects.get(name=f"agent-{agent.pk}")
    assert task.enabled and task.interval.every == 30 and task.task == "agents.tick"
    client.force_login(staff_user)
    client.post("/admin/agents/agentconfig/", {"action": "pause", "_selected_action": [agent.pk]})
    task.refresh_from_db()
    assert not task.enabled
    client.post("/admin/agents/agentconfig/", {"action": "resume", "_selected_action": [agent.pk]})
    task.refresh_from_db()
    assert task.enabled


def test_decision_page_renders(client, staff_user, user):
    from django.utils import timezone

    from agents.models import Decision

    agent = make_agent(user)
    decision = Decision.objects.create(agent=agent, owner=user, status="held", model_name="builtin:trend",
                                       started_at=timezone.now(), context={"BTC/USDT": {"price": 1}},
                                       messages=[{"role": "system", "content": "You trade."}],
                                       node_timings={"decide": 12.5}, cost_usd=D("0"))
    client.force_login(staff_user)
    html = client.get(f"/admin/agents/decision/{decision.pk}/change/").content.decode()
    assert "You trade." in html and "decide 12" in html
