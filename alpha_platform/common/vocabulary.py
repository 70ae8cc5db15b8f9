"""The trading vocabulary, defined once for every layer: order sides, position sides, order
types, order statuses (what a venue reports, and what the platform records), margin modes.

The ground, so that both risk and exchanges (which may not import each other) and the
layers above use the same words. Django-free: str Enums and tuples; trading/models.py builds
its TextChoices from these values (the database holds exactly these strings).
"""

from __future__ import annotations

from enum import StrEnum


class OrderSide(StrEnum):
    BUY = "BUY"
    SELL = "SELL"


class PositionSide(StrEnum):
    LONG = "LONG"
    SHORT = "SHORT"


class OrderType(StrEnum):
    MARKET = "MARKET"
    LIMIT = "LIMIT"
    STOP_MARKET = "STOP_MARKET"
    TAKE_PROFIT_MARKET = "TAKE_PROFIT_MARKET"


TRIGGER_ORDER_TYPES = (OrderType.STOP_MARKET.value, OrderType.TAKE_PROFIT_MARKET.value)


class OrderStatus(StrEnum):
    """An order's state as a venue reports it."""

    NEW = "NEW"  # accepted and resting (limit, or a stop waiting for its trigger)
    PARTIALLY_FILLED = "PARTIALLY_FILLED"
    FILLED = "FILLED"
    CANCELLED = "CANCELLED"
    REJECTED = "REJECTED"
    EXPIRED = "EXPIRED"
    FAILED = "FAILED"

    @property
    def is_open(self) -> bool:
        return self.value in VENUE_OPEN_STATUSES


# Still working at the venue.
VENUE_OPEN_STATUSES = (OrderStatus.NEW.value, OrderStatus.PARTIALLY_FILLED.value)


class RecordedStatus(StrEnum):
    """An order's state as the platform records it: the venue's statuses and the platform's
    own (being sent, awaiting reconciliation, unknown to the venue)."""

    PENDING = "PENDING"
    NEW = OrderStatus.NEW.value
    PARTIALLY_FILLED = OrderStatus.PARTIALLY_FILLED.value
    FILLED = OrderStatus.FILLED.value
    CANCELLED = OrderStatus.CANCELLED.value
    REJECTED = OrderStatus.REJECTED.value
    EXPIRED = OrderStatus.EXPIRED.value
    FAILED = OrderStatus.FAILED.value
    UNKNOWN = "UNKNOWN"
    LOST = "LOST"


# A recorded order that is (or may be) working at its venue: in flight for every risk check,
# and what keeps an account from being deleted.
OPEN_ORDER_STATUSES = (RecordedStatus.PENDING.value, RecordedStatus.NEW.value,
                       RecordedStatus.PARTIALLY_FILLED.value, RecordedStatus.UNKNOWN.value)


class MarginMode(StrEnum):
    CROSS = "cross"
    ISOLATED = "isolated"


ORDER_SIDES = tuple(s.value for s in OrderSide)
POSITION_SIDES = tuple(s.value for s in PositionSide)
ORDER_TYPES = tuple(t.value for t in OrderType)


def is_opening(side: str, position_side: str) -> bool:
    """BUY+LONG and SELL+SHORT open or increase the leg named by the position side;
    SELL+LONG and BUY+SHORT reduce or close it."""
    return (side == OrderSide.BUY) == (position_side == PositionSide.LONG)


def closing_side(position_side: str) -> OrderSide:
    """The order side that reduces a position on ``position_side``."""
    return OrderSide.SELL if position_side == PositionSide.LONG else OrderSide.BUY
