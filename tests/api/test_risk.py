"""/api/risk-profile/ (read and update through risk_profile_update) and /api/risk-events/."""

from decimal import Decimal as D

import pytest

from risk.models import RiskEvent, RiskProfile
from tests.factories import make_account
from trading.services import order_submit

pytestmark = pytest.mark.django_db


def test_read_profile(api, user):
    data = api.get("/api/risk-profile/").data
    assert data["max_leverage"] == 5
    assert data["max_position_percent"] == "0.2" and data["max_position_notional_usd"] == "10000"
    assert data["allowed_symbols"] == ["BTC/USDT", "ETH/USDT", "SOL/USDT"]
    assert "user" not in data and "id" not in data


def test_patch_and_put_profile(api, user, other_user):
    response = api.patch("/api/risk-profile/", {"max_leverage": 3, "daily_loss_limit_percent": "0.05",
                                                "allowed_symbols": ["BTC/USDT", "BTC/USDT"]}, format="json")
    assert response.status_code == 200, response.data
    assert response.data["max_leverage"] == 3 and response.data["daily_loss_limit_percent"] == "0.05"
    assert response.data["allowed_symbols"] == ["BTC/USDT"]
    profile = RiskProfile.objects.get(user=user)
    assert profile.max_leverage == 3 and profile.daily_loss_limit_percent == D("0.05")
    assert RiskProfile.objects.get(user=other_user).max_leverage == 5  # only mine

    response = api.put("/api/risk-profile/", {"max_open_positions": 2}, format="json")
    assert response.status_code == 200 and response.data["max_open_positions"] == 2


@pytest.mark.parametrize("body, field", [
    ({"max_leverage": 0}, "max_leverage"),
    ({"max_leverage": 500}, "max_leverage"),
    ({"max_position_percent": "1.5"}, "max_position_percent"),
    ({"min_notional_usd": "-1"}, "min_notional_usd"),
    ({"allowed_symbols": ["DOGE/USDT"]}, "allowed_symbols"),
    ({"allowed_symbols": "BTC/USDT"}, "allowed_symbols"),
    ({"monthly_llm_budget_usd": "abc"}, "monthly_llm_budget_usd"),
])
def test_profile_validation_errors(api, user, body, field):
    response = api.patch("/api/risk-profile/", body, format="json")
    assert response.status_code == 400
    assert field in response.data and isinstance(response.data[field], list)
    assert RiskProfile.objects.get(user=user).max_leverage == 5


def test_profile_applies_to_orders(api, user, market):
    account = make_account(user)
    api.patch("/api/risk-profile/", {"allowed_symbols": ["ETH/USDT"]}, format="json")
    response = api.post("/api/orders/", {"account": account.pk, "symbol": "BTC/USDT", "side": "BUY",
                                         "position_side": "LONG", "quantity": "0.01"}, format="json")
    assert response.status_code == 422 and response.data["extra"]["rule"] == "symbol_not_allowed"


def test_risk_events_list_filters_detail_and_isolation(api, user, other_user, market):
    account = make_account(user)
    for qty in ("0.01", "1"):
        order_submit(account=account, symbol="BTC/USDT", side="BUY", position_side="LONG", quantity=D(qty),
                     source="api")
    bobs = make_account(other_user)
    order_submit(account=bobs, symbol="BTC/USDT", side="BUY", position_side="LONG", quantity=D("0.01"), source="api")
    data = api.get("/api/risk-events/").data
    assert data["count"] == 2
    assert api.get("/api/risk-events/?allowed=false").data["results"][0]["rule"] == "position_notional_abs"
    assert api.get("/api/risk-events/?kind=pre_trade&symbol=BTC/USDT").data["count"] == 2
    assert api.get("/api/risk-events/?since=2999-01-01").data["count"] == 0
    assert api.get("/api/risk-events/?kind=nope").status_code == 400
    mine = RiskEvent.objects.filter(user=user).first()
    assert api.get(f"/api/risk-events/{mine.pk}/").data["id"] == mine.pk
    theirs = RiskEvent.objects.get(user=other_user)
    assert api.get(f"/api/risk-events/{theirs.pk}/").status_code == 404
