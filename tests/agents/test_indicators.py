"""Indicators against values computed by hand (fractions worked out in the comments)."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

import pytest

from agents.graph import indicators as ind


def test_ema_is_seeded_with_the_simple_mean_then_smoothed():
    # period 3: k = 2 / 4 = 0.5; seed = (10 + 11 + 12) / 3 = 11
    # 10 -> 11 + 0.5 * (10 - 11) = 10.5;  9 -> 10.5 + 0.5 * (9 - 10.5) = 9.75
    assert ind.ema_series([10, 11, 12, 10, 9], 3) == pytest.approx([11, 10.5, 9.75])
    assert ind.ema([10, 11, 12, 10, 9], 3) == pytest.approx(9.75)


def test_ema_period_9_on_a_line_lags_by_four_steps():
    # On 1..30 the SMA seed of 1..9 is 5, and a linear series keeps an EMA(9) exactly
    # (9 - 1) / 2 = 4 behind the last value: 30 - 4 = 26.
    assert ind.ema(list(range(1, 31)), 9) == pytest.approx(26)


def test_ema_needs_period_values_and_accepts_decimals():
    assert ind.ema([1, 2], 3) is None
    assert ind.ema_series([], 3) == []
    assert ind.ema([Decimal("1.5"), Decimal("2.5"), Decimal("3.5")], 3) == pytest.approx(2.5)
    with pytest.raises(ValueError):
        ind.ema([1, 2, 3], 0)


def test_rsi_wilder_by_hand():
    closes = [10, 11, 10.5, 11.5, 12, 11]  # changes +1, -0.5, +1, +0.5, -1
    # first 3 changes: avg gain 2/3, avg loss 1/6 -> RS 4 -> RSI 80
    assert ind.rsi(closes[:4], 3) == pytest.approx(80)
    # +0.5: gain (2/3*2 + 0.5)/3 = 11/18, loss (1/6*2)/3 = 1/9 -> RS 5.5 -> 100 - 100/6.5
    assert ind.rsi(closes[:5], 3) == pytest.approx(100 - 100 / 6.5)
    # -1: gain (11/18*2)/3 = 11/27, loss (1/9*2 + 1)/3 = 11/27 -> RS 1 -> RSI 50
    assert ind.rsi(closes, 3) == pytest.approx(50)


def test_rsi_edges():
    assert ind.rsi([1, 2, 3], 3) is None  # needs period + 1 closes
    assert ind.rsi(list(range(20)), 14) == 100  # no losses
    assert ind.rsi(list(range(20, 0, -1)), 14) == 0  # no gains
    assert ind.rsi([5] * 20, 14) == 50  # flat


def test_rsi_14_of_an_alternating_series():
    # +2, -1 alternating, 16 changes: the first 14 average to gain 1, loss 0.5 (RS 2);
    # then +2: gain (13 + 2)/14 = 15/14, loss 6.5/14; then -1: gain 195/196, loss (6.5*13/14 + 1)/14
    closes = [100]
    for i in range(16):
        closes.append(closes[-1] + (2 if i % 2 == 0 else -1))
    gain, loss = (15 / 14) * 13 / 14, ((0.5 * 13) / 14 * 13 + 1) / 14
    assert ind.rsi(closes, 14) == pytest.approx(100 - 100 / (1 + gain / loss))


@dataclass
class C:
    high: float
    low: float
    close: float
    open: float = 0.0


CANDLES = [C(10, 8, 9), C(11, 9, 10.5), C(12, 10, 11), C(11.5, 9, 9.5), C(13, 10, 12.5), C(12, 11.5, 11.8)]


def test_true_range_uses_the_previous_close():
    highs, lows, closes = ([getattr(c, k) for c in CANDLES] for k in ("high", "low", "close"))
    # 2 (h-l), 2 (h-l), 2.5 (h-l), 3.5 (gap: 13 - 9.5), 1 (|11.5 - 12.5|)
    assert ind.true_ranges(highs, lows, closes) == pytest.approx([2, 2, 2.5, 3.5, 1])


def test_atr_wilder_by_hand():
    highs, lows, closes = ([getattr(c, k) for c in CANDLES] for k in ("high", "low", "close"))
    # first ATR (2 + 2 + 2.5) / 3 = 13/6; then (13/6*2 + 3.5)/3 = 47/18; then (47/18*2 + 1)/3 = 56/27
    assert ind.atr(highs[:4], lows[:4], closes[:4], 3) == pytest.approx(13 / 6)
    assert ind.atr(highs[:5], lows[:5], closes[:5], 3) == pytest.approx(47 / 18)
    assert ind.atr(highs, lows, closes, 3) == pytest.approx(56 / 27)
    assert ind.atr(highs[:3], lows[:3], closes[:3], 3) is None
    with pytest.raises(ValueError):
        ind.atr([1, 2], [1], [1, 2], 3)


def test_from_candles_gives_all_four():
    candles = [C(100 + i + 1, 100 + i - 1, 100 + i) for i in range(30)]
    values = ind.from_candles(candles)
    assert values["ema_fast"] == pytest.approx(129 - 4)  # linear: EMA(9) lags 4
    assert values["ema_slow"] == pytest.approx(129 - 10)  # EMA(21) lags 10
    assert values["rsi"] == 100
    assert values["atr"] == pytest.approx(2)  # every TR is h - l = 2
    assert ind.from_candles(candles[:5]) == {"ema_fast": None, "ema_slow": None, "rsi": None, "atr": None}


@pytest.mark.parametrize(("value", "sig", "expected"), [
    (1234.5678, 6, 1234.57),
    (100.0, 6, 100),
    (Decimal("65000.50"), 7, 65000.5),
    (0.000123456, 3, 0.000123),
    (0, 6, 0),
    (None, 6, None),
    (float("nan"), 6, None),
])
def test_compact_rounds_to_significant_digits(value, sig, expected):
    result = ind.compact(value, sig)
    assert result == expected
    if isinstance(expected, int):
        assert isinstance(result, int)
