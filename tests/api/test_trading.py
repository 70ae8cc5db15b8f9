"""Balance, positions, orders (through order_submit and the risk gate), equity, PnL and the
kill switch. Default profile: equity 10,000 USD on a new paper account, per-symbol cap
2,000 USD (20%); prices fixed by the ``market`` fixture (BTC 50,000)."""

from datetime import timedelta
from decimal import Decimal as D

import pytest
from django.utils import timezone

from agents.models import AgentConfig
from risk.models import KillSwitch, RiskEvent
from tests.factories import make_account, make_agent
from trading.models import Order, Position
from trading.services import order_submit
from trading.tasks import kill_switch_flatten_task

pytestmark = pytest.mark.django_db


def buy(api, quantity="0.01", **extra):
    body = {"symbol": "BTC/USDT", "side": "BUY", "position_side": "LONG", "quantity": quantity, **extra}
    return api.post("/api/orders/", body, format="json")


def fill(account, symbol="BTC/USDT", quantity="0.01"):
    return order_submit(account=account, symbol=symbol, side="BUY", position_side="LONG", quantity=D(quantity),
                        source="api").order


# --------------------------------------------------------------------------- orders
def test_order_accepted_is_201_and_recorded(api, user, market):
    account = make_account(user)
    response = buy(api, account=account.pk)
    assert response.status_code == 201, response.data
    data = response.data
    assert data["status"] == "FILLED" and data["quantity"] == "0.01" and data["executed_price"] == "50010"
    assert data["account"]["id"] == account.pk and data["venue"] == "paper"
    assert data["risk"]["allowed"] is True and data["risk"]["rule"] == "all"
    order = Order.objects.get(pk=data["id"])
    assert order.source == "api" and order.actor == "api:alice"
    assert isinstance(data["fees"], str)  # money is a string, never a float


def test_order_rejected_by_the_risk_gate_is_422_with_rule_and_recorded_order(api, user, market):
    account = make_account(user)
    response = buy(api, quantity="1", account=account.pk)
    assert response.status_code == 422
    assert set(response.data) == {"message", "extra"}
    extra = response.data["extra"]
    assert extra["rule"] == "position_notional_abs"
    assert response.data["message"] == RiskEvent.objects.get().message
    assert "50,0" in response.data["message"]
    assert extra["order"]["status"] == "REJECTED" and extra["order"]["risk"]["allowed"] is False
    assert all(not isinstance(v, float) for v in extra["details"].values())
    assert Order.objects.get(pk=extra["order"]["id"]).status == Order.Status.REJECTED
    assert not Position.objects.exists()


def test_same_client_order_id_is_idempotent(api, user, market):
    account = make_account(user)
    first = buy(api, account=account.pk, client_order_id="my-retry-1")
    again = buy(api, account=account.pk, client_order_id="my-retry-1")
    assert (first.status_code, again.status_code) == (201, 200)
    assert first.data["id"] == again.data["id"] and Order.objects.count() == 1


def test_retry_of_a_rejected_order_is_still_a_rejection(api, user, market):
    account = make_account(user)
    first = buy(api, quantity="1", account=account.pk, client_order_id="big-1")
    again = buy(api, quantity="1", account=account.pk, client_order_id="big-1")
    assert (first.status_code, again.status_code) == (422, 422)
    assert again.data["extra"]["order"]["id"] == first.data["extra"]["order"]["id"]
    assert again.data["extra"]["rule"] == "position_notional_abs" and Order.objects.count() == 1


def test_venue_selection(api, user, market):
    assert buy(api, venue="paper").data == {"venue": ["You have no account on paper."]}
    account = make_account(user, name="a")
    response = buy(api, venue="paper")
    assert response.status_code == 201 and response.data["account"]["id"] == account.pk
    make_account(user, name="b")
    response = buy(api, venue="paper")
    assert response.status_code == 400 and "more than one account on paper" in response.data["venue"][0]
    response = buy(api, venue="binance_futures", account=account.pk)
    assert response.status_code == 400 and "is on paper" in response.data["venue"][0]
    assert buy(api).data == {"account": ["Give account (an exchange account id) or venue."]}


@pytest.mark.parametrize("extra, field", [
    ({"quantity": "abc"}, "quantity"),
    ({"quantity": "-1"}, "quantity"),
    ({"side": "HOLD"}, "side"),
    ({"symbol": "DOGE/USDT"}, "symbol"),
    ({"order_type": "LIMIT"}, "price"),
    ({"leverage": 0}, "leverage"),
    ({"time_in_force": "GTD"}, "time_in_force"),
    ({"client_order_id": "has spaces"}, "client_order_id"),
])
def test_malformed_orders_are_field_errors_and_write_nothing(api, user, market, extra, field):
    account = make_account(user)
    response = buy(api, account=account.pk, **extra)
    assert response.status_code == 400, response.data
    assert field in response.data
    assert not Order.objects.exists() and not RiskEvent.objects.exists()


