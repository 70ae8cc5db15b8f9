"""The paper venue's books in the database: ``DjangoPaperStore`` implements the adapters'
``PaperStore`` protocol with ``PaperAccountState`` rows, so a simulated account survives
restarts and every worker process sees the same book.

Locking: ``book()`` opens ``transaction.atomic()`` and reads the account's row with
``select_for_update()``. On PostgreSQL that is a row lock held to the end of the
transaction; on SQLite the settings make BEGIN take the database's write lock
(``transaction_mode: IMMEDIATE``), which serialises the same way. If the caller is already
inside a transaction the lock lasts until that one ends, which is what a service that
records the venue's answer in the same transaction wants.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal

from django.db import IntegrityError, OperationalError, connections, router, transaction
from tenacity import (
    RetryError,
    Retrying,
    retry_if_exception,
    stop_after_delay,
    wait_exponential_jitter,
)

from exchanges.adapters.errors import ExchangeUnavailable
from exchanges.adapters.paper.store import PaperBook
from exchanges.models import ExchangeAccount, PaperAccountState

_ACCOUNT_REF = re.compile(r"^acct(\d+)$")


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
            book = PaperBook.from_dict(row.book) if row.book else PaperBook.new(
                account_ref, row.starting_balance)
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
        return PaperBook.from_dict(row.book) if row.book else PaperBook.new(account_ref, row.starting_balance)

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
                                        book=book.to_dict())
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

    def _save(self, row: PaperAccountState, book: PaperBook) -> None:
        row.book = book.to_dict()
        row.starting_balance = book.starting_balance
        row.wallet_balance = book.wallet_balance
        row.open_positions = {
            symbol: {"quantity": format(p.quantity, "f"), "entry_price": format(p.entry_price, "f")}
            for symbol, p in book.positions.items()
        }
        row.open_orders = len(book.open_orders())
        row.last_sync_at = book.last_sync
        row.save(using=self.using)
