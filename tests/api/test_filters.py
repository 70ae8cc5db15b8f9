"""The lists' query parameters (django-filter FilterSets): a bad value is a 400 in the one
error style naming the parameter; filters combine; they narrow the user's own rows only (a
filter on another user's id finds nothing, it is not a 403); a detail URL ignores them;
the schema documents them."""

from datetime import UTC, datetime
from decimal import Decimal as D

import pytest
import yaml
from django.utils import timezone

from agents.models import Decision
from risk.models import RiskEvent
from tests.factories import make_account, make_agent
from trading.models import Order, Position
from trading.services import order_submit

pytestmark = pytest.mark.django_db

DB_INT_MAX = 2**63 - 1


def submit(account, symbol="BTC/USDT", quantity="0.01"):
    return order_submit(account=account, symbol=symbol, side="BUY", position_side="LONG", quantity=D(quantity),
                        source="api").order


def ids(response):
    assert response.status_code == 200, response.data
    return {row["id"] for row in response.data["results"]}


def choose(values):
    return [f"Choose one of: {', '.join(values)}."]


# --------------------------------------------------------------------------- bad values
@pytest.mark.parametrize("url, body", [
    ("/api/orders/?status=NOPE", {"status": choose(Order.Status.values)}),
    ("/api/orders/?source=robot", {"source": choose(Order.Source.values)}),
    ("/api/orders/?open=maybe", {"open": choose(["true", "false"])}),
    ("/api/orders/?open=1", {"open": choose(["true", "false"])}),  # a boolean filter would take it
    ("/api/orders/?account=x", {"account": ["A whole number is required."]}),
    ("/api/orders/?account=5.0", {"account": ["A whole number is required."]}),
    ("/api/orders/?account=0", {"account": ["Must be at least 1."]}),
    ("/api/positions/?account=304487866163821812513767424", {"account": [f"Must be at most {DB_INT_MAX}."]}),
    ("/api/positions/?status=bogus", {"status": choose(["open", "closed", "liquidated", "all"])}),
    ("/api/positions/?venue=" + "v" * 33, {"venue": ["At most 32 characters."]}),
    ("/api/orders/?symbol=" + "S" * 33, {"symbol": ["At most 32 characters."]}),
    ("/api/orders/?since=yesterday", {"since": ["An ISO 8601 date or date-time is required."]}),
    ("/api/decisions/?until=2026-13-01", {"until": ["An ISO 8601 date or date-time is required."]}),
    ("/api/decisions/?agent=-1", {"agent": ["Must be at least 1."]}),
    ("/api/decisions/?status=great", {"status": choose(Decision.Status.values)}),
    ("/api/risk-events/?kind=nope", {"kind": choose(RiskEvent.Kind.values)}),
    ("/api/risk-events/?allowed=yes", {"allowed": choose(["true", "false"])}),
    ("/api/risk-events/?since=2026-01-01T25:00", {"since": ["An ISO 8601 date or date-time is required."]}),
    ("/api/equity/?days=abc", {"days": ["A whole number is required."]}),
    ("/api/equity/?days=91", {"days": ["Must be at most 90."]}),
    ("/api/pnl/?days=0", {"days": ["Must be at least 1."]}),
])
def test_a_bad_filter_value_is_a_400_naming_the_parameter(api, url, body):
    response = api.get(url)
    assert response.status_code == 400
    assert response.data == body  # the one error style, the project's message


def test_every_bad_parameter_is_named_at_once(api):
    response = api.get("/api/orders/?status=NOPE&account=x&symbol=BTC/USDT")
    assert response.status_code == 400
    assert set(response.data) == {"status", "account"}


def test_an_empty_value_is_no_filter(api, user, market):
    account = make_account(user)
    submit(account)
    assert api.get("/api/orders/?status=&account=&since=&open=&symbol=").data["count"] == 1
    assert api.get("/api/positions/?status=").data["count"] == 1  # the default: open
    assert api.get("/api/equity/?days=").status_code == 200


