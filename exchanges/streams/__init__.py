"""Venue user-data streams (Django-free): one class per venue, each an async iterator of
normalised events in the adapters' DTOs.

    async for event in stream.events():   # raises StreamDisconnected when the link drops
        ...                               # OrderUpdate | PositionUpdate | Gap

A stream yields ``Gap("connected")`` once it is subscribed (so a REST catch-up started
then misses nothing), and ``Gap(reason)`` whenever it sees that a message was lost. The
trading layer (trading.services.streams) reconnects, catches up and ingests.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Protocol

from exchanges.adapters.base import OrderResult, Position


@dataclass(frozen=True)
class OrderUpdate:
    """The venue's current state of one order (cumulative, as venues push it), with the
    fills known for it so far (unique by trade id)."""

    result: OrderResult
    event_time_ms: int
    # False when the venue pushes no position change with its fills (Hyperliquid's user
    # channels): the consumer reads the positions over REST after a fill.
    positions_follow: bool = True
    liquidation: bool = False  # the venue closed a position itself (liquidation, ADL)


@dataclass(frozen=True)
class PositionUpdate:
    """The venue's open positions for ``symbols`` (None: the whole account); a symbol in
    ``symbols`` without a position in ``positions`` has none. A ``leverage`` of 0 means
    the venue did not say (Binance's ACCOUNT_UPDATE): the consumer keeps what it knows."""

    positions: tuple[Position, ...]
    symbols: frozenset[str] | None
    event_time_ms: int


@dataclass(frozen=True)
class Gap:
    """Something may have been missed (a (re)connection, a lost message): catch up over REST."""

    reason: str


StreamEvent = OrderUpdate | PositionUpdate | Gap


class StreamDisconnected(Exception):
    """The venue's stream ended; the consumer reconnects (with back-off) and catches up."""


class UserStream(Protocol):
    venue: str

    def events(self) -> AsyncIterator[StreamEvent]: ...


class PairingWatch:
    """Detects a lost message from the venue's pairing rule: each fill of ours comes with
    a position change on its symbol and the other way round (Binance documents an
    ACCOUNT_UPDATE for every trade; Hyperliquid a userFills entry for every filled order).
    What stays unpaired longer than ``grace`` seconds is a gap."""

    def __init__(self, grace: float) -> None:
        self.grace = grace
        self._waiting: dict[tuple[str, str], float] = {}  # (kind awaited, key) -> deadline

    def saw(self, kind: str, key: str, awaits: str, now: float) -> None:
        if self._waiting.pop((kind, key), None) is None:
            self._waiting[(awaits, key)] = now + self.grace

    def expired(self, now: float) -> list[str]:
        late = [f"no {kind} for {key}" for (kind, key), deadline in self._waiting.items() if deadline <= now]
        if late:
            self._waiting = {k: d for k, d in self._waiting.items() if d > now}
        return late
