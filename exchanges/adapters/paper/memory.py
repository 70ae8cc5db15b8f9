"""``MemoryPaperStore``: the paper venue's process-local store (tests, scripts), keeping
what the database store keeps, the same way: per account the state document, one record
per order and one per funding payment. Django-free."""

from __future__ import annotations

import copy
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from decimal import Decimal
from typing import Any

from alpha_platform.common.vocabulary import VENUE_OPEN_STATUSES
from exchanges.adapters.paper.store import (
    PaperBook,
    PaperFunding,
    PaperOrder,
    split_legacy,
)


def _sequence(order_id: str) -> tuple[int, str]:
    """Order ids are the book's sequence: oldest first."""
    return (int(order_id), order_id) if order_id.isdigit() else (1 << 62, order_id)


class _Records:
    """One account's order records, with the indexes the database has: by client order id
    and the set of open ones (so a block costs the same at any age here too)."""

    def __init__(self) -> None:
        self.by_id: dict[str, dict[str, Any]] = {}
        self.by_cid: dict[str, str] = {}
        self.open: set[str] = set()

    def put(self, row: dict[str, Any]) -> None:
        oid = row["order_id"]
        self.by_id[oid] = row
        self.by_cid[row["client_order_id"]] = oid
        if row["status"] in VENUE_OPEN_STATUSES:
            self.open.add(oid)
        else:
            self.open.discard(oid)


class _MemoryHistory:
    def __init__(self, records: _Records, funding: list[dict[str, Any]]) -> None:
        self.records = records
        self.funding = funding

    def funding_since(self, since: datetime | None) -> list[PaperFunding]:
        found = (PaperFunding.from_dict(copy.deepcopy(r)) for r in self.funding)
        return [f for f in found if since is None or f.funding_time >= since]

    def find(self, *, order_ids: Sequence[str] = (), client_order_ids: Sequence[str] = ()) -> list[PaperOrder]:
        wanted = {*order_ids, *(self.records.by_cid[c] for c in client_order_ids if c in self.records.by_cid)}
        return [PaperOrder.from_dict(copy.deepcopy(self.records.by_id[i])) for i in sorted(wanted)
                if i in self.records.by_id]

    def closed_since(self, since: datetime | None, *, liquidation: bool | None = None) -> list[PaperOrder]:
        found = (PaperOrder.from_dict(copy.deepcopy(r)) for r in self.records.by_id.values())
        return [o for o in found if not o.is_open and (since is None or o.updated_at >= since)
                and (liquidation is None or o.liquidation == liquidation)]


class MemoryPaperStore:
    """Process-local store: per account, a JSON-shaped copy of the state, one of each order
    (by order id), and a lock.

    Keeping the serialised form (not the live object) makes a failed block roll back
    and catches anything that would not survive the database round trip; keeping orders
    apart from the state makes a block load what the database store loads.
    """

    def __init__(self) -> None:
        self._docs: dict[str, dict[str, Any]] = {}
        self._orders: dict[str, _Records] = {}
        self._funding: dict[str, list[dict[str, Any]]] = {}
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()

    def _lock(self, account_ref: str) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(account_ref, threading.Lock())

    def _records(self, account_ref: str) -> _Records:
        doc = self._docs.get(account_ref)
        records = self._orders.setdefault(account_ref, _Records())
        if doc is not None and "orders" in doc:  # a document of format 1 (or seeded whole)
            state, rows = split_legacy(doc)
            self._docs[account_ref] = state
            for row in rows:
                records.put(row)
        return records

    @contextmanager
    def book(self, account_ref: str, *, starting_balance: Decimal) -> Iterator[PaperBook]:
        with self._lock(account_ref):
            records = self._records(account_ref)
            funding = self._funding.setdefault(account_ref, [])
            history = _MemoryHistory(records, funding)
            doc = self._docs.get(account_ref)
            if doc:
                open_rows = [copy.deepcopy(records.by_id[i]) for i in sorted(records.open, key=_sequence)]
                book = PaperBook.from_dict(copy.deepcopy(doc), orders=open_rows, history=history)
            else:
                book = PaperBook.new(account_ref, Decimal(starting_balance))
                book.history = history
            yield book
            new, changed = book.changes()
            for order in (*new, *changed):
                records.put(order.to_dict())
            funding.extend(f.to_dict() for f in book.funding)
            self._docs[account_ref] = book.state_dict()

    def load(self, account_ref: str) -> PaperBook | None:
        with self._lock(account_ref):
            records = self._records(account_ref)
            doc = self._docs.get(account_ref)
            if not doc:
                return None
            return PaperBook.from_dict(copy.deepcopy(doc), orders=[copy.deepcopy(r) for r in records.by_id.values()],
                                       history=_MemoryHistory(_Records(), self._funding.get(account_ref, [])))

    def delete(self, account_ref: str) -> None:
        with self._lock(account_ref):
            self._docs.pop(account_ref, None)
            self._orders.pop(account_ref, None)
            self._funding.pop(account_ref, None)
