"""Order identity from an attacker's side: client order ids belong to their account, the
platform's own prefix (``at-``) is the platform's, and nothing a user is told depends on
which ids other accounts hold.

Two ordinary users (alice, bob; carol where a second fresh account is needed) talk to the
real API with their own tokens; the venue is the paper venue with fixed prices (BTC 50,000,
SOL 100). Run on SQLite and on PostgreSQL (DATABASE_URL) alike.
"""

import threading
from decimal import Decimal as D

import pytest
from django.db import connection
from django.utils import timezone
from rest_framework.test import APIClient

from agents.models import Decision, ToolCall
from agents.services import agent_decision_run
from exchanges.adapters.base import OrderRequest, OrderSide, OrderType, PositionSide
from exchanges.services import adapter_runtime, trader_for_account
from risk.models import RiskEvent, RiskProfile
from tests.factories import UserFactory, make_account, make_agent
from tests.fakes.openai_server import USER_KEY
from trading.models import Order
from trading.services import account_reconcile, kill_switch_trip
from trading.services.orders import RESERVED_MESSAGE
from trading.tasks import kill_switch_flatten_task

pytestmark = pytest.mark.django_db
KEY = USER_KEY
ROUNDS = 40
TIMES = ("created_at", "submitted_at", "closed_at", "updated_at")


def token_client(user) -> APIClient:
    from alpha_platform.web.api.auth import api_token_create

    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {api_token_create(user=user, name='identity').key}")
    return client


def order_body(account, client_order_id=None, *, symbol="SOL/USDT", quantity="0.1", **extra):
    body = {"account": account.pk, "symbol": symbol, "side": "BUY", "position_side": "LONG",
            "quantity": quantity, **extra}
    if client_order_id is not None:
        body["client_order_id"] = client_order_id
    return body


def post(client, body):
    return client.post("/api/orders/", body, format="json")


def order_of(response) -> dict:
    """The order a response is about: the body of a 200/201, extra.order of a 422."""
    data = response.data
    return data["extra"]["order"] if response.status_code == 422 else data


def venue_orders(account) -> list:
    book = adapter_runtime().paper_store.load(account.account_ref)
    return list(book.orders.values()) if book else []


def comparable(order: dict) -> dict:
    """An order's body without what differs between any two orders (ids, times, owner)."""
    skip = {"id", "client_order_id", "exchange_order_id", "account", "actor", "parent", *TIMES}
    return {k: v for k, v in order.items() if k not in skip}


@pytest.fixture
def unthrottled(settings):
    """The race sends more orders a minute than the API's default order throttle allows."""
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": {
        **settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"], "user": "100000/min", "orders": "100000/min"}}


def busy_trader(*users):
    """Profiles that let one user place an order a second for a while."""
    RiskProfile.objects.filter(user__in=users).update(max_orders_per_minute=1000, max_orders_per_hour=1000)


# --------------------------------------------------------------------------- the race
@pytest.mark.django_db(transaction=True)
def test_two_users_racing_the_same_client_id_each_get_an_order_of_their_own(user, other_user, market,
                                                                             unthrottled):
    """Each round alice and bob send the same new id twice each, all four at once. Every
    answer is about the sender's own order (the two of one user about the same one), the
    other user's order is never returned, and each account holds exactly one order with it."""
    a, b = make_account(user), make_account(other_user)
    busy_trader(user, other_user)
    senders = [(user, a), (user, a), (other_user, b), (other_user, b)]
    clients = [token_client(u) for u, _ in senders]
    foreign, refused, split, errors = [], [], [], []

    for round_no in range(ROUNDS):
        cid = f"race-{round_no}"
        barrier = threading.Barrier(len(senders))
        answers: list = [None] * len(senders)

        def send(i, cid=cid, barrier=barrier, answers=answers):
            try:
                barrier.wait(30)
                answers[i] = post(clients[i], order_body(senders[i][1], cid))
            except BaseException as exc:  # noqa: BLE001 - reported below
                answers[i] = exc
            finally:
                connection.close()

        threads = [threading.Thread(target=send, args=(i,)) for i in range(len(senders))]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        for (_, account), answer in zip(senders, answers, strict=True):
            if not hasattr(answer, "status_code"):
                errors.append((round_no, repr(answer)))
            elif answer.status_code not in (200, 201, 422):
                refused.append((round_no, answer.status_code, answer.data))
            elif order_of(answer)["account"]["id"] != account.pk:
                foreign.append((round_no, account.pk, order_of(answer)["id"]))
        ok = [order_of(x)["id"] if hasattr(x, "status_code") and x.status_code in (200, 201, 422) else None
              for x in answers]
        if ok[0] != ok[1] or ok[2] != ok[3] or ok[0] == ok[2]:
            split.append((round_no, ok))
        for account in (a, b):
            assert Order.objects.filter(account=account, client_order_id=cid).count() == 1, (round_no, account.pk)

    assert not errors, errors[:3]
    assert not foreign, f"{len(foreign)} answers of {ROUNDS * 4} were another account's order: {foreign[:3]}"
    assert not refused, f"{len(refused)} answers refused the id: {refused[:3]}"
    assert not split, split[:3]
    # One venue order per account and id: the duplicates sent nothing.
    assert len(venue_orders(a)) == len(venue_orders(b)) == ROUNDS


