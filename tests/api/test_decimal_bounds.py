"""Every Decimal input is bounded by what the columns store exactly (issue 11).

Found by a hostile-input review: ``max_position_notional_usd`` = 29296706117289944 (or a limit
price that large) was stored, and every later read of the profile or of the order list
answered 500; on SQLite a 16th significant digit was silently changed.

The API's Decimal inputs are enumerated from its own OpenAPI schema (every request body
property of ``format: decimal``), so a new one is tested, or makes ``test_every_decimal_input_
is_known`` fail until it is given a base request here. The portal's and the admin's are the
DecimalFields of their forms. Run on SQLite and on PostgreSQL (DATABASE_URL).
"""

from __future__ import annotations

import json
from decimal import Decimal as D
from functools import cache

import pytest
from django import forms
from django.db import connection
from django.urls import reverse
from django.utils import timezone
from rest_framework import serializers as drf

from alpha_platform.web.api.risk.views import RiskProfileSerializer
from alpha_platform.web.api.trading.serializers import OrderCreateSerializer
from risk.models import RiskEvent, RiskProfile
from tests.factories import make_account
from trading.models import BalanceSnapshot, Order

pytestmark = pytest.mark.django_db

RISK = "/api/risk-profile/"
ORDERS = "/api/orders/"

# The request each Decimal-taking operation needs besides the field under test, and the
# serializer that reads it. ``{account}`` is the caller's paper account.
OPERATIONS = {
    ("put", RISK): ({}, RiskProfileSerializer),
    ("patch", RISK): ({}, RiskProfileSerializer),
    ("post", ORDERS): ({"account": "{account}", "symbol": "BTC/USDT", "side": "BUY", "position_side": "LONG",
                       "quantity": "0.01"}, OrderCreateSerializer),
}
# Fields that only count with an order type of their own.
FIELD_EXTRAS = {"price": {"order_type": "LIMIT"}, "stop_price": {"order_type": "STOP_MARKET"}}
# Order fields order_submit requires to be greater than zero.
POSITIVE = {"quantity", "price", "stop_price", "stop_loss", "take_profit"}
# Order fields the Order row keeps (stop_loss / take_profit go to the venue only).
ORDER_COLUMNS = {"quantity", "price", "stop_price"}


@cache
def _schema() -> dict:
    from drf_spectacular.generators import SchemaGenerator

    return SchemaGenerator().get_schema(request=None, public=True)


def _decimal_properties(schema: dict, node: dict, prefix: str = "") -> list[str]:
    if "$ref" in node:
        node = schema["components"]["schemas"][node["$ref"].rsplit("/", 1)[1]]
    names: list[str] = []
    for option in node.get("allOf", []) + node.get("oneOf", []) + node.get("anyOf", []):
        names += _decimal_properties(schema, option, prefix)
    for name, prop in node.get("properties", {}).items():
        if prop.get("readOnly"):
            continue
        if prop.get("format") == "decimal":
            names.append(prefix + name)
        else:
            names += _decimal_properties(schema, prop, f"{prefix}{name}.")
    if "items" in node:
        names += _decimal_properties(schema, node["items"], f"{prefix}[].")
    return names


@cache
def api_decimal_inputs() -> list[tuple[str, str, str]]:
    """(method, path, field) of every Decimal the API accepts, from its schema."""
    schema = _schema()
    found = []
    for path, methods in schema["paths"].items():
        for method, operation in methods.items():
            if not isinstance(operation, dict) or "requestBody" not in operation:
                continue
            for content in operation["requestBody"]["content"].values():
                for name in _decimal_properties(schema, content["schema"]):
                    if (method, path, name) not in found:
                        found.append((method, path, name))
    return found


def _state() -> tuple:
    return (list(RiskProfile.objects.order_by("pk").values()), list(Order.objects.order_by("pk").values()),
            RiskEvent.objects.count())


