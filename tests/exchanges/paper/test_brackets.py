"""Margin brackets (issue 13): the shipped config carries Binance USD-M's leverage brackets,
used for maintenance margin, the liquidation price and the leverage a size may use.

The expected figures are Binance's own worked examples (docs: usdm-reference) and the
published formula LP = (WB - TMM1 + UPNL1 + cum - s q EP) / (q mmr - s q), with mmr and
cum of the bracket the position falls in at that price, not the engine's output."""

from __future__ import annotations

from datetime import timedelta
from decimal import ROUND_CEILING
from decimal import Decimal as D

import pytest

from alpha_platform.common.config import load_config
from exchanges.adapters.base import VenueSpec
from exchanges.adapters.errors import InvalidOrderError
from exchanges.adapters.paper import MemoryPaperStore, PaperTrader
from exchanges.adapters.paper.margin import Margin, Marks
from exchanges.adapters.paper.rules import PaperRules
from exchanges.adapters.paper.store import PaperBook, PaperPosition
from exchanges.adapters.resilience import AdapterRuntime
from tests.exchanges.paper.support import ROOT, T0, ScriptedMarket, wallet

SHIPPED = load_config(ROOT / "config" / "exchanges.yaml", environment="production")
SHIPPED_PAPER = SHIPPED.venue_block("paper")
SOL, BTC, ETH = "SOL/USDT", "BTC/USDT", "ETH/USDT"


def ladder(symbol: str) -> list[tuple[D, D | None, int, D, D]]:
    """The config's rows for ``symbol``, as written (floor, cap, leverage, rate, amount)."""
    rows = SHIPPED_PAPER["parameters"]["margin_tiers"][symbol]
    return [(D(str(r["notional_floor"])), D(str(r["notional_cap"])) if r.get("notional_cap") is not None else None,
             int(r["max_leverage"]), D(str(r["maintenance_margin_rate"])), D(str(r["maintenance_amount"])))
            for r in rows]


def published_lp(symbol: str, wb: D, q: D, ep: D, tmm1: D = D(0), upnl1: D = D(0)) -> D:
    """Binance's one-way formula, trying each bracket until the price falls in it."""
    s = 1 if q > 0 else -1
    size = abs(q)
    for floor, cap, _, rate, cum in ladder(symbol):
        lp = (wb - tmm1 + upnl1 + cum - s * size * ep) / (size * rate - s * size)
        if lp > 0 and size * lp >= floor and (cap is None or size * lp < cap):
            return lp.quantize(D("0.01"))
    raise AssertionError("no bracket holds")


def test_the_shipped_btc_and_eth_ladders_are_binances():
    assert ladder(BTC)[3] == (D("1000000"), D("5000000"), 20, D("0.025"), D("16300"))
    assert ladder(ETH)[5] == (D("2000000"), D("5000000"), 5, D("0.1"), D("135365"))


@pytest.mark.parametrize(("symbol", "other", "tmm1", "upnl1", "expected"), [
    # the ETH long with the BTC long open; the BTC long with the ETH long open
    (ETH, BTC, D("71200.81144"), D("-56354.57"), D("1153.26")),
    (BTC, ETH, D("356512.508"), D("-448192.89"), D("26316.89")),
])
def test_cross_liquidation_price_matches_binances_worked_examples(symbol, other, tmm1, upnl1, expected):
    rules = PaperRules.from_venue_config(SHIPPED_PAPER)
    wb = D("1535443.01")
    eth = PaperPosition(ETH, D("3683.979"), D("1456.84"), T0, T0)
    btc = PaperPosition(BTC, D("109.488"), D("32481.98"), T0, T0)
    book = PaperBook(account_ref="x", starting_balance=wb, wallet_balance=wb, positions={ETH: eth, BTC: btc})
    # the other position's mark is the one giving Binance's UPNL1
    held = book.positions[other]
    mark = (held.entry_price + upnl1 / held.quantity).quantize(D("0.01"))
    margin = Margin(rules)
    assert abs(margin.maintenance(other, held.quantity, mark) - tmm1) < D("0.5")
    assert margin.liquidation_price(book, symbol, Marks(None, T0, {other: mark})) == expected
    assert published_lp(symbol, wb, book.positions[symbol].quantity, book.positions[symbol].entry_price,
                        tmm1, upnl1) == expected


def shipped_trader(market, clock, **extra) -> PaperTrader:
    spec = VenueSpec(venue="paper", config=SHIPPED_PAPER, symbol_map=SHIPPED.symbol_map("paper"),
                     account_ref="acct-brackets")
    runtime = AdapterRuntime(paper_store=MemoryPaperStore(), extra={"now": clock, "market": market, **extra})
    return PaperTrader(spec=spec, credentials=None, runtime=runtime)


def test_a_size_beyond_its_brackets_leverage_is_refused_with_binances_error(clock):
    market = ScriptedMarket(clock, SOL="150")
    trader = shipped_trader(market, clock)
    # 400 SOL at 150: 60,000 USDT, in the 50,000-250,000 bracket: 10x at most
    with pytest.raises(InvalidOrderError) as refused:
        trader.open_long(SOL, D("400"), client_order_id="big", leverage=20)
    assert refused.value.code == "-2027"
    assert trader.get_positions() == [] and wallet(trader) == D("10000")
    trader.open_long(SOL, D("400"), client_order_id="fits", leverage=10)
    with pytest.raises(InvalidOrderError) as raised:
        trader.set_leverage(SOL, 20)
    assert raised.value.code == "-4028"
    trader.set_leverage(SOL, 10)


def test_maintenance_and_liquidation_use_the_positions_bracket(clock):
    market = ScriptedMarket(clock, SOL="150")
    trader = shipped_trader(market, clock)
    trader.open_long(SOL, D("200"), client_order_id="l", leverage=10)  # 30,000 USDT: 2.5%, cum 75
    entry = (D("150") * D("1.0002")).quantize(D("0.01"), rounding=ROUND_CEILING)
    fee = D("200") * entry * D("0.0005")
    w = D("10000") - fee
    # 200 x 150 x 2.5% - 75 (a flat 0.5% would give 150)
    assert trader.get_balance().maintenance_margin == D("200") * 150 * D("0.025") - 75 == D("675")
    expected = published_lp(SOL, w, D("200"), entry)
    [position] = trader.get_positions()
    assert position.liquidation_price == expected

    market.set(SOL, "90", after=120)
    clock.advance(120)
    assert trader.get_positions() == []
    liq_fill = next(f for f in trader.store.load(trader.account_ref).fills if f.liquidation)
    assert liq_fill.price == expected
    assert wallet(trader) == w + 200 * (expected - entry) - D("200") * expected * D("0.0005")
    # when SOL's path (150 -> 90 over 120 s) was at the liquidation price
    at = (liq_fill.timestamp - T0) / timedelta(seconds=1)
    assert abs(at - float((150 - expected) * 2)) <= 1.5


def test_a_ladder_that_is_not_continuous_is_a_config_error(tmp_path):
    text = (ROOT / "config" / "exchanges.yaml").read_text()
    broken = text.replace("maintenance_margin_rate: 0.005, maintenance_amount: 50}",
                          "maintenance_margin_rate: 0.005, maintenance_amount: 60}", 1)
    assert broken != text
    path = tmp_path / "exchanges.yaml"
    path.write_text(broken)
    with pytest.raises(Exception) as raised:
        load_config(path, environment="production")
    message = str(raised.value)
    assert "margin_tiers" in message and "BTC/USDT" in message and "maintenance_amount" in message
    assert "must be 50" in message
