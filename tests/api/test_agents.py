"""/api/agents/ (CRUD, pause, resume, run), /api/decisions/ and /api/llm-credential/."""

from decimal import Decimal as D

import pytest
from django.utils import timezone
from django_celery_beat.models import PeriodicTask

from agents.models import AgentConfig, Decision, LLMCredential, ToolCall
from tests.factories import make_account, make_agent
from trading.services import order_submit, kill_switch_trip

pytestmark = pytest.mark.django_db


@pytest.fixture
def queued(monkeypatch):
    """Runs queued by the API (the task itself is tested with the agents)."""
    calls = []
    from agents.tasks import agent_tick_task

    monkeypatch.setattr(agent_tick_task, "delay", lambda *args: calls.append(args))
    return calls


def agent_body(account, **extra):
    return {"name": "trend", "account": account.pk, "symbols": ["BTC/USDT", "ETH/USDT"], **extra}


def test_create_list_retrieve(api, user):
    account = make_account(user)
    response = api.post("/api/agents/", agent_body(account, interval_seconds=30, max_leverage=2), format="json")
    assert response.status_code == 201, response.data
    data = response.data
    assert data["status"] == "active" and data["account"]["id"] == account.pk and data["interval_seconds"] == 30
    assert data["last_decision"] is None
    agent = AgentConfig.objects.get(pk=data["id"])
    assert agent.owner == user and PeriodicTask.objects.get(name=f"agent-{agent.pk}").enabled
    assert api.get("/api/agents/").data["count"] == 1
    detail = api.get(f"/api/agents/{agent.pk}/").data
    assert detail["pnl"] == {"realized": "0", "fees": "0", "llm_spend_month": "0"}


@pytest.mark.parametrize("extra, field", [
    ({"symbols": ["DOGE/USDT"]}, "symbols"),
    ({"symbols": []}, "symbols"),
    ({"interval_seconds": 5}, "interval_seconds"),
    ({"name": ""}, "name"),
    ({"max_tool_rounds": 0}, "max_tool_rounds"),
])
def test_create_validation_errors(api, user, extra, field):
    response = api.post("/api/agents/", agent_body(make_account(user), **extra), format="json")
    assert response.status_code == 400 and field in response.data
    assert not AgentConfig.objects.exists()


def test_create_on_another_users_account_is_refused(api, other_user):
    response = api.post("/api/agents/", agent_body(make_account(other_user)), format="json")
    assert response.status_code == 400 and "does not exist" in response.data["account"][0]


def test_duplicate_name_is_a_message_error(api, user):
    account = make_account(user)
    make_agent(user, account, name="trend")
    response = api.post("/api/agents/", agent_body(account), format="json")
    assert response.status_code == 400 and "already exists" in response.data["message"]


def test_update_and_delete(api, user):
    agent = make_agent(user)
    response = api.patch(f"/api/agents/{agent.pk}/", {"interval_seconds": 120, "instructions": "be careful"},
                         format="json")
    assert response.status_code == 200 and response.data["interval_seconds"] == 120
    assert PeriodicTask.objects.get(name=f"agent-{agent.pk}").interval.every == 120
    other_account = make_account(user, name="second")
    response = api.put(f"/api/agents/{agent.pk}/", agent_body(other_account, name="renamed"), format="json")
    assert response.status_code == 200 and response.data["name"] == "renamed"
    assert response.data["account"]["id"] == other_account.pk
    assert api.patch(f"/api/agents/{agent.pk}/", {"symbols": ["XRP/USDT"]}, format="json").status_code == 400
    assert api.delete(f"/api/agents/{agent.pk}/").status_code == 204
    assert not AgentConfig.objects.exists() and not PeriodicTask.objects.filter(name=f"agent-{agent.pk}").exists()


def test_pause_resume_run(api, user, queued, django_capture_on_commit_callbacks):
    agent = make_agent(user)
    response = api.post(f"/api/agents/{agent.pk}/pause/")
    assert response.status_code == 200 and response.data["status"] == "paused"
    assert not PeriodicTask.objects.get(name=f"agent-{agent.pk}").enabled
    response = api.post(f"/api/agents/{agent.pk}/resume/")
    assert response.status_code == 200 and response.data["status"] == "active"
    with django_capture_on_commit_callbacks(execute=True):
        response = api.post(f"/api/agents/{agent.pk}/run/")
    assert response.status_code == 202 and response.data == {"queued": True, "agent": agent.pk}
    assert queued == [(agent.pk, "manual")]


def test_resume_refused_while_kill_switch_is_on(api, user, market):
    agent = make_agent(user)
    kill_switch_trip(user=user, label="test", reason="test")
    response = api.post(f"/api/agents/{agent.pk}/resume/")
    assert response.status_code == 400
    assert response.data == {"message": "The kill switch is on: lift it before resuming agents.", "extra": {}}


