"""One decision through the Django side: context from the paper venue, a model behind
a local OpenAI-compatible server, the risk gate at the tool level, and the audit rows."""

import json
from decimal import Decimal as D

import pytest
from django.core.cache import cache
from django_celery_beat.models import PeriodicTask

from agents.models import AgentConfig, Decision, ToolCall
from agents.services import (
    agent_decision_run,
    agent_delete,
    agent_pause,
    agent_resume,
    agent_update,
    llm_credential_set,
)
from agents.tasks import agent_tick_task
from risk.models import RiskProfile
from tests.factories import make_agent
from tests.fakes.openai_server import USER_KEY
from trading.models import Order, Position
from trading.services import kill_switch_trip

pytestmark = pytest.mark.django_db
KEY = USER_KEY


def gpt_agent(user, **kw):
    return make_agent(user, model_name="gpt-4o-mini", symbols=["BTC/USDT"], instructions="Trade carefully.", **kw)


def test_tool_call_places_an_order_through_the_gate(user, market, llm):
    agent = gpt_agent(user)
    llm.script(llm.tool_calls(("open_long", {"symbol": "BTC/USDT", "quantity": None, "usd_notional": 500,
                                             "leverage": 2, "stop_loss": 48000, "take_profit": 55000,
                                             "order_type": "market", "limit_price": None})),
               llm.reply("Opened a small long."))
    decision = agent_decision_run(agent=agent)
    assert decision.status == Decision.Status.EXECUTED, decision.error
    call = ToolCall.objects.get(decision=decision)
    assert call.status == "ok" and call.name == "open_long"
    order = call.order
    assert order.client_order_id == f"at-d{decision.pk}-0"  # deterministic: decision + tool call
    assert order.source == "agent" and order.actor == f"agent:{agent.pk}" and order.leverage == 2
    assert order.status == "FILLED" and order.quantity == D("0.01")  # 500 USD / 50,000
    assert call.risk_event == order.risk_event and call.risk_event.allowed
    assert {o.order_type for o in order.attached_orders.all()} == {"STOP_MARKET", "TAKE_PROFIT_MARKET"}
    assert Position.objects.get(account=agent.account, status="open").size == D("0.01")
    # The verdict went back to the model as the tool result.
    second = llm.requests[1].messages
    tool_message = next(m for m in second if m["role"] == "tool")
    assert json.loads(tool_message["content"])["result"]["risk"]["rule"] == "all"
    # Tokens and cost from the server's usage and the price table.
    assert decision.prompt_tokens > 0 and decision.completion_tokens > 0 and decision.cost_usd > 0
    assert set(decision.node_timings) >= {"gather_context", "decide", "execute_tools", "total"}


def test_order_far_over_the_limits_is_rejected_and_reported_to_the_model(user, market, llm):
    agent = gpt_agent(user)
    llm.script(llm.tool_calls(("open_long", {"symbol": "BTC/USDT", "quantity": None, "usd_notional": 900000,
                                             "leverage": 1, "stop_loss": None, "take_profit": None,
                                             "order_type": "market", "limit_price": None})),
               llm.reply("Understood, too large."))
    decision = agent_decision_run(agent=agent)
    assert decision.status == Decision.Status.REJECTED
    call = ToolCall.objects.get(decision=decision)
    assert call.status == "rejected" and call.order.status == "REJECTED"
    assert call.risk_event.rule == "position_notional_abs" and not call.risk_event.allowed
    reported = json.loads(next(m for m in llm.requests[1].messages if m["role"] == "tool")["content"])
    assert "above your limit" in reported["result"]["risk"]["message"]
    assert not Position.objects.exists()


@pytest.mark.parametrize("script", ["malformed", "unknown", "out_of_range"])
def test_bad_tool_calls_are_recorded_and_place_nothing(user, market, llm, script):
    agent = gpt_agent(user)
    bad = {"malformed": llm.malformed_arguments(), "unknown": llm.unknown_tool(),
           "out_of_range": llm.tool_calls(("open_long", {"symbol": "BTC/USDT", "quantity": None,
                                                         "usd_notional": 100, "leverage": 99, "stop_loss": None,
                                                         "take_profit": None, "order_type": "market",
                                                         "limit_price": None}))}[script]
    llm.script(bad, llm.reply("ok"))
    decision = agent_decision_run(agent=agent)
    call = ToolCall.objects.get(decision=decision)
    assert call.status == "invalid" and call.order is None
    assert decision.status == Decision.Status.HELD
    assert not Order.objects.exists()


