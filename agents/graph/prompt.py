"""The prompt: a short system message, the user's instructions, one compact JSON context.

Cost is dominated by prompt tokens, so the context is structured and terse: per symbol
only price, change over the candle window, EMA(9)/EMA(21), RSI(14), ATR(14) and funding,
rounded to a few significant digits; the account as balance/equity/available, positions
and open orders as short objects; the last few decisions as one short line each.
The legend for the short keys lives once in the system message.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from agents.graph import indicators as ind
from agents.graph.contracts import AccountSnapshot, MarketSnapshot
from alpha_platform.common.money import to_decimal

CONTEXT_HEADER = "Context JSON:"
INSTRUCTIONS_HEADER = "Instructions from the account owner:"
MAX_RECENT_CHARS = 140
MAX_INSTRUCTIONS_CHARS = 4000
PRICE_DIGITS = 7  # significant digits for prices and price-like indicators

SYSTEM_PROMPT = (
    "You trade crypto perpetual futures for one account. Act only through the tools; keep text brief.\n"
    "Rules: the platform enforces risk limits and may reject an order. Trade only the given symbols. "
    "Size with quantity or usd_notional, exactly one. Leverage at most {max_leverage}. "
    "Long: stop_loss < entry < take_profit; short: the reverse. "
    "If no trade is warranted, call hold with the reason.\n"
    "Risk limits: {risk_line}\n"
    "Context: ema9, ema21, rsi14, atr14 (Wilder) come from candles of interval tf; chg_pct is over those "
    "candles; upnl is unrealized PnL; recent lists your last decisions."
)


def system_prompt(*, max_leverage: int, risk_line: str) -> str:
    line = " ".join((risk_line or "not given").split())[:400]
    return SYSTEM_PROMPT.format(max_leverage=max_leverage, risk_line=line)


def _num(value: Any, sig: int = PRICE_DIGITS) -> int | float | None:
    return ind.compact(value, sig)


def _pct(value: Any) -> int | float | None:
    if value is None:
        return None
    x = round(float(value), 2)
    return int(x) if x.is_integer() else x


def _drop_none(d: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in d.items() if v is not None}


def market_indicators(snap: MarketSnapshot) -> dict[str, float | None]:
    if snap.indicators is not None:
        i = snap.indicators
        return {"ema_fast": _f(i.ema_fast), "ema_slow": _f(i.ema_slow), "rsi": _f(i.rsi), "atr": _f(i.atr)}
    if snap.candles:
        return ind.from_candles(list(snap.candles))
    return {"ema_fast": None, "ema_slow": None, "rsi": None, "atr": None}


def _f(value: Any) -> float | None:
    return None if value is None else float(value)


def change_pct(snap: MarketSnapshot) -> Decimal | None:
    if snap.change_pct is not None:
        return to_decimal(snap.change_pct)
    candles = list(snap.candles)
    if len(candles) < 2:
        return None
    first = to_decimal(getattr(candles[0], "open", candles[0].close))
    last = to_decimal(candles[-1].close)
    return None if first == 0 else (last / first - 1) * 100


def market_entry(snap: MarketSnapshot, indicators: Mapping[str, float | None]) -> dict[str, Any]:
    """One symbol in the context: compact numbers, nothing null."""
    return _drop_none({
        "price": _num(snap.price),
        "chg_pct": _pct(change_pct(snap)),
        "tf": snap.timeframe or None,
        "ema9": _num(indicators.get("ema_fast"), 6),
        "ema21": _num(indicators.get("ema_slow"), 6),
        "rsi14": None if indicators.get("rsi") is None else round(float(indicators["rsi"]), 1),
        "atr14": _num(indicators.get("atr"), 4),
        "funding": _num(snap.funding_rate, 3),
    })


def account_entry(acct: AccountSnapshot) -> dict[str, Any]:
    return {
        "account": {"ccy": acct.currency, "balance": _num(acct.balance, 8), "equity": _num(acct.equity, 8),
                    "available": _num(acct.available, 8)},
        "positions": [
            _drop_none({"symbol": p.symbol, "side": str(p.side).upper(), "qty": _num(p.size, 8),
                        "entry": _num(p.entry_price), "mark": _num(p.mark_price),
                        "upnl": _num(p.unrealized_pnl, 6), "lev": _num(p.leverage, 3)})
            for p in acct.positions
        ],
        "orders": [
            _drop_none({"id": o.id, "symbol": o.symbol, "side": str(o.side).upper(), "type": str(o.type).upper(),
                        "qty": _num(o.quantity, 8), "price": _num(o.price),
                        "reduce_only": True if o.reduce_only else None})
            for o in acct.open_orders
        ],
    }


def build_context(*, now: datetime, max_leverage: int, market: Mapping[str, dict[str, Any]],
                  account: AccountSnapshot, recent: Sequence[str]) -> dict[str, Any]:
    context: dict[str, Any] = {
        "time": now.astimezone(UTC).strftime("%Y-%m-%dT%H:%MZ"),
        "max_lev": max_leverage,
        "market": dict(market),
    }
    context.update(account_entry(account))
    lines = [" ".join(str(line).split())[:MAX_RECENT_CHARS] for line in recent if str(line).strip()]
    if lines:
        context["recent"] = lines
    return context


def context_json(context: Mapping[str, Any]) -> str:
    return json.dumps(context, separators=(",", ":"), ensure_ascii=False)


def build_messages(*, system: str, instructions: str, context: Mapping[str, Any]) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = [{"role": "system", "content": system}]
    text = (instructions or "").strip()[:MAX_INSTRUCTIONS_CHARS]
    if text:
        messages.append({"role": "user", "content": f"{INSTRUCTIONS_HEADER}\n{text}"})
    messages.append({"role": "user", "content": f"{CONTEXT_HEADER}\n{context_json(context)}"})
    return messages


def find_context(messages: Sequence[Mapping[str, Any]]) -> dict[str, Any] | None:
    """The context object from the last context message (what the built-in model reads)."""
    for message in reversed(messages):
        content = message.get("content")
        if message.get("role") == "user" and isinstance(content, str) and content.startswith(CONTEXT_HEADER):
            try:
                value = json.loads(content[len(CONTEXT_HEADER):])
            except ValueError:
                return None
            return value if isinstance(value, dict) else None
    return None
