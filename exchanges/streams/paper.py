"""The paper venue's own fill events. The paper book lives in the platform's database
and settles lazily when it is read (stops, take-profits and liquidations execute on the
read that sees the price path cross them), so the stream reads it at a short interval
and reports what changed: orders that left the open list or gained fills, and positions
whose size or entry moved."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from exchanges.adapters.base import ExchangeTrader, OrderResult, Position
from exchanges.adapters.errors import ExchangeError, OrderNotFound
from exchanges.streams import (
    Gap,
    OrderUpdate,
    PositionUpdate,
    StreamDisconnected,
    StreamEvent,
)

RunSync = Callable[[Callable[[], Any]], Awaitable[Any]]


def _key(positions: list[Position]) -> frozenset:
    return frozenset((p.symbol, str(p.side), p.size, p.entry_price) for p in positions)


class PaperUserStream:
    venue = "paper"

    def __init__(self, *, trader_factory: Callable[[], ExchangeTrader], run_sync: RunSync,
                 interval: float = 0.25) -> None:
        self._trader_factory = trader_factory
        self._run_sync = run_sync
        self.interval = interval

    def _poll(self, trader: ExchangeTrader, known: dict[str, OrderResult]) -> tuple[
            dict[str, OrderResult], list[OrderResult], list[Position]]:
        now_open = {o.order_id: o for o in trader.get_open_orders()}
        changed: list[OrderResult] = []
        for order_id, before in known.items():
            after = now_open.get(order_id)
            if after is None:
                try:
                    after = trader.get_order(before.symbol, order_id=order_id)
                except OrderNotFound:
                    continue
            if (after.status, after.executed_quantity) != (before.status, before.executed_quantity):
                changed.append(after)
        return now_open, changed, trader.get_positions()

    async def events(self) -> AsyncIterator[StreamEvent]:
        try:
            trader = await self._run_sync(self._trader_factory)
        except ExchangeError as exc:
            raise StreamDisconnected(f"paper: {exc}") from exc
        try:
            try:
                known, _, positions = await self._run_sync(lambda: self._poll(trader, {}))
            except ExchangeError as exc:
                raise StreamDisconnected(f"paper: {exc}") from exc
            yield Gap("connected")
            while True:
                await asyncio.sleep(self.interval)
                try:
                    known_now, changed, now_positions = await self._run_sync(
                        lambda known=known: self._poll(trader, known))
                except ExchangeError as exc:
                    raise StreamDisconnected(f"paper: {exc}") from exc
                stamp = int(time.time() * 1000)
                for result in changed:
                    yield OrderUpdate(result=result, event_time_ms=stamp)
                if _key(now_positions) != _key(positions):
                    yield PositionUpdate(positions=tuple(now_positions), symbols=None, event_time_ms=stamp)
                known, positions = known_now, now_positions
        finally:
            await self._run_sync(trader.close)
