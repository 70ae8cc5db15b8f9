"""The ExchangeTrader interface and its data classes (seed: data-model.md).

Django-free: adapters take plain inputs (decrypted credentials, the venue's config
block, a runtime of shared services) and return these data classes. Every amount is a
Decimal; every timestamp is a timezone-aware UTC datetime. Symbols at this interface
are internal ("BTC/USDT"); each adapter maps them to the venue's own form.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import ROUND_DOWN, ROUND_HALF_EVEN, Decimal
from typing import Any, Protocol, runtime_checkable

from alpha_platform.common.money import ZERO
from alpha_platform.common.money import ZERO as D0  # noqa: F401 - the adapters' name for it (follow-up: ZERO)
from alpha_platform.common.secrets import Credentials
from alpha_platform.common.vocabulary import (  # noqa: F401 - the adapters import them from here
    MarginMode,
    OrderSide,
    OrderStatus,
    OrderType,
    PositionSide,
    is_opening,
)
from exchanges.adapters.errors import BadPrecision, UnknownSymbol


def utcnow() -> datetime:
    return datetime.now(UTC)


def ms_to_datetime(ms: int | float | None) -> datetime:
    if ms is None:
        return utcnow()
    return datetime.fromtimestamp(float(ms) / 1000.0, tz=UTC)


@dataclass(frozen=True)
class OrderRequest:
    """What the platform asks a venue to do. ``client_order_id`` is ours and idempotent."""

    symbol: str
    side: OrderSide
    position_side: PositionSide
    order_type: OrderType
    quantity: Decimal
    client_order_id: str
    price: Decimal | None = None  # LIMIT price
    stop_price: Decimal | None = None  # trigger of STOP_MARKET / TAKE_PROFIT_MARKET
    reduce_only: bool = False
    time_in_force: str = "GTC"
    leverage: int | None = None
    stop_loss: Decimal | None = None  # attached protective orders (opening orders only)
    take_profit: Decimal | None = None

    def __post_init__(self) -> None:
        # A plain str on the wire: the platform's ids are a str subclass (PlatformOrderId),
        # and venue libraries may check ``type(x) is str`` (ccxt's safe_string does, and
        # then sends an id of its own instead of ours, silently).
        object.__setattr__(self, "client_order_id", str.__str__(self.client_order_id))

    @property
    def is_opening(self) -> bool:
        return is_opening(self.side, self.position_side)


@dataclass(frozen=True)
class FillInfo:
    trade_id: str
    quantity: Decimal
    price: Decimal
    fee: Decimal = ZERO
    realized_pnl: Decimal = ZERO
    timestamp: datetime = field(default_factory=utcnow)


@dataclass(frozen=True)
class FundingPayment:
    """One funding payment on one position: ``amount`` is what the account received
    (negative: paid); ``quantity`` the position's signed size then."""

    payment_id: str
    symbol: str
    funding_time: datetime
    rate: Decimal
    mark_price: Decimal
    quantity: Decimal
    amount: Decimal


@dataclass(frozen=True)
class OrderResult:
    symbol: str
    order_id: str
    client_order_id: str
    side: OrderSide
    order_type: OrderType
    quantity: Decimal
    price: Decimal | None
    executed_quantity: Decimal
    executed_price: Decimal | None
    status: OrderStatus
    fees: Decimal
    timestamp: datetime
    exchange: str
    raw_data: dict[str, Any] = field(default_factory=dict)
    position_side: PositionSide | None = None
    reduce_only: bool = False
    stop_price: Decimal | None = None
    fee_currency: str = "USDT"
    fills: tuple[FillInfo, ...] = ()
    attached: tuple[OrderResult, ...] = ()  # stop-loss / take-profit placed with it
    # The venue's form of our client order id (Hyperliquid: the cloid hex). Empty when it
    # equals ``client_order_id``. The trading layer matches venue orders to ours by it
    # (Order.venue_client_order_id), so no adapter needs a memory of what it sent.
    venue_client_order_id: str = ""

    def __post_init__(self) -> None:
        if self.quantity < 0 or self.executed_quantity < 0:
            raise ValueError("quantity and executed_quantity must be non-negative")


