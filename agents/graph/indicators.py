"""Technical indicators for the decision context: EMA, RSI (Wilder) and ATR (Wilder).

Floats internally (the values only feed a prompt and a rule; money never passes through
here). Conventions follow TA-Lib, so results can be checked against it by hand:

- EMA(n): seeded with the simple mean of the first n values, then
  ``ema = prev + k * (x - prev)`` with ``k = 2 / (n + 1)``. Needs n values.
- RSI(n): the first average gain/loss is the simple mean of the first n changes, then
  Wilder's smoothing ``avg = (prev * (n - 1) + current) / n``. Needs n + 1 closes.
  No losses gives 100, no gains 0, a flat series 50.
- ATR(n): true range from the second candle on (it needs the previous close),
  ``TR = max(high - low, |high - prev_close|, |low - prev_close|)``; the first ATR is the
  mean of the first n TRs, then Wilder's smoothing. Needs n + 1 candles.

Each returns None when there is not enough data.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any


def _floats(values: Iterable[Any]) -> list[float]:
    return [float(v) for v in values]


def ema_series(values: Sequence[Any], period: int) -> list[float]:
    """EMA for every index from ``period - 1`` on (empty if too short)."""
    if period < 1:
        raise ValueError("period must be at least 1")
    xs = _floats(values)
    if len(xs) < period:
        return []
    k = 2.0 / (period + 1)
    current = sum(xs[:period]) / period
    out = [current]
    for x in xs[period:]:
        current = current + k * (x - current)
        out.append(current)
    return out


def ema(values: Sequence[Any], period: int) -> float | None:
    series = ema_series(values, period)
    return series[-1] if series else None


def rsi(closes: Sequence[Any], period: int = 14) -> float | None:
    if period < 1:
        raise ValueError("period must be at least 1")
    xs = _floats(closes)
    if len(xs) < period + 1:
        return None
    changes = [b - a for a, b in zip(xs, xs[1:], strict=False)]
    avg_gain = sum(max(c, 0.0) for c in changes[:period]) / period
    avg_loss = sum(max(-c, 0.0) for c in changes[:period]) / period
    for c in changes[period:]:
        avg_gain = (avg_gain * (period - 1) + max(c, 0.0)) / period
        avg_loss = (avg_loss * (period - 1) + max(-c, 0.0)) / period
    if avg_loss == 0.0:
        return 50.0 if avg_gain == 0.0 else 100.0
    rs = avg_gain / avg_loss
    return 100.0 - 100.0 / (1.0 + rs)


def true_ranges(highs: Sequence[Any], lows: Sequence[Any], closes: Sequence[Any]) -> list[float]:
    hs, ls, cs = _floats(highs), _floats(lows), _floats(closes)
    if not (len(hs) == len(ls) == len(cs)):
        raise ValueError("highs, lows and closes must have the same length")
    return [
        max(hs[i] - ls[i], abs(hs[i] - cs[i - 1]), abs(ls[i] - cs[i - 1]))
        for i in range(1, len(cs))
    ]


def atr(highs: Sequence[Any], lows: Sequence[Any], closes: Sequence[Any], period: int = 14) -> float | None:
    if period < 1:
        raise ValueError("period must be at least 1")
    trs = true_ranges(highs, lows, closes)
    if len(trs) < period:
        return None
    current = sum(trs[:period]) / period
    for tr in trs[period:]:
        current = (current * (period - 1) + tr) / period
    return current


def from_candles(candles: Sequence[Any], *, fast: int = 9, slow: int = 21,
                 rsi_period: int = 14, atr_period: int = 14) -> dict[str, float | None]:
    """EMA fast/slow, RSI and ATR from candles with ``high``/``low``/``close`` attributes."""
    closes = [c.close for c in candles]
    return {
        "ema_fast": ema(closes, fast),
        "ema_slow": ema(closes, slow),
        "rsi": rsi(closes, rsi_period),
        "atr": atr([c.high for c in candles], [c.low for c in candles], closes, atr_period),
    }


def compact(value: Any, sig: int = 6) -> int | float | None:
    """A number rounded to ``sig`` significant digits, as an int when integral: short in JSON."""
    if value is None:
        return None
    x = float(value)
    if x != x or x in (float("inf"), float("-inf")):
        return None
    if x == 0:
        return 0
    rounded = float(f"{x:.{sig}g}")
    if rounded.is_integer() and abs(rounded) < 1e15:
        return int(rounded)
    return rounded
