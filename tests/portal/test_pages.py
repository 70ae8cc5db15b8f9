"""Every portal page: GET, the POST paths, and validation messages next to their fields."""

import re
from decimal import Decimal as D
from unittest import mock

import pytest
from django.test import Client
from django.urls import reverse

from agents.models import AgentConfig, Decision, ToolCall
from agents.services import agent_decision_run
from exchanges.models import ExchangeAccount
from risk.models import KillSwitch, RiskProfile
from tests.factories import BINANCE_CREDS, make_account, make_agent
from trading.models import Order, Position
from trading.services import order_submit
from trading.tasks import kill_switch_flatten_task

pytestmark = pytest.mark.django_db


def field_errors(response, field: str) -> str:
    """The error text rendered inside the field's own block (next to the field)."""
    html = response.content.decode()
    start = html.find(f'id="field-{field}"')
    assert start != -1, f"no field block for {field}"
    assert 'has-error' in html[html.rfind("<div", 0, start):start], f"{field} is not marked as having an error"
    end = min(i for i in (html.find('id="field-', start + 1), html.find("</form>", start)) if i != -1)
    errors = re.findall(r'<ul class="errorlist"[^>]*>(.*?)</ul>', html[start:end], re.S)
    assert errors, f"no error shown next to {field}"
    return " ".join(re.sub(r"<[^>]+>", " ", e) for e in errors)


def buy(account, qty="0.01", symbol="BTC/USDT"):
    return order_submit(account=account, symbol=symbol, side="BUY", position_side="LONG", quantity=D(qty),
                        source="api")


# --------------------------------------------------------------------------- dashboard
def test_dashboard_empty(client_a):
    response = client_a.get(reverse("portal:dashboard"))
    assert response.status_code == 200
    html = response.content.decode()
    assert "Add an exchange account" in html
    assert 'data-ws-url="/ws/updates/?stream=user"' in html
    assert 'id="live-status"' in html and 'id="halt-banner"' in html


def test_dashboard_shows_balances_positions_orders_agents_and_pnl(client_a, user, account_a, agent_a, market):
    result = buy(account_a, "0.02")
    assert result.order.status == Order.Status.FILLED
    response = client_a.get(reverse("portal:dashboard"))
    assert response.status_code == 200
    html = response.content.decode()
    position = Position.objects.get(owner=user, status="open")
    assert f'<tr data-id="{position.pk}">' in html  # open positions, with unrealized PnL
    assert f'<tr data-id="{result.order.pk}">' in html  # recent orders
    assert f'data-account-id="{account_a.pk}"' in html and 'data-has-snapshot="1"' in html  # balance card
    assert "Trend A" in html and f'href="{reverse("portal:agent_detail", args=[agent_a.pk])}"' in html
    assert 'id="kpi-limit-gauge"' in html and "Daily loss limit" in html
    chart = response.context["chart"]
    assert chart["total"] and chart["accounts"][0]["id"] == account_a.pk
    assert 'id="equity-data"' in html and "vendor/chart.js/chart.umd.min.js" in html
    assert response.context["pnl"]["loss_limit"] > 0


# --------------------------------------------------------------------------- exchange accounts
def test_accounts_page_and_adding_a_paper_account(client_a, user):
    page = client_a.get(reverse("portal:accounts"))
    assert page.status_code == 200 and b"data-venue-fields" in page.content
    response = client_a.post(reverse("portal:accounts"), {"name": "My paper", "venue": "paper"})
    assert response.status_code == 302
    account = ExchangeAccount.objects.get(owner=user, name="My paper")
    assert account.venue == "paper"
    assert b"My paper" in client_a.get(reverse("portal:accounts")).content


def test_credentials_are_write_only_and_validated_next_to_the_field(client_a, user):
    response = client_a.post(reverse("portal:accounts"), {"name": "Binance", "venue": "binance_futures",
                                                          "api_key": "short", "api_secret": BINANCE_CREDS["api_secret"]})
    assert response.status_code == 400
    assert "16 to 128 letters" in field_errors(response, "api_key")
    # What was typed into a secret field is never sent back.
    assert BINANCE_CREDS["api_secret"] not in response.content.decode()
    ok = client_a.post(reverse("portal:accounts"), {"name": "Binance", "venue": "binance_futures", **BINANCE_CREDS})
    assert ok.status_code == 302
    page = client_a.get(reverse("portal:accounts")).content.decode()
    assert BINANCE_CREDS["api_key"] not in page and BINANCE_CREDS["api_secret"] not in page
    assert "…" + BINANCE_CREDS["api_key"][-4:] in page  # the hint only


