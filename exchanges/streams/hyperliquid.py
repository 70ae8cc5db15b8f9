"""Hyperliquid user events over the official SDK's websocket (hyperliquid.info.Info with
its WebsocketManager): ``orderUpdates`` and ``userFills`` for the account's address.

The two channels arrive separately and in either order, so an order update is held until
the fills that explain its execution have arrived (then it goes out with them, and
fills stay unique by trade id); what stays unexplained longer than ``gap_grace`` seconds
is a lost message: a Gap, after which the consumer catches up over REST. Hyperliquid's
user channels push no positions: the update says so (positions_follow=False) and the
consumer reads them after a fill. The SDK's socket does not reconnect by itself: a dead
socket thread ends the stream (StreamDisconnected), and the consumer opens a new one.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

from alpha_platform.common.secrets import Credentials
from exchanges.adapters.base import (
    D0,
    FillInfo,
    OrderResult,
    OrderSide,
    OrderStatus,
    OrderType,
    VenueSpec,
    ms_to_datetime,
)
from exchanges.streams import Gap, OrderUpdate, StreamDisconnected, StreamEvent

STATUS = {"open": OrderStatus.NEW, "triggered": OrderStatus.NEW, "filled": OrderStatus.FILLED,
          "rejected": OrderStatus.REJECTED}


def _status(raw: str, executed: Decimal) -> OrderStatus:
    if raw in STATUS:
        status = STATUS[raw]
    elif raw.endswith("Canceled") or raw == "canceled":
        status = OrderStatus.CANCELLED
    elif raw.endswith("Rejected"):
        status = OrderStatus.REJECTED
    else:
        status = OrderStatus.NEW
    if status == OrderStatus.NEW and executed > 0:
        return OrderStatus.PARTIALLY_FILLED
    return status


class HyperliquidUserStream:
    venue = "hyperliquid"

    def __init__(self, *, spec: VenueSpec, credentials: Credentials, rest_url: str, ws_base_url: str,
                 gap_grace: float = 2.0, connect_timeout: float = 15.0) -> None:
        self.spec = spec
        self.venue = spec.venue
        self.address = credentials.reveal("account_address").strip().lower()
        self.rest_url = rest_url.rstrip("/")
        self.ws_base_url = ws_base_url.rstrip("/")
        self.gap_grace = gap_grace
        self.connect_timeout = connect_timeout
        self._reverse = {v: k for k, v in spec.symbol_map.items()}

    def __repr__(self) -> str:
        return f"<HyperliquidUserStream account={self.spec.account_ref}>"

    def _open(self, loop: asyncio.AbstractEventLoop, queue: asyncio.Queue) -> Any:
        from hyperliquid.api import API
        from hyperliquid.info import Info

        api = API(self.rest_url)
        meta, spot_meta = api.post("/info", {"type": "meta"}), api.post("/info", {"type": "spotMeta"})
        info = Info(self.ws_base_url, skip_ws=False, meta=meta, spot_meta=spot_meta)

        def push(message: Any) -> None:
            loop.call_soon_threadsafe(queue.put_nowait, message)

        info.subscribe({"type": "orderUpdates", "user": self.address}, push)
        info.subscribe({"type": "userFills", "user": self.address}, push)
        return info

    async def events(self) -> AsyncIterator[StreamEvent]:
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue = asyncio.Queue()
        try:
            info = await asyncio.to_thread(self._open, loop, queue)
        except Exception as exc:
            raise StreamDisconnected(f"connect: {type(exc).__name__}: {exc}") from exc
        fills: dict[int, dict[int, FillInfo]] = {}
        orders: dict[int, dict[str, Any]] = {}
        emitted: dict[int, tuple[str, Decimal, int]] = {}
        unexplained: dict[int, float] = {}  # oid -> deadline
        try:
            deadline = time.monotonic() + self.connect_timeout
            subscribed = False
            while not subscribed:  # the userFills snapshot follows both subscriptions
                if time.monotonic() > deadline or not info.ws_manager.is_alive():
                    raise StreamDisconnected("connect: no userFills snapshot")
                try:
                    message = await asyncio.wait_for(queue.get(), timeout=0.2)
                except TimeoutError:
                    continue
                subscribed = message.get("channel") == "userFills" and message["data"].get("isSnapshot")
            yield Gap("connected")  # the snapshot's fills are the catch-up's to apply
            while True:
                try:
                    message = await asyncio.wait_for(queue.get(), timeout=0.25)
                except TimeoutError:
                    message = None
                if not info.ws_manager.is_alive() or not info.ws_manager.ws.keep_running:
                    raise StreamDisconnected("hyperliquid: socket closed")
                touched: set[int] = set()
                if message is not None and message.get("channel") == "userFills":
                    if message["data"].get("isSnapshot"):
                        continue
                    for raw in message["data"].get("fills") or []:
                        oid = int(raw["oid"])
                        fills.setdefault(oid, {})[int(raw["tid"])] = FillInfo(
                            trade_id=str(raw["tid"]), quantity=Decimal(raw["sz"]), price=Decimal(raw["px"]),
                            fee=Decimal(raw.get("fee") or "0"), realized_pnl=Decimal(raw.get("closedPnl") or "0"),
                            timestamp=ms_to_datetime(raw.get("time")))
                        touched.add(oid)
                elif message is not None and message.get("channel") == "orderUpdates":
                    for update in message["data"]:
                        oid = int(update["order"]["oid"])
                        orders[oid] = update
                        touched.add(oid)
                now = time.monotonic()
                for oid in touched:
                    event = self._ready(oid, orders.get(oid), fills.get(oid, {}), emitted)
                    if event is None:
                        unexplained.setdefault(oid, now + self.gap_grace)
                    else:
                        unexplained.pop(oid, None)
                        if event is not False:
                            yield event
                late = [oid for oid, due in unexplained.items() if due <= now]
                for oid in late:
                    unexplained.pop(oid)
                if late:
                    yield Gap(f"order updates and fills disagree for oids {sorted(late)}")
        finally:
            await asyncio.to_thread(info.disconnect_websocket)

    def _ready(self, oid: int, update: dict[str, Any] | None, fills: dict[int, FillInfo],
               emitted: dict[int, tuple[str, Decimal, int]]) -> OrderUpdate | None | bool:
        """The update for ``oid`` if its fills explain its execution; None while they do
        not; False when there is nothing new to say (a duplicate)."""
        filled = sum((f.quantity for f in fills.values()), D0)
        if update is None:
            return None if filled > 0 else False
        raw = update["order"]
        orig, remaining = Decimal(raw["origSz"]), Decimal(raw["sz"])
        executed = orig - remaining if update["status"] != "filled" or remaining > 0 else orig
        if filled != executed:
            return None
        key = (update["status"], executed, len(fills))
        if emitted.get(oid) == key:
            return False
        emitted[oid] = key
        coin = raw["coin"]
        symbol = self._reverse.get(coin, coin)
        cloid = raw.get("cloid") or ""
        ordered = sorted(fills.values(), key=lambda f: f.timestamp)
        average = (sum((f.quantity * f.price for f in ordered), D0) / executed) if executed > 0 else None
        result = OrderResult(
            symbol=symbol, order_id=str(oid), client_order_id=cloid, side=OrderSide.BUY if raw["side"] == "B"
            else OrderSide.SELL, order_type=OrderType.LIMIT, quantity=orig, price=Decimal(raw["limitPx"]),
            executed_quantity=executed, executed_price=average, status=_status(update["status"], executed),
            fees=sum((f.fee for f in ordered), D0), timestamp=ms_to_datetime(update.get("statusTimestamp")),
            exchange=self.venue, raw_data=dict(update), fee_currency="USDC", fills=tuple(ordered),
            venue_client_order_id=cloid)
        return OrderUpdate(result=result, event_time_ms=int(update.get("statusTimestamp") or 0),
                           positions_follow=False)
