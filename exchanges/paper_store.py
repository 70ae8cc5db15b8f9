"""The paper venue's books in the database: ``DjangoPaperStore`` implements the adapters'
``PaperStore`` protocol with a ``PaperAccountState`` row per account (its state) and a
``PaperOrderRecord`` row per order, so a simulated account survives restarts and every
worker process sees the same book. A block reads the state and the open orders, looks
closed orders up by id when asked, and writes the state and the new or changed orders:
its statements do not grow with the account's history.

Locking: ``book()`` opens ``transaction.atomic()`` and reads the account's row with
``select_for_update()``. On PostgreSQL that is a row lock held to the end of the
transaction; on SQLite the settings make BEGIN take the database's write lock
(``transaction_mode: IMMEDIATE``), which serialises the same way. If the caller is already
inside a transaction the lock lasts until that one ends, which is what a service that
records the venue's answer in the same transaction wants.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from decimal import Decimal
from typing import Any

from django.db import IntegrityError, OperationalError, connections, router, transaction
from tenacity import (
    RetryError,
    Retrying,
    retry_if_exception,
    stop_after_delay,
    wait_exponential_jitter,
)

from exchanges.adapters.errors import ExchangeUnavailable
from exchanges.adapters.paper.store import PaperBook, PaperFunding, PaperOrder, split_legacy
from exchanges.models import ExchangeAccount, PaperAccountState, PaperFundingRecord, PaperOrderRecord

_ACCOUNT_REF = re.compile(r"^acct(\d+)$")


class _RecordHistory:
    """The order records of one book (``OrderHistory``)."""

    def __init__(self, state: PaperAccountState, using: str) -> None:
        self.records = PaperOrderRecord.objects.using(using).filter(state=state)
        self.funding = PaperFundingRecord.objects.using(using).filter(state=state)
        self.pks: dict[str, int] = {}  # order id -> record, for every record read

    def funding_since(self, since: datetime | None) -> list[PaperFunding]:
        query = self.funding if since is None else self.funding.filter(funding_time__gte=since)
        return [PaperFunding.from_dict(data) for data in query.values_list("data", flat=True)]

    def read(self, query: Any) -> list[dict[str, Any]]:
        rows = list(query.values_list("pk", "order_id", "data"))
        self.pks.update((order_id, pk) for pk, order_id, _ in rows)
        return [data for _, _, data in rows]

    def find(self, *, order_ids: Sequence[str] = (), client_order_ids: Sequence[str] = ()) -> list[PaperOrder]:
        if not order_ids and not client_order_ids:
            return []
        query = self.records.filter(order_id__in=list(order_ids)) if order_ids else self.records.none()
        if client_order_ids:
            query = query | self.records.filter(client_order_id__in=list(client_order_ids))
        return [PaperOrder.from_dict(data) for data in self.read(query)]

    def closed_since(self, since: datetime | None, *, liquidation: bool | None = None) -> list[PaperOrder]:
        query = self.records.filter(is_open=False)
        if since is not None:
            query = query.filter(updated_at__gte=since)
        if liquidation is not None:
            query = query.filter(liquidation=liquidation)
        return [PaperOrder.from_dict(data) for data in self.read(query)]


def _record(state: PaperAccountState, order: PaperOrder, data: dict[str, Any] | None = None) -> PaperOrderRecord:
    return PaperOrderRecord(state=state, order_id=order.order_id, client_order_id=order.client_order_id,
                            is_open=order.is_open, liquidation=order.liquidation, updated_at=order.updated_at,
                            data=data if data is not None else order.to_dict())


class DjangoPaperStore:
    """``DjangoPaperStore()``; ``using`` picks a database alias, ``lock_timeout`` bounds
    how long SQLite's "database is locked" is retried before giving up (temporarily)."""

    def __init__(self, *, using: str | None = None, lock_timeout: float = 30.0) -> None:
        self.using = using or router.db_for_write(PaperAccountState)
        self.lock_timeout = lock_timeout

    # -- the protocol ---------------------------------------------------------------------
    @contextmanager
    def book(self, account_ref: str, *, starting_balance: Decimal) -> Iterator[PaperBook]:
        atomic, row = self._lock(account_ref, Decimal(starting_balance))
        try:
            self._upgrade(row)
            history = _RecordHistory(row, self.using)
            if row.book:
                open_rows = history.read(history.records.filter(is_open=True))
                book = PaperBook.from_dict(row.book, orders=open_rows, history=history)
            else:
                book = PaperBook.new(account_ref, row.starting_balance)
                book.history = history
            yield book
            self._save(row, book)
        except BaseException as exc:
            atomic.__exit__(type(exc), exc, exc.__traceback__)
            raise
        atomic.__exit__(None, None, None)

    def load(self, account_ref: str) -> PaperBook | None:
        row = PaperAccountState.objects.using(self.using).filter(account_ref=account_ref).first()
        if row is None:
            return None
        if not row.book:
            return PaperBook.new(account_ref, row.starting_balance)
        state, legacy = split_legacy(row.book)
        records = list(PaperOrderRecord.objects.using(self.using).filter(state=row).values_list("data", flat=True))
        seen = {r["order_id"] for r in records}
        return PaperBook.from_dict(state, orders=[*(r for r in legacy if r["order_id"] not in seen), *records],
                                   history=_RecordHistory(row, self.using))

    def delete(self, account_ref: str) -> None:
        PaperAccountState.objects.using(self.using).filter(account_ref=account_ref).delete()

    # -- locking --------------------------------------------------------------------------
    def _lock(self, account_ref: str, starting_balance: Decimal) -> tuple[transaction.Atomic, PaperAccountState]:
        """Enter a transaction holding the account's row lock (creating the row if needed).

        SQLite answers a competing writer with "database is locked" once its busy timeout
        runs out, and at once for the in-memory test database (shared cache): nothing has
        happened yet at that point, so the attempt is rolled back and repeated.
        """
        nested = connections[self.using].in_atomic_block

        def attempt() -> tuple[transaction.Atomic, PaperAccountState]:
            atomic = transaction.atomic(using=self.using)
            entered = False
            try:
                atomic.__enter__()
                entered = True
                return atomic, self._locked_row(account_ref, starting_balance)
            except BaseException as exc:
                if entered:
                    atomic.__exit__(type(exc), exc, exc.__traceback__)
                raise

        def locked(exc: BaseException) -> bool:
            # Only SQLite's "database is locked", and only when this call opened the
            # transaction: inside the caller's, the rollback would undo the caller's work.
            return isinstance(exc, OperationalError) and not nested and "locked" in str(exc).lower()

        retrying = Retrying(retry=retry_if_exception(locked), stop=stop_after_delay(self.lock_timeout),
                            wait=wait_exponential_jitter(multiplier=0.002, max=0.1, jitter=0.002))
        try:
            return retrying(attempt)
        except RetryError as exc:
            raise ExchangeUnavailable(
                f"paper: the book of {account_ref} stayed locked for {self.lock_timeout:.0f}s",
                venue="paper") from exc.last_attempt.exception()

    def _locked_row(self, account_ref: str, starting_balance: Decimal) -> PaperAccountState:
        rows = PaperAccountState.objects.using(self.using).select_for_update()
        row = rows.filter(account_ref=account_ref).first()
        if row is not None:
            return row
        try:
            with transaction.atomic(using=self.using):  # a savepoint: a lost race is not fatal
                book = PaperBook.new(account_ref, starting_balance)
                row = PaperAccountState(account_ref=account_ref, account=self._account(account_ref),
                                        starting_balance=starting_balance, wallet_balance=starting_balance,
                                        book=book.state_dict())
                row.save(using=self.using, force_insert=True)
                return row
        except IntegrityError:
            # Another process created it first: wait for its lock like everyone else.
            return rows.get(account_ref=account_ref)

    def _account(self, account_ref: str) -> ExchangeAccount | None:
        match = _ACCOUNT_REF.match(account_ref)
        if match is None:
            return None
        return ExchangeAccount.objects.using(self.using).filter(pk=int(match.group(1))).first()

    def _upgrade(self, row: PaperAccountState) -> None:
        """A book of format 1 kept its orders in the state: they become records."""
        if not row.book or "orders" not in row.book:
            return
        state, legacy = split_legacy(row.book)
        PaperOrderRecord.objects.using(self.using).bulk_create(
            [_record(row, PaperOrder.from_dict(data), data) for data in legacy], ignore_conflicts=True)
        row.book = state
        row.save(using=self.using, update_fields=["book"])

    def _save(self, row: PaperAccountState, book: PaperBook) -> None:
        new, changed = book.changes()
        records = PaperOrderRecord.objects.using(self.using)
        if new:
            records.bulk_create([_record(row, order) for order in new])
        if changed:
            pks = book.history.pks  # type: ignore[union-attr]  # every changed order was read through it
            updated = []
            for order in changed:
                record = _record(row, order)
                record.pk = pks[order.order_id]
                updated.append(record)
            records.bulk_update(updated, ["is_open", "liquidation", "updated_at", "data"])
        if book.funding:
            PaperFundingRecord.objects.using(self.using).bulk_create([
                PaperFundingRecord(state=row, payment_id=f.payment_id, funding_time=f.funding_time, data=f.to_dict())
                for f in book.funding])
        row.book = book.state_dict()
        row.starting_balance = book.starting_balance
        row.wallet_balance = book.wallet_balance
        row.open_positions = {
            symbol: {"quantity": format(p.quantity, "f"), "entry_price": format(p.entry_price, "f")}
            for symbol, p in book.positions.items()
        }
        row.open_orders = len(book.open_orders())
        row.last_sync_at = book.last_sync
        row.save(using=self.using)
