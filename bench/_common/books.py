"""The paper book under load: a store that keeps the live book (the engine's own cost),
traders on each store, the book's size, and orders placed to fill it."""

from __future__ import annotations

import threading
import time
from decimal import Decimal

# --------------------------------------------------------------------------- the paper book
SYMBOL = "BTC/USDT"
QTY = Decimal("0.001")


class _LiveHistory:
    """The closed orders of a LiveBookStore account, indexed by order id and client order id."""

    def __init__(self) -> None:
        self.by_id: dict = {}
        self.by_cid: dict = {}

    def keep(self, order) -> None:
        self.by_id[order.order_id] = order
        self.by_cid[order.client_order_id] = order

    def find(self, *, order_ids=(), client_order_ids=()):
        found = {id(o): o for o in (*(self.by_id.get(i) for i in order_ids),
                                     *(self.by_cid.get(c) for c in client_order_ids)) if o is not None}
        return list(found.values())

    def closed_since(self, since, *, liquidation=None):
        return [o for o in self.by_id.values() if (since is None or o.updated_at >= since)
                and (liquidation is None or o.liquidation == liquidation)]


class LiveBookStore:
    """No persistence at all: the live PaperBook object is handed out again (no copy, no
    serialisation), its closed orders moved to an in-memory index after each block, as
    the real stores keep them apart. Not safe for real use (a failed block is not rolled
    back); it shows the engine's own cost, the floor under both real stores."""

    def __init__(self) -> None:
        self._books: dict = {}
        self._lock = threading.Lock()

    def book(self, account_ref, *, starting_balance):
        from contextlib import contextmanager

        from exchanges.adapters.paper import PaperBook

        @contextmanager
        def cm():
            with self._lock:
                book = self._books.get(account_ref)
                if book is None:
                    book = self._books[account_ref] = PaperBook.new(account_ref, Decimal(starting_balance))
                    book.history = _LiveHistory()
                yield book
                for order in [o for o in book.orders.values() if not o.is_open]:
                    book.history.keep(book.orders.pop(order.order_id))
                book.loaded = {}

        return cm()

    def load(self, account_ref):
        from exchanges.adapters.paper import PaperBook

        book = self._books.get(account_ref)
        if book is None:
            return None
        whole = PaperBook.from_dict(book.state_dict(), orders=[])
        whole.orders = {**book.history.by_id, **book.orders}
        return whole

    def delete(self, account_ref):
        self._books.pop(account_ref, None)


STORES = ("engine", "memory", "django")


def trader_with_store(account, store: str):
    from exchanges.adapters.paper import MemoryPaperStore
    from exchanges.adapters.registry import create_trader
    from exchanges.adapters.resilience import AdapterRuntime
    from exchanges.services import trader_for_account, venue_spec

    if store == "django":
        return trader_for_account(account)  # the platform's runtime: DjangoPaperStore
    paper_store = MemoryPaperStore() if store == "memory" else LiveBookStore()
    return create_trader(venue_spec(account), credentials=account.credentials(),
                         runtime=AdapterRuntime(paper_store=paper_store))


def book_bytes(trader) -> int:
    import json

    book = trader.store.load(trader.account_ref)
    return len(json.dumps(book.to_dict())) if book else 0


def place_alternating(trader, n: int, tag: str) -> list[float]:
    """n market orders, BUY (open long) and SELL (close it) in turn; seconds per order."""
    from exchanges.adapters.base import OrderRequest, OrderSide, OrderType, PositionSide

    lat: list[float] = []
    for i in range(n):
        side = OrderSide.BUY if i % 2 == 0 else OrderSide.SELL
        req = OrderRequest(symbol=SYMBOL, side=side, position_side=PositionSide.LONG, order_type=OrderType.MARKET,
                           quantity=QTY, client_order_id=f"b-{tag}-{i}", reduce_only=side == OrderSide.SELL)
        t0 = time.perf_counter()
        result = trader.place_order(req)
        lat.append(time.perf_counter() - t0)
        if str(getattr(result.status, "value", result.status)) != "FILLED":
            raise RuntimeError(f"order {i} not filled: {result.status} {result.raw_data.get('note')}")
    return lat


def prefill_book(account, store: str, trader, history: int, tag: str) -> int:
    """Give the account's book ``history`` closed orders (and their fills) before the
    measurement: trade them through a no-persistence trader, then seed the store with
    the resulting book. Returns the seeded book's JSON size in bytes."""
    import json

    from exchanges.models import PaperAccountState

    if history <= 0:
        return 0
    engine_trader = trader_with_store(account, "engine")
    place_alternating(engine_trader, history, f"pre-{tag}")
    doc = engine_trader.store.load(engine_trader.account_ref).to_dict()
    if store == "engine":
        trader.store._books[trader.account_ref] = engine_trader.store._books[engine_trader.account_ref]
    elif store == "memory":
        trader.store._docs[trader.account_ref] = doc
    else:
        trader.get_balance()  # creates the row
        PaperAccountState.objects.filter(account_ref=trader.account_ref).update(book=doc)
    if store != "engine":
        trader.get_balance()  # the store moves the seeded orders into records before the measurement
    return len(json.dumps(doc))