@dataclass(frozen=True)
class Position:
    symbol: str
    side: PositionSide
    size: Decimal
    entry_price: Decimal
    mark_price: Decimal
    unrealized_pnl: Decimal
    percentage_pnl: Decimal
    leverage: Decimal
    margin: Decimal
    timestamp: datetime
    exchange: str
    position_id: str | None = None
    liquidation_price: Decimal | None = None
    margin_type: str = "cross"
    raw_data: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.size <= 0:
            raise ValueError("position size must be positive")

    @property
    def notional(self) -> Decimal:
        return self.size * self.mark_price


@dataclass(frozen=True)
class Balance:
    total_balance: Decimal  # wallet balance
    available_balance: Decimal
    margin_balance: Decimal  # wallet + unrealized PnL (equity)
    unrealized_pnl: Decimal
    currency: str
    timestamp: datetime
    exchange: str
    margin_used: Decimal = ZERO
    maintenance_margin: Decimal = ZERO
    can_trade: bool = True
    account_type: str = "futures"
    raw_data: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Ticker:
    symbol: str
    last: Decimal
    mark: Decimal | None
    bid: Decimal | None
    ask: Decimal | None
    change_24h_percent: Decimal | None
    funding_rate: Decimal | None
    timestamp: datetime
    exchange: str


@dataclass(frozen=True)
class Candle:
    timestamp: datetime  # open time
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
    volume: Decimal


@dataclass(frozen=True)
class SymbolRules:
    symbol: str
    quantity_step: Decimal
    price_tick: Decimal
    min_quantity: Decimal
    min_notional: Decimal
    max_leverage: int


@dataclass(frozen=True)
class VenueSpec:
    """What an adapter is built from: the venue's merged config block and the account."""

    venue: str
    config: Mapping[str, Any]
    symbol_map: Mapping[str, str]  # internal -> venue symbol
    testnet: bool = False
    account_ref: str = ""  # stable id for shared state (rate limits, breaker, paper book)


@runtime_checkable
class ExchangeTrader(Protocol):
    exchange_name: str

    def open_long(self, symbol: str, quantity: Decimal, *, client_order_id: str, **kw: Any) -> OrderResult: ...
    def open_short(self, symbol: str, quantity: Decimal, *, client_order_id: str, **kw: Any) -> OrderResult: ...
    def close_long(self, symbol: str, quantity: Decimal, *, client_order_id: str, **kw: Any) -> OrderResult: ...
    def close_short(self, symbol: str, quantity: Decimal, *, client_order_id: str, **kw: Any) -> OrderResult: ...
    def place_order(self, request: OrderRequest) -> OrderResult: ...
    def get_balance(self) -> Balance: ...
    def get_positions(self, symbols: Sequence[str] | None = None) -> list[Position]: ...
    def get_open_orders(self, symbol: str | None = None) -> list[OrderResult]: ...
    def get_order(self, symbol: str, *, order_id: str | None = None,
                  client_order_id: str | None = None) -> OrderResult: ...
    def cancel_order(self, symbol: str, *, order_id: str | None = None,
                     client_order_id: str | None = None) -> OrderResult: ...
    def get_liquidations(self, since: datetime | None = None) -> list[OrderResult]: ...
    def get_funding_payments(self, since: datetime | None = None) -> list[FundingPayment]: ...
    def get_market_price(self, symbol: str) -> Decimal: ...
    def get_ticker(self, symbol: str) -> Ticker: ...
    def get_candles(self, symbol: str, timeframe: str = "1m", limit: int = 100) -> list[Candle]: ...
    def set_leverage(self, symbol: str, leverage: int) -> None: ...
    def set_margin_mode(self, symbol: str, mode: MarginMode) -> None: ...
    def validate_symbol(self, symbol: str) -> bool: ...
    def symbol_rules(self, symbol: str) -> SymbolRules: ...
    def format_quantity(self, symbol: str, quantity: Decimal) -> Decimal: ...
    def format_price(self, symbol: str, price: Decimal) -> Decimal: ...
    def normalize_symbol(self, symbol: str) -> str: ...
    def denormalize_symbol(self, venue_symbol: str) -> str: ...
    def check_credentials(self) -> Balance: ...
    def venue_client_order_id(self, client_order_id: str) -> str: ...
    def close(self) -> None: ...