def _body(method: str, path: str, field: str, value, account) -> dict:
    base, _ = OPERATIONS[(method, path)]
    body = {k: (account.pk if v == "{account}" else v) for k, v in base.items()}
    if path == ORDERS:
        body.update(FIELD_EXTRAS.get(field, {}))
    body[field] = value
    return body


def _field(method: str, path: str, name: str):
    _, serializer_class = OPERATIONS[(method, path)]
    return serializer_class().fields[name]


def _send(api, method: str, path: str, body):
    if isinstance(body, (bytes, str)):
        return getattr(api, method)(path, body, content_type="application/json")
    return getattr(api, method)(path, body, format="json")


@pytest.fixture
def account(user, market):
    return make_account(user)


# --------------------------------------------------------------------------- the inputs are all known
def test_every_decimal_input_is_known():
    inputs = api_decimal_inputs()
    assert {(m, p) for m, p, _ in inputs} == set(OPERATIONS), \
        "an operation takes a Decimal: give it a base request in OPERATIONS"
    for method, path, name in inputs:
        field = _field(method, path, name)
        assert isinstance(field, drf.DecimalField) and not field.read_only
    # and the serializers take no Decimal the schema does not show
    for (method, path), (_, serializer_class) in OPERATIONS.items():
        writable = {n for n, f in serializer_class().fields.items()
                    if isinstance(f, drf.DecimalField) and not f.read_only}
        assert writable == {n for m, p, n in inputs if (m, p) == (method, path)}
    assert len(inputs) == 2 * 7 + 5  # the profile's 7 (PUT and PATCH) and the order's 5


# --------------------------------------------------------------------------- over the bound: 400, nothing stored
LIMIT_SIZE = "1,000,000,000"
LIMIT_PLACES = "12 decimal places"
LIMIT_DIGITS = "15 significant digits"
OVER = [
    ("29296706117289944", LIMIT_SIZE),  # the finding
    ("9999999999999999", LIMIT_SIZE),  # 16 digits: SQLite stored 10000000000000000
    ("99999999999999999999", LIMIT_SIZE),  # the column's largest integer part
    ("1000000000.000001", LIMIT_SIZE),
    ("1000000001", LIMIT_SIZE),
    ("1E+10", LIMIT_SIZE),
    ("1e400", LIMIT_SIZE),
    ("-1e400", LIMIT_SIZE),
    ("1e999999999999", LIMIT_SIZE),
    ("0.0000000000001", LIMIT_PLACES),
    ("1e-13", LIMIT_PLACES),
    ("1e-999999999999", LIMIT_PLACES),
    ("12345.12345678912", LIMIT_DIGITS),  # 16 significant digits: SQLite changed the last
    ("1234567.123456789012", LIMIT_DIGITS),
]
NOT_A_NUMBER = ["NaN", "-NaN", "sNaN", "Infinity", "-Infinity", "inf", "1e", "0x10", "1,5", "--1", "1" * 1001]


@pytest.mark.parametrize("method, path, field", api_decimal_inputs())
def test_a_decimal_over_the_bound_is_a_400_naming_the_limit(api, account, method, path, field):
    before = _state()
    for value, limit in OVER:
        response = _send(api, method, path, _body(method, path, field, value, account))
        assert response.status_code == 400, (value, response.status_code, response.content[:300])
        messages = response.json()[field]
        assert any(limit in m for m in messages), (value, messages)
        assert _state() == before, value
    # and every read still answers
    assert api.get(RISK).status_code == 200 and api.get(ORDERS).status_code == 200


JSON_LITERALS = ["1e400", "-1e400", "NaN", "Infinity", "-Infinity", "29296706117289944", "12345.12345678912"]