# --------------------------------------------------------------------------- filters combine
def test_order_filters_combine(api, user, market):
    first, second = make_account(user, name="first"), make_account(user, name="second")
    btc = submit(first)
    eth = submit(first, "ETH/USDT", "0.1")
    refused = submit(first, quantity="1")  # over the per-symbol cap: REJECTED
    other_btc = submit(second)
    assert refused.status == Order.Status.REJECTED and btc.status == Order.Status.FILLED

    assert ids(api.get(f"/api/orders/?account={first.pk}")) == {btc.pk, eth.pk, refused.pk}
    assert ids(api.get(f"/api/orders/?account={first.pk}&symbol=BTC/USDT")) == {btc.pk, refused.pk}
    assert ids(api.get(f"/api/orders/?account={first.pk}&symbol=BTC/USDT&status=FILLED")) == {btc.pk}
    assert ids(api.get("/api/orders/?symbol=BTC/USDT&status=FILLED")) == {btc.pk, other_btc.pk}
    assert ids(api.get(f"/api/orders/?account={second.pk}&symbol=ETH/USDT")) == set()
    assert ids(api.get(f"/api/orders/?account={second.pk}&open=false&source=api&venue=paper")) == {other_btc.pk}
    assert ids(api.get(f"/api/orders/?account={second.pk}&source=agent")) == set()


def test_position_filters_combine(api, user, market):
    first, second = make_account(user, name="first"), make_account(user, name="second")
    submit(first)
    submit(first, "ETH/USDT", "0.1")
    submit(second)
    mine = {(p.account_id, p.symbol): p.pk for p in Position.objects.filter(owner=user)}
    assert ids(api.get(f"/api/positions/?account={second.pk}&symbol=BTC/USDT")) == {mine[second.pk, "BTC/USDT"]}
    assert ids(api.get(f"/api/positions/?account={first.pk}&symbol=ETH/USDT&status=all")) == {
        mine[first.pk, "ETH/USDT"]}
    assert ids(api.get(f"/api/positions/?account={second.pk}&symbol=ETH/USDT")) == set()
    assert ids(api.get(f"/api/positions/?account={first.pk}&status=closed")) == set()
    # Open positions come by account and symbol (the default status), the others newest first.
    listed = api.get("/api/positions/").data["results"]
    assert [(p["account"]["name"], p["symbol"]) for p in listed] == [
        ("first", "BTC/USDT"), ("first", "ETH/USDT"), ("second", "BTC/USDT")]


def test_risk_event_filters_combine(api, user, market):
    account = make_account(user)
    submit(account)
    submit(account, "ETH/USDT", "0.1")
    submit(account, quantity="1")  # refused
    refused = RiskEvent.objects.get(user=user, allowed=False)
    assert ids(api.get("/api/risk-events/?kind=pre_trade&allowed=false&symbol=BTC/USDT")) == {refused.pk}
    assert len(ids(api.get("/api/risk-events/?kind=pre_trade&allowed=true"))) == 2
    assert ids(api.get("/api/risk-events/?allowed=false&symbol=ETH/USDT")) == set()


def test_a_naive_time_is_utc_whatever_the_server_zone(api, user, settings, market):
    settings.TIME_ZONE = "America/New_York"
    order = submit(make_account(user))
    Order.objects.filter(pk=order.pk).update(created_at=datetime(2026, 1, 1, 12, 0, tzinfo=UTC))
    assert ids(api.get("/api/orders/?since=2026-01-01T12:00:00")) == {order.pk}
    assert ids(api.get("/api/orders/?since=2026-01-01T12:00:01")) == set()
    assert ids(api.get("/api/orders/?since=2026-01-01T07:00:00-05:00")) == {order.pk}
    assert ids(api.get("/api/orders/?since=2026-01-01")) == {order.pk}  # a date: its midnight, UTC
    assert ids(api.get("/api/orders/?since=2026-01-02")) == set()