def test_budget_cap_stops_before_the_model_is_called(user, market, llm):
    RiskProfile.objects.filter(user=user).update(monthly_llm_budget_usd=D("0"))
    agent = gpt_agent(user)
    decision = agent_decision_run(agent=agent)
    assert decision.status == Decision.Status.BUDGET_EXCEEDED
    assert llm.requests == [] and not Order.objects.exists()


def test_spend_accumulates_until_the_cap(user, market, llm):
    agent = gpt_agent(user)
    llm.script(llm.forever(llm.reply("hold")))
    first = agent_decision_run(agent=agent)
    assert first.status == "held" and first.cost_usd > 0
    RiskProfile.objects.filter(user=user).update(monthly_llm_budget_usd=first.cost_usd)
    second = agent_decision_run(agent=agent)
    assert second.status == Decision.Status.BUDGET_EXCEEDED
    assert len(llm.requests) == 1


def test_users_own_key_is_used_and_never_recorded(user, market, llm, settings):
    settings.OPENAI_API_KEY = ""
    llm_credential_set(owner=user, api_key=KEY, base_url=llm.url + "/v1")
    agent = gpt_agent(user)
    llm.script(llm.reply("nothing to do"))
    decision = agent_decision_run(agent=agent)
    assert decision.status == "held" and len(llm.requests) == 1
    stored = json.dumps([decision.messages, decision.raw_reply, decision.context, decision.error])
    assert KEY not in stored


def test_decisions_share_one_http_pool_but_each_user_keeps_their_key(user, other_user, market, llm, settings):
    from agents import services

    llm_credential_set(owner=other_user, api_key="sk-bob-own-key-0123456789abcdef", base_url=llm.url + "/v1")
    agent = gpt_agent(user)
    mine, _ = services._llm_for(agent)
    bobs, _ = services._llm_for(make_agent(other_user, model_name="gpt-4o-mini"))
    assert mine._client._client is bobs._client._client  # one connection pool per process
    assert mine._client.api_key == KEY and bobs._client.api_key == "sk-bob-own-key-0123456789abcdef"
    mine.close()  # closing a decision's client leaves the shared pool usable
    llm.script(llm.reply("nothing to do"))
    assert agent_decision_run(agent=agent).status == "held"


def test_without_any_key_the_builtin_model_runs(user, market, settings):
    settings.OPENAI_API_KEY = ""
    settings.OPENAI_BASE_URL = ""
    agent = gpt_agent(user)
    decision = agent_decision_run(agent=agent)
    assert decision.model_name == "builtin:trend"
    assert decision.status in ("held", "executed", "rejected")


def test_kill_switch_skips_the_decision(user, market, llm):
    agent = gpt_agent(user)
    kill_switch_trip(user=user, label="test", reason="stop")
    decision = agent_decision_run(agent=agent, trigger="manual")
    assert decision.status == Decision.Status.SKIPPED and llm.requests == []


def test_a_tick_that_finds_the_previous_one_running_is_skipped(user, market, llm):
    agent = gpt_agent(user)
    cache.add(f"lock:agent:{agent.pk}", "1", timeout=60)
    agent_tick_task(agent.pk)
    decision = Decision.objects.get(agent=agent)
    assert decision.status == Decision.Status.SKIPPED and "still running" in decision.summary
    assert llm.requests == []


def test_decisions_abandoned_by_a_killed_worker_are_closed_only_past_the_time_limit(user, settings):
    from datetime import timedelta

    from django.utils import timezone

    from agents.tasks import close_abandoned_decisions_task

    agent = make_agent(user)
    now = timezone.now()
    limit = settings.AGENT_TICK_TIME_LIMIT
    old = Decision.objects.create(agent=agent, owner=user, status=Decision.Status.RUNNING,
                                  started_at=now - timedelta(seconds=limit + 120))
    recent = Decision.objects.create(agent=agent, owner=user, status=Decision.Status.RUNNING,
                                     started_at=now - timedelta(seconds=limit))
    done = Decision.objects.create(agent=agent, owner=user, status=Decision.Status.HELD,
                                   started_at=now - timedelta(seconds=limit + 120), finished_at=now)
    assert close_abandoned_decisions_task() == 1
    old.refresh_from_db(), recent.refresh_from_db(), done.refresh_from_db()
    assert old.status == Decision.Status.ERROR and "stopped before it finished" in old.error and old.finished_at
    assert recent.status == Decision.Status.RUNNING  # may still be running on a live worker
    assert done.status == Decision.Status.HELD
    assert close_abandoned_decisions_task() == 0


