"""The websocket side of the fake Hyperliquid API, fed by the REST fake's event hook: the
``orderUpdates`` and ``userFills`` user subscriptions in the shapes Hyperliquid documents
(userFills starts with an ``isSnapshot`` message, as the venue sends on subscribing), and
``{"method": "ping"}`` answered with ``{"channel": "pong"}``. The SDK's WebsocketManager
connects to ``<base_url>/ws``: give it ``http_url`` as the base.

Misbehaves on demand: ``drop_next`` (lost messages, by channel), ``duplicate_next``,
``disconnect_all``.
"""

from __future__ import annotations

import json
from typing import Any

from tests.fakes.hyperliquid_server import HyperliquidFakeServer, fmt
from tests.fakes.ws_server import LoopbackWebsocketServer


class FakeHyperliquidWs(LoopbackWebsocketServer):
    thread_name = "fake-hyperliquid-ws"

    def __init__(self, rest: HyperliquidFakeServer) -> None:
        super().__init__()
        self.rest = rest
        rest.subscribe(self._on_event)

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self._port}"

    async def _handler(self, ws: Any) -> None:
        if ws.request.path != "/ws":
            await ws.close(1008, "not found")
            return
        self.connections += 1
        self._clients[ws] = {}
        try:
            await ws.send("Websocket connection established.")
            async for raw in ws:
                message = json.loads(raw)
                if message.get("method") == "ping":
                    await ws.send(json.dumps({"channel": "pong"}))
                elif message.get("method") == "subscribe":
                    sub = message["subscription"]
                    user = str(sub.get("user", "")).lower()
                    self._clients[ws][sub["type"]] = user
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
            self._clients.pop(ws, None)

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
        self._publish(message, (channel,), lambda subscriptions: subscriptions.get(channel) == user)
