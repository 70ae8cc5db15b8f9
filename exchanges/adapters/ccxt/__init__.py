"""ccxt adapters: a base that reads ccxt's unified structures, thin venue classes."""

from exchanges.adapters.ccxt.base import CcxtTrader
from exchanges.adapters.ccxt.binanceusdm import BinanceUsdmTrader

# ccxt id -> the venue class; any other ccxt id gets the generic base.
VENUE_CLASSES: dict[str, type[CcxtTrader]] = {"binanceusdm": BinanceUsdmTrader}


def ccxt_trader_class(ccxt_id: str) -> type[CcxtTrader]:
    return VENUE_CLASSES.get(ccxt_id, CcxtTrader)


__all__ = ["BinanceUsdmTrader", "CcxtTrader", "VENUE_CLASSES", "ccxt_trader_class"]
