"""Model rules, in validation and in the database itself."""

from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.db import IntegrityError, transaction
from django.utils import timezone

from agents.models import AgentConfig
from exchanges.models import ExchangeAccount
from risk.models import KillSwitch, RiskProfile
from tests.factories import UserFactory, make_account, make_agent
from trading.models import Order, Position

pytestmark = pytest.mark.django_db


def test_risk_profile_created_with_user_from_config_defaults(user):
    profile = RiskProfile.objects.get(user=user)
    assert profile.max_total_exposure_percent == Decimal("0.5")
    assert profile.max_exchange_exposure_percent == Decimal("0.3")
    assert profile.daily_loss_limit_percent == Decimal("0.15")
    assert profile.allowed_symbols == ["BTC/USDT", "ETH/USDT", "SOL/USDT"]


def test_agent_must_use_own_account(user, other_user):
    foreign = make_account(other_user)
    with pytest.raises(ValidationError) as info:
        make_agent(user, foreign)
    assert "account" in info.value.message_dict
    assert AgentConfig.objects.count() == 0


@pytest.mark.parametrize("interval", [0, 9])
def test_interval_below_ten_seconds_rejected(user, interval):
    with pytest.raises(ValidationError) as info:
        make_agent(user, interval_seconds=interval)
    assert "interval_seconds" in info.value.message_dict
    assert AgentConfig.objects.count() == 0


def test_interval_constraint_holds_in_database(user):
    agent = make_agent(user)
    with pytest.raises(IntegrityError), transaction.atomic():
        AgentConfig.objects.filter(pk=agent.pk).update(interval_seconds=5)


def test_agent_symbols_validated(user):
    with pytest.raises(ValidationError) as info:
        make_agent(user, symbols=[])
    assert "symbols" in info.value.message_dict


def test_account_names_unique_per_owner(user, other_user):
    make_account(user, name="main")
    make_account(other_user, name="main")
    with pytest.raises(ValidationError):
        make_account(user, name="main")
    assert ExchangeAccount.objects.filter(name="main").count() == 2


def _order(account, **kw):
    values = dict(owner=account.owner, account=account, source="api", client_order_id=kw.pop("cid", "c1"),
                  symbol="BTC/USDT", side="BUY", position_side="LONG", order_type="MARKET", quantity=Decimal("1"))
    values.update(kw)
    return Order.objects.create(**values)


@pytest.mark.parametrize("fields", [
    {"quantity": Decimal("0")},
    {"executed_quantity": Decimal("2")},
    {"order_type": "LIMIT"},
    {"order_type": "STOP_MARKET"},
    {"side": "HOLD"},
    {"price": Decimal("-1"), "order_type": "LIMIT"},
])
def test_order_constraints(user, fields):
    account = make_account(user)
    with pytest.raises(IntegrityError), transaction.atomic():
        _order(account, **fields)
    assert Order.objects.count() == 0


def test_client_order_id_unique(user):
    account = make_account(user)
    _order(account, cid="same")
    with pytest.raises(IntegrityError), transaction.atomic():
        _order(account, cid="same")


def test_one_open_position_per_symbol_and_side(user):
    account = make_account(user)
    common = dict(account=account, owner=user, symbol="BTC/USDT", side="LONG", size=Decimal("1"),
                  entry_price=Decimal("100"), mark_price=Decimal("100"), opened_at=timezone.now())
    Position.objects.create(**common)
    Position.objects.create(**{**common, "status": "closed", "size": Decimal("0")})
    with pytest.raises(IntegrityError), transaction.atomic():
        Position.objects.create(**common)


def test_risk_profile_fractions_constrained(user):
    with pytest.raises(IntegrityError), transaction.atomic():
        RiskProfile.objects.filter(user=user).update(max_total_exposure_percent=Decimal("1.5"))


def test_one_active_kill_switch_per_user(user):
    KillSwitch.objects.create(scope="user", user=user, reason="r", tripped_by_label="test")
    with pytest.raises(IntegrityError), transaction.atomic():
        KillSwitch.objects.create(scope="user", user=user, reason="r2", tripped_by_label="test")
    with pytest.raises(IntegrityError), transaction.atomic():
        KillSwitch.objects.create(scope="global", user=user, reason="r", tripped_by_label="test")


def test_seed_demo_is_idempotent(settings, tmp_path, capsys):
    settings.VAR_DIR = tmp_path
    call_command("seed_demo")
    first = capsys.readouterr().out
    call_command("seed_demo")
    second = capsys.readouterr().out
    assert "created admin, demo, paper account, agent" in first
    assert "already present" in second
    assert ExchangeAccount.objects.filter(owner__username="demo", venue="paper").count() == 1
    assert AgentConfig.objects.filter(owner__username="demo").count() == 1
    password = (tmp_path / "demo_logins.txt").read_text().split("demo: ")[1].strip()
    assert password in second  # the same logins are printed on every run
    from django.contrib.auth import authenticate
    from django.test import RequestFactory

    # The sign-in throttle (axes) needs the request: every door passes its own.
    assert authenticate(RequestFactory().post("/login/"), username="demo", password=password) is not None


ADMIN_MODELS = ["exchanges/exchangeaccount", "risk/riskprofile", "risk/riskevent", "risk/killswitch",
                "trading/order", "trading/position", "trading/fill", "trading/balancesnapshot",
                "agents/agentconfig", "agents/decision", "agents/llmcredential"]


@pytest.mark.parametrize("model", ADMIN_MODELS)
def test_admin_changelists_render(client, staff_user, user, model):
    make_agent(user)
    client.force_login(staff_user)
    response = client.get(f"/admin/{model}/")
    assert response.status_code == 200


def test_admin_not_reachable_for_regular_users(client, user):
    client.force_login(UserFactory(username="plain"))
    assert client.get("/admin/trading/order/").status_code == 302
