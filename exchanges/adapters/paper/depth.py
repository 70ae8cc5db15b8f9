"""The paper venue's book depth: what a taker order takes from the levels around the mark.
Django-free and store-free; its figures are ``rules.PaperRules.depth_for`` (config
``parameters.depth`` per symbol, ``parameters.default_depth`` for the others).

One side of a symbol's book has ``levels`` levels; level i (from 0) is at
mark x (1 +/- (slippage_bps + i x spacing_bps) / 10000), rounded against the taker to the
symbol's tick, so level 0 is the old single fill price (mark +/- slippage). Each level holds
its ``quantity`` (or ``notional`` USDT at level 0's price, down to the step). The book is
refilled between calls: each order sees the full depth at its own mark.

A limit takes only the levels at or better than its price; a marketable limit (a buy at or
above the mark) whose level 0 is beyond its price takes level 0 at its price (never worse
than its limit, as before). Each level taken is its own fill (``PaperFill``), as a venue
reports one trade per price level a taker order sweeps; the order's average price is the
quantity-weighted average of them.
"""

from __future__ import annotations

from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal

from alpha_platform.common.vocabulary import OrderSide
from exchanges.adapters.paper.rules import BPS, PaperRules


def level_price(rules: PaperRules, symbol: str, mark: Decimal, side: str, index: int) -> Decimal:
    depth = rules.depth_for(symbol)
    factor = (rules.slippage_bps + index * depth.spacing_bps) / BPS
    if side == OrderSide.BUY:
        return rules.symbol_tick(symbol, mark * (1 + factor), ROUND_CEILING)
    return rules.symbol_tick(symbol, mark * (1 - factor), ROUND_FLOOR)


def take(rules: PaperRules, symbol: str, mark: Decimal, side: str, quantity: Decimal,
         limit: Decimal | None = None) -> list[tuple[Decimal, Decimal]]:
    """The (price, quantity) of each level a taker order of ``quantity`` takes now, best
    first; their sum may be less than ``quantity`` when the depth runs out (or the limit
    stops the walk). The caller has decided the order is marketable."""
    depth = rules.depth_for(symbol)
    buy = side == OrderSide.BUY
    first = level_price(rules, symbol, mark, side, 0)
    if depth.quantity is not None:
        per_level: Decimal | None = rules.symbol_quantity(symbol, depth.quantity)
    elif depth.notional is not None:
        per_level = rules.symbol_quantity(symbol, depth.notional / first)
    else:
        per_level = None  # unlimited: one level holds it all
    taken: list[tuple[Decimal, Decimal]] = []
    left = quantity
    for index in range(depth.levels):
        price = first if index == 0 else level_price(rules, symbol, mark, side, index)
        if limit is not None and (price > limit if buy else price < limit):
            if index > 0:
                break
            price = limit
        size = left if per_level is None else min(left, per_level)
        if size <= 0:
            break
        taken.append((price, size))
        left -= size
        if left <= 0:
            break
    return taken


def average(taken: list[tuple[Decimal, Decimal]]) -> Decimal:
    total = sum((q for _, q in taken), Decimal(0))
    return sum((p * q for p, q in taken), Decimal(0)) / total
