"""The model of one venue under ``exchanges:`` in config/exchanges.yaml.

Cross-field rules live beside the fields they relate (``model_validator`` "after": they
run only when the block's own fields are valid, as before). The rule that a venue's
``symbol_mapping`` names an existing table reads the table names from the validation
context (``{"symbol_tables": [...]}``), given by the loader.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from pydantic import ValidationInfo, model_validator

from alpha_platform.common.config.base import ConfigModel
from alpha_platform.common.config.types import (
    HTTP_PATTERN,
    IDENT_PATTERN,
    NAME_PATTERN,
    WS_PATTERN,
    Bool,
    Date,
    Fee,
    Fraction,
    Int,
    Key,
    Leverage,
    List,
    Money,
    Num,
    PositiveInt,
    Problem,
    Str,
    SymbolKey,
    Table,
    problems,
    suggest,
)

# The adapters of exchanges.adapters.registry.ADAPTERS (a test builds a trader class for each).
ADAPTER_NAMES = ("ccxt", "hyperliquid", "paper")
# auth_type -> the credential fields a user enters (exchanges.credentials.SHAPES checks them).
AUTH_FIELDS: dict[str, tuple[str, ...]] = {
    "api_key": ("api_key", "api_secret"),
    "wallet_key": ("private_key", "account_address"),
    "none": (),
}
PAPER_ONLY_PARAMETERS = ("starting_balance", "slippage_bps", "maintenance_margin_rate", "margin_tiers", "funding",
                         "market_data", "depth", "default_depth", "symbol_filters")
CCXT_ONLY_KEYS = ("ccxt_options", "markets_ttl_seconds")
TIME_IN_FORCE = ("GTC", "IOC", "FOK", "GTX", "GTD", "ALO")
_CREDENTIAL_KEYS = ("api_key", "api_secret", "wallet_address", "private_key", "main_wallet",
                    "account_address", "auth_source", "vault_path", "credentials_file")
_NO_CREDENTIALS = ("credentials are not configured in this file: each user's are stored "
                   "encrypted per account (declare auth.auth_type and auth.fields instead)")
CcxtId = Str(pattern=IDENT_PATTERN, what="a ccxt exchange id such as 'binanceusdm'")
HttpUrl = Str(pattern=HTTP_PATTERN, what="an http(s):// URL")
WsUrl = Str(pattern=WS_PATTERN, what="a ws(s):// URL")


def _raise(found: list[Problem]) -> None:
    if found:
        raise problems(found)


class RateLimit(ConfigModel):
    per_second: PositiveInt
    per_minute: PositiveInt
    burst: PositiveInt = None

    @model_validator(mode="after")
    def _within_the_minute(self) -> RateLimit:
        found: list[Problem] = []
        if self.per_second > self.per_minute:
            found.append((("per_second",), f"{self.per_second} exceeds per_minute ({self.per_minute})"))
        if self.burst is not None and self.burst > self.per_minute:
            found.append((("burst",), f"{self.burst} exceeds per_minute ({self.per_minute})"))
        _raise(found)
        return self


class RateLimits(ConfigModel):
    orders: RateLimit
    requests: RateLimit


class Auth(ConfigModel):
    HINTS = {key: _NO_CREDENTIALS for key in _CREDENTIAL_KEYS}

    auth_type: Str(choices=tuple(AUTH_FIELDS))
    fields: List(Str())
    testnet: Bool = False


class RestApi(ConfigModel):
    production: HttpUrl
    testnet: HttpUrl = None
    timeout: Int(1, 600_000) = None  # milliseconds
    rate_limit: Bool = None
    retries: Int(0, 10) = None
    retry_delay: Int(0, 60_000) = None  # milliseconds


class Websocket(ConfigModel):
    production: WsUrl
    testnet: WsUrl = None
    reconnect_attempts: Int(0, 1000) = None
    ping_interval: Num(1, 3600) = None  # seconds


class Network(ConfigModel):
    rest_api: RestApi = None
    websocket: Websocket = None


class LeverageLimits(ConfigModel):
    default: Leverage
    maximum: Leverage
    per_symbol: Table(Key(), Leverage) = {}

    @model_validator(mode="after")
    def _default_within_maximum(self) -> LeverageLimits:
        # per_symbol may exceed a lowered maximum (development caps at 5): the maximum wins.
        if self.default > self.maximum:
            _raise([(("default",), f"{self.default} exceeds maximum ({self.maximum})")])
        return self


class PositionSizing(ConfigModel):
    min_notional: Money(0)
    max_position_percent: Fraction
    quantity_precision: Int(0, 18)
    price_precision: Int(0, 18)


class OrderManagement(ConfigModel):
    supported_types: List(Str(), min_items=1)
    time_in_force: List(Str(choices=TIME_IN_FORCE), min_items=1)
    default_tif: Str(choices=TIME_IN_FORCE)
    batch_orders: Bool = False
    oco_orders: Bool = False

    @model_validator(mode="after")
    def _default_offered(self) -> OrderManagement:
        if self.default_tif not in self.time_in_force:
            _raise([(("default_tif",), f"{self.default_tif!r} is not one of time_in_force "
                     f"({', '.join(self.time_in_force)})")])
        return self


class Fees(ConfigModel):
    maker: Fee
    taker: Fee
    funding_rate_check_interval: Int(1, 86_400) = None


class Trading(ConfigModel):
    default_type: Str(choices=("future", "perpetual", "swap"))
    margin_mode: Str(choices=("cross", "isolated"))
    leverage: LeverageLimits
    position_sizing: PositionSizing
    order_management: OrderManagement
    fees: Fees


class SimulatedSymbol(ConfigModel):
    start_price: Money(above=0)
    annual_volatility: Num(0, 10)


class MarketData(ConfigModel):
    source: Str(choices=("simulated", "ccxt"))
    ccxt_id: CcxtId = None
    seed: Int() = None
    epoch: Date = None  # where the simulated walk starts
    symbols: Table(SymbolKey, SimulatedSymbol) = {}

    @model_validator(mode="after")
    def _ccxt_needs_an_id(self) -> MarketData:
        if self.source == "ccxt" and not self.ccxt_id:
            _raise([(("ccxt_id",), "required when source is 'ccxt'")])
        return self


class MarginTier(ConfigModel):
    """One leverage bracket: notionals from ``notional_floor`` up to (not including)
    ``notional_cap`` (none on the last) need ``notional x maintenance_margin_rate -
    maintenance_amount`` of maintenance margin and allow ``max_leverage``."""

    notional_floor: Money(0)
    notional_cap: Money(above=0) = None
    max_leverage: Leverage
    maintenance_margin_rate: Fraction
    maintenance_amount: Money(0) = Decimal(0)


def _ladder_problems(ladder: list[MarginTier]) -> list[Problem]:
    """Brackets as Binance publishes them: from 0, each starting where the one before
    ends, rates rising, leverage falling, and the amounts that keep the maintenance margin
    continuous (amount = previous amount + floor x (rate - previous rate))."""
    found: list[Problem] = []
    if ladder and ladder[0].notional_floor != 0:
        found.append(((0, "notional_floor"), "the first bracket must start at 0"))
    for n, (before, tier) in enumerate(zip(ladder, ladder[1:], strict=False), start=1):
        if before.notional_cap is None or before.notional_cap != tier.notional_floor:
            found.append(((n, "notional_floor"), f"must equal the cap of bracket {n - 1} "
                          f"({before.notional_cap if before.notional_cap is not None else 'none'})"))
        if tier.maintenance_margin_rate < before.maintenance_margin_rate:
            found.append(((n, "maintenance_margin_rate"), "must not fall from one bracket to the next"))
        if tier.max_leverage > before.max_leverage:
            found.append(((n, "max_leverage"), "must not rise from one bracket to the next"))
        expected = before.maintenance_amount + tier.notional_floor * (
            tier.maintenance_margin_rate - before.maintenance_margin_rate)
        if tier.maintenance_amount != expected:
            found.append(((n, "maintenance_amount"), f"must be {expected} to keep the maintenance "
                          f"margin continuous at {tier.notional_floor}"))
    for n, tier in enumerate(ladder):
        if tier.notional_cap is not None and tier.notional_cap <= tier.notional_floor:
            found.append(((n, "notional_cap"), "must be above notional_floor"))
    if ladder and ladder[-1].notional_cap is not None:
        found.append(((len(ladder) - 1, "notional_cap"), "the last bracket has no cap"))
    return found


def _ladders_problems(table: dict[str, list[MarginTier]]) -> list[Problem]:
    return [((symbol, *path), message) for symbol, ladder in table.items()
            for path, message in _ladder_problems(ladder)]


class Funding(ConfigModel):
    """The paper venue's funding: every ``interval_hours``, rate = premium + clamp(interest
    - premium, +/-clamp), capped at +/-cap."""

    interval_hours: Num(1, 24) = 8.0
    interest_rate: Money(-0.01, 0.01) = Decimal("0.0001")
    clamp: Fraction = Decimal("0.0005")
    cap: Fraction = Decimal("0.0075")


# -- book depth and symbol filters (paper venue) --------------------------------------------
class DepthSpec(ConfigModel):
    """A symbol's book on one side: ``levels`` levels, the first at mark +/- slippage_bps,
    each further one ``spacing_bps`` (of the mark) worse, each holding ``quantity`` (base
    asset) or ``notional`` (USDT, turned into a quantity at the first level's price)."""

    levels: Int(1, 10_000)
    spacing_bps: Money(0, 10_000)
    quantity: Money(above=0) = None
    notional: Money(above=0) = None

    @model_validator(mode="after")
    def _one_size(self) -> DepthSpec:
        if (self.quantity is None) == (self.notional is None):
            _raise([(("quantity",), "give exactly one of quantity (base asset per level) "
                     "or notional (USDT per level)")])
        return self


class SymbolFilter(ConfigModel):
    """A symbol's exchange filters (Binance's PRICE_FILTER tickSize, LOT_SIZE stepSize,
    MIN_NOTIONAL); a missing one is the venue's position_sizing figure."""

    tick_size: Money(above=0) = None
    step_size: Money(above=0) = None
    min_notional: Money(0) = None


class Parameters(ConfigModel):
    dual_side_position: Bool = False
    hedge_mode: Bool = False
    position_side: Bool = None
    reduce_only: Bool = None
    cross_margin_only: Bool = None
    has_funding: Bool = None
    slippage_tolerance: Fraction = None
    starting_balance: Money(above=0) = None
    slippage_bps: Num(0, 10_000) = None
    maintenance_margin_rate: Fraction = None  # a symbol without margin_tiers: one flat bracket
    margin_tiers: Table(SymbolKey, List(MarginTier, min_items=1), rules=(_ladders_problems,)) = None
    funding: Funding = None
    market_data: MarketData = None
    # book depth and symbol filters (paper venue)
    depth: Table(SymbolKey, DepthSpec) = None
    default_depth: DepthSpec = None  # a symbol not under depth
    symbol_filters: Table(SymbolKey, SymbolFilter) = None


class CircuitBreaker(ConfigModel):
    failure_threshold: Int(1, 1000) = 5
    cooldown_seconds: Num(1, 300) = 60.0


class Venue(ConfigModel):
    """One venue: what its adapter is built from (``exchanges.adapters.base.VenueSpec``
    takes the same block as a mapping: ``PlatformConfig.venue_block``)."""

    enabled: Bool = True
    exchange_type: Str(choices=(*ADAPTER_NAMES, "custom", "hybrid"))
    adapter: Str(choices=ADAPTER_NAMES) = None
    ccxt_id: CcxtId = None
    display_name: Str()
    priority: PositiveInt
    symbol_mapping: Str(pattern=NAME_PATTERN, what="the name of a global_settings.symbol_mapping table")
    auth: Auth
    network: Network = None
    trading: Trading
    parameters: Parameters = Parameters()
    rate_limits: RateLimits
    circuit_breaker: CircuitBreaker = CircuitBreaker()
    # Overrides of the adapter's capability flags (capabilities are data, not branches).
    capabilities: Table(Key(pattern=IDENT_PATTERN, what="a capability name"), Bool) = {}
    markets_ttl_seconds: Num(1, 86_400) = None
    ccxt_options: dict[Key(), Any] = None  # passed through to the ccxt constructor

    @property
    def adapter_name(self) -> str:
        """The adapter this venue uses: ``adapter``, else its ``exchange_type``."""
        return self.adapter or self.exchange_type

    def fee(self, kind: str) -> Decimal:
        return {"maker": self.trading.fees.maker, "taker": self.trading.fees.taker}[kind]

    @model_validator(mode="after")
    def _consistent(self, info: ValidationInfo) -> Venue:
        kind, adapter = self.exchange_type, self.adapter
        if adapter is None and kind not in ADAPTER_NAMES:
            if kind in ("custom", "hybrid"):
                _raise([(("adapter",), f"required when exchange_type is {kind!r} "
                         f"(one of {', '.join(ADAPTER_NAMES)})")])
            _raise([(("exchange_type",), f"no adapter for {kind!r}; expected one of "
                     f"{', '.join(ADAPTER_NAMES)}, or 'custom' with an adapter{suggest(kind, ADAPTER_NAMES)}")])
        found: list[Problem] = []
        effective = self.adapter_name
        if effective == "ccxt" and not self.ccxt_id:
            found.append((("ccxt_id",), "required for a ccxt venue"))
        tables = (info.context or {}).get("symbol_tables")
        if tables is not None and self.symbol_mapping not in tables:
            found.append((("symbol_mapping",), f"no table {self.symbol_mapping!r} in "
                          f"global_settings.symbol_mapping{suggest(self.symbol_mapping, tables)}"))
        expected = AUTH_FIELDS[self.auth.auth_type]
        if sorted(self.auth.fields) != sorted(expected):
            found.append((("auth", "fields"), f"auth_type {self.auth.auth_type!r} takes the fields "
                          f"[{', '.join(expected)}], got [{', '.join(self.auth.fields)}]"))
        rest_api = self.network.rest_api if self.network else None
        if self.auth.testnet and rest_api is not None and not rest_api.testnet:
            found.append((("network", "rest_api", "testnet"), "required because auth.testnet is true"))
        if effective != "paper":
            found.extend((("parameters", key),  "applies only to a paper venue")
                         for key in PAPER_ONLY_PARAMETERS if key in self.parameters.model_fields_set)
        if effective != "ccxt":
            found.extend(((key,), "applies only to a ccxt venue")
                         for key in CCXT_ONLY_KEYS if key in self.model_fields_set)
        _raise(found)
        return self
