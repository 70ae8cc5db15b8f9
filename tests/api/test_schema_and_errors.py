"""The OpenAPI schema (complete, valid, no warnings), the documentation page, the one error
style, and that no response ever carries a credential."""

import json

import pytest
import yaml
from django.core.exceptions import ValidationError as DjangoValidationError
from django.core.management import call_command
from rest_framework import exceptions

from alpha_platform.common.errors import ApplicationError
from alpha_platform.web.api.common import exception_handler
from exchanges.models import ExchangeAccount
from tests.factories import BINANCE_CREDS, HL_CREDS, make_agent

pytestmark = pytest.mark.django_db


def test_schema_generates_valid_without_warnings(tmp_path):
    out = tmp_path / "schema.yaml"
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(out))
    schema = yaml.safe_load(out.read_text())
    paths = schema["paths"]
    for expected in ["/api/auth/token/", "/api/auth/tokens/", "/api/exchanges/", "/api/exchange-accounts/{id}/test/",
                     "/api/balance/", "/api/positions/", "/api/orders/", "/api/orders/{id}/cancel/",
                     "/api/risk-profile/", "/api/agents/{id}/pause/", "/api/agents/{id}/resume/",
                     "/api/agents/{id}/run/", "/api/decisions/{id}/", "/api/kill-switch/trip/",
                     "/api/kill-switch/lift/", "/api/equity/", "/api/pnl/", "/api/llm-credential/"]:
        assert expected in paths, expected
    components = schema["components"]["schemas"]
    create = components["ExchangeAccountCreateRequest"]["properties"]["credentials"]
    assert create["writeOnly"] is True
    assert components["LLMCredentialRequest"]["properties"]["api_key"]["writeOnly"] is True
    for name, component in components.items():
        if not name.endswith("Request"):
            assert not {"credentials", "api_key", "key_hash", "password"} & set(component.get("properties", {})), name
    order_post = paths["/api/orders/"]["post"]["responses"]
    assert {"200", "201", "400", "401", "422", "429"} <= set(order_post)
    assert {"tokenAuth", "cookieAuth"} <= set(schema["components"]["securitySchemes"])


def test_schema_and_docs_are_served(anon):
    response = anon.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert response.status_code == 200
    assert json.loads(response.content)["info"]["title"] == "AlphaTransformer API"
    docs = anon.get("/api/docs/")
    assert docs.status_code == 200 and b"swagger" in docs.content.lower()


# --------------------------------------------------------------------------- error style
def handle(exc):
    return exception_handler(exc, {})


def test_application_error_is_message_and_extra():
    response = handle(ApplicationError("Cannot do that", extra={"why": "because"}))
    assert (response.status_code, response.data) == (400, {"message": "Cannot do that", "extra": {"why": "because"}})


def test_django_validation_errors_become_field_errors_or_a_message():
    response = handle(DjangoValidationError({"name": ["Bad name."], "__all__": ["Also this."]}))
    assert response.data == {"name": ["Bad name."], "non_field_errors": ["Also this."]}
    response = handle(DjangoValidationError("Not allowed right now."))
    assert (response.status_code, response.data) == (400, {"message": "Not allowed right now.", "extra": {}})
    response = handle(exceptions.ValidationError(["One.", "Two."]))
    assert response.data == {"message": "One. Two.", "extra": {}}


def test_permission_errors_are_403():
    response = handle(PermissionError("Only staff can halt the whole platform."))
    assert response.status_code == 403
    assert response.data["message"] == "Only staff can halt the whole platform."


def test_unknown_errors_are_left_to_django():
    assert handle(RuntimeError("bug")) is None


def test_malformed_json_is_a_message_error(api):
    response = api.generic("POST", "/api/orders/", "{not json", content_type="application/json")
    assert response.status_code == 400 and "JSON parse error" in response.data["message"]


def test_unsupported_media_type(api):
    response = api.post("/api/kill-switch/trip/", "reason=x", content_type="application/x-www-form-urlencoded")
    assert response.status_code == 415 and set(response.data) == {"message", "extra"}


# --------------------------------------------------------------------------- no secrets, anywhere
def test_no_response_contains_a_credential(api, user, market, anon):
    secrets = [BINANCE_CREDS["api_key"], BINANCE_CREDS["api_secret"], HL_CREDS["private_key"],
               HL_CREDS["private_key"][2:], "sk-llm-secret-0123456789abcdef"]
    bodies = []
    for venue, creds in (("binance_futures", BINANCE_CREDS), ("hyperliquid", HL_CREDS)):
        response = api.post("/api/exchange-accounts/", {"name": venue, "venue": venue, "credentials": creds},
                            format="json")
        assert response.status_code == 201
        bodies.append(response.content)
        account_id = response.data["id"]
        bodies.append(api.patch(f"/api/exchange-accounts/{account_id}/", {"credentials": creds},
                                format="json").content)
        bodies.append(api.get(f"/api/exchange-accounts/{account_id}/").content)
    bodies.append(api.put("/api/llm-credential/", {"api_key": secrets[-1]}, format="json").content)
    paper = api.post("/api/exchange-accounts/", {"name": "paper", "venue": "paper"}, format="json").data
    make_agent(user, account=ExchangeAccount.objects.get(pk=paper["id"]))
    api.post("/api/orders/", {"account": paper["id"], "symbol": "BTC/USDT", "side": "BUY", "position_side": "LONG",
                              "quantity": "0.01"}, format="json")
    schema = yaml.safe_load(anon.get("/api/schema/").content)
    for path, methods in schema["paths"].items():
        if "get" in methods and "{" not in path:
            response = api.get(path)
            assert response.status_code == 200, path
            bodies.append(response.content)
    text = b"\n".join(bodies).decode()
    for secret in secrets:
        assert secret not in text


# An id past the database's integer range (found by the fuzz run: it was a 500 on SQLite).
HUGE_ID = "304487866163821812513767424"


@pytest.mark.parametrize("url", ["/api/positions/?account={}", "/api/orders/?account={}", "/api/decisions/?agent={}"])
def test_an_id_filter_beyond_the_database_range_is_a_400(api, url):
    response = api.get(url.format(HUGE_ID))
    assert response.status_code == 400
    assert "at most" in str(response.data).lower()


@pytest.mark.parametrize("url", ["/api/agents/{}/", "/api/orders/{}/", "/api/decisions/{}/", "/api/positions/{}/",
                                 "/api/exchange-accounts/{}/", "/api/risk-events/{}/"])
def test_a_detail_id_beyond_the_database_range_is_a_404(api, url):
    assert api.get(url.format(HUGE_ID)).status_code == 404
