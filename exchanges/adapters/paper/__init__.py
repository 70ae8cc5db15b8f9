"""The built-in paper venue: simulated USDT-margined perpetual futures. Django-free.

- ``market``: deterministic simulated prices (``SimulatedMarket``) or a real venue's
  public data (``CcxtPublicMarket``);
- ``rules``: the venue's figures and roundings (``PaperRules``);
- ``margin``: the account's figures under cross margin (``Margin``, ``AccountView``);
- ``engine``: matching, fills, PnL and liquidation over a ``PaperBook``;
- ``store``: the book (its state, orders and funding payments) and the ``PaperStore``
  protocol; ``memory``: ``MemoryPaperStore`` (the database-backed one is
  ``exchanges.paper_store``);
- ``trader``: ``PaperTrader``, the ExchangeTrader the registry builds.
"""

from exchanges.adapters.paper.engine import PaperEngine
from exchanges.adapters.paper.margin import AccountView, Marks, PositionView
from exchanges.adapters.paper.market import (
    CcxtPublicMarket,
    PriceSource,
    SimulatedMarket,
)
from exchanges.adapters.paper.memory import MemoryPaperStore
from exchanges.adapters.paper.rules import PaperRules
from exchanges.adapters.paper.store import (
    PaperBook,
    PaperFill,
    PaperOrder,
    PaperPosition,
    PaperStore,
)
from exchanges.adapters.paper.trader import PaperTrader, build_market

__all__ = [
    "AccountView",
    "CcxtPublicMarket",
    "Marks",
    "MemoryPaperStore",
    "PaperBook",
    "PaperEngine",
    "PaperFill",
    "PaperOrder",
    "PaperPosition",
    "PaperRules",
    "PaperStore",
    "PaperTrader",
    "PositionView",
    "PriceSource",
    "SimulatedMarket",
    "build_market",
]
