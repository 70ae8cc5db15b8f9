"""Compatibility: the ccxt adapter now lives in ``exchanges.adapters.ccxt``."""

from exchanges.adapters.ccxt import BinanceUsdmTrader, CcxtTrader

__all__ = ["BinanceUsdmTrader", "CcxtTrader"]