# --------------------------------------------------------------------------- the reserved prefix


def test_nobody_can_take_an_agents_next_client_ids(user, other_user, market, llm):
    """bob claims alice's agent's next ids (the shape is public: at-d<decision>-<n>) in his own
    account, and alice in hers: each gets a 400 that reads the same as for an id nobody will
    ever use, and nothing is written. The agent's order then goes through as normal."""
    agent = make_agent(user, model_name="gpt-4o-mini", symbols=["BTC/USDT"], instructions="Trade.")
    probe = Decision.objects.create(agent=agent, owner=user, model_name="x", started_at=timezone.now())
    upcoming = range(probe.pk + 1, probe.pk + 6)
    probe.delete()
    bob, bobs_account = token_client(other_user), make_account(other_user)
    alice = token_client(user)
    claims = [(bob, bobs_account, f"at-d{n}-{i}") for n in upcoming for i in (0, 1)]
    claims += [(bob, bobs_account, f"AT-d{upcoming[0]}-0"), (alice, agent.account, f"at-d{upcoming[0]}-0"),
               (bob, bobs_account, "at-m0123456789abcdef01234567")]
    answers = [post(client, order_body(account, cid, quantity="1")) for client, account, cid in claims]
    assert {r.status_code for r in answers} == {400}, [(r.status_code, r.data) for r in answers]
    assert all(r.data == {"client_order_id": [RESERVED_MESSAGE]} for r in answers), answers[0].data
    assert "exist" not in RESERVED_MESSAGE and "belong" not in RESERVED_MESSAGE
    assert not Order.objects.exists() and not RiskEvent.objects.exists()
    assert venue_orders(bobs_account) == [] and venue_orders(agent.account) == []

    llm.script(llm.tool_calls(("open_long", {"symbol": "BTC/USDT", "quantity": None, "usd_notional": 500,
                                             "leverage": 2, "stop_loss": 48000, "take_profit": 55000,
                                             "order_type": "market", "limit_price": None})),
               llm.reply("Opened a small long."))
    decision = agent_decision_run(agent=agent)
    assert decision.pk in upcoming
    assert decision.status == Decision.Status.EXECUTED, decision.error
    call = ToolCall.objects.get(decision=decision)
    order = call.order
    assert call.status == "ok", call.result
    assert order.client_order_id == f"at-d{decision.pk}-0" and order.account_id == agent.account_id
    assert order.status == Order.Status.FILLED and order.owner_id == user.pk
    # Its attached protective orders got ids of the platform's too, in the same account.
    children = {o.client_order_id: o for o in order.attached_orders.all()}
    assert set(children) == {f"at-d{decision.pk}-0-sl", f"at-d{decision.pk}-0-tp"}
    assert {o.account_id for o in children.values()} == {agent.account_id}

    # Now that the id exists, a claim on it reads exactly as before: no oracle.
    again = post(bob, order_body(bobs_account, f"at-d{decision.pk}-0", quantity="1"))
    assert (again.status_code, again.data) == (400, {"client_order_id": [RESERVED_MESSAGE]})
    assert not Order.objects.filter(account=bobs_account).exists()

    # The kill switch's closing order takes an id of the platform's, and passes.
    kill_switch_flatten_task(kill_switch_trip(user=user, label="test", reason="identity").pk)
    closing = Order.objects.get(account=agent.account, source=Order.Source.SYSTEM, parent__isnull=True)
    assert closing.client_order_id.startswith("at-m") and closing.status == Order.Status.FILLED