def test_cannot_order_on_another_users_account(api, other_user, market):
    theirs = make_account(other_user)
    response = buy(api, account=theirs.pk)
    assert response.status_code == 400 and "account" in response.data
    assert "does not exist" in response.data["account"][0]
    assert buy(api, venue="paper").status_code == 400  # Bob's paper account is not Alice's
    assert not Order.objects.exists()


def test_orders_list_filters_detail_and_isolation(api, user, other_user, market):
    account = make_account(user)
    filled = fill(account)
    buy(api, quantity="1", account=account.pk)
    bobs = fill(make_account(other_user))
    listing = api.get("/api/orders/").data
    assert listing["count"] == 2 and bobs.pk not in [o["id"] for o in listing["results"]]
    assert [o["id"] for o in api.get("/api/orders/?status=FILLED").data["results"]] == [filled.pk]
    assert api.get("/api/orders/?status=REJECTED&source=api&symbol=BTC/USDT&venue=paper").data["count"] == 1
    assert api.get(f"/api/orders/?account={account.pk}&open=false").data["count"] == 2
    assert api.get("/api/orders/?open=true").data["count"] == 0
    future = (timezone.now() + timedelta(days=1)).date().isoformat()
    assert api.get(f"/api/orders/?since={future}").data["count"] == 0
    assert api.get(f"/api/orders/{filled.pk}/").data["client_order_id"] == filled.client_order_id
    assert api.get(f"/api/orders/{bobs.pk}/").status_code == 404
    assert api.post(f"/api/orders/{bobs.pk}/cancel/").status_code == 404


@pytest.mark.parametrize("query, field", [("status=NOPE", "status"), ("since=yesterday", "since"),
                                          ("account=x", "account"), ("open=maybe", "open")])
def test_orders_list_bad_filters(api, query, field):
    response = api.get(f"/api/orders/?{query}")
    assert response.status_code == 400 and field in response.data


def test_cancel_open_order_and_refuse_closed_one(api, user, market):
    account = make_account(user)
    response = buy(api, account=account.pk, order_type="LIMIT", price="40000")
    assert response.status_code == 201 and response.data["status"] == "NEW"
    cancelled = api.post(f"/api/orders/{response.data['id']}/cancel/")
    assert cancelled.status_code == 200 and cancelled.data["status"] == "CANCELLED"
    again = api.post(f"/api/orders/{response.data['id']}/cancel/")
    assert again.status_code == 400 and "only open orders can be cancelled" in again.data["message"]


def test_order_creation_is_throttled_per_user(api, user, market, settings):
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK,
                               "DEFAULT_THROTTLE_RATES": {**settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"],
                                                          "orders": "1/min"}}
    account = make_account(user)
    assert buy(api, account=account.pk).status_code == 201
    assert buy(api, account=account.pk).status_code == 429
    assert api.get("/api/orders/").status_code == 200  # reads are not the orders scope


# --------------------------------------------------------------------------- balance and positions
def test_balance_per_account_by_venue_and_total(api, user, other_user, market):
    a = make_account(user, name="a")
    fill(a)
    make_account(user, name="b")  # no snapshot yet
    fill(make_account(other_user))
    data = api.get("/api/balance/").data
    assert data["currency"] == "USDT"
    assert [row["account"]["name"] for row in data["accounts"]] == ["a", "b"]
    first, second = data["accounts"]
    assert D(first["margin_balance"]) > D("9990") and first["taken_at"]
    assert second["margin_balance"] is None and second["taken_at"] is None
    assert data["total"]["margin_balance"] == first["margin_balance"]
    assert data["by_venue"] == [{"venue": "paper", "display_name": "Paper (simulated perpetual futures)",
                                 **{k: first[k] for k in ("total_balance", "available_balance", "margin_balance",
                                                          "unrealized_pnl", "margin_used")}}]


def test_positions_list_filters_detail_and_isolation(api, user, other_user, market):
    account = make_account(user)
    fill(account, "BTC/USDT")
    fill(account, "ETH/USDT", "0.1")
    bobs = make_account(other_user)
    fill(bobs)
    data = api.get("/api/positions/").data
    assert data["count"] == 2
    btc = next(p for p in data["results"] if p["symbol"] == "BTC/USDT")
    assert btc["venue"] == "paper" and btc["account"]["id"] == account.pk and btc["side"] == "LONG"
    assert btc["size"] == "0.01" and btc["status"] == "open" and D(btc["notional"]) == D("500")
    assert api.get("/api/positions/?symbol=ETH/USDT").data["count"] == 1
    assert api.get("/api/positions/?venue=hyperliquid").data["count"] == 0
    assert api.get(f"/api/positions/?account={account.pk}&status=all").data["count"] == 2
    assert api.get("/api/positions/?status=closed").data["count"] == 0
    assert api.get("/api/positions/?status=bogus").status_code == 400
    assert api.get(f"/api/positions/{btc['id']}/").data["symbol"] == "BTC/USDT"
    theirs = Position.objects.get(account=bobs)
    assert api.get(f"/api/positions/{theirs.pk}/").status_code == 404