def test_duplicate_account_name_is_shown_on_the_form(client_a, account_a):
    response = client_a.post(reverse("portal:accounts"), {"name": "Paper A", "venue": "paper"})
    assert response.status_code == 400
    assert b"already exists" in response.content


def test_test_connection(client_a, account_a, market):
    page = client_a.get(reverse("portal:accounts")).content.decode()
    assert reverse("portal:account_test", args=[account_a.pk]) in page
    assert client_a.get(reverse("portal:account_test", args=[account_a.pk])).status_code == 405
    response = client_a.post(reverse("portal:account_test", args=[account_a.pk]), follow=True)
    account_a.refresh_from_db()
    assert account_a.status == ExchangeAccount.Status.OK
    assert b"connected" in response.content


def test_delete_account_with_confirmation(client_a, user):
    account = make_account(user, name="Spare")
    confirm = client_a.get(reverse("portal:account_delete", args=[account.pk]))
    assert confirm.status_code == 200 and b"Delete the account" in confirm.content
    assert ExchangeAccount.objects.filter(pk=account.pk).exists()
    client_a.post(reverse("portal:account_delete", args=[account.pk]))
    assert not ExchangeAccount.objects.filter(pk=account.pk).exists()


def test_delete_account_in_use_explains_why_not(client_a, account_a, agent_a):
    response = client_a.post(reverse("portal:account_delete", args=[account_a.pk]), follow=True)
    assert ExchangeAccount.objects.filter(pk=account_a.pk).exists()
    assert b"Agents use this account" in response.content


# --------------------------------------------------------------------------- risk profile
def risk_form(profile, **changes):
    data = {
        "max_leverage": profile.max_leverage, "max_position_notional_usd": "10000",
        "max_position_percent": "20", "max_total_exposure_percent": "50", "max_exchange_exposure_percent": "30",
        "daily_loss_limit_percent": "15", "min_notional_usd": "5", "max_open_positions": 5,
        "max_orders_per_minute": 10, "max_orders_per_hour": 120, "loss_cooldown_seconds": 300,
        "monthly_llm_budget_usd": "50", "allowed_symbols": ["BTC/USDT", "ETH/USDT"],
    }
    data.update(changes)
    return data


def test_risk_profile_edit(client_a, user):
    page = client_a.get(reverse("portal:risk"))
    assert page.status_code == 200
    initial = page.context["form"].initial
    assert initial["daily_loss_limit_percent"] == 15  # shown in percent
    assert str(initial["max_position_notional_usd"]) == "10000"  # not 10000.000000000000
    assert b'value="10000"' in page.content
    profile = RiskProfile.objects.get(user=user)
    response = client_a.post(reverse("portal:risk"), risk_form(profile, daily_loss_limit_percent="7.5", max_leverage=3))
    assert response.status_code == 302
    profile.refresh_from_db()
    assert profile.daily_loss_limit_percent == D("0.075") and profile.max_leverage == 3
    assert profile.allowed_symbols == ["BTC/USDT", "ETH/USDT"]


def test_risk_profile_validation_messages_next_to_fields(client_a, user):
    profile = RiskProfile.objects.get(user=user)
    response = client_a.post(reverse("portal:risk"), risk_form(profile, daily_loss_limit_percent="150",
                                                               max_leverage="0"))
    assert response.status_code == 400
    assert "less than or equal to 100" in field_errors(response, "daily_loss_limit_percent")
    assert "greater than or equal to 1" in field_errors(response, "max_leverage")
    profile.refresh_from_db()
    assert profile.daily_loss_limit_percent == D("0.15")


# --------------------------------------------------------------------------- agents
def agent_form(account, **changes):
    data = {"name": "Scalper", "account": account.pk, "symbols": ["BTC/USDT", "ETH/USDT"], "interval_seconds": 30,
            "model_name": "builtin:trend", "instructions": "", "max_leverage": 2, "max_tool_rounds": 3}
    data.update(changes)
    return data


