"""Fills and positions pushed from the venues: what the user-data streams
(exchanges.streams) report is applied through the same services reconciliation uses
(order_apply_result, positions_sync), and the supervisor that holds one stream per
active account (``manage.py venue_streams``).

- An order update is matched within its account by client order id or the venue's form
  of it (Order.venue_client_order_id); a message that would take an order back (fewer
  executed, an earlier status) is ignored, so duplicated and out-of-order messages change
  nothing; fills are unique by trade id.
- Each (re)connection and each gap a stream detects is followed by a REST catch-up
  (account_reconcile): reconciliation stays the safety net.
- Writes happen on one thread per account (the ORM is synchronous), in the order the
  venue sent them; the websocket pushes go out on commit, as everywhere else.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import random
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import aclosing
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import close_old_connections, connections, transaction
from django.db.models import Q
from django.utils import timezone

from alpha_platform.common.money import ZERO
from exchanges.adapters.base import OrderResult
from exchanges.adapters.base import Position as VenuePosition
from exchanges.models import ExchangeAccount
from exchanges.services import trader_for_account, venue_spec
from exchanges.streams import Gap, OrderUpdate, PositionUpdate, StreamDisconnected
from trading.events import position_event
from trading.models import Order, Position
from trading.services.positions import (
    STATUS_MAP,
    PositionChanges,
    order_apply_result,
    positions_sync,
)
from trading.services.reconcile import account_reconcile

logger = logging.getLogger(__name__)
loop_time = time.monotonic
LIQUIDATION_WINDOW = timedelta(seconds=30)

# How far along its life an order is; a message never moves an order back.
_RANK = {Order.Status.PENDING: 0, Order.Status.UNKNOWN: 0, Order.Status.LOST: 0, Order.Status.FAILED: 0,
         Order.Status.NEW: 1, Order.Status.PARTIALLY_FILLED: 2, Order.Status.FILLED: 3,
         Order.Status.CANCELLED: 3, Order.Status.REJECTED: 3, Order.Status.EXPIRED: 3}


def _order_for(account: ExchangeAccount, result: OrderResult) -> Order | None:
    """Ours by client order id (or the venue's form of it); failing that by the venue's
    order id, which the order carries once its answer was recorded (a venue or client
    library that replaced our client id still names the order by its own id)."""
    ids = {result.client_order_id, result.venue_client_order_id} - {""}
    match = Q(pk__in=[])
    if ids:
        match |= Q(client_order_id__in=ids) | Q(venue_client_order_id__in=ids)
    if result.order_id:
        match |= Q(exchange_order_id=result.order_id, symbol=result.symbol)
    found = list(Order.objects.filter(account=account).filter(match)[:2])
    by_client_id = [o for o in found if {o.client_order_id, o.venue_client_order_id} & ids]
    return (by_client_id or found or [None])[0]


def _moves_back_or_repeats(order: Order, result: OrderResult) -> bool:
    status = STATUS_MAP.get(str(result.status), Order.Status.NEW)
    executed = min(result.executed_quantity, order.quantity)
    if executed < order.executed_quantity:
        return True
    if executed > order.executed_quantity:
        return False
    if _RANK.get(status, 0) < _RANK.get(order.status, 0):
        return True
    if status != order.status:
        # Same execution, another terminal state (e.g. CANCELLED after FILLED): the
        # first terminal word stands; the venue does not reopen orders.
        return _RANK.get(order.status, 0) == 3
    # Same state. Its fills are new only if ours do not cover the execution yet (a
    # catch-up may have recorded them under another id: the aggregate of a venue that
    # listed no trades), so a late or repeated trade never counts twice.
    recorded = sum(order.fills.values_list("quantity", flat=True), ZERO)
    return recorded >= executed


def stream_order_ingest(*, account: ExchangeAccount, result: OrderResult) -> Order | None:
    """Apply a pushed order update. Returns the order, or None when it is not ours."""
    with transaction.atomic():
        order = _order_for(account, result)
        if order is None:
            return None
        order = Order.objects.select_for_update().get(pk=order.pk)
        if _moves_back_or_repeats(order, result):
            return order
        return order_apply_result(order=order, result=result)


def stream_positions_ingest(*, account: ExchangeAccount, positions: Sequence[VenuePosition],
                            symbols: Iterable[str] | None, liquidated_symbols: Iterable[str] = ()) -> PositionChanges:
    """Apply pushed positions for ``symbols`` (None: the account's whole list). Figures the
    venue did not push (leverage 0: Binance's ACCOUNT_UPDATE carries none) keep ours."""
    liquidated = set(liquidated_symbols)
    with transaction.atomic():
        rows = {(p.symbol, p.side): p for p in Position.objects.select_for_update().filter(
            account=account, status=Position.Status.OPEN)}
        merged = []
        for vp in positions:
            row = rows.get((vp.symbol, str(vp.side)))
            if vp.leverage <= 0 and row is not None:
                vp = dataclasses.replace(vp, leverage=row.leverage, margin=row.margin,
                                         liquidation_price=row.liquidation_price)
            merged.append(vp)
        changes = positions_sync(account=account, venue_positions=merged,
                                 symbols=list(symbols) if symbols is not None else None, expected=True)
        for row in changes.closed:
            if row.symbol in liquidated and row.status != Position.Status.LIQUIDATED:
                row.status = Position.Status.LIQUIDATED
                row.save(update_fields=["status", "updated_at"])
                position_event(row)
    return changes


def stream_liquidation_record(*, account: ExchangeAccount, symbol: str) -> Position | None:
    """The venue closed a position itself (Binance's ``autoclose-`` orders). Its position
    update may have come first (Binance sends ACCOUNT_UPDATE before the order's): then the
    row it just closed is the liquidated one. Returns it, or None if still to come."""
    with transaction.atomic():
        row = (Position.objects.select_for_update()
               .filter(account=account, symbol=symbol, status=Position.Status.CLOSED,
                       closed_at__gte=timezone.now() - LIQUIDATION_WINDOW).order_by("-closed_at").first())
        if row is None:
            return None
        row.status = Position.Status.LIQUIDATED
        row.save(update_fields=["status", "updated_at"])
        position_event(row)
        return row


def stream_positions_refresh(*, account: ExchangeAccount, symbols: Iterable[str]) -> PositionChanges:
    """For venues that push fills but not positions: read the positions over REST."""
    trader = trader_for_account(account)
    try:
        venue_positions = trader.get_positions()
    finally:
        trader.close()
    return stream_positions_ingest(account=account, positions=venue_positions, symbols=symbols)


# --------------------------------------------------------------------------- the streams
def stream_for_account(account: ExchangeAccount, *, run_sync: Callable) -> Any | None:
    """The account's user-data stream, or None for a venue without one."""
    spec = venue_spec(account)
    kind = str(spec.config.get("exchange_type") or "")
    if kind == "paper":
        from exchanges.streams.paper import PaperUserStream

        return PaperUserStream(trader_factory=lambda: trader_for_account(account), run_sync=run_sync,
                               interval=settings.VENUE_STREAMS_PAPER_INTERVAL)
    rest = ((spec.config.get("network") or {}).get("rest_api") or {}).get("testnet" if spec.testnet else "production")
    if kind == "ccxt" and str(spec.config.get("ccxt_id") or "binanceusdm") == "binanceusdm" and rest:
        from exchanges.streams.binance import BinanceUserStream

        ws_url = settings.VENUE_STREAMS_BINANCE_WS_TESTNET_URL if spec.testnet else settings.VENUE_STREAMS_BINANCE_WS_URL
        return BinanceUserStream(spec=spec, credentials=account.credentials(), rest_url=str(rest), ws_url=ws_url,
                                 gap_grace=settings.VENUE_STREAMS_GAP_GRACE_SECONDS)
    if spec.venue == "hyperliquid" and rest:
        from exchanges.streams.hyperliquid import HyperliquidUserStream

        return HyperliquidUserStream(spec=spec, credentials=account.credentials(), rest_url=str(rest),
                                     ws_base_url=settings.VENUE_STREAMS_HYPERLIQUID_WS_BASE_URL or str(rest),
                                     gap_grace=settings.VENUE_STREAMS_GAP_GRACE_SECONDS)
    return None


class AccountWorker:
    """One account's database thread: calls run there one after another (venue order)."""

    def __init__(self, account_id: int) -> None:
        self.account_id = account_id
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"stream-acct{account_id}")

    async def run(self, fn: Callable[[], Any]) -> Any:
        def call() -> Any:
            close_old_connections()
            return fn()
        return await asyncio.get_running_loop().run_in_executor(self._executor, call)

    async def close(self) -> None:
        await self.run(connections.close_all)  # tests' database teardown waits for these
        self._executor.shutdown(wait=True)


class VenueStreamSupervisor:
    """One asyncio task per active account; new and disabled accounts are picked up every
    ``refresh_seconds``; a dropped stream is reopened with exponential back-off."""

    def __init__(self, *, stream_factory: Callable[..., Any] = stream_for_account,
                 refresh_seconds: float | None = None, backoff_initial: float = 0.2,
                 backoff_max: float = 30.0, account_ids: Iterable[int] | None = None) -> None:
        self.stream_factory = stream_factory
        self.refresh_seconds = refresh_seconds if refresh_seconds is not None else settings.VENUE_STREAMS_REFRESH_SECONDS
        self.backoff_initial = backoff_initial
        self.backoff_max = backoff_max
        self.only = set(account_ids) if account_ids is not None else None
        self.tasks: dict[int, asyncio.Task] = {}
        self.stats: dict[str, Counter] = {"connects": Counter(), "disconnects": Counter(), "catchups": Counter(),
                                          "gaps": Counter(), "orders": Counter(), "positions": Counter(),
                                          "unmatched": Counter()}
        self.connected: dict[int, asyncio.Event] = {}
        self._stopping = asyncio.Event()
        self._control = AccountWorker(0)

    def _active_ids(self) -> set[int]:
        accounts = ExchangeAccount.objects.exclude(status=ExchangeAccount.Status.DISABLED)
        if self.only is not None:
            accounts = accounts.filter(pk__in=self.only)
        return set(accounts.values_list("pk", flat=True))

    async def run(self) -> None:
        try:
            while not self._stopping.is_set():
                active = await self._control.run(self._active_ids)
                for account_id in active - set(self.tasks):
                    self.connected.setdefault(account_id, asyncio.Event())
                    self.tasks[account_id] = asyncio.create_task(self._account(account_id),
                                                                 name=f"stream-acct{account_id}")
                for account_id in set(self.tasks) - active:
                    self.tasks.pop(account_id).cancel()
                for account_id, task in list(self.tasks.items()):
                    if task.done():  # a venue without a stream, or a task that failed: retry later
                        self.tasks.pop(account_id)
                try:
                    await asyncio.wait_for(self._stopping.wait(), timeout=self.refresh_seconds)
                except TimeoutError:
                    pass
        finally:
            for task in self.tasks.values():
                task.cancel()
            await asyncio.gather(*self.tasks.values(), return_exceptions=True)
            await self._control.close()

    def stop(self) -> None:
        self._stopping.set()

    async def _account(self, account_id: int) -> None:
        worker = AccountWorker(account_id)
        backoff = self.backoff_initial
        try:
            while True:
                account = await worker.run(lambda: ExchangeAccount.objects.get(pk=account_id))
                stream = await worker.run(lambda account=account: self.stream_factory(account, run_sync=worker.run))
                if stream is None:
                    return
                liquidated: set[str] = set()
                try:
                    async with aclosing(stream.events()) as events:
                        async for event in events:
                            backoff = self.backoff_initial
                            await self._handle(account, worker, event, liquidated)
                except StreamDisconnected as exc:
                    logger.warning("stream of account %s dropped: %s", account_id, exc)
                except asyncio.CancelledError:
                    raise
                except Exception:
                    logger.exception("stream of account %s failed", account_id)
                self.stats["disconnects"][account_id] += 1
                self.connected[account_id].clear()
                await asyncio.sleep(backoff * (1 + random.random() / 4))
                backoff = min(backoff * 2, self.backoff_max)
        finally:
            await worker.close()

    async def _handle(self, account: ExchangeAccount, worker: AccountWorker, event: Any, liquidated: set[str]) -> None:
        account_id = account.pk
        if isinstance(event, Gap):
            if event.reason == "connected":
                self.stats["connects"][account_id] += 1
                logger.info("stream of account %s connected (%s); catching up", account_id, account.venue)
            else:
                self.stats["gaps"][account_id] += 1
                logger.info("stream of account %s: gap (%s), catching up", account_id, event.reason)
            started = loop_time()
            await worker.run(lambda: account_reconcile(account=account, snapshot_balance=False))
            self.stats["catchups"][account_id] += 1
            logger.info("stream of account %s caught up in %.0f ms", account_id, (loop_time() - started) * 1000)
            if event.reason == "connected":
                self.connected[account_id].set()
        elif isinstance(event, OrderUpdate):
            result = event.result
            if event.liquidation and result.fills:
                row = await worker.run(lambda: stream_liquidation_record(account=account, symbol=result.symbol))
                if row is None:
                    liquidated.add(result.symbol)  # its position update is still to come
            order = await worker.run(lambda: stream_order_ingest(account=account, result=result))
            if order is None:
                self.stats["unmatched"][account_id] += 1
            else:
                self.stats["orders"][account_id] += 1
            if not event.positions_follow and result.fills:
                await worker.run(lambda: stream_positions_refresh(account=account, symbols=[result.symbol]))
        elif isinstance(event, PositionUpdate):
            symbols = event.symbols
            gone = set(liquidated)
            await worker.run(lambda: stream_positions_ingest(account=account, positions=event.positions,
                                                             symbols=symbols, liquidated_symbols=gone))
            liquidated.difference_update(gone)
            self.stats["positions"][account_id] += 1
