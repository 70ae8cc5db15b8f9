"""/api/exchanges/ and /api/exchange-accounts/: venues with capabilities, accounts CRUD with
write-only credentials validated per venue, the connection test, and isolation."""

from decimal import Decimal as D

import pytest

from exchanges.models import ExchangeAccount
from tests.factories import BINANCE_CREDS, HL_CREDS, make_account, make_agent
from trading.services import order_submit

pytestmark = pytest.mark.django_db


def test_exchanges_list_capabilities_and_account_status(api, user, other_user):
    mine = make_account(user, name="paper main")
    make_account(other_user, name="bob paper")
    response = api.get("/api/exchanges/")
    assert response.status_code == 200
    by_name = {v["name"]: v for v in response.data}
    assert list(by_name) == ["binance_futures", "hyperliquid", "paper"]
    paper = by_name["paper"]
    assert paper["display_name"].startswith("Paper")
    assert paper["credential_fields"] == [] and paper["auth_type"] == "none"
    assert "BTC/USDT" in paper["symbols"]
    caps = paper["capabilities"]
    assert caps["order_types"] == ["MARKET", "LIMIT", "STOP_MARKET", "TAKE_PROFIT_MARKET"]
    assert caps["time_in_force"] == ["GTC", "IOC", "FOK", "GTX"]
    assert caps["fees"] == {"maker": "0.0002", "taker": "0.0005"}
    assert caps["leverage"]["maximum"] == 20
    assert [a["id"] for a in paper["accounts"]] == [mine.pk]  # not Bob's
    assert paper["accounts"][0]["status"] == "untested"
    hl = by_name["hyperliquid"]
    # Venue-specific names map onto the API's order types; limits by internal symbol.
    assert hl["capabilities"]["order_types"] == ["MARKET", "LIMIT", "STOP_MARKET", "TAKE_PROFIT_MARKET"]
    assert hl["capabilities"]["leverage"]["per_symbol"]["BTC/USDT"] == 20
    assert by_name["binance_futures"]["credential_fields"] == ["api_key", "api_secret"]


def test_exchange_detail_and_unknown_venue(api):
    assert api.get("/api/exchanges/paper/").data["name"] == "paper"
    response = api.get("/api/exchanges/nasdaq/")
    assert response.status_code == 404 and response.data == {"message": "Not found.", "extra": {"code": "not_found"}}


def test_create_paper_account(api, user):
    response = api.post("/api/exchange-accounts/", {"name": "Paper 1", "venue": "paper"}, format="json")
    assert response.status_code == 201, response.data
    assert response.data["venue"] == "paper" and response.data["status"] == "untested"
    assert ExchangeAccount.objects.get(pk=response.data["id"]).owner == user


def test_create_binance_account_credentials_are_write_only(api):
    response = api.post("/api/exchange-accounts/", {"name": "Binance", "venue": "binance_futures", "testnet": True,
                                                   "credentials": BINANCE_CREDS}, format="json")
    assert response.status_code == 201, response.data
    body = response.content.decode()
    assert "credentials" not in response.data
    assert BINANCE_CREDS["api_key"] not in body and BINANCE_CREDS["api_secret"] not in body
    assert response.data["credentials_hint"] == f"api_key …{BINANCE_CREDS['api_key'][-4:]}"
    account = ExchangeAccount.objects.get(pk=response.data["id"])
    assert account.credentials()["api_secret"].reveal() == BINANCE_CREDS["api_secret"]
    assert BINANCE_CREDS["api_secret"] not in account.credentials_encrypted


@pytest.mark.parametrize("body, errors", [
    ({"venue": "paper"}, {"name"}),
    ({"name": "x", "venue": "nasdaq"}, {"venue"}),
    ({"name": "   ", "venue": "paper"}, {"name"}),
    ({"name": "x", "venue": "paper", "credentials": "secret"}, {"credentials"}),
])
def test_create_validation_errors(api, body, errors):
    response = api.post("/api/exchange-accounts/", body, format="json")
    assert response.status_code == 400
    assert set(response.data) == errors


