"""Staff rights come from Django permissions, not from ``is_staff``: tried as an attacker
would, with a staff user who has no permissions (or only some), against another user's
accounts, orders and kill switch, and the global halt. And a user whose switch a staff
member tripped or lifted is shown "an operator", never that staff member's name.

The victim's account is on the fake Binance server (what the real ccxt client talks to),
so "nothing was sent to the venue" is counted at the venue."""

from decimal import Decimal as D

import pytest
from django.contrib.auth.models import Permission
from rest_framework.test import APIClient

from agents.models import AgentConfig
from risk.models import KillSwitch, RiskEvent
from risk.services import global_halt_trip, user_halt_active
from tests.factories import UserFactory, make_account, make_agent
from trading.models import Order, Position
from trading.services import kill_switch_trip, order_submit
from trading.tasks import kill_switch_flatten_task

pytestmark = pytest.mark.django_db
API_KEY, API_SECRET = "A1" * 32, "S2" * 32
STAFF_NAME = "opsmith"  # distinctive: the tests assert it never reaches the victim
ORDER_FORM = "/admin/trading/order/add/"
GLOBAL_HALT = "/admin/risk/killswitch/global-halt/"


def grant(user, *perms: str):
    for perm in perms:
        app_label, codename = perm.split(".")
        user.user_permissions.add(Permission.objects.get(content_type__app_label=app_label, codename=codename))
    # Django caches permissions on the instance: hand back a fresh one.
    return type(user).objects.get(pk=user.pk)


@pytest.fixture
def staff(db):
    """is_staff, no permission at all."""
    return UserFactory(username=STAFF_NAME, is_staff=True)


@pytest.fixture
def victim_account(user, binance):
    return make_account(user, venue="binance_futures", name="alice-binance",
                        credentials={"api_key": API_KEY, "api_secret": API_SECRET})


def order_form(account, **kw):
    return {"account": account.pk, "symbol": "BTC/USDT", "side": "BUY", "position_side": "LONG",
            "order_type": "MARKET", "quantity": "0.002", **kw}


def api_for(user) -> APIClient:
    from alpha_platform.web.api.auth import api_token_create

    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {api_token_create(user=user, name='tests').key}")
    return client


def switch_rows():
    return list(KillSwitch.objects.order_by("pk").values_list("pk", "scope", "user_id", "active", "lifted_at"))


# --------------------------------------------------------------------------- manual order form
def test_staff_without_add_order_cannot_open_or_post_the_order_form(client, staff, user, victim_account, binance):
    client.force_login(staff)
    before = binance.count()
    assert client.get(ORDER_FORM).status_code == 403
    response = client.post(ORDER_FORM, order_form(victim_account))
    assert response.status_code == 403
    assert not Order.objects.exists() and not RiskEvent.objects.exists()
    assert binance.count() == before


def test_add_order_alone_offers_and_accepts_only_the_staff_users_own_accounts(client, staff, user, victim_account,
                                                                             binance, market):
    staff = grant(staff, "trading.add_order")
    own = make_account(staff, name="staff-own-paper")
    client.force_login(staff)
    page = client.get(ORDER_FORM)
    html = page.content.decode()
    assert page.status_code == 200
    assert f'value="{own.pk}"' in html and f'value="{victim_account.pk}"' not in html
    assert "alice-binance" not in html

    # The choice is not offered, and a forged POST of it is refused server-side.
    before = binance.count()
    response = client.post(ORDER_FORM, order_form(victim_account))
    assert response.status_code == 200
    assert "Select a valid choice" in response.content.decode()
    assert not Order.objects.exists() and not RiskEvent.objects.exists()
    assert binance.count() == before

    # Their own account: placed (through the risk gate).
    response = client.post(ORDER_FORM, order_form(own))
    assert response.status_code == 302
    order = Order.objects.get()
    assert order.account == own and order.status == Order.Status.FILLED