# Every adapter's capabilities, before its class and the venue's config say otherwise.
DEFAULT_CAPABILITIES: dict[str, Any] = {
    "supports_attached_tp_sl": False,  # stop-loss / take-profit sent with the entry, in one action
    "supports_reduce_only": True,      # a reduce-only flag on orders
    "has_user_stream": False,          # pushes the account's orders, fills and positions
    "long_lived": True,                # worth keeping per account (metadata, settings, nonces)
}


class BaseTrader(abc.ABC):
    """Shared behaviour: the four trading verbs over ``place_order``, symbol mapping,
    precision from ``symbol_rules``. Subclasses implement the venue calls.

    Capabilities are data: ``DEFAULT_CAPABILITIES``, over them the class's
    ``CAPABILITIES``, over those the venue config's ``capabilities`` block.

    A trader may be long-lived and shared (``exchanges.services`` pools them per account):
    then ``pooled`` is set, ``close()`` (which callers call in ``finally``) does nothing,
    and the pool calls ``shutdown()`` when it evicts the trader.
    """

    CAPABILITIES: Mapping[str, Any] = {}

    def __init__(self, *, spec: VenueSpec, credentials: Credentials, runtime: Any = None) -> None:
        self.spec = spec
        self.exchange_name = spec.venue
        self.credentials = credentials
        self.runtime = runtime
        self.pooled = False
        self.capabilities = type(self).capabilities_for(spec.config)
        self._reverse_map = {v: k for k, v in spec.symbol_map.items()}

    @classmethod
    def capabilities_for(cls, venue_config: Mapping[str, Any]) -> dict[str, Any]:
        return {**DEFAULT_CAPABILITIES, **cls.CAPABILITIES, **(venue_config.get("capabilities") or {})}

    def __repr__(self) -> str:  # credentials stay out of reprs and tracebacks
        return f"<{type(self).__name__} venue={self.spec.venue} account={self.spec.account_ref}>"

    # -- the seed's trading operations --------------------------------------------------
    def _verb(self, symbol: str, quantity: Decimal, side: OrderSide, position_side: PositionSide,
              *, client_order_id: str, closing: bool, order_type: OrderType = OrderType.MARKET,
              price: Decimal | None = None, stop_price: Decimal | None = None,
              reduce_only: bool = False, leverage: int | None = None,
              stop_loss: Decimal | None = None, take_profit: Decimal | None = None,
              time_in_force: str = "GTC") -> OrderResult:
        return self.place_order(OrderRequest(
            symbol=symbol, side=side, position_side=position_side, order_type=OrderType(order_type),
            quantity=quantity, client_order_id=client_order_id, price=price, stop_price=stop_price,
            reduce_only=closing or reduce_only, time_in_force=time_in_force, leverage=leverage,
            stop_loss=None if closing else stop_loss, take_profit=None if closing else take_profit,
        ))

    def open_long(self, symbol: str, quantity: Decimal, *, client_order_id: str, **kw: Any) -> OrderResult:
        return self._verb(symbol, quantity, OrderSide.BUY, PositionSide.LONG,
                          client_order_id=client_order_id, closing=False, **kw)

    def open_short(self, symbol: str, quantity: Decimal, *, client_order_id: str, **kw: Any) -> OrderResult:
        return self._verb(symbol, quantity, OrderSide.SELL, PositionSide.SHORT,
                          client_order_id=client_order_id, closing=False, **kw)

    def close_long(self, symbol: str, quantity: Decimal, *, client_order_id: str, **kw: Any) -> OrderResult:
        return self._verb(symbol, quantity, OrderSide.SELL, PositionSide.LONG,
                          client_order_id=client_order_id, closing=True, **kw)

    def close_short(self, symbol: str, quantity: Decimal, *, client_order_id: str, **kw: Any) -> OrderResult:
        return self._verb(symbol, quantity, OrderSide.BUY, PositionSide.SHORT,
                          client_order_id=client_order_id, closing=True, **kw)

    @abc.abstractmethod
    def place_order(self, request: OrderRequest) -> OrderResult: ...

    # -- reads that subclasses implement -------------------------------------------------
    @abc.abstractmethod
    def get_ticker(self, symbol: str) -> Ticker: ...

    def get_market_price(self, symbol: str) -> Decimal:
        ticker = self.get_ticker(symbol)
        return ticker.mark if ticker.mark is not None else ticker.last

    # -- symbols and precision -----------------------------------------------------------
    def normalize_symbol(self, symbol: str) -> str:
        try:
            return self.spec.symbol_map[symbol]
        except KeyError:
            raise UnknownSymbol(f"{symbol} is not traded on {self.spec.venue}", venue=self.spec.venue) from None

    def denormalize_symbol(self, venue_symbol: str) -> str:
        return self._reverse_map.get(venue_symbol, venue_symbol)

    def validate_symbol(self, symbol: str) -> bool:
        try:
            self.symbol_rules(symbol)
            return True
        except UnknownSymbol:
            return False

    @abc.abstractmethod
    def symbol_rules(self, symbol: str) -> SymbolRules: ...

    def format_quantity(self, symbol: str, quantity: Decimal) -> Decimal:
        """Round down to the venue's step (never more than asked); reject below minimum."""
        rules = self.symbol_rules(symbol)
        steps = (quantity / rules.quantity_step).to_integral_value(rounding=ROUND_DOWN)
        rounded = (steps * rules.quantity_step).quantize(rules.quantity_step)
        if rounded <= 0 or rounded < rules.min_quantity:
            raise BadPrecision(
                f"Quantity {quantity} of {symbol} is below the venue minimum {rules.min_quantity}",
                venue=self.spec.venue,
            )
        return rounded

    def format_price(self, symbol: str, price: Decimal) -> Decimal:
        rules = self.symbol_rules(symbol)
        ticks = (price / rules.price_tick).to_integral_value(rounding=ROUND_HALF_EVEN)
        return (ticks * rules.price_tick).quantize(rules.price_tick)

    def get_liquidations(self, since: datetime | None = None) -> list[OrderResult]:
        """The orders the venue placed itself to close the account's positions (liquidations),
        with their fills, closed at or after ``since`` (None: all it still keeps), oldest
        first. They are never open, so reconciliation learns of them only from this list.
        Venues that cannot list them return [] (their streams or position changes tell)."""
        return []

    def get_funding_payments(self, since: datetime | None = None) -> list[FundingPayment]:
        """The account's funding payments at or after ``since``, oldest first. Venues whose
        funding history is not read yet return []."""
        return []

    def check_credentials(self) -> Balance:
        """What "test connection" runs: a read that needs the credentials. Venues whose
        balance read does not prove the signing key (Hyperliquid) check more."""
        return self.get_balance()

    def venue_client_order_id(self, client_order_id: str) -> str:
        """The id the venue will show for our ``client_order_id`` (the same, unless the
        venue has its own format: Hyperliquid's cloid). Deterministic and stateless."""
        return client_order_id

    def close(self) -> None:
        """Done with the trader. For a pooled one this only releases it (the pool owns its
        lifetime and shuts it down when it is retired, idle or the process exits)."""
        if not self.pooled:
            self.shutdown()
            return
        release = getattr(self, "_pool_release", None)
        if release is not None:
            release(self)

    def shutdown(self) -> None:
        """Close sessions for good. Subclasses with connections override."""
        return None


TraderFactory = Callable[..., ExchangeTrader]
