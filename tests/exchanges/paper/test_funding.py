"""Funding on the paper venue (issue 13), from Binance USD-M's definition (docs:
usdm-reference): every 8 hours (00:00, 08:00, 16:00 UTC) each position pays notional at
mark x rate, longs paying shorts when the rate is positive; rate = P + clamp(I - P,
-0.05%, +0.05%) with P the interval's premium index and I = 0.01%, capped; the wallet
moves by it, and wallet = start + realized - fees + funding."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta
from decimal import ROUND_CEILING, ROUND_FLOOR
from decimal import Decimal as D

import pytest

from exchanges.adapters.base import VenueSpec
from exchanges.adapters.paper import MemoryPaperStore, PaperTrader
from exchanges.adapters.resilience import AdapterRuntime
from tests.exchanges.paper.support import BTC, CONFIG, ETH, PAPER, Clock, ScriptedMarket, wallet

START = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)  # the next funding is at 16:00
FUNDING_AT = datetime(2026, 3, 2, 16, 0, tzinfo=UTC)
TAKER = D("0.0005")


def funded_trader(market, clock, store=None) -> PaperTrader:
    config = copy.deepcopy(dict(PAPER))
    config["parameters"] = {**config["parameters"], "has_funding": True}
    spec = VenueSpec(venue="paper", config=config, symbol_map=CONFIG.symbol_map("paper"), account_ref="acct-f")
    runtime = AdapterRuntime(paper_store=store or MemoryPaperStore(), extra={"now": clock, "market": market})
    return PaperTrader(spec=spec, credentials=None, runtime=runtime)


class PremiumMarket(ScriptedMarket):
    """A scripted path with a premium index the test sets."""

    premium = D("0")

    def funding_premium(self, symbol, start, end):
        return self.premium


def up(price: D) -> D:
    return (price * D("1.0002")).quantize(D("0.01"), rounding=ROUND_CEILING)


def down(price: D) -> D:
    return (price * D("0.9998")).quantize(D("0.01"), rounding=ROUND_FLOOR)


def ledger_holds(trader) -> None:
    raw = trader.get_balance().raw_data
    assert wallet(trader) == (D(raw["starting_balance"]) + D(raw["realized_pnl_total"]) - D(raw["fees_total"])
                              + D(raw["funding_total"]))


def test_longs_pay_shorts_at_the_mark_of_the_funding_moment():
    clock = Clock(START)
    market = ScriptedMarket(clock, BTC="60000", ETH="3000")
    trader = funded_trader(market, clock)
    trader.open_long(BTC, D("0.1"), client_order_id="l", leverage=5)
    trader.open_short(ETH, D("2"), client_order_id="s", leverage=5)
    opened = wallet(trader)
    market.set(BTC, "62000", after=4 * 3600)  # 16:00: BTC at 62000
    market.set(ETH, "3100", after=4 * 3600)
    market.set(BTC, "65000", after=5 * 3600)  # later moves do not count
    market.set(ETH, "2000", after=5 * 3600)
    clock.advance(5 * 3600)

    # premium 0 on a path with no premium: rate = 0 + clamp(0.0001 - 0) = 0.0001
    btc_paid = D("0.1") * D("62000") * D("0.0001")  # 0.62
    eth_got = D("2") * D("3100") * D("0.0001")  # 0.62
    assert wallet(trader) == opened - btc_paid + eth_got
    payments = trader.get_funding_payments()
    assert [(p.symbol, p.funding_time, p.rate, p.mark_price, p.amount) for p in payments] == [
        (BTC, FUNDING_AT, D("0.0001"), D("62000"), -btc_paid),
        (ETH, FUNDING_AT, D("0.0001"), D("3100"), eth_got)]
    by_symbol = {p.symbol: p for p in trader.get_positions()}
    assert D(by_symbol[BTC].raw_data["funding"]) == -btc_paid
    ledger_holds(trader)


def test_only_positions_open_at_the_funding_moment_pay_and_every_interval_pays_once():
    clock = Clock(START)
    market = ScriptedMarket(clock, BTC="60000", ETH="3000")
    trader = funded_trader(market, clock)
    trader.open_long(ETH, D("1"), client_order_id="early", leverage=5)
    clock.advance(4 * 3600 - 60)
    trader.close_long(ETH, D("1"), client_order_id="early-x")  # closed at 15:59: pays nothing
    clock.advance(120)  # 16:01
    trader.open_long(BTC, D("0.1"), client_order_id="late", leverage=5)  # opened after 16:00
    assert trader.get_funding_payments() == []
    clock.advance(24 * 3600)  # 00:00, 08:00 and 16:00 of the next day: three payments, at 60000
    payments = trader.get_funding_payments()
    assert [p.funding_time for p in payments] == [FUNDING_AT + timedelta(hours=8 * k) for k in (1, 2, 3)]
    assert all(p.amount == -D("0.1") * 60000 * D("0.0001") for p in payments)
    trader.get_balance()  # another touch: nothing paid twice
    assert len(trader.get_funding_payments()) == 3
    assert len(trader.get_funding_payments(since=FUNDING_AT + timedelta(hours=16))) == 2
    ledger_holds(trader)


@pytest.mark.parametrize(("premium", "rate"), [
    (D("0"), D("0.0001")),           # the interest rate alone
    (D("0.001"), D("0.0005")),       # 0.001 + clamp(-0.0009) = 0.001 - 0.0005
    (D("-0.0003"), D("0.0001")),     # -0.0003 + clamp(0.0004) = -0.0003 + 0.0004
    (D("-0.002"), D("-0.0015")),     # -0.002 + 0.0005: shorts pay longs
    (D("0.02"), D("0.0075")),        # 0.0195, capped
])
def test_the_rate_is_binances_formula_and_a_negative_rate_makes_shorts_pay(premium, rate):
    clock = Clock(START)
    market = PremiumMarket(clock, BTC="60000", ETH="3000")
    market.premium = premium
    trader = funded_trader(market, clock)
    trader.open_short(BTC, D("0.1"), client_order_id="s", leverage=5)
    entry = down(D("60000"))
    clock.advance(4 * 3600)
    [payment] = trader.get_funding_payments()
    assert payment.rate == rate
    assert payment.amount == D("0.1") * 60000 * rate  # a short receives a positive rate
    assert wallet(trader) == D("10000") - D("0.1") * entry * TAKER + payment.amount


@pytest.mark.django_db
def test_funding_payments_are_kept_by_the_database_store():
    from exchanges.models import PaperFundingRecord
    from exchanges.paper_store import DjangoPaperStore

    clock = Clock(START)
    market = ScriptedMarket(clock, BTC="60000", ETH="3000")
    trader = funded_trader(market, clock, DjangoPaperStore())
    trader.open_long(BTC, D("0.1"), client_order_id="l", leverage=5)
    clock.advance(8 * 3600 + 1)
    again = funded_trader(market, clock, DjangoPaperStore())  # another worker
    assert [p.funding_time for p in again.get_funding_payments()] == [FUNDING_AT]
    assert PaperFundingRecord.objects.count() == 1
    ledger_holds(again)


def test_the_simulated_premium_follows_the_last_price_over_the_interval():
    from exchanges.adapters.paper.market import SimulatedMarket

    market = SimulatedMarket(7, {BTC: {"start_price": 60000, "annual_volatility": 0.8}})
    start = datetime(2026, 1, 1, tzinfo=UTC)
    leads = []
    for k in range(40):
        a = start + timedelta(hours=8 * k)
        b = a + timedelta(hours=8)
        mean = sum(market.price_float(BTC, a + (b - a) * i / 8) for i in range(9)) / 9
        leads.append((market.price_float(BTC, b) / mean - 1, market.funding_premium(BTC, a, b)))
    assert all((lead > 0) == (premium > 0) for lead, premium in leads if abs(lead) > 1e-4)
    assert all(abs(premium) < D("0.01") for _, premium in leads)