@pytest.mark.parametrize("method, path, field", api_decimal_inputs())
def test_a_decimal_that_is_not_a_finite_number_is_a_400(api, account, method, path, field):
    before = _state()
    for value in NOT_A_NUMBER:
        response = _send(api, method, path, _body(method, path, field, value, account))
        assert response.status_code == 400, (value, response.status_code, response.content[:300])
        assert field in response.json(), value
        assert _state() == before, value
    # As JSON numbers, not strings: 1e400 parses as a float infinity; NaN is no JSON at all.
    for literal in JSON_LITERALS:
        body = json.dumps(_body(method, path, field, "@@", account)).replace('"@@"', literal)
        response = _send(api, method, path, body)
        assert response.status_code == 400, (literal, response.status_code, response.content[:300])
        assert _state() == before, literal


def test_the_findings_values(api, user, account):
    """The two reports, as found: the profile's notional limit and a limit price."""
    for method in ("put", "patch"):
        response = getattr(api, method)(RISK, {"max_position_notional_usd": "29296706117289944"}, format="json")
        assert response.status_code == 400
        assert response.json() == {"max_position_notional_usd": [
            "max_position_notional_usd must be at most 1,000,000,000."]}
    assert RiskProfile.objects.get(user=user).max_position_notional_usd == D("10000")
    assert api.get(RISK).json()["max_position_notional_usd"] == "10000"

    response = api.post(ORDERS, {"account": account.pk, "symbol": "BTC/USDT", "side": "BUY", "position_side": "LONG",
                                 "order_type": "LIMIT", "quantity": "0.01", "price": 29296706117289944},
                        format="json")
    assert response.status_code == 400 and "1,000,000,000" in response.json()["price"][0]
    assert not Order.objects.exists() and not RiskEvent.objects.exists()
    assert api.get(ORDERS).json()["count"] == 0


# --------------------------------------------------------------------------- at the bound: stored, read back exactly
AT_BOUND = ["1000000000", "1E+9", "999999999.999999", "123.456789012345", "0.123456789012", "0.000000000001",
            "1", "1.0000000000000", "-0", "0"]


def _accepted_by_the_field(field, value: str, name: str) -> bool:
    number = D(value)
    if name in POSITIVE and number <= 0:
        return False
    if field.max_value is not None and number > field.max_value:
        return False
    return field.min_value is None or number >= field.min_value


def _cases():
    for method, path, name in api_decimal_inputs():
        field = _field(method, path, name)
        for value in AT_BOUND:
            if _accepted_by_the_field(field, value, name):
                yield method, path, name, value


@pytest.mark.parametrize("method, path, field, value", list(_cases()))
def test_a_decimal_at_the_bound_is_stored_and_read_back_exactly(api, user, account, method, path, field, value):
    response = _send(api, method, path, _body(method, path, field, value, account))
    if path == RISK:
        assert response.status_code == 200, response.content[:300]
        assert D(response.json()[field]) == D(value)
        assert D(api.get(RISK).json()[field]) == D(value)
        assert getattr(RiskProfile.objects.get(user=user), field) == D(value)
        return
    # An order: placed, or refused by the risk gate or the venue; recorded either way.
    assert response.status_code in (201, 422), response.content[:300]
    order = Order.objects.get(owner=user, parent=None)
    listed = next(o for o in api.get(ORDERS).json()["results"] if o["id"] == order.pk)
    if field in ORDER_COLUMNS:
        assert getattr(order, field) == D(value)
        assert D(listed[field]) == D(value)
        assert D(api.get(f"{ORDERS}{order.pk}/").json()[field]) == D(value)


def test_the_bound_leaves_room_for_products_in_the_columns(user, account):
    """The largest price times the largest quantity (a notional, a P&L) fits a column and is
    read back on either database."""
    from alpha_platform.common.money import INPUT_MAX_ABS, decimal_input

    largest = decimal_input("999999999.999999")
    for product in (INPUT_MAX_ABS * INPUT_MAX_ABS, largest * largest):
        snap = BalanceSnapshot(account=account, taken_at=timezone.now(), total_balance=product,
                               available_balance=product, margin_balance=product)
        snap.full_clean()  # within the column's digits
        snap.save()
        read = BalanceSnapshot.objects.get(pk=snap.pk).total_balance
        # SQLite keeps 15 significant digits of a non-integer; PostgreSQL all of them.
        assert abs(read - product) <= abs(product) * D("1e-14")
        if connection.vendor == "postgresql":
            assert read == product  # both have at most 12 places