def test_decision_time_range_and_agent(api, user, market):
    agent = make_agent(user)
    other = make_agent(user, make_account(user, name="second"), name="other")
    at = datetime(2026, 3, 1, 9, 30, tzinfo=UTC)
    early = Decision.objects.create(agent=agent, owner=user, status=Decision.Status.EXECUTED, started_at=at)
    late = Decision.objects.create(agent=agent, owner=user, status=Decision.Status.HELD,
                                   started_at=at.replace(hour=11))
    Decision.objects.create(agent=other, owner=user, status=Decision.Status.EXECUTED, started_at=at)
    window = "since=2026-03-01T09:30:00Z&until=2026-03-01T11:00:00Z"
    assert ids(api.get(f"/api/decisions/?agent={agent.pk}&{window}")) == {early.pk}  # until is exclusive
    assert ids(api.get(f"/api/decisions/?agent={agent.pk}&since=2026-03-01T10:00Z")) == {late.pk}
    assert ids(api.get(f"/api/decisions/?agent={agent.pk}&status=executed&until=2026-03-02")) == {early.pk}
    assert len(ids(api.get(f"/api/decisions/?{window}"))) == 2


# --------------------------------------------------------------------------- another user's ids
def test_a_filter_on_another_users_id_finds_nothing(api, other_api, user, other_user, market):
    submit(make_account(user))
    bobs_account = make_account(other_user)
    bobs_order = submit(bobs_account)
    bobs_agent = make_agent(other_user, bobs_account)
    Decision.objects.create(agent=bobs_agent, owner=other_user, status=Decision.Status.EXECUTED,
                            started_at=timezone.now())
    # Bob sees his rows through the very same filters...
    assert ids(other_api.get(f"/api/orders/?account={bobs_account.pk}")) == {bobs_order.pk}
    assert len(ids(other_api.get(f"/api/positions/?account={bobs_account.pk}"))) == 1
    assert len(ids(other_api.get(f"/api/decisions/?agent={bobs_agent.pk}"))) == 1
    # ...Alice, filtering on his ids, gets an empty list: not a 403, not his rows.
    for url in (f"/api/orders/?account={bobs_account.pk}", f"/api/orders/?account={bobs_account.pk}&status=FILLED",
                f"/api/positions/?account={bobs_account.pk}&status=all", f"/api/decisions/?agent={bobs_agent.pk}"):
        response = api.get(url)
        assert response.status_code == 200, url
        assert response.data["count"] == 0 and response.data["results"] == [], url


# --------------------------------------------------------------------------- detail URLs
def test_a_detail_url_ignores_the_list_filters(api, user, market):
    order = submit(make_account(user))
    position = Position.objects.get(owner=user)
    assert api.get(f"/api/orders/{order.pk}/?status=CANCELLED").data["id"] == order.pk
    assert api.get(f"/api/orders/{order.pk}/?status=NOPE").status_code == 200
    assert api.get(f"/api/positions/{position.pk}/?status=closed").data["id"] == position.pk


# --------------------------------------------------------------------------- schema
LISTS = {
    "/api/orders/": {"status", "open", "account", "venue", "symbol", "source", "since"},
    "/api/positions/": {"status", "venue", "account", "symbol"},
    "/api/decisions/": {"agent", "status", "since", "until"},
    "/api/risk-events/": {"kind", "allowed", "symbol", "since"},
}


def test_the_schema_documents_every_filter(anon):
    schema = yaml.safe_load(anon.get("/api/schema/").content)
    for path, names in LISTS.items():
        params = {p["name"]: p for p in schema["paths"][path]["get"]["parameters"] if p["in"] == "query"}
        assert names | {"page", "page_size"} == set(params), path
        for name in names:
            assert params[name].get("description"), (path, name)
        # The detail operation documents no list filter.
        detail = schema["paths"][path + "{id}/"]["get"].get("parameters", [])
        assert not [p for p in detail if p["in"] == "query"], path
    orders = {p["name"]: p["schema"] for p in schema["paths"]["/api/orders/"]["get"]["parameters"]}
    assert orders["account"] == {"type": "integer", "minimum": 1, "maximum": DB_INT_MAX}
    assert set(orders["status"]["enum"]) == set(Order.Status.values)
    assert orders["since"] == {"type": "string", "format": "date-time"}
    assert set(orders["open"]["enum"]) == {"true", "false"}
    positions = {p["name"]: p["schema"] for p in schema["paths"]["/api/positions/"]["get"]["parameters"]}
    assert set(positions["status"]["enum"]) == {"open", "closed", "liquidated", "all"}
    days = next(p for p in schema["paths"]["/api/pnl/"]["get"]["parameters"] if p["name"] == "days")
    assert days["schema"] == {"type": "integer", "minimum": 1, "maximum": 365, "default": 30}