def test_paused_agent_tick_does_nothing(user, market, llm):
    agent = gpt_agent(user)
    agent_pause(agent=agent)
    assert agent_tick_task(agent.pk) is None
    assert not Decision.objects.exists()


def test_schedule_follows_every_change(user):
    agent = make_agent(user, interval_seconds=30)
    name = f"agent-{agent.pk}"
    task = PeriodicTask.objects.get(name=name)
    assert (task.enabled, task.interval.every, json.loads(task.args)) == (True, 30, [agent.pk])
    assert task.expire_seconds == 30
    agent_update(agent=agent, interval_seconds=120)
    task.refresh_from_db()
    assert task.interval.every == 120 and task.expire_seconds == 120
    agent_pause(agent=agent)
    task.refresh_from_db()
    assert not task.enabled
    agent_resume(agent=agent)
    task.refresh_from_db()
    assert task.enabled
    kill_switch_trip(user=user, label="test", reason="x")
    task.refresh_from_db()
    agent.refresh_from_db()
    assert agent.status == AgentConfig.Status.HALTED and not task.enabled
    agent_delete(agent=agent)
    assert not PeriodicTask.objects.filter(name=name).exists()


def test_builtin_agent_runs_on_the_simulated_market(user):
    agent = make_agent(user, symbols=["BTC/USDT", "ETH/USDT"])
    decision = agent_decision_run(agent=agent)
    assert decision.status in {"executed", "held", "rejected"}, decision.error
    assert set(decision.context) and decision.messages[0]["role"] == "system"
    for call in decision.tool_calls.all():
        if call.order_id:
            assert call.order.client_order_id == f"at-d{decision.pk}-{call.index}"


def test_run_agent_command_prints_the_summary(user, market, llm, capsys):
    from django.core.management import call_command
    from django.core.management.base import CommandError

    agent = gpt_agent(user)
    llm.script(llm.tool_calls(("open_long", {"symbol": "BTC/USDT", "quantity": 0.01, "usd_notional": None,
                                             "leverage": 1, "stop_loss": None, "take_profit": None,
                                             "order_type": "market", "limit_price": None})),
               llm.reply("done"))
    call_command("run_agent", str(agent.pk))
    out = capsys.readouterr().out
    assert "executed" in out and "open_long" in out and "risk all" in out and "FILLED" in out
    with pytest.raises(CommandError, match="No agent with id 999999"):
        call_command("run_agent", "999999")
    # It takes the agent's lock: while a tick holds it, the command records a skip and trades nothing.
    from agents.services import AgentLock

    held = AgentLock(agent.pk)
    assert held.acquire()
    try:
        call_command("run_agent", str(agent.pk))
    finally:
        held.release()
    assert "skipped" in capsys.readouterr().out and len(llm.requests) == 2


def test_an_order_whose_answer_was_lost_tells_the_model_not_to_place_it_again(user, market, llm, monkeypatch):
    from exchanges.adapters.errors import OrderStatusUnknown
    from exchanges.adapters.paper.trader import PaperTrader

    def lost(self, request):
        raise OrderStatusUnknown("the answer was lost", venue="paper")

    monkeypatch.setattr(PaperTrader, "place_order", lost)
    agent = gpt_agent(user)
    llm.script(llm.tool_calls(("open_long", {"symbol": "BTC/USDT", "quantity": None, "usd_notional": 500,
                                             "leverage": 2, "stop_loss": None, "take_profit": None,
                                             "order_type": "market", "limit_price": None})),
               llm.reply("Waiting for the venue."))
    decision = agent_decision_run(agent=agent)
    order = ToolCall.objects.get(decision=decision).order
    assert order.status == Order.Status.UNKNOWN  # kept for reconciliation, not FAILED
    tool_message = next(m for m in llm.requests[1].messages if m["role"] == "tool")
    result = json.loads(tool_message["content"])["result"]
    assert result["status"] == "UNKNOWN" and "do not place this order again" in result["note"]
