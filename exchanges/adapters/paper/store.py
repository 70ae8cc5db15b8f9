"""The paper venue's book and where it is kept. Django-free.

A ``PaperBook`` is one account at the simulated venue: its state (wallet, positions,
leverage, totals) and its orders, each order with its fills. A ``PaperStore`` hands out a
book *locked* for the duration of a ``with`` block and saves it on a clean exit, so two
workers never interleave on one account and a failed operation leaves no trace.

Orders are kept one per record, not in one document with the state: a block loads the
state and the *open* orders only, and looks closed ones up by id when asked
(``PaperBook.history``), so what a call costs does not grow with the account's history.
On a clean exit the store writes the state and the orders that are new or changed. The
Django implementation lives outside the adapters (``exchanges.paper_store.DjangoPaperStore``);
``MemoryPaperStore`` serves tests and scripts and keeps its records the same way.

Serialisation keeps every Decimal as a string and every datetime as ISO-8601 with its
offset, so a JSON column round-trips it exactly.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Protocol, runtime_checkable

from alpha_platform.common.money import ZERO, to_decimal
from alpha_platform.common.vocabulary import VENUE_OPEN_STATUSES

BOOK_FORMAT = 2  # 1: the orders inside the state document (read, and moved out, on load)


def _s(value: Decimal | None) -> str | None:
    return None if value is None else format(value, "f")


def _dt(value: str | None) -> datetime | None:
    if not value:
        return None
    parsed = datetime.fromisoformat(value)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _ts(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


@dataclass
class PaperFill:
    trade_id: str
    order_id: str
    symbol: str
    side: str  # BUY | SELL
    quantity: Decimal
    price: Decimal
    fee: Decimal
    realized_pnl: Decimal
    timestamp: datetime
    maker: bool = False
    liquidation: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "trade_id": self.trade_id, "order_id": self.order_id, "symbol": self.symbol,
            "side": self.side, "quantity": _s(self.quantity), "price": _s(self.price),
            "fee": _s(self.fee), "realized_pnl": _s(self.realized_pnl),
            "timestamp": _ts(self.timestamp), "maker": self.maker, "liquidation": self.liquidation,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> PaperFill:
        return cls(
            trade_id=d["trade_id"], order_id=d["order_id"], symbol=d["symbol"], side=d["side"],
            quantity=to_decimal(d["quantity"], default=ZERO), price=to_decimal(d["price"], default=ZERO),
            fee=to_decimal(d.get("fee"), default=ZERO), realized_pnl=to_decimal(d.get("realized_pnl"), default=ZERO),
            timestamp=_dt(d["timestamp"]),  # type: ignore[arg-type]
            maker=bool(d.get("maker")), liquidation=bool(d.get("liquidation")),
        )


@dataclass
class PaperFunding:
    """One funding payment on one position: ``amount`` is what the account received
    (negative: paid), = -quantity x mark x rate (longs pay shorts when the rate is positive)."""

    payment_id: str
    symbol: str
    funding_time: datetime
    rate: Decimal
    mark_price: Decimal
    quantity: Decimal  # signed, as the position was
    amount: Decimal

    def to_dict(self) -> dict[str, Any]:
        return {"payment_id": self.payment_id, "symbol": self.symbol, "funding_time": _ts(self.funding_time),
                "rate": _s(self.rate), "mark_price": _s(self.mark_price), "quantity": _s(self.quantity),
                "amount": _s(self.amount)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> PaperFunding:
        return cls(payment_id=d["payment_id"], symbol=d["symbol"],
                   funding_time=_dt(d["funding_time"]),  # type: ignore[arg-type]
                   rate=to_decimal(d["rate"], default=ZERO), mark_price=to_decimal(d["mark_price"], default=ZERO),
                   quantity=to_decimal(d["quantity"], default=ZERO), amount=to_decimal(d["amount"], default=ZERO))


@dataclass
class PaperOrder:
    order_id: str
    client_order_id: str
    symbol: str  # the venue's symbol
    side: str  # BUY | SELL
    order_type: str  # MARKET | LIMIT | STOP_MARKET | TAKE_PROFIT_MARKET
    quantity: Decimal
    status: str  # an OrderStatus value
    created_at: datetime
    updated_at: datetime
    price: Decimal | None = None  # limit price
    stop_price: Decimal | None = None  # trigger price
    reduce_only: bool = False
    time_in_force: str = "GTC"
    position_side: str | None = None  # as asked (LONG | SHORT); the book is one-way
    executed_quantity: Decimal = ZERO
    average_price: Decimal | None = None
    fees: Decimal = ZERO
    realized_pnl: Decimal = ZERO
    fills: list[PaperFill] = field(default_factory=list)
    parent_id: str | None = None  # attached stop-loss / take-profit: held until the parent fills
    attached_ids: list[str] = field(default_factory=list)
    attached_role: str | None = None  # "stop_loss" | "take_profit"
    reserve_quantity: Decimal = ZERO  # the opening part of a resting limit (margin reserved for it)
    requested_quantity: Decimal | None = None  # before reduce-only clipping
    triggered_at: datetime | None = None
    liquidation: bool = False
    note: str = ""

    @property
    def is_open(self) -> bool:
        return self.status in VENUE_OPEN_STATUSES

    def to_dict(self) -> dict[str, Any]:
        return {
            "order_id": self.order_id, "client_order_id": self.client_order_id,
            "symbol": self.symbol, "side": self.side, "order_type": self.order_type,
            "quantity": _s(self.quantity), "status": self.status,
            "created_at": _ts(self.created_at), "updated_at": _ts(self.updated_at),
            "price": _s(self.price), "stop_price": _s(self.stop_price),
            "reduce_only": self.reduce_only, "time_in_force": self.time_in_force,
            "position_side": self.position_side,
            "executed_quantity": _s(self.executed_quantity),
            "average_price": _s(self.average_price), "fees": _s(self.fees),
            "realized_pnl": _s(self.realized_pnl), "fills": [f.to_dict() for f in self.fills],
            "parent_id": self.parent_id, "attached_ids": list(self.attached_ids),
            "attached_role": self.attached_role,
            "reserve_quantity": _s(self.reserve_quantity),
            "requested_quantity": _s(self.requested_quantity),
            "triggered_at": _ts(self.triggered_at), "liquidation": self.liquidation,
            "note": self.note,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> PaperOrder:
        return cls(
            order_id=d["order_id"], client_order_id=d["client_order_id"], symbol=d["symbol"],
            side=d["side"], order_type=d["order_type"], quantity=to_decimal(d["quantity"], default=ZERO),
            status=d["status"], created_at=_dt(d["created_at"]),  # type: ignore[arg-type]
            updated_at=_dt(d["updated_at"]),  # type: ignore[arg-type]
            price=to_decimal(d.get("price"), default=None),
            stop_price=to_decimal(d.get("stop_price"), default=None),
            reduce_only=bool(d.get("reduce_only")), time_in_force=d.get("time_in_force") or "GTC",
            position_side=d.get("position_side"),
            executed_quantity=to_decimal(d.get("executed_quantity"), default=ZERO),
            average_price=to_decimal(d.get("average_price"), default=None),
            fees=to_decimal(d.get("fees"), default=ZERO),
            realized_pnl=to_decimal(d.get("realized_pnl"), default=ZERO),
            fills=[PaperFill.from_dict(f) for f in d.get("fills") or []],
            parent_id=d.get("parent_id"), attached_ids=list(d.get("attached_ids") or []),
            attached_role=d.get("attached_role"),
            reserve_quantity=to_decimal(d.get("reserve_quantity"), default=ZERO),
            requested_quantity=to_decimal(d.get("requested_quantity"), default=None),
            triggered_at=_dt(d.get("triggered_at")), liquidation=bool(d.get("liquidation")),
            note=d.get("note") or "",
        )


@dataclass
class PaperPosition:
    """One-way: ``quantity`` is signed (positive long, negative short), never zero."""

    symbol: str
    quantity: Decimal
    entry_price: Decimal
    opened_at: datetime
    updated_at: datetime
    position_id: str = ""
    realized_pnl: Decimal = ZERO  # over this position's life, fees excluded
    fees: Decimal = ZERO
    funding: Decimal = ZERO  # received over this position's life (negative: paid)

    @property
    def side(self) -> str:
        return "LONG" if self.quantity > 0 else "SHORT"

    @property
    def size(self) -> Decimal:
        return abs(self.quantity)

    def to_dict(self) -> dict[str, Any]:
        return {
            "symbol": self.symbol, "quantity": _s(self.quantity),
            "entry_price": _s(self.entry_price), "opened_at": _ts(self.opened_at),
            "updated_at": _ts(self.updated_at), "position_id": self.position_id,
            "realized_pnl": _s(self.realized_pnl), "fees": _s(self.fees), "funding": _s(self.funding),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> PaperPosition:
        return cls(
            symbol=d["symbol"], quantity=to_decimal(d["quantity"], default=ZERO),
            entry_price=to_decimal(d["entry_price"], default=ZERO),
            opened_at=_dt(d["opened_at"]), updated_at=_dt(d["updated_at"]),  # type: ignore[arg-type]
            position_id=d.get("position_id") or "", realized_pnl=to_decimal(d.get("realized_pnl"), default=ZERO),
            fees=to_decimal(d.get("fees"), default=ZERO), funding=to_decimal(d.get("funding"), default=ZERO),
        )


@dataclass
class PaperBook:
    """One paper account. Mutated by the engine inside ``PaperStore.book()``."""

    account_ref: str
    starting_balance: Decimal
    wallet_balance: Decimal
    positions: dict[str, PaperPosition] = field(default_factory=dict)  # by venue symbol
    # The orders this block has in hand, by order id, oldest first: every open one, and the
    # closed ones it looked up or closed. Others are in ``history``.
    orders: dict[str, PaperOrder] = field(default_factory=dict)
    leverage: dict[str, int] = field(default_factory=dict)  # by venue symbol
    last_sync: datetime | None = None
    sequence: int = 0  # source of order, trade and position ids
    realized_pnl_total: Decimal = ZERO
    fees_total: Decimal = ZERO
    funding_total: Decimal = ZERO  # received (negative: paid)
    liquidations: int = 0
    created_at: datetime | None = None
    # Where the orders not in hand are (the store's records); None: ``orders`` is all.
    history: OrderHistory | None = field(default=None, repr=False, compare=False)
    # Funding payments made in this block (the store writes them as records; not in the state).
    funding: list[PaperFunding] = field(default_factory=list, repr=False, compare=False)
    # Each order as it was loaded, to write back only what changed (not saved).
    loaded: dict[str, dict[str, Any]] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def new(cls, account_ref: str, starting_balance: Decimal, *, now: datetime | None = None) -> PaperBook:
        return cls(account_ref=account_ref, starting_balance=starting_balance,
                   wallet_balance=starting_balance, created_at=now or datetime.now(UTC))

    # -- look-ups -------------------------------------------------------------------------
    def next_id(self, prefix: str) -> str:
        self.sequence += 1
        return f"{prefix}{self.sequence}"

    def open_orders(self, symbol: str | None = None) -> list[PaperOrder]:
        return [o for o in self.orders.values()
                if o.is_open and (symbol is None or o.symbol == symbol)]

    @property
    def fills(self) -> list[PaperFill]:
        """The trades of the orders in hand, oldest first."""
        return sorted((f for o in self.orders.values() for f in o.fills), key=lambda f: f.timestamp)

    def _adopt(self, orders: Iterable[PaperOrder]) -> None:
        for order in orders:
            if order.order_id not in self.orders:
                self.orders[order.order_id] = order
                self.loaded[order.order_id] = order.to_dict()

    def find_order(self, *, order_id: str | None = None,
                   client_order_id: str | None = None) -> PaperOrder | None:
        if order_id is not None:
            order = self.orders.get(str(order_id))
            if order is None and self.history is not None:
                self._adopt(self.history.find(order_ids=[str(order_id)]))
                order = self.orders.get(str(order_id))
            if order is not None and (client_order_id is None or order.client_order_id == client_order_id):
                return order
            return None
        if client_order_id is not None:
            found = self.find_client_ids([client_order_id])
            return found.get(client_order_id)
        return None

    def orders_by_id(self, order_ids: Sequence[str]) -> list[PaperOrder]:
        """These orders, those not in hand looked up in one go; unknown ids are skipped."""
        missing = [i for i in order_ids if i not in self.orders]
        if missing and self.history is not None:
            self._adopt(self.history.find(order_ids=missing))
        return [self.orders[i] for i in order_ids if i in self.orders]

    def find_client_ids(self, client_order_ids: Sequence[str]) -> dict[str, PaperOrder]:
        """The orders with these client order ids (one look-up in the history for all)."""
        wanted = set(client_order_ids)
        found = {o.client_order_id: o for o in self.orders.values() if o.client_order_id in wanted}
        missing = wanted - found.keys()
        if missing and self.history is not None:
            self._adopt(self.history.find(client_order_ids=sorted(missing)))
            found.update({o.client_order_id: o for o in self.orders.values() if o.client_order_id in missing})
        return found

    def closed_since(self, since: datetime | None, *, liquidation: bool | None = None) -> list[PaperOrder]:
        """Orders closed (last changed) at or after ``since``, oldest first."""
        if self.history is not None:
            self._adopt(self.history.closed_since(since, liquidation=liquidation))
        return sorted((o for o in self.orders.values() if not o.is_open
                       and (since is None or o.updated_at >= since)
                       and (liquidation is None or o.liquidation == liquidation)),
                      key=lambda o: (o.updated_at, o.order_id))

    def funding_since(self, since: datetime | None) -> list[PaperFunding]:
        """Funding payments at or after ``since``, oldest first."""
        kept = self.history.funding_since(since) if self.history is not None else []
        seen = {f.payment_id for f in kept}
        fresh = [f for f in self.funding if f.payment_id not in seen and (since is None or f.funding_time >= since)]
        return sorted([*kept, *fresh], key=lambda f: (f.funding_time, f.payment_id))

    def changes(self) -> tuple[list[PaperOrder], list[PaperOrder]]:
        """(new, changed) orders since the block loaded the book."""
        new: list[PaperOrder] = []
        changed: list[PaperOrder] = []
        for order in self.orders.values():
            before = self.loaded.get(order.order_id)
            if before is None:
                new.append(order)
            elif before != order.to_dict():
                changed.append(order)
        return new, changed

    def position_quantity(self, symbol: str) -> Decimal:
        position = self.positions.get(symbol)
        return position.quantity if position is not None else ZERO

    # -- serialisation --------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """The account's state, without its orders."""
        return {
            "format": BOOK_FORMAT,
            "account_ref": self.account_ref,
            "starting_balance": _s(self.starting_balance),
            "wallet_balance": _s(self.wallet_balance),
            "positions": {k: p.to_dict() for k, p in self.positions.items()},
            "leverage": dict(self.leverage),
            "last_sync": _ts(self.last_sync),
            "sequence": self.sequence,
            "realized_pnl_total": _s(self.realized_pnl_total),
            "fees_total": _s(self.fees_total),
            "funding_total": _s(self.funding_total),
            "liquidations": self.liquidations,
            "created_at": _ts(self.created_at),
        }

    def to_dict(self) -> dict[str, Any]:
        """The state and the orders in hand (all of them for a ``load``ed snapshot)."""
        return {**self.state_dict(), "orders": [o.to_dict() for o in self.orders.values()]}

    @classmethod
    def from_dict(cls, d: dict[str, Any], *, orders: Iterable[dict[str, Any]] | None = None,
                  history: OrderHistory | None = None) -> PaperBook:
        """A book from its state and the given order records (else the orders inside ``d``,
        as format 1 and ``to_dict`` keep them)."""
        rows = list(d.get("orders") or []) if orders is None else list(orders)
        parsed = [PaperOrder.from_dict(o) for o in rows]
        book = cls(
            account_ref=d["account_ref"],
            starting_balance=to_decimal(d["starting_balance"], default=ZERO),
            wallet_balance=to_decimal(d["wallet_balance"], default=ZERO),
            positions={k: PaperPosition.from_dict(p) for k, p in (d.get("positions") or {}).items()},
            orders={o.order_id: o for o in parsed},
            leverage={k: int(v) for k, v in (d.get("leverage") or {}).items()},
            last_sync=_dt(d.get("last_sync")),
            sequence=int(d.get("sequence") or 0),
            realized_pnl_total=to_decimal(d.get("realized_pnl_total"), default=ZERO),
            fees_total=to_decimal(d.get("fees_total"), default=ZERO),
            funding_total=to_decimal(d.get("funding_total"), default=ZERO),
            liquidations=int(d.get("liquidations") or 0),
            created_at=_dt(d.get("created_at")),
            history=history,
        )
        book.loaded = {o.order_id: row for o, row in zip(parsed, rows, strict=True)}
        return book


