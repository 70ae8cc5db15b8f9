"""The offline ``builtin:trend`` model: same context message in, same tool calls out."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from agents.graph import indicators as ind
from agents.graph import prompt as pr
from agents.graph.contracts import AccountSnapshot, MarketSnapshot, PositionInfo
from agents.graph.toolspec import build_tools, validate_call
from agents.llm import BuiltinModel

NOW = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
SYMBOLS = ("BTC/USDT", "ETH/USDT")
TOOLS = build_tools(SYMBOLS, 3)


@dataclass(frozen=True)
class Candle:
    timestamp: datetime
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
    volume: Decimal = Decimal("1")


def candles(steps, start="100", n=60):
    out, price = [], Decimal(start)
    for i in range(n):
        nxt = price + Decimal(str(steps[i % len(steps)]))
        out.append(Candle(NOW - timedelta(minutes=n - i), price, max(price, nxt) + Decimal("0.5"),
                          min(price, nxt) - Decimal("0.5"), nxt))
        price = nxt
    return out


UP = [2, -1]  # EMA9 > EMA21, RSI ~ 65
DOWN = [-2, 1]  # EMA9 < EMA21, RSI ~ 35
STRONG_UP = [1]  # RSI 100
STRONG_DOWN = [-1]  # RSI 0


def snapshot(symbol, steps, start="100"):
    cs = candles(steps, start)
    return MarketSnapshot(symbol, cs[-1].close, candles=cs, timeframe="1m")


def messages(snaps, *, available="5000", positions=()):
    account = AccountSnapshot(Decimal("5000"), Decimal("5000"), Decimal(available), positions=list(positions))
    market = {s.symbol: pr.market_entry(s, pr.market_indicators(s)) for s in snaps}
    ctx = pr.build_context(now=NOW, max_leverage=3, market=market, account=account, recent=[])
    return pr.build_messages(system=pr.system_prompt(max_leverage=3, risk_line="max lev 5x"),
                             instructions="trade the trend", context=ctx)


def calls(reply):
    return [(c.name, json.loads(c.arguments)) for c in reply.tool_calls]


def assert_valid(reply, prices):
    for c in reply.tool_calls:
        checked = validate_call(c.name, c.arguments, symbols=SYMBOLS, prices=prices, max_leverage=3)
        assert checked.ok, checked.error


def test_uptrend_opens_a_long_sized_from_available_balance_with_atr_exits():
    snap = snapshot("BTC/USDT", UP)
    reply = BuiltinModel().complete(messages([snap]), TOOLS)
    [(name, args)] = calls(reply)
    assert name == "open_long"
    values = ind.from_candles(snap.candles)
    price, atr = float(snap.price), values["atr"]
    assert values["ema_fast"] > values["ema_slow"] and values["rsi"] < 70
    assert args["symbol"] == "BTC/USDT"
    assert args["usd_notional"] == 500.0 and args["quantity"] is None  # 10 % of 5000 available
    assert args["leverage"] == 1 and args["order_type"] == "market" and args["limit_price"] is None
    # ATR as shown in the prompt (4 significant digits), then 1.5 ATR below / 3 ATR above
    shown_atr = ind.compact(atr, 4)
    assert args["stop_loss"] == pytest.approx(price - 1.5 * shown_atr)
    assert args["take_profit"] == pytest.approx(price + 3 * shown_atr)
    assert_valid(reply, {"BTC/USDT": snap.price})


def test_downtrend_opens_a_short_with_exits_on_the_other_side():
    snap = snapshot("ETH/USDT", DOWN, start="300")
    reply = BuiltinModel().complete(messages([snap]), TOOLS)
    [(name, args)] = calls(reply)
    assert name == "open_short"
    assert args["stop_loss"] > float(snap.price) > args["take_profit"]
    assert_valid(reply, {"ETH/USDT": snap.price})


@pytest.mark.parametrize(("steps", "word"), [(STRONG_UP, "overbought"), (STRONG_DOWN, "oversold")])
def test_rsi_filter_holds(steps, word):
    reply = BuiltinModel().complete(messages([snapshot("BTC/USDT", steps, start="200")]), TOOLS)
    [(name, args)] = calls(reply)
    assert name == "hold" and word in args["reason"]


def test_trend_flip_closes_the_position():
    snap = snapshot("BTC/USDT", DOWN, start="300")
    held = PositionInfo("BTC/USDT", "LONG", Decimal("0.25"), Decimal("310"))
    reply = BuiltinModel().complete(messages([snap], positions=[held]), TOOLS)
    [(name, args)] = calls(reply)
    assert name == "close_long"
    assert args == {"symbol": "BTC/USDT", "quantity": 0.25, "usd_notional": None, "order_type": "market",
                    "limit_price": None}
    assert_valid(reply, {"BTC/USDT": snap.price})


def test_position_in_the_trend_is_kept_and_other_symbols_still_trade():
    held = PositionInfo("BTC/USDT", "LONG", Decimal("1"), Decimal("90"))
    snaps = [snapshot("BTC/USDT", UP), snapshot("ETH/USDT", DOWN, start="300")]
    reply = BuiltinModel().complete(messages(snaps, positions=[held]), TOOLS)
    assert [name for name, _ in calls(reply)] == ["open_short"]
    assert "already long" in reply.content


def test_small_balance_and_missing_context_hold():
    reply = BuiltinModel().complete(messages([snapshot("BTC/USDT", UP)], available="5"), TOOLS)
    assert calls(reply)[0][0] == "hold" and "too small" in calls(reply)[0][1]["reason"]
    reply = BuiltinModel().complete([{"role": "user", "content": "hi"}], TOOLS)
    assert calls(reply) == [("hold", {"reason": "no context"})]


def test_tool_results_round_gets_a_short_text_and_no_tool_calls():
    msgs = messages([snapshot("BTC/USDT", UP)])
    first = BuiltinModel().complete(msgs, TOOLS)
    msgs = msgs + [
        {"role": "assistant", "content": first.content, "tool_calls": [
            {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
            for c in first.tool_calls]},
        {"role": "tool", "tool_call_id": first.tool_calls[0].id,
         "content": json.dumps({"status": "rejected", "result": {"rule": "max_position_percent"}})},
    ]
    second = BuiltinModel().complete(msgs, TOOLS)
    assert second.tool_calls == []
    assert second.content == "Done: open_long rejected."


def test_deterministic_with_token_estimates_and_only_offered_tools():
    msgs = messages([snapshot("BTC/USDT", UP)])
    a, b = BuiltinModel().complete(msgs, TOOLS), BuiltinModel().complete(msgs, TOOLS)
    assert calls(a) == calls(b) and a.content == b.content
    assert a.model == "builtin:trend"
    assert a.prompt_tokens > 300 and a.completion_tokens > 10
    assert BuiltinModel().complete(msgs, []).tool_calls == []  # nothing offered, nothing called