# --------------------------------------------------------------------------- no existence oracle
def test_an_id_held_by_another_account_is_a_fresh_id(user, other_user, market):
    """alice places "shared-1". bob's "shared-1" is answered exactly as carol's never-used
    "fresh-1" (a user in bob's situation): placed, his own order, nothing of alice's shown."""
    carol = UserFactory(username="carol")
    alices, bobs, carols = make_account(user), make_account(other_user), make_account(carol)
    first = post(token_client(user), order_body(alices, "shared-1", stop_loss="90"))
    assert first.status_code == 201
    taken = post(token_client(other_user), order_body(bobs, "shared-1", stop_loss="90"))
    fresh = post(token_client(carol), order_body(carols, "fresh-1", stop_loss="90"))
    assert (taken.status_code, fresh.status_code) == (201, 201), (taken.data, fresh.data)
    assert comparable(taken.data) == comparable(fresh.data)
    assert taken.data["client_order_id"] == "shared-1" and taken.data["account"]["id"] == bobs.pk
    assert taken.data["id"] != first.data["id"]
    # alice's order and its stop-loss are untouched, and bob's stop-loss is bob's.
    mine = Order.objects.get(pk=first.data["id"])
    assert (mine.account_id, mine.owner_id, mine.status) == (alices.pk, user.pk, Order.Status.FILLED)
    for account, owner in ((alices, user), (bobs, other_user)):
        child = Order.objects.get(account=account, client_order_id="shared-1-sl")
        assert child.owner_id == owner.pk and child.parent.account_id == account.pk
    assert len(venue_orders(alices)) == len(venue_orders(bobs)) == 2  # the order and its stop


def test_same_account_duplicate_is_an_idempotent_retry(user, other_user, market):
    """bob used "retry-1" first. alice's "retry-1" is placed once; her retry (even with other
    figures) returns her order with 200 and sends nothing to the venue."""
    alices, bobs = make_account(user), make_account(other_user)
    assert post(token_client(other_user), order_body(bobs, "retry-1")).status_code == 201
    alice = token_client(user)
    first = post(alice, order_body(alices, "retry-1"))
    again = post(alice, order_body(alices, "retry-1", quantity="0.2"))
    assert (first.status_code, again.status_code) == (201, 200), (first.data, again.data)
    assert again.data["id"] == first.data["id"] and again.data["account"]["id"] == alices.pk
    assert again.data["quantity"] == "0.1"
    assert Order.objects.filter(account=alices).count() == 1 and len(venue_orders(alices)) == 1
    assert Order.objects.filter(client_order_id="retry-1").count() == 2


# --------------------------------------------------------------------------- reconciliation
def test_reconciliation_matches_each_order_to_its_own_account(user, other_user, market):
    """Both accounts hold an order "same-1" whose fate the platform never heard (status
    UNKNOWN) and that the venue filled, each with a stop-loss "same-1-sl". Reconciling them
    settles each from its own account's venue: prices, fills and stop-losses never cross."""
    accounts = {"a": make_account(user), "b": make_account(other_user)}
    prices = {"a": ("50000", D("45000")), "b": ("40000", D("35000"))}
    orders = {}
    for key, account in accounts.items():
        market.set("BTC/USDT", prices[key][0])
        trader = trader_for_account(account)
        try:
            trader.place_order(OrderRequest(symbol="BTC/USDT", side=OrderSide.BUY, position_side=PositionSide.LONG,
                                            order_type=OrderType.MARKET, quantity=D("0.01"),
                                            client_order_id="same-1", stop_loss=prices[key][1]))
        finally:
            trader.close()
        orders[key] = Order.objects.create(owner=account.owner, account=account, source="api",
                                           client_order_id="same-1", symbol="BTC/USDT", side="BUY",
                                           position_side="LONG", quantity=D("0.01"), status=Order.Status.UNKNOWN)
    reports = [account_reconcile(account=accounts[k]) for k in ("a", "b", "a")]
    for key, account in accounts.items():
        order = Order.objects.get(pk=orders[key].pk)
        assert order.status == Order.Status.FILLED and order.account_id == account.pk
        assert order.executed_price == D(prices[key][0]) * D("1.0002")  # 2 bps slippage on its own price
        assert {f.account_id for f in order.fills.all()} == {account.pk}
        child = Order.objects.get(account=account, client_order_id="same-1-sl")
        assert child.parent_id == order.pk and child.owner_id == account.owner_id
        assert child.stop_price == prices[key][1]
    assert all(not r.unknown_venue_orders and not r.errors for r in reports), reports