def test_agent_create(client_a, user, account_a):
    assert client_a.get(reverse("portal:agent_create")).status_code == 200
    response = client_a.post(reverse("portal:agent_create"), agent_form(account_a))
    agent = AgentConfig.objects.get(owner=user, name="Scalper")
    assert response["Location"] == reverse("portal:agent_detail", args=[agent.pk])
    assert agent.symbols == ["BTC/USDT", "ETH/USDT"] and agent.interval_seconds == 30 and agent.max_leverage == 2
    detail = client_a.get(response["Location"])
    assert detail.status_code == 200 and b"every 30 s" in detail.content and b"none yet" in detail.content


def test_agent_create_validation_messages(client_a, user, account_a, agent_a):
    response = client_a.post(reverse("portal:agent_create"), agent_form(account_a, interval_seconds=5, symbols=[]))
    assert response.status_code == 400
    assert "greater than or equal to 10" in field_errors(response, "interval_seconds")
    assert "required" in field_errors(response, "symbols")
    # The service's own checks land next to their field too (unique name per owner).
    dup = client_a.post(reverse("portal:agent_create"), agent_form(account_a, name="Trend A"))
    assert dup.status_code == 400 and b"already exists" in dup.content


def test_agent_create_without_account_points_to_accounts(client_a):
    response = client_a.get(reverse("portal:agent_create"))
    assert b"add one first" in response.content


def test_agent_edit(client_a, agent_a):
    page = client_a.get(reverse("portal:agent_edit", args=[agent_a.pk]))
    assert page.status_code == 200 and page.context["form"].initial["name"] == "Trend A"
    response = client_a.post(reverse("portal:agent_edit", args=[agent_a.pk]),
                             agent_form(agent_a.account, name="Trend A", interval_seconds=120))
    assert response.status_code == 302
    agent_a.refresh_from_db()
    assert agent_a.interval_seconds == 120 and agent_a.symbols == ["BTC/USDT", "ETH/USDT"]
    bad = client_a.post(reverse("portal:agent_edit", args=[agent_a.pk]),
                        agent_form(agent_a.account, name="", interval_seconds=120))
    assert bad.status_code == 400 and "required" in field_errors(bad, "name")


def test_agent_pause_resume_and_kill_switch_blocks_resume(client_a, user, agent_a):
    assert client_a.get(reverse("portal:agent_pause", args=[agent_a.pk])).status_code == 405
    client_a.post(reverse("portal:agent_pause", args=[agent_a.pk]))
    agent_a.refresh_from_db()
    assert agent_a.status == AgentConfig.Status.PAUSED
    client_a.post(reverse("portal:agent_resume", args=[agent_a.pk]))
    agent_a.refresh_from_db()
    assert agent_a.status == AgentConfig.Status.ACTIVE
    KillSwitch.objects.create(scope="user", user=user, reason="test", tripped_by_label="test")
    client_a.post(reverse("portal:agent_pause", args=[agent_a.pk]))
    response = client_a.post(reverse("portal:agent_resume", args=[agent_a.pk]), follow=True)
    assert b"lift it before resuming" in response.content
    agent_a.refresh_from_db()
    assert agent_a.status == AgentConfig.Status.PAUSED


def test_pause_returns_to_a_safe_next_url_only(client_a, agent_a):
    here = reverse("portal:dashboard")
    assert client_a.post(reverse("portal:agent_pause", args=[agent_a.pk]), {"next": here})["Location"] == here
    evil = client_a.post(reverse("portal:agent_resume", args=[agent_a.pk]), {"next": "https://evil.example/"})
    assert evil["Location"] == reverse("portal:agents")


def test_run_now_queues_a_tick_after_commit(client_a, agent_a, django_capture_on_commit_callbacks):
    with mock.patch("agents.tasks.agent_tick_task.delay") as delay:
        with django_capture_on_commit_callbacks(execute=True):
            response = client_a.post(reverse("portal:agent_run", args=[agent_a.pk]))
        assert response.status_code == 302
        delay.assert_called_once_with(agent_a.pk, Decision.Trigger.MANUAL)
        with django_capture_on_commit_callbacks(execute=True):
            response = client_a.post(reverse("portal:agent_run", args=[agent_a.pk]), HTTP_ACCEPT="application/json")
        assert response.status_code == 202 and response.json()["queued"] is True
        assert delay.call_count == 2


def test_agent_delete_with_confirmation(client_a, agent_a):
    confirm = client_a.get(reverse("portal:agent_delete", args=[agent_a.pk]))
    assert confirm.status_code == 200 and b"Delete the agent" in confirm.content
    client_a.post(reverse("portal:agent_delete", args=[agent_a.pk]))
    assert not AgentConfig.objects.filter(pk=agent_a.pk).exists()