# --------------------------------------------------------------------------- old rows out of the bound
def test_rows_stored_before_the_bound_are_still_read(api, user, account, client, staff_user):
    """A profile and an order written before the bound (within the column) read as 200."""
    from trading.services import order_submit

    huge = D("29296706117289944")
    RiskProfile.objects.filter(user=user).update(max_position_notional_usd=huge, min_notional_usd=D("1e19"))
    result = order_submit(account=account, symbol="BTC/USDT", side="BUY", position_side="LONG", quantity=D("0.01"),
                          source="api")
    Order.objects.filter(pk=result.order.pk).update(price=huge, quantity=D("12345678901234567.123456789012"))
    stored = RiskProfile.objects.get(user=user).max_position_notional_usd  # rounded on SQLite, exact on PostgreSQL

    response = api.get(RISK)
    assert response.status_code == 200 and D(response.json()["max_position_notional_usd"]) == stored
    if connection.vendor == "postgresql":
        assert response.json()["max_position_notional_usd"] == "29296706117289944"
        assert response.json()["min_notional_usd"] == "10000000000000000000"
    response = api.get(ORDERS)
    assert response.status_code == 200
    assert D(response.json()["results"][0]["price"]) == Order.objects.get().price
    assert api.get(f"{ORDERS}{result.order.pk}/").status_code == 200
    client.force_login(user)
    assert client.get(reverse("portal:risk")).status_code == 200
    assert client.get(reverse("portal:orders")).status_code == 200
    assert client.get(reverse("portal:dashboard")).status_code == 200
    client.force_login(staff_user)
    profile = RiskProfile.objects.get(user=user)
    for url in ("/admin/risk/riskprofile/", f"/admin/risk/riskprofile/{profile.pk}/change/", "/admin/trading/order/",
                f"/admin/trading/order/{result.order.pk}/change/"):
        assert client.get(url).status_code == 200, url


# --------------------------------------------------------------------------- the portal
def _portal_risk_form(**changes) -> dict:
    data = {"max_leverage": 5, "max_position_notional_usd": "10000", "max_position_percent": "20",
            "max_total_exposure_percent": "50", "max_exchange_exposure_percent": "30",
            "daily_loss_limit_percent": "15", "min_notional_usd": "5", "max_open_positions": 5,
            "max_orders_per_minute": 10, "max_orders_per_hour": 120, "loss_cooldown_seconds": 300,
            "monthly_llm_budget_usd": "50", "allowed_symbols": ["BTC/USDT"]}
    data.update(changes)
    return data


def _portal_risk_decimals() -> list[str]:
    from alpha_platform.web.portal.forms import RiskProfileForm

    return [n for n, f in RiskProfileForm.base_fields.items() if isinstance(f, forms.DecimalField)]


def _manual_order_decimals() -> list[str]:
    from trading.forms import ManualOrderForm

    return [n for n, f in ManualOrderForm.base_fields.items() if isinstance(f, forms.DecimalField)]


def test_the_forms_decimal_inputs_are_known():
    assert _portal_risk_decimals() == ["max_position_notional_usd", "max_position_percent",
                                       "max_total_exposure_percent", "max_exchange_exposure_percent",
                                       "daily_loss_limit_percent", "min_notional_usd", "monthly_llm_budget_usd"]
    assert _manual_order_decimals() == ["quantity", "price", "stop_price", "stop_loss", "take_profit"]


