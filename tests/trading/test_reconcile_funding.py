"""Reconciliation records the venue's funding payments (issue 13): each once, in the
account's PnL and ledger (start + realized - fees + funding = the venue's wallet), with the
position's funding beside it. The paper venue pays funding in the shipped config (the
``testing`` overlay turns it off for the money tests), so these tests run on it."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal as D

import pytest

from alpha_platform.common.config import clear_config_cache
from exchanges.services import adapter_runtime, trader_for_account
from risk.models import RiskProfile
from tests.exchanges.paper.support import Clock
from tests.factories import make_account
from trading.models import Fill, FundingPayment, Position
from trading.selectors import pnl_by_account
from trading.services import account_reconcile, order_submit

pytestmark = pytest.mark.django_db
_EIGHT_HOURS = 8 * 3600
# The next funding moment after now (the platform reads payments of the last days).
FUNDING_AT = datetime.fromtimestamp((int(datetime.now(UTC).timestamp()) // _EIGHT_HOURS + 1) * _EIGHT_HOURS, tz=UTC)


@pytest.fixture
def funded(settings, market):
    settings.ALPHA_ENV = "development"  # the shipped paper venue: funding on
    clear_config_cache()
    clock = Clock(FUNDING_AT - timedelta(hours=1))
    runtime = adapter_runtime()
    runtime.extra["now"] = clock
    yield clock
    runtime.extra.pop("now", None)
    clear_config_cache()


def _venue_balance(account):
    trader = trader_for_account(account)
    try:
        return trader.get_balance()
    finally:
        trader.close()


def test_reconcile_records_funding_once_in_pnl_and_the_ledger(user, other_user, market, funded):
    RiskProfile.objects.filter(user=user).update(max_leverage=10, max_position_notional_usd=D("100000"),
                                                 max_position_percent=D("1"), max_total_exposure_percent=D("1"),
                                                 max_exchange_exposure_percent=D("1"))
    account = make_account(user)
    bystander = make_account(other_user)
    order = order_submit(account=account, symbol="BTC/USDT", side="BUY", position_side="LONG",
                         quantity=D("0.1"), leverage=5, source="api").order
    assert order.status == order.Status.FILLED, order.error
    funded.advance(3600 + 30)  # past the funding moment with BTC at 50,000

    report = account_reconcile(account=account)
    assert report.errors == [] and report.funding_recorded == 1
    [payment] = FundingPayment.objects.filter(account=account)
    # premium 0 (a fixed price): rate = the interest rate, 0.01%; a long pays
    assert (payment.funding_time, payment.rate, payment.mark_price, payment.quantity, payment.amount) == (
        FUNDING_AT, D("0.0001"), D("50000"), D("0.1"), D("-0.5"))

    again = account_reconcile(account=account)
    assert again.funding_recorded == 0 and FundingPayment.objects.filter(account=account).count() == 1
    assert not FundingPayment.objects.filter(account=bystander).exists()

    [row] = [r for r in pnl_by_account(user=user) if r["account"] == account]
    assert row["funding"] == D("-0.5")
    balance = _venue_balance(account)
    fills = Fill.objects.filter(account=account)
    realized = sum((f.realized_pnl for f in fills), D(0))
    fees = sum((f.fee for f in fills), D(0))
    assert D(balance.raw_data["starting_balance"]) + realized - fees + row["funding"] == balance.total_balance
    position = Position.objects.get(account=account, status=Position.Status.OPEN)
    assert D(position.raw_data["funding"]) == D("-0.5")
