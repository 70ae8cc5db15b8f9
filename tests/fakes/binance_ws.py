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

import time
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qs, urlsplit

from tests.fakes.binance_server import FakeBinanceFutures, _fmt
from tests.fakes.ws_server import LoopbackWebsocketServer


class FakeBinanceUserStream(LoopbackWebsocketServer):
    thread_name = "fake-binance-ws"

    def __init__(self, rest: FakeBinanceFutures) -> None:
        super().__init__()
        self.rest = rest
        rest.subscribe(self._on_event)

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self._port}/ws"

    # ------------------------------------------------------------------ misbehaviour
    def drop_next(self, count: int = 1, event: str | None = None) -> None:
        """Lose the next ``count`` messages (of type ``event``: "ACCOUNT_UPDATE",
        "ORDER_TRADE_UPDATE" or one execution type of it, "ORDER_TRADE_UPDATE:TRADE")."""
        super().drop_next(count, event)

    def disconnect_all(self) -> None:
        """Close every client's socket, as Binance does at the 24-hour mark or on a fault."""
        super().disconnect_all()

    # ------------------------------------------------------------------ serving
    async def _handler(self, ws: Any) -> None:
        split = urlsplit(ws.request.path)
        key = (parse_qs(split.query).get("listenKey") or [""])[0]
        if split.path != "/private/ws" or key not in self.rest.listen_keys:
            await ws.close(1008, "invalid listenKey")
            return
        self.connections += 1
        self._clients[ws] = {}
        try:
            async for _ in ws:  # Binance ignores what clients send on the user stream
                pass
        except Exception:  # a client going away is normal here
            pass
        finally:
            self._clients.pop(ws, None)

    def _on_event(self, kind: str, *args: Any) -> None:
        message = self._order_message(*args) if kind == "order" else self._account_message(*args)
        self._publish(message, (message["e"], f'{message["e"]}:{message.get("o", {}).get("x")}'))

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