def test_close_position(api, user, other_user, market):
    account = make_account(user)
    fill(account)
    position = Position.objects.get(account=account, status="open")
    theirs = make_account(other_user)
    fill(theirs)
    bobs = Position.objects.get(account=theirs)
    assert api.post(f"/api/positions/{bobs.pk}/close/").status_code == 404
    response = api.post(f"/api/positions/{position.pk}/close/")
    assert response.status_code == 201, response.data
    assert response.data["side"] == "SELL" and response.data["reduce_only"] is True
    assert response.data["quantity"] == "0.01" and response.data["status"] == "FILLED"
    assert api.get("/api/positions/").data["count"] == 0
    again = api.post(f"/api/positions/{position.pk}/close/")
    assert again.status_code == 400 and again.data["message"] == "This position is already closed."
    bobs.refresh_from_db()
    assert bobs.status == "open"


def test_positions_are_paginated(api, user, market):
    account = make_account(user)
    for symbol, qty in (("BTC/USDT", "0.01"), ("ETH/USDT", "0.1"), ("SOL/USDT", "1")):
        fill(account, symbol, qty)
    page = api.get("/api/positions/?page_size=2").data
    assert page["count"] == 3 and len(page["results"]) == 2 and page["next"]
    assert len(api.get("/api/positions/?page_size=2&page=2").data["results"]) == 1
    response = api.get("/api/positions/?page=9")
    assert response.status_code == 404 and "message" in response.data


# --------------------------------------------------------------------------- equity and PnL
def test_equity_curve_and_pnl(api, user, other_user, market):
    account = make_account(user, name="main")
    fill(account)
    fill(make_account(other_user, name="bob"))
    equity = api.get("/api/equity/?days=1").data
    assert list(equity["accounts"]) == ["main"] and len(equity["total"]) == 1
    stamp, value = equity["total"][0]
    assert D(value) > 0 and "T" in stamp
    pnl = api.get("/api/pnl/?days=7").data
    assert D(pnl["today"]["fees"]) == D("0.25005")
    assert pnl["today"]["limit_percent"] == "0.15"
    assert [row["account"]["name"] for row in pnl["by_account"]] == ["main"]
    assert len(pnl["by_day"]) == 1 and pnl["by_day"][0]["fills"] == 1
    assert api.get("/api/equity/?days=0").status_code == 400
    assert api.get("/api/pnl/?days=1000").data == {"days": ["Must be at most 365."]}


# --------------------------------------------------------------------------- kill switch
def test_kill_switch_trip_status_and_lift(api, user, market):
    account = make_account(user)
    fill(account)
    agent = make_agent(user, account)
    assert api.get("/api/kill-switch/").data == {"active": False, "switch": None, "global_halt": None,
                                                "trading_allowed": True}
    response = api.post("/api/kill-switch/trip/", {"reason": "going on holiday"}, format="json")
    assert response.status_code == 200
    assert response.data["active"] is True and response.data["trading_allowed"] is False
    switch = response.data["switch"]
    assert switch["reason"] == "going on holiday" and switch["tripped_by_label"] == "api:alice"
    # The request returns at once: agents halted, the flattening queued for a worker.
    agent.refresh_from_db()
    assert agent.status == AgentConfig.Status.HALTED
    assert switch["flatten"]["state"] == "queued" and switch["flatten"]["accounts_total"] == 1
    assert Position.objects.filter(status="open").exists()
    kill_switch_flatten_task(switch["id"])  # the worker's part
    flatten = api.get("/api/kill-switch/").data["switch"]["flatten"]
    assert (flatten["state"], flatten["accounts_done"], flatten["positions_closed"], flatten["errors"]) == (
        "done", 1, 1, [])
    assert flatten["started_at"] and flatten["finished_at"] and flatten["text"].startswith("Flattened 1 account:")
    assert not Position.objects.filter(status="open").exists()

    rejected = buy(api, account=account.pk)
    assert rejected.status_code == 422 and rejected.data["extra"]["rule"] == "user_halted"

    lifted = api.post("/api/kill-switch/lift/")
    assert lifted.status_code == 200 and lifted.data["active"] is False
    # The switch no longer blocks; what refuses now is the flatten's losing close (loss cooldown).
    after = buy(api, account=account.pk)
    assert after.status_code == 422 and after.data["extra"]["rule"] == "loss_cooldown"


def test_kill_switch_is_per_user_and_shows_global_halt(api, other_api, user, other_user, staff_user):
    assert other_api.post("/api/kill-switch/trip/", {}, format="json").data["active"] is True
    assert api.get("/api/kill-switch/").data["active"] is False
    assert api.post("/api/kill-switch/lift/").data["active"] is False  # lifting mine leaves Bob's
    assert KillSwitch.objects.get(user=other_user).active
    from risk.services import global_halt_trip

    global_halt_trip(by=staff_user, reason="exchange incident")
    state = api.get("/api/kill-switch/").data
    assert state["global_halt"]["reason"] == "exchange incident" and state["trading_allowed"] is False


def test_kill_switch_reason_validation(api):
    response = api.post("/api/kill-switch/trip/", {"reason": "x" * 501}, format="json")
    assert response.status_code == 400 and "reason" in response.data