class OrderHistory(Protocol):
    """A store's order records of one account, for the orders a block does not hold."""

    def find(self, *, order_ids: Sequence[str] = (), client_order_ids: Sequence[str] = ()) -> list[PaperOrder]: ...
    def closed_since(self, since: datetime | None, *, liquidation: bool | None = None) -> list[PaperOrder]: ...
    def funding_since(self, since: datetime | None) -> list[PaperFunding]: ...


def split_legacy(doc: dict[str, Any]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """A stored document as (state, order records): format 1 kept the orders (and a copy of
    their fills) inside the state."""
    state = {k: v for k, v in doc.items() if k not in ("orders", "fills")}
    state["format"] = BOOK_FORMAT
    return state, list(doc.get("orders") or [])


@runtime_checkable
class PaperStore(Protocol):
    def book(self, account_ref: str, *, starting_balance: Decimal) -> AbstractContextManager[PaperBook]:
        """The account's book, created with ``starting_balance`` if new, locked against
        every other user of the store until the block ends, and saved only if the block
        ends without an exception. Not re-entrant for the same account."""
        ...

    def load(self, account_ref: str) -> PaperBook | None:
        """An unlocked snapshot (for display); None if the account has no book yet."""
        ...

    def delete(self, account_ref: str) -> None:
        """Forget the account's book (a reset starts from the starting balance again)."""
        ...
