"""Venue name -> adapter class. Which adapter a venue uses is data (its config's
``adapter``, else its ``exchange_type``), not a branch in calling code."""

from __future__ import annotations

from collections.abc import Mapping
from importlib import import_module
from typing import Any

from alpha_platform.common.secrets import Credentials
from exchanges.adapters.base import ExchangeTrader, VenueSpec
from exchanges.adapters.errors import OperationalError

ADAPTERS: dict[str, str] = {
    "ccxt": "exchanges.adapters.ccxt:ccxt_trader_class",
    "hyperliquid": "exchanges.adapters.hyperliquid:HyperliquidTrader",
    "paper": "exchanges.adapters.paper:PaperTrader",
}


def adapter_class(venue_config: Mapping[str, Any]) -> type:
    kind = venue_config.get("adapter") or venue_config.get("exchange_type")
    try:
        module_name, cls_name = ADAPTERS[kind].split(":")
    except KeyError:
        raise OperationalError(f"No adapter for exchange_type {kind!r}") from None
    found = getattr(import_module(module_name), cls_name)
    if kind == "ccxt":  # the venue class for the ccxt id (Binance USD-M), else the generic base
        return found(str(venue_config.get("ccxt_id") or ""))
    return found


def create_trader(spec: VenueSpec, *, credentials: Credentials, runtime: Any) -> ExchangeTrader:
    cls = adapter_class(spec.config)
    return cls(spec=spec, credentials=credentials, runtime=runtime)
