"""The price path of one sync, searched in time order. Django-free.

The span of a sync is cut into equal chunks (as many as the price source's
``max_sync_segments`` allows, one per ``sync_window_seconds``), each chunk into equal
leaves no longer than the source's ``path_resolution_seconds`` (one second by default).
A leaf is the engine's unit of time: whatever happens inside one is taken to happen at
its end, and events in one leaf are ordered by the price path's distance to their levels
from the leaf's start.

``first(i_min, might)`` finds the earliest leaf at or after ``i_min`` for which
``might(lo, hi)`` holds, where ``might`` answers, for the leaves ``lo .. hi - 1``, "can the
event happen in there?" from the path's extremes. It is a depth-first search over each
chunk's binary tree of leaves: a question answered "no" for a node prunes its subtree, so
a quiet day costs one look at each chunk, and finding an event costs a walk down one
branch. Extremes are asked of the price source once per (symbol, node) per sync.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import datetime, timedelta
from decimal import Decimal

from exchanges.adapters.paper.market import PriceSource


class PathWalk:
    def __init__(self, market: PriceSource, start: datetime, end: datetime, *,
                 window_seconds: float) -> None:
        self.market = market
        self.start = start
        self.end = end
        self.span = max(0.0, (end - start).total_seconds())
        resolution = float(getattr(market, "path_resolution_seconds", 1.0) or 1.0)
        max_chunks = max(1, int(getattr(market, "max_sync_segments", 1)))
        self.chunks = min(max_chunks, max(1, math.ceil(self.span / max(window_seconds, 1e-9))))
        chunk = self.span / self.chunks
        self.per_chunk = 1 << max(0, math.ceil(math.log2(chunk / resolution))) if chunk > resolution else 1
        self.leaves = self.chunks * self.per_chunk
        self._extremes: dict[tuple[str, int, int], tuple[Decimal, Decimal]] = {}
        self._prices: dict[tuple[str, int], Decimal] = {}

    # -- time -----------------------------------------------------------------------------
    def at(self, index: int) -> datetime:
        """The moment at leaf boundary ``index`` (0 is the start, ``leaves`` the end)."""
        if index >= self.leaves:
            return self.end
        return self.start + timedelta(seconds=self.span * index / self.leaves)

    def index_of(self, moment: datetime) -> int:
        """The first leaf that starts at or after ``moment``."""
        if moment <= self.start or self.span == 0:
            return 0
        seconds = (moment - self.start).total_seconds()
        return min(self.leaves, math.ceil(seconds * self.leaves / self.span - 1e-9))

    # -- prices ---------------------------------------------------------------------------
    def extremes(self, symbol: str, lo: int, hi: int) -> tuple[Decimal, Decimal]:
        key = (symbol, lo, hi)
        found = self._extremes.get(key)
        if found is None:
            found = self._extremes[key] = self.market.path_extremes(symbol, self.at(lo), self.at(hi))
        return found

    def price(self, symbol: str, index: int) -> Decimal:
        key = (symbol, index)
        found = self._prices.get(key)
        if found is None:
            found = self._prices[key] = self.market.price(symbol, self.at(index))
        return found

    # -- the search -----------------------------------------------------------------------
    def first(self, i_min: int, might: Callable[[int, int], bool]) -> int | None:
        """The earliest leaf ``>= i_min`` in which ``might`` holds, or None."""
        if i_min >= self.leaves:
            return None
        for chunk in range(i_min // self.per_chunk, self.chunks):
            lo = chunk * self.per_chunk
            found = self._search(lo, lo + self.per_chunk, i_min, might)
            if found is not None:
                return found
        return None

    def _search(self, lo: int, hi: int, i_min: int, might: Callable[[int, int], bool]) -> int | None:
        if hi <= i_min or not might(lo, hi):
            return None
        if hi - lo == 1:
            return lo
        mid = (lo + hi) // 2
        found = self._search(lo, mid, i_min, might)
        return found if found is not None else self._search(mid, hi, i_min, might)
