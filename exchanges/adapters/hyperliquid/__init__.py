"""Hyperliquid perpetuals through the official SDK (see ``trader.py``)."""

from exchanges.adapters.hyperliquid.trader import HyperliquidTrader
from exchanges.adapters.hyperliquid.wire import cloid_for, round_price

__all__ = ["HyperliquidTrader", "cloid_for", "round_price"]