@pytest.mark.parametrize("value", ["29296706117289944", "1000000001", "1e400", "1234567.123456789"])
@pytest.mark.parametrize("field", _portal_risk_decimals())
def test_portal_risk_form_over_the_bound_is_a_form_error(client, user, field, value):
    client.force_login(user)
    before = _state()
    response = client.post(reverse("portal:risk"), _portal_risk_form(**{field: value}))
    assert response.status_code == 400
    assert response.context["form"].errors.get(field), response.context["form"].errors
    assert _state() == before
    assert client.get(reverse("portal:risk")).status_code == 200


@pytest.mark.parametrize("field", ["max_position_notional_usd", "min_notional_usd", "monthly_llm_budget_usd"])
def test_portal_risk_form_names_the_limit(client, user, field):
    client.force_login(user)
    response = client.post(reverse("portal:risk"), _portal_risk_form(**{field: "29296706117289944"}))
    assert response.status_code == 400
    assert any(LIMIT_SIZE in e for e in response.context["form"].errors[field])
    response = client.post(reverse("portal:risk"), _portal_risk_form(**{field: "1000000000"}))
    assert response.status_code == 302
    assert getattr(RiskProfile.objects.get(user=user), field) == D("1000000000")


def _order_post(account, field, value, prefix=""):
    data = {"account": account.pk, "symbol": "BTC/USDT", "side": "BUY", "position_side": "LONG",
            "order_type": "MARKET", "quantity": "0.01"}
    data.update(FIELD_EXTRAS.get(field, {}))
    data[field] = value
    return {f"{prefix}{k}": v for k, v in data.items()}


@pytest.mark.parametrize("field", _manual_order_decimals())
def test_portal_order_form_over_the_bound_is_a_form_error(client, user, account, field):
    client.force_login(user)
    before = _state()
    response = client.post(reverse("portal:orders"), _order_post(account, field, "29296706117289944", "order-"))
    assert response.status_code == 400
    assert any(LIMIT_SIZE in e for e in response.context["form"].errors[field]), response.context["form"].errors
    assert _state() == before


# --------------------------------------------------------------------------- the admin
def _admin_risk_post(client, profile, **changes):
    page = client.get(f"/admin/risk/riskprofile/{profile.pk}/change/")
    assert page.status_code == 200
    form = page.context["adminform"].form
    data = {}
    for name in form.fields:
        value = form[name].value()
        if value is not None:
            data[name] = value
    data.update(changes)
    return client.post(f"/admin/risk/riskprofile/{profile.pk}/change/", data)


@pytest.mark.parametrize("field", [f.name for f in RiskProfile._meta.fields if f.get_internal_type() == "DecimalField"])
def test_admin_risk_profile_over_the_bound_is_a_form_error(client, staff_user, user, field):
    client.force_login(staff_user)
    profile = RiskProfile.objects.get(user=user)
    before = _state()
    response = _admin_risk_post(client, profile, **{field: "29296706117289944"})
    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert any(LIMIT_SIZE in e for e in errors.get(field, [])), errors
    assert _state() == before


def test_admin_risk_profile_at_the_bound_is_saved(client, staff_user, user):
    client.force_login(staff_user)
    profile = RiskProfile.objects.get(user=user)
    response = _admin_risk_post(client, profile, max_position_notional_usd="999999999.999999")
    assert response.status_code == 302, response.context["adminform"].form.errors
    assert RiskProfile.objects.get(user=user).max_position_notional_usd == D("999999999.999999")


@pytest.mark.parametrize("field", _manual_order_decimals())
def test_admin_manual_order_over_the_bound_is_a_form_error(client, staff_user, user, account, field):
    client.force_login(staff_user)
    before = _state()
    response = client.post("/admin/trading/order/add/", _order_post(account, field, "29296706117289944"))
    assert response.status_code == 200
    assert LIMIT_SIZE in response.content.decode()
    assert _state() == before
