"""Funding: the payments the venue books on the account's positions every funding interval
(``ExchangeTrader.get_funding_payments``). Reconciliation records each one once (keyed by
the venue's payment id within the account), so the account's PnL and its ledger
(wallet = start + realized - fees + funding) include them. Each Position row shows the
funding of its life as the venue reports it with the position (``raw_data["funding"]``)."""

from __future__ import annotations

from datetime import datetime, timedelta

from django.db import transaction
from django.db.models import Max
from django.utils import timezone

from exchanges.adapters.base import FundingPayment as VenuePayment
from exchanges.models import ExchangeAccount
from trading.models import FundingPayment

# How far back the first pass of an account looks for payments it has not recorded.
FUNDING_LOOKBACK = timedelta(days=7)


def funding_since(*, account: ExchangeAccount, now: datetime | None = None) -> datetime:
    """Where the next read starts: the newest payment recorded (listed again, skipped), else
    ``FUNDING_LOOKBACK`` ago."""
    newest = FundingPayment.objects.filter(account=account).aggregate(at=Max("funding_time"))["at"]
    return newest or (now or timezone.now()) - FUNDING_LOOKBACK


def funding_record(*, account: ExchangeAccount, payments: list[VenuePayment]) -> list[FundingPayment]:
    """Record the payments not recorded yet, in one transaction; returns the new rows. (Each
    Position row's funding comes with the venue's position, in ``raw_data``.)"""
    with transaction.atomic():
        known = set(FundingPayment.objects.filter(
            account=account, payment_id__in=[p.payment_id for p in payments]).values_list("payment_id", flat=True))
        rows = [FundingPayment(account=account, symbol=p.symbol, payment_id=p.payment_id, funding_time=p.funding_time,
                               rate=p.rate, mark_price=p.mark_price, quantity=p.quantity, amount=p.amount)
                for p in payments if p.payment_id not in known]
        FundingPayment.objects.bulk_create(rows)
    return rows
