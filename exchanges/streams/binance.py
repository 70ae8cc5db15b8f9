"""Binance USD-M user-data stream over ccxt.pro (watch_orders / watch_positions; each
ORDER_TRADE_UPDATE's trade is read from ccxt's own trade cache, which the same message
fills before the order resolves, so an order update and its fill arrive together).

ccxt builds the private URL from ``urls['api']['ws']['linear']`` and a listenKey it
creates over REST (POST /fapi/v1/listenKey) and keeps alive, so pointing both URL sets at
the configured hosts is all it takes to talk to any deployment (or the loopback fake).
Binance's stream carries no sequence number: a lost message is found by the pairing of
trades with position changes (PairingWatch), a reconnection by the socket closing.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import ccxt.pro

from alpha_platform.common.money import ZERO, to_decimal
from alpha_platform.common.secrets import Credentials
from exchanges.adapters.base import (
    FillInfo,
    OrderResult,
    OrderSide,
    OrderStatus,
    OrderType,
    Position,
    PositionSide,
    VenueSpec,
    ms_to_datetime,
)
from exchanges.streams import (
    Gap,
    OrderUpdate,
    PairingWatch,
    PositionUpdate,
    StreamDisconnected,
    StreamEvent,
)

logger = logging.getLogger(__name__)

REST_PATHS = {"fapiPublic": "/fapi/v1", "fapiPublicV2": "/fapi/v2", "fapiPublicV3": "/fapi/v3",
              "fapiPrivate": "/fapi/v1", "fapiPrivateV2": "/fapi/v2", "fapiPrivateV3": "/fapi/v3"}
UNIFIED_STATUS = {"closed": OrderStatus.FILLED, "canceled": OrderStatus.CANCELLED,
                  "expired": OrderStatus.EXPIRED, "rejected": OrderStatus.REJECTED}
UNIFIED_TYPE = {"limit": OrderType.LIMIT, "stop_market": OrderType.STOP_MARKET, "stop": OrderType.STOP_MARKET,
                "take_profit_market": OrderType.TAKE_PROFIT_MARKET, "take_profit": OrderType.TAKE_PROFIT_MARKET}
LIQUIDATION_PREFIXES = ("autoclose-", "adl_autoclose")


class BinanceUserStream:
    venue = "binance_futures"

    def __init__(self, *, spec: VenueSpec, credentials: Credentials, rest_url: str, ws_url: str,
                 gap_grace: float = 2.0, connect_timeout: float = 10.0) -> None:
        self.spec = spec
        self.venue = spec.venue
        self._credentials = credentials
        self.rest_url = rest_url.rstrip("/")
        self.ws_url = ws_url.rstrip("/")
        self.connect_timeout = connect_timeout
        self._pairing = PairingWatch(gap_grace)
        self._reverse = {v: k for k, v in spec.symbol_map.items()}
        self._position_time: dict[str, int] = {}
        self._sizes: dict[str, Decimal] = {}
        self._seen_trades: set[str] = set()

    def __repr__(self) -> str:
        return f"<BinanceUserStream account={self.spec.account_ref}>"

    def _build(self) -> Any:
        exchange = ccxt.pro.binanceusdm({
            "apiKey": self._credentials.reveal("api_key"), "secret": self._credentials.reveal("api_secret"),
            # The stream's own calls (listenKey, subscriptions) do not go through the
            # Guard: ccxt's throttle is the one limiter on this path.
            "enableRateLimit": True, "timeout": 10000,
            "options": {"defaultType": "swap", "fetchMarkets": {"types": ["linear"]}, "fetchCurrencies": False,
                        "adjustForTimeDifference": False, "disableFuturesSandboxWarning": True,
                        # The catch-up after each connection reads the positions; ccxt's own
                        # snapshot would be a second read of the same thing.
                        "watchPositions": {"fetchPositionsSnapshot": False}},
        })
        api = {name: self.rest_url + path for name, path in REST_PATHS.items()}
        exchange.urls = {**exchange.urls, "api": {**api, "ws": {"linear": self.ws_url}}}
        return exchange

    def _internal(self, exchange: Any, unified: str | None) -> str:
        try:
            venue_symbol = exchange.market(unified)["id"]
        except Exception:
            venue_symbol = unified or ""
        return self._reverse.get(venue_symbol, venue_symbol)

    async def _pump(self, name: str, watch: Any, queue: asyncio.Queue) -> None:
        try:
            while True:
                queue.put_nowait((name, await watch()))
        except asyncio.CancelledError:
            raise
        except BaseException as exc:
            queue.put_nowait(("error", exc))

    async def events(self) -> AsyncIterator[StreamEvent]:
        exchange = self._build()
        self._pairing = PairingWatch(self._pairing.grace)
        queue: asyncio.Queue = asyncio.Queue()
        tasks: list[asyncio.Task] = []
        try:
            try:
                await exchange.load_markets()
                tasks = [asyncio.create_task(self._pump("orders", exchange.watch_orders, queue)),
                         asyncio.create_task(self._pump("positions", exchange.watch_positions, queue))]
                await self._connected(exchange, queue)
            except StreamDisconnected:
                raise
            except Exception as exc:
                raise StreamDisconnected(f"connect: {type(exc).__name__}: {exc}") from exc
            yield Gap("connected")
            while True:
                try:
                    name, payload = await asyncio.wait_for(queue.get(), timeout=0.25)
                except TimeoutError:
                    name, payload = "tick", None
                if name == "error":
                    raise StreamDisconnected(f"{type(payload).__name__}: {payload}") from payload
                if name == "orders":
                    for order in payload:
                        event = self._order_update(exchange, order)
                        if event is not None:
                            yield event
                elif name == "positions":
                    event = self._position_update(exchange, payload)
                    if event is not None:
                        yield event
                for reason in self._pairing.expired(time.monotonic()):
                    yield Gap(reason)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            try:
                await exchange.close()
            except Exception:  # closing must not mask why the stream ended
                logger.debug("closing the ccxt.pro client failed", exc_info=True)

    async def _connected(self, exchange: Any, queue: asyncio.Queue) -> None:
        """Wait until the listenKey exists and the private socket is open."""
        deadline = time.monotonic() + self.connect_timeout
        while time.monotonic() < deadline:
            if not queue.empty() and queue._queue[0][0] == "error":
                raise StreamDisconnected(f"connect: {queue._queue[0][1]!r}")
            key = (exchange.options.get("linear") or {}).get("listenKey")
            if key:
                client = exchange.clients.get(exchange.get_private_ws_url("linear", key))
                if client is not None and client.connected.done() and not client.connected.exception():
                    return
            await asyncio.sleep(0.02)
        raise StreamDisconnected("connect: timed out")

    # ------------------------------------------------------------------ conversions
    def _order_update(self, exchange: Any, order: dict[str, Any]) -> OrderUpdate | None:
        unified = order.get("symbol")
        symbol = self._internal(exchange, unified)
        amount = to_decimal(order.get("amount"), default=ZERO)
        filled = to_decimal(order.get("filled"), default=ZERO)
        filled = min(filled, amount) if amount else filled
        status = UNIFIED_STATUS.get(order.get("status") or "")
        if status is None:
            status = OrderStatus.PARTIALLY_FILLED if filled > 0 else OrderStatus.NEW
        fills = []
        for trade in exchange.myTrades or []:
            if str(trade.get("order")) != str(order.get("id")):
                continue
            fee = (trade.get("fee") or {}).get("cost")
            fills.append(FillInfo(trade_id=str(trade["id"]),
                                  quantity=to_decimal(trade.get("amount"), default=ZERO),
                                  price=to_decimal(trade.get("price"), default=ZERO), fee=to_decimal(fee, default=ZERO),
                                  # ccxt's unified trade has no realized PnL: Binance's "rp".
                                  realized_pnl=to_decimal((trade.get("info") or {}).get("rp"), default=ZERO),
                                  timestamp=ms_to_datetime(trade.get("timestamp"))))
        fee_total = sum((f.fee for f in fills), ZERO)
        client_id = order.get("clientOrderId") or ""
        event_ms = int(order.get("lastUpdateTimestamp") or order.get("timestamp") or time.time() * 1000)
        position_side = None
        if order.get("side") in ("buy", "sell"):
            opening = not order.get("reduceOnly")
            long = (order["side"] == "buy") == opening
            position_side = PositionSide.LONG if long else PositionSide.SHORT
        result = OrderResult(
            symbol=symbol, order_id=str(order.get("id") or ""), client_order_id=client_id,
            side=OrderSide.BUY if order.get("side") == "buy" else OrderSide.SELL,
            order_type=UNIFIED_TYPE.get(str(order.get("type") or "").lower(), OrderType.MARKET),
            quantity=amount, price=to_decimal(order.get("price"), default=None) or None, executed_quantity=filled,
            executed_price=to_decimal(order.get("average"), default=None) or None, status=status, fees=fee_total,
            timestamp=ms_to_datetime(event_ms), exchange=self.venue, raw_data=dict(order.get("info") or {}),
            position_side=position_side, reduce_only=bool(order.get("reduceOnly")),
            stop_price=to_decimal(order.get("triggerPrice"), default=None) or None, fills=tuple(fills))
        new_trades = [t for t in fills if t.trade_id not in self._seen_trades]
        self._seen_trades.update(t.trade_id for t in new_trades)
        now = time.monotonic()
        for _ in new_trades:
            self._pairing.saw("fill", symbol, "position change", now)
        return OrderUpdate(result=result, event_time_ms=event_ms,
                           liquidation=client_id.startswith(LIQUIDATION_PREFIXES))

    def _position_update(self, exchange: Any, positions: list[dict[str, Any]]) -> PositionUpdate | None:
        out: list[Position] = []
        symbols: set[str] = set()
        latest = 0
        now = time.monotonic()
        for raw in positions:
            symbol = self._internal(exchange, raw.get("symbol"))
            event_ms = int(raw.get("timestamp") or 0)
            if event_ms and event_ms < self._position_time.get(symbol, 0):
                continue  # an older state than one already applied: never regress
            self._position_time[symbol] = event_ms
            latest = max(latest, event_ms)
            symbols.add(symbol)
            size = to_decimal(raw.get("contracts"), default=ZERO)
            if symbol not in self._sizes or size != self._sizes[symbol]:  # unknown before: a change
                self._pairing.saw("position change", symbol, "fill", now)
            self._sizes[symbol] = size
            if size <= 0 or raw.get("side") not in ("long", "short"):
                continue
            entry = to_decimal(raw.get("entryPrice"), default=ZERO)
            upnl = to_decimal(raw.get("unrealizedPnl"), default=ZERO)
            side = PositionSide.LONG if raw["side"] == "long" else PositionSide.SHORT
            mark = entry + (upnl / size if side == PositionSide.LONG else -upnl / size)
            out.append(Position(symbol=symbol, side=side, size=size, entry_price=entry, mark_price=mark,
                                unrealized_pnl=upnl, percentage_pnl=ZERO, leverage=ZERO, margin=ZERO,
                                timestamp=ms_to_datetime(event_ms or None), exchange=self.venue,
                                margin_type=str(raw.get("marginMode") or "cross"),
                                raw_data=dict(raw.get("info") or {})))
        if not symbols:
            return None
        return PositionUpdate(positions=tuple(out), symbols=frozenset(symbols), event_time_ms=latest)