def test_place_order_for_others_allows_another_users_account(client, staff, user, victim_account, binance):
    staff = grant(staff, "trading.add_order", "trading.place_order_for_others")
    client.force_login(staff)
    assert f'value="{victim_account.pk}"' in client.get(ORDER_FORM).content.decode()
    before = binance.count("POST", "/fapi/v1/order")
    response = client.post(ORDER_FORM, order_form(victim_account))
    assert response.status_code == 302
    order = Order.objects.get()
    assert order.account == victim_account and order.owner == user and order.status == Order.Status.FILLED
    assert binance.count("POST", "/fapi/v1/order") == before + 1


# --------------------------------------------------------------------------- global halt
def test_staff_without_the_permission_cannot_trip_the_global_halt_anywhere(client, staff, user, market):
    staff = grant(staff, "risk.view_killswitch")
    client.force_login(staff)
    # Admin: neither the page nor the POST; the button is not offered either.
    assert client.get(GLOBAL_HALT).status_code == 403
    assert client.post(GLOBAL_HALT, {"confirmed": "yes", "reason": "because I can"}).status_code == 403
    changelist = client.get("/admin/risk/killswitch/").content.decode()
    assert "Halt all trading" not in changelist and GLOBAL_HALT not in changelist
    # API and portal: a staff user's kill switch is their own, never the platform's.
    api = api_for(staff)
    assert api.post("/api/kill-switch/trip/", {"reason": "halt everyone"}, format="json").status_code == 200
    client.post("/kill-switch/", {"reason": "halt everyone"})
    assert not KillSwitch.objects.filter(scope="global").exists()
    assert set(KillSwitch.objects.values_list("scope", "user_id")) == {("user", staff.pk)}
    # Alice still trades.
    result = order_submit(account=make_account(user), symbol="BTC/USDT", side="BUY", position_side="LONG",
                          quantity=D("0.01"), source="portal")
    assert result.order.status == Order.Status.FILLED


def test_staff_without_the_permission_cannot_lift_the_global_halt_anywhere(client, staff, staff_user, user):
    global_halt_trip(by=staff_user, reason="exchange incident")
    before = switch_rows()
    staff = grant(staff, "risk.view_killswitch", "risk.change_killswitch")
    client.force_login(staff)
    halt = KillSwitch.objects.get(scope="global")
    assert client.get(GLOBAL_HALT).status_code == 403
    assert client.post(GLOBAL_HALT, {"confirmed": "yes"}).status_code == 403
    # The changelist's "lift" action on the global row.
    response = client.post("/admin/risk/killswitch/", {"action": "lift", "_selected_action": [halt.pk]},
                           follow=True)
    assert "permission" in response.content.decode()
    # API and portal lifts are the caller's own switch only.
    api_for(staff).post("/api/kill-switch/lift/")
    client.post("/kill-switch/lift/")
    assert switch_rows() == before


def test_the_permission_alone_is_enough_without_superuser(client, staff, user):
    staff = grant(staff, "risk.trip_global_halt", "risk.view_killswitch")
    client.force_login(staff)
    assert "Yes, halt everything" in client.get(GLOBAL_HALT).content.decode()
    client.post(GLOBAL_HALT, {"confirmed": "yes", "reason": "incident"})
    halt = KillSwitch.objects.get(scope="global", active=True)
    assert halt.tripped_by == staff and halt.tripped_by_label == "an operator"
    client.post(GLOBAL_HALT, {"confirmed": "yes"})
    halt.refresh_from_db()
    assert not halt.active and halt.lifted_by == staff


