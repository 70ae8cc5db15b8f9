"""The model of config/exchanges.yaml as a whole (one environment's merged result)."""

from __future__ import annotations

from typing import Any

from alpha_platform.common.config.base import ConfigModel
from alpha_platform.common.config.types import (
    NAME_PATTERN,
    VERSION_PATTERN,
    Date,
    Fraction,
    Int,
    Key,
    Leverage,
    List,
    Money,
    Problem,
    Str,
    Symbol,
    SymbolKey,
    Table,
)
from alpha_platform.common.config.venue import Venue


def _one_to_one(table: dict[str, str]) -> list[Problem]:
    # Adapters reverse the table (venue symbol -> internal): it must be one-to-one.
    seen: dict[str, str] = {}
    found: list[Problem] = []
    for internal, venue_symbol in table.items():
        if venue_symbol in seen:
            found.append(((internal,), f"venue symbol {venue_symbol!r} is already mapped from "
                                       f"{seen[venue_symbol]!r}"))
        seen[venue_symbol] = internal
    return found


def _distinct_priorities(venues: dict[str, Venue]) -> list[Problem]:
    used: dict[int, str] = {}
    found: list[Problem] = []
    for name, venue in venues.items():
        if venue.priority in used:
            found.append(((name, "priority"), f"{venue.priority} is already used by exchanges.{used[venue.priority]}"))
        else:
            used[venue.priority] = name
    return found


class RiskDefaults(ConfigModel):
    """Defaults of every new user's RiskProfile (``risk.services.risk_profile_defaults``).
    An absent key leaves the model field's own default."""

    max_total_exposure_percent: Fraction
    max_exchange_exposure_percent: Fraction
    emergency_stop_loss_percent: Fraction
    position_correlation_limit: Fraction
    max_leverage: Leverage = None
    max_position_notional_usd: Money(0) = None
    max_position_percent: Fraction = None
    min_notional_usd: Money(0) = None
    max_open_positions: Int(0, 32_767) = None
    max_orders_per_minute: Int(0, 32_767) = None
    max_orders_per_hour: Int(0) = None
    loss_cooldown_seconds: Int(0, 86_400) = None
    monthly_llm_budget_usd: Money(0) = None
    allowed_symbols: List(Symbol) = None

    def given(self) -> dict[str, Any]:
        """The settings the file gives (absent ones are not defaults to apply)."""
        return {name: getattr(self, name) for name in self.model_fields_set}


SymbolTable = Table(SymbolKey, Str(), rules=(_one_to_one,))
OrderTypeName = Key(choices=("market", "limit", "stop_loss", "take_profit"))


class GlobalSettings(ConfigModel):
    risk_management: RiskDefaults
    symbol_mapping: Table(Key(pattern=NAME_PATTERN, what="a table name such as 'internal_to_binance'"),
                          SymbolTable)
    order_types: Table(OrderTypeName, List(Str(), min_items=1)) = {}


class Metadata(ConfigModel):
    created_at: Date = None
    updated_at: Date = None
    description: Str() = None


VenueName = Key(pattern=NAME_PATTERN, what="a venue name of lowercase letters, digits and _ (at most 32)")


class ExchangesFile(ConfigModel):
    """The file with one environment's overrides merged in (``environments`` is taken
    apart by the loader: ``alpha_platform.common.config.loader``)."""

    version: Str(pattern=VERSION_PATTERN, what="a version string such as \"1.0\" (quoted)")
    metadata: Metadata = None
    global_settings: GlobalSettings
    exchanges: Table(VenueName, Venue, min_items=1, rules=(_distinct_priorities,))
    environments: Any = None  # checked by the loader; never set in a merged result


# What an environment may override: anything but version, metadata and environments.
OVERRIDABLE = ("global_settings", "exchanges")
