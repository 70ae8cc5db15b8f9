"""The websocket side of the fake Binance USD-M venue: the user-data stream at
``/private/ws?listenKey=<key>`` (the URL ccxt.pro builds for linear futures), fed by the
REST fake's event hook, with the events Binance documents:

- ORDER_TRADE_UPDATE for every order change (x = NEW, TRADE, CANCELED, EXPIRED),
- ACCOUNT_UPDATE (reason ORDER) with the balance and the symbol's position before the
  ORDER_TRADE_UPDATE of each trade, as Binance sends them.

It misbehaves as real streams do, on demand: ``drop_next`` (messages lost),
``duplicate_next`` (delivered twice), ``disconnect_all`` (the socket closed under the
client), and an unknown listenKey is refused.

    with FakeBinanceFutures() as rest, FakeBinanceUserStream(rest) as ws:
        ws.url        # ws://127.0.0.1:<port>/ws: ccxt's urls['api']['ws']['linear']
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qs, urlsplit

from websockets.asyncio.server import serve

from tests.fakes.binance_server import FakeBinanceFutures, _fmt


class FakeBinanceUserStream:
    def __init__(self, rest: FakeBinanceFutures) -> None:
        self.rest = rest
        self.delivered: list[dict[str, Any]] = []
        self.dropped: list[dict[str, Any]] = []
        self.connections = 0
        self._drop: list[str | None] = []
        self._duplicate = 0
        self._clients: set[Any] = set()
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: Any = None
        self._port = 0
        rest.subscribe(self._on_event)

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> FakeBinanceUserStream:
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

        self._thread = threading.Thread(target=run, name="fake-binance-ws", daemon=True)
        self._thread.start()
        ready.wait(5)
        return self

    def stop(self) -> None:
        if self._loop is None:
            return

        async def shutdown() -> None:
            self._server.close()
            for ws in list(self._clients):  # no closing handshake to wait for: the fake is going away
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

    def __enter__(self) -> FakeBinanceUserStream:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self._port}/ws"

    # ------------------------------------------------------------------ misbehaviour
    def drop_next(self, count: int = 1, event: str | None = None) -> None:
        """Lose the next ``count`` messages (of type ``event``: "ACCOUNT_UPDATE",
        "ORDER_TRADE_UPDATE" or one execution type of it, "ORDER_TRADE_UPDATE:TRADE")."""
        with self._lock:
            self._drop.extend([event] * count)

    def duplicate_next(self, count: int = 1) -> None:
        with self._lock:
            self._duplicate += count

    def disconnect_all(self) -> None:
        """Close every client's socket, as Binance does at the 24-hour mark or on a fault."""
        async def close() -> None:
            # The close frame goes out at once; a client slow to answer it (the SDK's
            # thread) must not hold the caller, so the handshake finishes in the background.
            for ws in list(self._clients):
                asyncio.ensure_future(ws.close(1001, "going away"))

        asyncio.run_coroutine_threadsafe(close(), self._loop).result(5)

    def client_count(self) -> int:
        return len(self._clients)

    def wait_for_clients(self, count: int = 1, timeout: float = 10.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if len(self._clients) >= count:
                return True
            time.sleep(0.02)
        return False

    # ------------------------------------------------------------------ serving
    async def _handler(self, ws: Any) -> None:
        split = urlsplit(ws.request.path)
        key = (parse_qs(split.query).get("listenKey") or [""])[0]
        if split.path != "/private/ws" or key not in self.rest.listen_keys:
            await ws.close(1008, "invalid listenKey")
            return
        self.connections += 1
        self._clients.add(ws)
        try:
            async for _ in ws:  # Binance ignores what clients send on the user stream
                pass
        except Exception:  # a client going away is normal here
            pass
        finally:
            self._clients.discard(ws)

    def _on_event(self, kind: str, *args: Any) -> None:
        message = self._order_message(*args) if kind == "order" else self._account_message(*args)
        with self._lock:
            kinds = (None, message["e"], f'{message["e"]}:{message.get("o", {}).get("x")}')
            if self._drop and self._drop[0] in kinds:
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
            self._loop.call_soon_threadsafe(self._broadcast, text)

    def _broadcast(self, text: str) -> None:
        for ws in list(self._clients):
            asyncio.ensure_future(self._send(ws, text))

    @staticmethod
    async def _send(ws: Any, text: str) -> None:
        try:
            await ws.send(text)
        except Exception:  # the client went away meanwhile
            pass

    def _order_message(self, order: dict[str, Any], execution: str, trade: dict[str, Any] | None) -> dict[str, Any]:
        now = int(time.time() * 1000)
        return {"e": "ORDER_TRADE_UPDATE", "E": now, "T": order["updateTime"], "o": {
            "s": order["symbol"], "c": order["clientOrderId"], "S": order["side"], "o": order["type"],
            "f": order["timeInForce"], "q": order["origQty"], "p": order["price"], "ap": order["avgPrice"],
            "sp": order.get("stopPrice") or "0", "x": execution, "X": order["status"], "i": order["orderId"],
            "l": trade["qty"] if trade else "0", "z": order["executedQty"],
            "L": trade["price"] if trade else "0", "N": "USDT", "n": trade["commission"] if trade else "0",
            "T": trade["time"] if trade else order["updateTime"], "t": trade["id"] if trade else 0,
            "b": "0", "a": "0", "m": bool(trade and trade["maker"]), "R": order["reduceOnly"],
            "wt": order.get("workingType", "CONTRACT_PRICE"), "ot": order.get("origType", order["type"]),
            "ps": "BOTH", "cp": False, "rp": trade["realizedPnl"] if trade else "0", "pP": False,
            "si": 0, "ss": 0, "V": "EXPIRE_MAKER", "pm": "NONE", "gtd": 0}}

    def _account_message(self, symbol: str) -> dict[str, Any]:
        rest = self.rest
        pos = rest.positions[symbol]
        now = int(time.time() * 1000)
        wallet = _fmt(rest.wallet_balance, "0.00000001")
        return {"e": "ACCOUNT_UPDATE", "E": now, "T": now, "a": {
            "m": "ORDER",
            "B": [{"a": "USDT", "wb": wallet, "cw": wallet, "bc": "0"}],
            "P": [{"s": symbol, "pa": rest._qty(symbol, pos.amount), "ep": _fmt(pos.entry or Decimal(0), "0.0000000"),
                   "bep": _fmt(pos.entry or Decimal(0), "0.0000000"), "cr": _fmt(rest.realized_pnl, "0.00000000"),
                   "up": _fmt(rest._upnl(symbol), "0.00000000"), "mt": "cross", "iw": "0", "ps": "BOTH"}]}}