# --------------------------------------------------------------------------- other users' objects
def test_other_users_kill_switch_needs_the_model_permissions(client, staff, user, market):
    account = make_account(user)
    order_submit(account=account, symbol="BTC/USDT", side="BUY", position_side="LONG", quantity=D("0.01"),
                 source="portal")
    staff = grant(staff, "auth.view_user")
    client.force_login(staff)
    trip = {"action": "trip_kill_switch", "_selected_action": [user.pk], "confirmed": "yes", "reason": "x"}
    response = client.post("/admin/auth/user/", trip, follow=True)
    assert "risk.add_killswitch" in response.content.decode()
    # A mixed selection (own and another's) is refused whole.
    client.post("/admin/auth/user/", {**trip, "_selected_action": [user.pk, staff.pk]})
    assert not KillSwitch.objects.exists()
    assert Position.objects.filter(owner=user, status="open").exists()
    # Their own switch stays theirs to trip.
    client.post("/admin/auth/user/", {**trip, "_selected_action": [staff.pk]})
    assert user_halt_active(staff.pk) is not None

    # With add_killswitch the trip goes through; lifting it needs change_killswitch.
    staff = grant(staff, "risk.add_killswitch")
    client.force_login(staff)
    client.post("/admin/auth/user/", trip)
    switch = KillSwitch.objects.get(user=user, active=True)
    assert switch.tripped_by == staff
    client.post("/admin/auth/user/", {"action": "lift_kill_switch", "_selected_action": [user.pk]})
    staff = grant(staff, "risk.view_killswitch")
    client.force_login(staff)
    client.post("/admin/risk/killswitch/", {"action": "lift", "_selected_action": [switch.pk]})
    switch.refresh_from_db()
    assert switch.active and switch.lifted_at is None
    staff = grant(staff, "risk.change_killswitch")
    client.force_login(staff)
    client.post("/admin/auth/user/", {"action": "lift_kill_switch", "_selected_action": [user.pk]})
    switch.refresh_from_db()
    assert not switch.active and switch.lifted_by == staff


def test_cancelling_another_users_order_needs_change_order(client, staff, user, market):
    account = make_account(user)
    resting = order_submit(account=account, symbol="BTC/USDT", side="BUY", position_side="LONG",
                           quantity=D("0.01"), order_type="LIMIT", price=D("40000"), source="portal").order
    assert resting.is_open
    staff = grant(staff, "trading.view_order")
    client.force_login(staff)
    action = {"action": "cancel_orders", "_selected_action": [resting.pk]}
    response = client.post("/admin/trading/order/", action, follow=True)
    assert "permission to change orders" in response.content.decode()
    resting.refresh_from_db()
    assert resting.is_open
    staff = grant(staff, "trading.change_order")
    client.force_login(staff)
    client.post("/admin/trading/order/", action)
    resting.refresh_from_db()
    assert not resting.is_open and resting.status == Order.Status.CANCELLED


# --------------------------------------------------------------------------- "an operator"
def test_the_user_sees_an_operator_never_the_staff_name(client, staff, user, market):
    account = make_account(user)
    agent = make_agent(user, account)
    order_submit(account=account, symbol="BTC/USDT", side="BUY", position_side="LONG", quantity=D("0.01"),
                 source="portal")
    staff = grant(staff, "auth.view_user", "risk.view_killswitch", "risk.add_killswitch",
                  "risk.change_killswitch", "risk.trip_global_halt")
    client.force_login(staff)
    client.post("/admin/auth/user/", {"action": "trip_kill_switch", "_selected_action": [user.pk],
                                      "confirmed": "yes", "reason": "suspicious activity"})
    switch = KillSwitch.objects.get(user=user, active=True)
    assert switch.tripped_by == staff  # staff pages keep who
    kill_switch_flatten_task(switch.pk)  # what the worker does with the task queued on commit
    assert STAFF_NAME in client.get("/admin/risk/killswitch/").content.decode()

    alice = APIClient()
    alice_api = api_for(user)
    alice.force_login(user)
    pages = [alice.get(url).content.decode() for url in ("/", "/kill-switch/", "/orders/", "/agents/", "/risk/")]
    assert "an operator" in pages[1]
    state = alice_api.get("/api/kill-switch/")
    assert state.data["switch"]["tripped_by_label"] == "an operator"
    # The closing orders, the agent's halt reason, the risk events: none names the staff user.
    closing = Order.objects.filter(owner=user, reduce_only=True).get()
    agent.refresh_from_db()
    assert agent.status == AgentConfig.Status.HALTED
    texts = pages + [state.content.decode(), alice_api.get("/api/risk-events/").content.decode(),
                     alice_api.get("/api/orders/").content.decode(), alice_api.get("/api/agents/").content.decode(),
                     closing.actor, agent.status_reason]
    # Lifted by the staff user, and a global halt by them: still "an operator".
    client.post("/admin/auth/user/", {"action": "lift_kill_switch", "_selected_action": [user.pk]})
    client.post(GLOBAL_HALT, {"confirmed": "yes", "reason": "incident"})
    lifted = RiskEvent.objects.filter(user=user, allowed=True, rule="kill_switch").get()
    assert lifted.message.startswith("Kill switch lifted by an operator")
    texts += [alice_api.get("/api/kill-switch/").content.decode(),
              alice_api.get("/api/risk-events/").content.decode(),
              alice.get("/").content.decode(), alice.get("/kill-switch/").content.decode()]
    texts += list(RiskEvent.objects.filter(user=user).values_list("message", "actor"))
    for text in texts:
        assert STAFF_NAME not in str(text)