def test_another_users_agent_is_404_everywhere(api, other_user, queued):
    theirs = make_agent(other_user)
    base = f"/api/agents/{theirs.pk}/"
    assert api.get(base).status_code == 404
    assert api.put(base, {"name": "x"}, format="json").status_code == 404
    assert api.patch(base, {"name": "x"}, format="json").status_code == 404
    for verb in ("pause", "resume", "run"):
        assert api.post(base + f"{verb}/").status_code == 404
    assert api.delete(base).status_code == 404
    assert api.get("/api/agents/").data["count"] == 0
    theirs.refresh_from_db()
    assert theirs.status == "active" and theirs.name != "x" and queued == []


# --------------------------------------------------------------------------- decisions
def make_decision(agent, *, status=Decision.Status.EXECUTED, with_order=False):
    now = timezone.now()
    decision = Decision.objects.create(agent=agent, owner=agent.owner, status=status, model_name="builtin:trend",
                                       started_at=now, finished_at=now, summary="bought", prompt_tokens=120,
                                       completion_tokens=30, cost_usd=D("0.0012"), node_timings={"decide": 3.5},
                                       messages=[{"role": "user", "content": "market"}])
    order = None
    if with_order:
        order = order_submit(account=agent.account, symbol="BTC/USDT", side="BUY", position_side="LONG",
                             quantity=D("0.01"), source="agent", actor=f"agent:{agent.pk}").order
    ToolCall.objects.create(decision=decision, index=0, name="open_long", arguments={"symbol": "BTC/USDT"},
                            status="ok", result={"ok": True}, order=order,
                            risk_event=order.risk_event if order else None, duration_ms=12)
    return decision


def test_decisions_list_filters_and_detail(api, user, market):
    agent = make_agent(user)
    other_agent = make_agent(user, make_account(user, name="second"), name="other")
    executed = make_decision(agent, with_order=True)
    make_decision(other_agent, status=Decision.Status.HELD)
    data = api.get("/api/decisions/").data
    assert data["count"] == 2 and "messages" not in data["results"][0]
    only = api.get(f"/api/decisions/?agent={agent.pk}&status=executed").data["results"]
    assert [d["id"] for d in only] == [executed.pk] and only[0]["agent_name"] == agent.name
    assert api.get("/api/decisions/?until=2000-01-01").data["count"] == 0
    assert api.get("/api/decisions/?status=great").status_code == 400

    detail = api.get(f"/api/decisions/{executed.pk}/").data
    assert detail["cost_usd"] == "0.0012" and detail["prompt_tokens"] == 120
    assert detail["node_timings"] == {"decide": 3.5} and detail["messages"][0]["role"] == "user"
    call = detail["tool_calls"][0]
    assert call["name"] == "open_long" and call["order"]["status"] == "FILLED"
    assert call["risk"]["allowed"] is True and call["risk"]["rule"] == "all"
    agent_view = api.get(f"/api/agents/{agent.pk}/").data
    assert agent_view["last_decision"]["id"] == executed.pk
    assert D(agent_view["pnl"]["fees"]) > 0 and agent_view["pnl"]["llm_spend_month"] == "0.0012"


def test_another_users_decisions_are_hidden(api, other_user):
    theirs = make_decision(make_agent(other_user))
    assert api.get("/api/decisions/").data["count"] == 0
    assert api.get(f"/api/decisions/{theirs.pk}/").status_code == 404


# --------------------------------------------------------------------------- LLM credential
def test_llm_credential_is_write_only(api, user, other_api, settings):
    settings.LLM_ALLOWED_HOSTS = ["127.0.0.1:8001"]  # a loopback model server the operator allows
    assert api.get("/api/llm-credential/").data == {"configured": False, "api_key_hint": "", "base_url": "",
                                                   "updated_at": None}
    key = "sk-test-0123456789abcdef"
    response = api.put("/api/llm-credential/", {"api_key": key, "base_url": "http://127.0.0.1:8001/v1"},
                       format="json")
    assert response.status_code == 200
    assert response.data["configured"] is True and response.data["api_key_hint"] == "…cdef"
    assert key not in response.content.decode() and key not in api.get("/api/llm-credential/").content.decode()
    assert LLMCredential.objects.get(owner=user).credentials()["api_key"].reveal() == key
    assert other_api.get("/api/llm-credential/").data["configured"] is False


@pytest.mark.parametrize("body, field", [({"api_key": "short"}, "api_key"), ({}, "api_key"),
                                         ({"api_key": "sk-0123456789", "base_url": "not a url"}, "base_url")])
def test_llm_credential_validation(api, body, field):
    response = api.put("/api/llm-credential/", body, format="json")
    assert response.status_code == 400 and field in response.data