def test_agents_page_shows_schedule_and_last_decision(client_a, agent_a, market):
    decision = agent_decision_run(agent=agent_a, trigger=Decision.Trigger.MANUAL)
    html = client_a.get(reverse("portal:agents")).content.decode()
    assert "every 1 min" in html
    assert reverse("portal:decision_detail", args=[decision.pk]) in html


# --------------------------------------------------------------------------- decisions
def test_decision_log_and_filters(client_a, user, agent_a, market):
    other_agent = make_agent(user, agent_a.account, name="Other")
    first = agent_decision_run(agent=agent_a, trigger=Decision.Trigger.MANUAL)
    second = agent_decision_run(agent=other_agent, trigger=Decision.Trigger.MANUAL)
    page = client_a.get(reverse("portal:decisions"))
    assert page.status_code == 200
    assert {d.pk for d in page.context["page"].object_list} == {first.pk, second.pk}
    filtered = client_a.get(reverse("portal:decisions"), {"agent": agent_a.pk})
    assert [d.pk for d in filtered.context["page"].object_list] == [first.pk]
    assert b"data-prepend" not in filtered.content  # a filtered list takes no live inserts
    by_status = client_a.get(reverse("portal:decisions"), {"status": "error"})
    assert list(by_status.context["page"].object_list) == []
    dated = client_a.get(reverse("portal:decisions"), {"since": "2000-01-01", "until": "2000-01-02"})
    assert list(dated.context["page"].object_list) == []
    bad = client_a.get(reverse("portal:decisions"), {"since": "yesterday"})
    assert bad.status_code == 200 and b"Enter a valid date" in bad.content


def test_decision_detail_shows_context_messages_tool_calls_verdicts_orders_tokens_cost_timings(
        client_a, user, agent_a, market):
    decision = agent_decision_run(agent=agent_a, trigger=Decision.Trigger.MANUAL)
    order = buy(agent_a.account, "0.01").order
    ToolCall.objects.create(decision=decision, index=99, name="open_long", arguments={"symbol": "BTC/USDT"},
                            status="ok", result={"status": "FILLED"}, order=order, risk_event=order.risk_event,
                            duration_ms=12)
    response = client_a.get(reverse("portal:decision_detail", args=[decision.pk]))
    assert response.status_code == 200
    html = response.content.decode()
    assert "Tool calls" in html and "open_long" in html and "hold" in html
    assert "Risk verdict: allowed" in html and order.risk_event.message in html
    assert reverse("portal:order_detail", args=[order.pk]) in html
    assert "Prompt tokens" in html and str(decision.prompt_tokens) in html
    assert "Total time" in html and " ms" in html and "gather_context" in html
    assert "Messages" in html and 'class="msg system"' in html
    assert "Context" in html and "Market snapshot" in html


# --------------------------------------------------------------------------- orders
def order_form(account, **changes):
    data = {"order-account": account.pk, "order-symbol": "BTC/USDT", "order-side": "BUY",
            "order-position_side": "LONG", "order-order_type": "MARKET", "order-quantity": "0.01"}
    data.update(changes)
    return data


def test_orders_page_and_manual_order_through_the_risk_gate(client_a, user, account_a, market):
    page = client_a.get(reverse("portal:orders"))
    assert page.status_code == 200 and b'id="place-order"' in page.content
    response = client_a.post(reverse("portal:orders"), order_form(account_a), follow=True)
    order = Order.objects.get(owner=user)
    assert order.source == Order.Source.PORTAL and order.actor == f"user:{user.pk}"
    assert order.status == Order.Status.FILLED and order.risk_event.allowed
    assert b"filled at" in response.content
    assert f'<tr data-id="{order.pk}">'.encode() in response.content


def test_manual_order_rejected_by_risk_says_why(client_a, user, account_a, market):
    response = client_a.post(reverse("portal:orders"), order_form(account_a, **{"order-quantity": "1"}), follow=True)
    order = Order.objects.get(owner=user)
    assert order.status == Order.Status.REJECTED and not order.risk_event.allowed
    assert b"rejected by the risk check" in response.content


def test_manual_order_validation_messages_next_to_fields(client_a, account_a, market):
    response = client_a.post(reverse("portal:orders"), order_form(account_a, **{
        "order-symbol": "DOGE/USDT", "order-order_type": "LIMIT", "order-quantity": "0"}))
    assert response.status_code == 400
    assert "is not traded on paper" in field_errors(response, "order-symbol")
    assert "required for a LIMIT order" in field_errors(response, "order-price")
    assert "greater than zero" in field_errors(response, "order-quantity")
    assert not Order.objects.exists()