def test_service_refuses_another_users_switch_without_the_permission(staff, user):
    with pytest.raises(PermissionError):
        kill_switch_trip(user=user, label="admin:opsmith", reason="x", by=staff)
    assert not KillSwitch.objects.exists()


def test_agent_and_account_actions_on_other_users_need_change_permission(client, staff, user):
    from django_celery_beat.models import PeriodicTask

    from exchanges.models import ExchangeAccount

    agent = make_agent(user, interval_seconds=30)
    account = agent.account
    checked = account.last_checked_at
    staff = grant(staff, "agents.view_agentconfig", "exchanges.view_exchangeaccount")
    client.force_login(staff)
    for action in ("pause", "run_now"):
        client.post("/admin/agents/agentconfig/", {"action": action, "_selected_action": [agent.pk]})
    agent.refresh_from_db()
    assert agent.status == AgentConfig.Status.ACTIVE
    assert PeriodicTask.objects.get(name=f"agent-{agent.pk}").enabled
    client.post("/admin/exchanges/exchangeaccount/", {"action": "test_connection", "_selected_action": [account.pk]})
    assert ExchangeAccount.objects.get(pk=account.pk).last_checked_at == checked

    staff = grant(staff, "agents.change_agentconfig", "exchanges.change_exchangeaccount")
    client.force_login(staff)
    client.post("/admin/agents/agentconfig/", {"action": "pause", "_selected_action": [agent.pk]})
    agent.refresh_from_db()
    assert agent.status == AgentConfig.Status.PAUSED and STAFF_NAME not in agent.status_reason
    client.post("/admin/exchanges/exchangeaccount/", {"action": "test_connection", "_selected_action": [account.pk]})
    assert ExchangeAccount.objects.get(pk=account.pk).last_checked_at != checked


def test_an_order_staff_placed_for_the_user_says_an_operator(client, staff, user, victim_account, binance):
    """The order a staff member placed on the user's account is the user's to see, but not who
    placed it: the API and the portal say "an operator"; the admin, for staff, keeps the name."""
    staff = grant(staff, "trading.add_order", "trading.place_order_for_others", "trading.view_order")
    client.force_login(staff)
    assert client.post(ORDER_FORM, order_form(victim_account)).status_code == 302
    order = Order.objects.get()
    assert STAFF_NAME in order.actor  # the record keeps who, for the operators

    listed = api_for(user).get("/api/orders/").json()
    rows = listed["results"] if isinstance(listed, dict) else listed
    assert [r["actor"] for r in rows] == ["an operator"]
    assert STAFF_NAME not in api_for(user).get(f"/api/orders/{order.pk}/").content.decode()
    events = api_for(user).get("/api/risk-events/").json()
    events = events["results"] if isinstance(events, dict) else events
    assert events and all(e["actor"] == "an operator" for e in events), events
    assert STAFF_NAME not in api_for(user).get("/api/risk-events/").content.decode()
    client.force_login(user)
    page = client.get(f"/orders/{order.pk}/").content.decode()
    assert "an operator" in page and STAFF_NAME not in page

    client.force_login(staff)
    assert STAFF_NAME in client.get(f"/admin/trading/order/{order.pk}/change/").content.decode()
