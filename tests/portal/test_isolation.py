"""A user sees only their own objects: another user's URL is a 404 (never a 403 that
would confirm it exists), and lists and forms never offer another user's objects."""

from decimal import Decimal as D

import pytest
from django.urls import reverse

from agents.models import AgentConfig, Decision
from agents.services import agent_decision_run
from exchanges.models import ExchangeAccount
from trading.models import Order
from trading.services import order_submit

pytestmark = pytest.mark.django_db


@pytest.fixture
def bobs(other_user, account_b, agent_b, market):
    order = order_submit(account=account_b, symbol="BTC/USDT", side="BUY", position_side="LONG",
                         quantity=D("0.01"), source="api").order
    decision = agent_decision_run(agent=agent_b, trigger=Decision.Trigger.MANUAL)
    return {"account": account_b, "agent": agent_b, "order": order, "decision": decision}


GETS = [("account_delete", "account"), ("agent_detail", "agent"), ("agent_edit", "agent"),
        ("agent_delete", "agent"), ("decision_detail", "decision"), ("order_detail", "order")]
POSTS = [("account_test", "account"), ("account_delete", "account"), ("agent_edit", "agent"),
         ("agent_pause", "agent"), ("agent_resume", "agent"), ("agent_run", "agent"), ("agent_delete", "agent"),
         ("order_cancel", "order")]


@pytest.mark.parametrize("name,kind", GETS)
def test_another_users_object_is_a_404(client_a, bobs, name, kind):
    assert client_a.get(reverse(f"portal:{name}", args=[bobs[kind].pk])).status_code == 404


@pytest.mark.parametrize("name,kind", POSTS)
def test_actions_on_another_users_object_are_a_404_and_change_nothing(client_a, bobs, name, kind):
    response = client_a.post(reverse(f"portal:{name}", args=[bobs[kind].pk]), {"name": "hijacked"})
    assert response.status_code == 404
    assert ExchangeAccount.objects.filter(pk=bobs["account"].pk).exists()
    agent = AgentConfig.objects.get(pk=bobs["agent"].pk)
    assert agent.status == AgentConfig.Status.ACTIVE and agent.name == "Trend B"


def test_a_missing_object_looks_the_same_as_another_users(client_a, bobs):
    missing = client_a.get(reverse("portal:order_detail", args=[999999]))
    theirs = client_a.get(reverse("portal:order_detail", args=[bobs["order"].pk]))
    assert missing.status_code == theirs.status_code == 404


def test_lists_and_pages_show_only_own_objects(client_a, user, account_a, agent_a, bobs):
    own = order_submit(account=account_a, symbol="ETH/USDT", side="BUY", position_side="LONG",
                       quantity=D("0.1"), source="api").order
    for name in ("dashboard", "orders", "decisions", "agents", "accounts"):
        html = client_a.get(reverse(f"portal:{name}")).content.decode()
        assert "Paper B" not in html and "Trend B" not in html, name
        assert reverse("portal:order_detail", args=[bobs["order"].pk]) not in html, name
        assert reverse("portal:decision_detail", args=[bobs["decision"].pk]) not in html, name
    orders = client_a.get(reverse("portal:orders"))
    assert [o.pk for o in orders.context["page"].object_list] == [own.pk]
    decisions = client_a.get(reverse("portal:decisions"))
    assert list(decisions.context["page"].object_list) == []
    # Filtering by another user's ids shows nothing of theirs.
    assert client_a.get(reverse("portal:orders"), {"account": bobs["account"].pk}).context["page"].paginator.count == 1
    assert client_a.get(reverse("portal:decisions"), {"agent": bobs["agent"].pk}).context["page"].paginator.count == 0


def test_forms_refuse_another_users_account(client_a, user, account_a, bobs):
    response = client_a.post(reverse("portal:orders"), {
        "order-account": bobs["account"].pk, "order-symbol": "BTC/USDT", "order-side": "BUY",
        "order-position_side": "LONG", "order-order_type": "MARKET", "order-quantity": "0.01"})
    assert response.status_code == 400 and b"Select a valid choice" in response.content
    assert Order.objects.filter(owner=user).count() == 0
    response = client_a.post(reverse("portal:agent_create"), {
        "name": "Sneaky", "account": bobs["account"].pk, "symbols": ["BTC/USDT"], "interval_seconds": 60,
        "model_name": "builtin:trend", "max_leverage": 1, "max_tool_rounds": 2})
    assert response.status_code == 400 and not AgentConfig.objects.filter(name="Sneaky").exists()


def test_live_refs_name_only_own_objects(client_a, account_a, agent_a, bobs):
    refs = client_a.get(reverse("portal:dashboard")).context["refs"]
    assert refs == {"accounts": {account_a.pk: "Paper A"}, "agents": {agent_a.pk: "Trend A"}}