def test_orders_filters(client_a, account_a, market):
    filled = buy(account_a, "0.01").order
    buy(account_a, "1")  # rejected
    page = client_a.get(reverse("portal:orders"), {"status": "FILLED"})
    assert [o.pk for o in page.context["page"].object_list] == [filled.pk]
    assert client_a.get(reverse("portal:orders"), {"symbol": "ETH/USDT"}).context["page"].paginator.count == 0
    assert client_a.get(reverse("portal:orders"), {"source": "api"}).context["page"].paginator.count == 2


def test_order_detail_and_cancel_of_a_filled_order(client_a, account_a, market):
    order = buy(account_a, "0.01").order
    detail = client_a.get(reverse("portal:order_detail", args=[order.pk]))
    assert detail.status_code == 200
    assert order.client_order_id.encode() in detail.content and b"Allowed" in detail.content
    assert b"Cancel the order" not in detail.content
    response = client_a.post(reverse("portal:order_cancel", args=[order.pk]), follow=True)
    assert b"only open orders can be cancelled" in response.content


def test_csrf_is_enforced_on_forms(user, account_a, market):
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    assert client.post(reverse("portal:orders"), order_form(account_a)).status_code == 403
    assert client.post(reverse("portal:kill_switch"), {"confirm": "True"}).status_code == 403
    assert not Order.objects.exists() and not KillSwitch.objects.exists()
    client.get(reverse("portal:orders"))
    token = client.cookies["csrftoken"].value
    response = client.post(reverse("portal:orders"), {**order_form(account_a), "csrfmiddlewaretoken": token})
    assert response.status_code == 302 and Order.objects.count() == 1


# --------------------------------------------------------------------------- kill switch
def test_kill_switch_confirmation_trip_banner_and_lift(client_a, user, account_a, agent_a, market):
    buy(account_a, "0.02")
    confirm = client_a.get(reverse("portal:kill_switch"))
    assert confirm.status_code == 200
    assert b"close <b>1</b> open position" in confirm.content and b"Yes, stop everything" in confirm.content
    # Without the confirmation nothing happens.
    unconfirmed = client_a.post(reverse("portal:kill_switch"), {"reason": "x"})
    assert unconfirmed.status_code == 200 and not KillSwitch.objects.exists()
    response = client_a.post(reverse("portal:kill_switch"), {"confirm": "True", "reason": "market looks wrong"},
                             follow=True)
    switch = KillSwitch.objects.get(user=user, active=True)
    assert switch.reason == "market looks wrong"
    agent_a.refresh_from_db()
    assert agent_a.status == AgentConfig.Status.HALTED
    html = response.content.decode()
    assert "KILL SWITCH ON" in html and 'id="halt-user" hidden' not in html and "Lift the kill switch" in html
    # The request returned before the flattening, which the page follows live.
    assert "Flattening queued: 1 account to flatten." in html
    assert 'id="kill-progress"' in client_a.get(reverse("portal:kill_switch")).content.decode()
    kill_switch_flatten_task(switch.pk)  # the worker's part
    assert not Position.objects.filter(owner=user, status="open").exists()
    page = client_a.get(reverse("portal:kill_switch")).content.decode()
    assert "Flattened 1 account: 0 orders cancelled, 1 position closed." in page and "Retry flattening" not in page
    # The banner is site-wide.
    assert "KILL SWITCH ON" in client_a.get(reverse("portal:risk")).content.decode()
    assert b"The kill switch is ON" in client_a.get(reverse("portal:kill_switch")).content
    refused = client_a.post(reverse("portal:orders"), order_form(account_a), follow=True)
    assert b"rejected by the risk check" in refused.content
    client_a.post(reverse("portal:kill_switch_lift"))
    assert not KillSwitch.objects.filter(user=user, active=True).exists()
    assert 'id="halt-user" hidden' in client_a.get(reverse("portal:dashboard")).content.decode()


def test_global_halt_banner(client_a, staff_user):
    from risk.services import global_halt_trip

    global_halt_trip(by=staff_user, reason="exchange incident")
    html = client_a.get(reverse("portal:dashboard")).content.decode()
    assert "HALTED PLATFORM-WIDE" in html and "exchange incident" in html
