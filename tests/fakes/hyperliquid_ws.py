"""The websocket side of the fake Hyperliquid API, fed by the REST fake's event hook: the
``orderUpdates`` and ``userFills`` user subscriptions in the shapes Hyperliquid documents
(userFills starts with an ``isSnapshot`` message, as the venue sends on subscribing), and
``{"method": "ping"}`` answered with ``{"channel": "pong"}``. The SDK's WebsocketManager
connects to ``<base_url>/ws``: give it ``http_url`` as the base.

Misbehaves on demand: ``drop_next`` (lost messages, by channel), ``duplicate_next``,
``disconnect_all``.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from typing import Any

from websockets.asyncio.server import serve

from tests.fakes.hyperliquid_server import HyperliquidFakeServer, fmt


class FakeHyperliquidWs:
    def __init__(self, rest: HyperliquidFakeServer) -> None:
        self.rest = rest
        self.delivered: list[dict[str, Any]] = []
        self.dropped: list[dict[str, Any]] = []
        self.connections = 0
        self._drop: list[str | None] = []
        self._duplicate = 0
        self._subs: dict[Any, dict[str, str]] = {}  # socket -> {channel: user}
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: Any = None
        self._port = 0
        rest.subscribe(self._on_event)

    def start(self) -> FakeHyperliquidWs:
        ready = threading.Event()

        def run() -> None:
            loop = asyncio.new_event_loop()
            asyncio.set_event_loop(loop)
            self._loop = loop

            async def boot() -> None:
                self._server = await serve(self._handler, "127.0.0.1", 0, ping_interval=None)
                self._port = self._server.sockets[0].getsockname()[1]

            loop.run_until_complete(boot())
            ready.set()
            loop.run_forever()
            loop.close()

        self._thread = threading.Thread(target=run, name="fake-hyperliquid-ws", daemon=True)
        self._thread.start()
        ready.wait(5)
        return self

    def stop(self) -> None:
        if self._loop is None:
            return

        async def shutdown() -> None:
            self._server.close()
            for ws in list(self._subs):  # no closing handshake to wait for: the fake is going away
                ws.transport.abort()
            try:
                await asyncio.wait_for(self._server.wait_closed(), 3)
            except TimeoutError:
                pass

        asyncio.run_coroutine_threadsafe(shutdown(), self._loop).result(5)
        self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread is not None:
            self._thread.join(5)
        self._loop = None

    def __enter__(self) -> FakeHyperliquidWs:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self._port}"

    def drop_next(self, count: int = 1, channel: str | None = None) -> None:
        with self._lock:
            self._drop.extend([channel] * count)

    def duplicate_next(self, count: int = 1) -> None:
        with self._lock:
            self._duplicate += count

    def disconnect_all(self) -> None:
        async def close() -> None:
            # The close frame goes out at once; a client slow to answer it (the SDK's
            # thread) must not hold the caller, so the handshake finishes in the background.
            for ws in list(self._subs):
                asyncio.ensure_future(ws.close(1001, "going away"))

        asyncio.run_coroutine_threadsafe(close(), self._loop).result(5)

    async def _handler(self, ws: Any) -> None:
        if ws.request.path != "/ws":
            await ws.close(1008, "not found")
            return
        self.connections += 1
        self._subs[ws] = {}
        try:
            await ws.send("Websocket connection established.")
            async for raw in ws:
                message = json.loads(raw)
                if message.get("method") == "ping":
                    await ws.send(json.dumps({"channel": "pong"}))
                elif message.get("method") == "subscribe":
                    sub = message["subscription"]
                    user = str(sub.get("user", "")).lower()
                    self._subs[ws][sub["type"]] = user
                    await ws.send(json.dumps({"channel": "subscriptionResponse",
                                              "data": {"method": "subscribe", "subscription": sub}}))
                    if sub["type"] == "userFills":
                        with self.rest._lock:
                            fills = [dict(f) for f in self.rest._account(user).fills] \
                                if user in self.rest.accounts else []
                        await ws.send(json.dumps({"channel": "userFills", "data": {
                            "isSnapshot": True, "user": user, "fills": fills}}))
        except Exception:  # a client going away is normal here
            pass
        finally:
            self._subs.pop(ws, None)

    def _on_event(self, kind: str, *args: Any) -> None:
        if kind == "order":
            order = args[0]
            user = order.user.lower()
            channel = "orderUpdates"
            message = {"channel": channel, "data": [{"order": {
                "coin": order.coin, "side": "B" if order.is_buy else "A", "limitPx": fmt(order.limit_px),
                "sz": fmt(order.sz), "oid": order.oid, "timestamp": order.timestamp, "origSz": fmt(order.orig_sz),
                "cloid": order.cloid}, "status": order.status, "statusTimestamp": order.status_ts}]}
        else:
            user, fill = args[0].lower(), args[1]
            channel = "userFills"
            message = {"channel": channel, "data": {"user": user, "fills": [fill]}}
        with self._lock:
            if self._drop and self._drop[0] in (None, channel):
                self._drop.pop(0)
                self.dropped.append(message)
                return
            copies = 1
            if self._duplicate:
                self._duplicate -= 1
                copies = 2
            self.delivered.extend([message] * copies)
        if self._loop is None:
            return
        text = json.dumps(message)
        for _ in range(copies):
            self._loop.call_soon_threadsafe(self._broadcast, channel, user, text)

    def _broadcast(self, channel: str, user: str, text: str) -> None:
        for ws, subs in list(self._subs.items()):
            if subs.get(channel) == user:
                asyncio.ensure_future(self._send(ws, text))

    @staticmethod
    async def _send(ws: Any, text: str) -> None:
        try:
            await ws.send(text)
        except Exception:  # the client went away meanwhile
            pass

    def wait_for_clients(self, count: int = 1, timeout: float = 10.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if len(self._subs) >= count:
                return True
            time.sleep(0.02)
        return False