def test_credentials_are_validated_per_venue_without_echoing_them(api):
    bad_key = "short"
    response = api.post("/api/exchange-accounts/", {"name": "B", "venue": "binance_futures",
                                                   "credentials": {"api_key": bad_key}}, format="json")
    assert response.status_code == 400
    errors = response.data["credentials"]
    assert set(errors) == {"api_key", "api_secret"}
    assert "16 to 128" in errors["api_key"][0] and errors["api_secret"] == ["This credential is required."]
    assert bad_key not in str(errors)

    response = api.post("/api/exchange-accounts/", {"name": "H", "venue": "hyperliquid",
                                                   "credentials": {**HL_CREDS, "seed": "x"}}, format="json")
    assert response.status_code == 400
    assert "Unexpected credential field(s): seed" in response.data["credentials"][0]
    assert not ExchangeAccount.objects.exists()


def test_duplicate_name_is_an_error(api, user):
    make_account(user, name="same")
    response = api.post("/api/exchange-accounts/", {"name": "same", "venue": "paper"}, format="json")
    assert response.status_code == 400
    assert "already exists" in str(response.data)


def test_list_retrieve_update(api, user):
    account = make_account(user, venue="binance_futures", name="old")
    make_account(user, name="paper")
    listing = api.get("/api/exchange-accounts/").data
    assert listing["count"] == 2 and [r["name"] for r in listing["results"]] == ["old", "paper"]
    assert api.get(f"/api/exchange-accounts/{account.pk}/").data["name"] == "old"

    response = api.patch(f"/api/exchange-accounts/{account.pk}/", {"name": "new", "testnet": True}, format="json")
    assert response.status_code == 200 and response.data["name"] == "new" and response.data["testnet"] is True

    new_creds = {"api_key": "N" * 40, "api_secret": "M" * 40}
    response = api.put(f"/api/exchange-accounts/{account.pk}/", {"credentials": new_creds}, format="json")
    assert response.status_code == 200
    assert response.data["credentials_hint"] == "api_key …NNNN" and "M" * 40 not in response.content.decode()
    account.refresh_from_db()
    assert account.credentials()["api_secret"].reveal() == "M" * 40 and account.name == "new"

    response = api.patch(f"/api/exchange-accounts/{account.pk}/", {"credentials": {"api_key": "x"}}, format="json")
    assert response.status_code == 400 and "api_key" in response.data["credentials"]
    account.refresh_from_db()
    assert account.credentials()["api_secret"].reveal() == "M" * 40  # unchanged


def test_update_validation_error(api, user):
    account = make_account(user)
    response = api.patch(f"/api/exchange-accounts/{account.pk}/", {"name": ""}, format="json")
    assert response.status_code == 400 and "name" in response.data


def test_delete(api, user):
    account = make_account(user)
    assert api.delete(f"/api/exchange-accounts/{account.pk}/").status_code == 204
    assert not ExchangeAccount.objects.filter(pk=account.pk).exists()


def test_delete_refused_while_in_use(api, user, market):
    account = make_account(user)
    make_agent(user, account)
    response = api.delete(f"/api/exchange-accounts/{account.pk}/")
    assert response.status_code == 400
    assert response.data == {"message": "Agents use this account: delete or move them first.", "extra": {}}
    other = make_account(user, name="with position")
    order_submit(account=other, symbol="BTC/USDT", side="BUY", position_side="LONG", quantity=D("0.01"),
                 source="api")
    response = api.delete(f"/api/exchange-accounts/{other.pk}/")
    assert response.status_code == 400 and "open positions" in response.data["message"]


def test_connection_test_action(api, user, market):
    account = make_account(user)
    response = api.post(f"/api/exchange-accounts/{account.pk}/test/")
    assert response.status_code == 200
    assert response.data["status"] == "ok" and response.data["last_checked_at"]


def test_another_users_account_is_404_everywhere(api, other_user):
    theirs = make_account(other_user)
    base = f"/api/exchange-accounts/{theirs.pk}/"
    assert api.get(base).status_code == 404
    assert api.put(base, {"name": "mine now"}, format="json").status_code == 404
    assert api.patch(base, {"name": "mine now"}, format="json").status_code == 404
    assert api.delete(base).status_code == 404
    assert api.post(base + "test/").status_code == 404
    assert api.get("/api/exchange-accounts/").data["count"] == 0
    theirs.refresh_from_db()
    assert theirs.name != "mine now" and theirs.status == "untested"
