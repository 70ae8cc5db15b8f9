"""A fake Hyperliquid API that the official SDK really talks to (loopback only).

``POST /info`` serves what ``hyperliquid.info.Info`` needs at construction (``meta``,
``spotMeta``) and the reads the adapter makes. ``POST /exchange`` takes signed L1 actions
(order, cancel, cancelByCloid, updateLeverage), recovers the signer with the SDK's own
hashing and eth_account, and acts for the account that signer is an approved agent of,
as the real venue does. Answers use Hyperliquid's shapes, including its error shapes.

State is a tiny cross-margin perpetual venue: orders by oid and cloid, positions
(szi, entryPx), a USDC balance, leverage per asset, resting limit orders and trigger
orders that fire when a test moves the mark (``set_mark``). Every request is recorded;
tests script faults with ``inject``:

    with HyperliquidFakeServer() as server:
        server.approve_agent(main.address, agent.address)
        server.inject(kind="order", fault="lost")          # accept, then drop the answer
        server.inject(kind="info:allMids", fault="http500", times=2)

Fault kinds: ``order`` | ``cancel`` | ``cancelByCloid`` | ``updateLeverage`` (an
/exchange action type), ``exchange`` (any action), ``info:<type>``, ``info`` (any read).
Faults: ``timeout`` (answer after ``delay`` seconds), ``http500``, ``http429``,
``malformed`` (200 with a body that is not JSON), ``lost`` (the action is applied, then
the connection is closed without an answer), ``lost_500`` (applied, then HTTP 500: a 5xx
after executing), ``lost_timeout`` (applied, then the answer comes after ``delay``
seconds), ``late`` (held for ``delay`` seconds, past the client's timeout, THEN applied:
the client sees a timeout and its look-ups find nothing, yet the order exists afterwards).

Misbehaviour as the real venue shows it, beside the faults:

- ``visibility_delay`` (seconds, constructor or attribute): a new order acts at once (it
  fills, moves the position) but ``orderStatus`` answers ``unknownOid`` and the open-order
  and fill lists leave it out until the delay has passed (the API's indexing lag);
- ``set_liquidity(coin, sz)``: what one taker order can fill at the mark. An IOC order (a
  market order) fills that much and the rest is cancelled (orderStatus "canceled" with
  sz < origSz); a GTC limit that crosses fills that much and rests with the remainder.
  ``None`` (the default) is unlimited.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from dataclasses import dataclass, field
from decimal import ROUND_HALF_EVEN, Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from hyperliquid.utils.signing import recover_agent_or_user_from_l1_action

D0 = Decimal("0")
FAULTS = ("timeout", "http500", "http429", "malformed", "lost", "lost_500", "lost_timeout", "late")

DEFAULT_ASSETS: tuple[dict[str, Any], ...] = (
    {"name": "BTC", "szDecimals": 5, "maxLeverage": 40, "mark": "65000", "prevDayPx": "64000",
     "funding": "0.0000125"},
    {"name": "ETH", "szDecimals": 4, "maxLeverage": 25, "mark": "3200", "prevDayPx": "3300",
     "funding": "0.00001"},
    {"name": "SOL", "szDecimals": 2, "maxLeverage": 20, "mark": "150", "prevDayPx": "150",
     "funding": "-0.000005"},
)

INTERVAL_MS = {"1m": 60_000, "3m": 180_000, "5m": 300_000, "15m": 900_000, "30m": 1_800_000,
               "1h": 3_600_000, "2h": 7_200_000, "4h": 14_400_000, "8h": 28_800_000,
               "12h": 43_200_000, "1d": 86_400_000, "3d": 259_200_000, "1w": 604_800_000,
               "1M": 2_592_000_000}


def fmt(value: Decimal) -> str:
    """Hyperliquid's float strings: plain notation, at least one decimal place."""
    text = format(value.normalize(), "f")
    return text if "." in text else text + ".0"


def now_ms() -> int:
    return int(time.time() * 1000)


class VenueRefusal(Exception):
    """A per-order ``{"error": ...}`` status."""


@dataclass
class FakeOrder:
    oid: int | None  # None while a normalTpsl child waits for its parent's fill
    user: str
    coin: str
    asset: int
    is_buy: bool
    sz: Decimal  # remaining
    orig_sz: Decimal
    limit_px: Decimal
    reduce_only: bool
    tif: str | None  # Gtc | Ioc | Alo, None for triggers
    cloid: str | None
    trigger_px: Decimal | None = None
    tpsl: str | None = None  # "sl" | "tp"
    is_market: bool = False
    status: str = "open"
    status_ts: int = field(default_factory=now_ms)
    timestamp: int = field(default_factory=now_ms)
    parent: int | None = None  # parent oid of a normalTpsl child
    children: list[FakeOrder] = field(default_factory=list)
    visible_at: float = 0.0  # time.time() from which queries see it (visibility_delay)

    @property
    def is_trigger(self) -> bool:
        return self.trigger_px is not None

    @property
    def order_type(self) -> str:
        if not self.is_trigger:
            return "Limit"
        kind = "Stop" if self.tpsl == "sl" else "Take Profit"
        return f"{kind} {'Market' if self.is_market else 'Limit'}"

    @property
    def trigger_condition(self) -> str:
        if not self.is_trigger:
            return "N/A"
        above = (self.tpsl == "sl") == self.is_buy
        return f"Price {'above' if above else 'below'} {fmt(self.trigger_px)}"

    def wire(self) -> dict[str, Any]:
        """The frontendOpenOrders / orderStatus shape."""
        return {
            "coin": self.coin, "side": "B" if self.is_buy else "A", "limitPx": fmt(self.limit_px),
            "sz": fmt(self.sz), "oid": self.oid, "timestamp": self.timestamp,
            "triggerCondition": self.trigger_condition, "isTrigger": self.is_trigger,
            "triggerPx": fmt(self.trigger_px) if self.is_trigger else "0.0",
            "children": [c.wire() for c in self.children], "isPositionTpsl": False,
            "reduceOnly": self.reduce_only, "orderType": self.order_type,
            "origSz": fmt(self.orig_sz), "tif": self.tif, "cloid": self.cloid,
        }


@dataclass
class FakeAccount:
    address: str
    balance: Decimal = D0  # USDC: deposits + realized PnL - fees
    positions: dict[str, dict[str, Decimal]] = field(default_factory=dict)  # coin -> szi, entry
    leverage: dict[str, tuple[int, bool]] = field(default_factory=dict)  # coin -> (value, cross)
    fills: list[dict[str, Any]] = field(default_factory=list)


class HyperliquidFakeServer:
    taker_fee = Decimal("0.00045")
    maker_fee = Decimal("0.00015")

    def __init__(self, *, assets: tuple[dict[str, Any], ...] = DEFAULT_ASSETS,
                 is_mainnet: bool = False, visibility_delay: float = 0.0) -> None:
        self.is_mainnet = is_mainnet
        self.visibility_delay = visibility_delay
        self.liquidity: dict[str, Decimal | None] = {}  # which phantom-agent source signatures are checked against
        self.assets = [dict(a) for a in assets]
        self.asset_index = {a["name"]: i for i, a in enumerate(self.assets)}
        self.marks = {a["name"]: Decimal(a["mark"]) for a in self.assets}
        self.mids: dict[str, Decimal] = {}  # set to differ from the mark
        self.accounts: dict[str, FakeAccount] = {}
        self.agents: dict[str, str] = {}  # agent address -> main account
        self.orders: dict[int, FakeOrder] = {}
        self.cloids: dict[tuple[str, str], FakeOrder] = {}
        self.nonces: dict[str, set[int]] = {}
        self.requests: list[dict[str, Any]] = []
        self.faults: list[dict[str, Any]] = []
        self._next_oid = 1000
        self._next_tid = 1
        self._lock = threading.RLock()
        # Websocket hook (tests/fakes/hyperliquid_ws.py): listeners get ("order", order) on
        # each status change and ("fill", user, fill), under the state lock.
        self._listeners: list[Any] = []
        self._stopping = threading.Event()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> HyperliquidFakeServer:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:  # quiet
                return None

            def do_POST(self) -> None:  # noqa: N802
                fake._handle(self)

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.02},
                                        daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    def __enter__(self) -> HyperliquidFakeServer:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    @property
    def url(self) -> str:
        assert self._httpd is not None, "server not started"
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    # ------------------------------------------------------------------ test controls
    def fund(self, address: str, amount: Decimal | str) -> FakeAccount:
        with self._lock:
            account = self._account(address)
            account.balance += Decimal(str(amount))
            return account

    def approve_agent(self, main: str, agent: str) -> None:
        with self._lock:
            self._account(main)
            self.agents[agent.lower()] = main.lower()

    def revoke_agent(self, agent: str) -> None:
        with self._lock:
            self.agents.pop(agent.lower(), None)

    def inject(self, *, kind: str, fault: str, times: int = 1, delay: float = 2.0) -> None:
        if fault not in FAULTS:
            raise ValueError(f"unknown fault {fault!r}; one of {FAULTS}")
        with self._lock:
            self.faults.append({"kind": kind, "fault": fault, "remaining": times, "delay": delay})

    def clear_faults(self) -> None:
        with self._lock:
            self.faults.clear()

    def set_mark(self, coin: str, price: Decimal | str, *, mid: Decimal | str | None = None) -> None:
        """Move the mark (and mid): resting limits and triggers that it crosses fill."""
        with self._lock:
            self.marks[coin] = Decimal(str(price))
            if mid is not None:
                self.mids[coin] = Decimal(str(mid))
            else:
                self.mids.pop(coin, None)
            self._sweep(coin)

    def set_liquidity(self, coin: str, size: Decimal | str | None) -> None:
        """What one taker order can fill at the mark (None: unlimited; otherwise > 0)."""
        if size is not None and Decimal(str(size)) <= 0:
            raise ValueError("liquidity must be positive (or None for unlimited)")
        with self._lock:
            self.liquidity[coin] = None if size is None else Decimal(str(size))

    def mid(self, coin: str) -> Decimal:
        return self.mids.get(coin, self.marks[coin])

    def account(self, address: str) -> FakeAccount:
        return self.accounts[address.lower()]

    def position(self, address: str, coin: str) -> dict[str, Decimal] | None:
        return self.account(address).positions.get(coin)

    def order_by_cloid(self, address: str, cloid: str) -> FakeOrder | None:
        return self.cloids.get((address.lower(), cloid.lower()))

    def exchange_requests(self, action_type: str | None = None) -> list[dict[str, Any]]:
        return [r for r in self.requests if r["path"] == "/exchange"
                and (action_type is None or r["kind"] == action_type)]

    def info_requests(self, info_type: str | None = None) -> list[dict[str, Any]]:
        return [r for r in self.requests if r["path"] == "/info"
                and (info_type is None or r["kind"] == info_type)]

    def placed_orders(self, address: str | None = None) -> list[FakeOrder]:
        """Every order the venue holds (each distinct oid), any status."""
        return [o for o in self.orders.values() if address is None or o.user == address.lower()]

    def clearinghouse(self, address: str) -> dict[str, Any]:
        with self._lock:
            return self._clearinghouse(address.lower())

    # ------------------------------------------------------------------ HTTP plumbing
    def _take_fault(self, kinds: tuple[str, ...]) -> dict[str, Any] | None:
        with self._lock:
            for fault in self.faults:
                if fault["kind"] in kinds and fault["remaining"] > 0:
                    fault["remaining"] -= 1
                    return dict(fault)
        return None

    def _handle(self, handler: BaseHTTPRequestHandler) -> None:
        length = int(handler.headers.get("Content-Length") or 0)
        raw = handler.rfile.read(length) if length else b""
        path = handler.path.split("?")[0]
        try:
            body = json.loads(raw or b"null")
        except ValueError:
            self._send(handler, 422, "Failed to deserialize the JSON body into the target type")
            return
        if path == "/info":
            kind = str((body or {}).get("type"))
            kinds = (f"info:{kind}", "info")
        elif path == "/exchange":
            kind = str(((body or {}).get("action") or {}).get("type"))
            kinds = (kind, "exchange")
        else:
            self._send(handler, 404, "Not Found")
            return
        fault = self._take_fault(kinds)
        record = {"path": path, "kind": kind, "body": body, "fault": fault and fault["fault"],
                  "at": time.time()}
        with self._lock:
            self.requests.append(record)

        name = fault["fault"] if fault else None
        if name == "timeout":
            # No answer in time, and the venue never acted on it (``lost_timeout`` is the
            # variant where it did).
            self._stopping.wait(fault["delay"])
            handler.close_connection = True
            return
        if name == "http500":
            self._send(handler, 500, "Internal Server Error")
            return
        if name == "http429":
            self._send(handler, 429, "null")
            return
        if name == "late":
            # Queued past the client's timeout, then applied: nobody reads the answer.
            self._stopping.wait(fault["delay"])
            try:
                record["answer"] = self._info(body) if path == "/info" else self._exchange(body)
            finally:
                handler.close_connection = True
            return
        if name == "malformed":
            self._send(handler, 200, "<html><body>502 Bad Gateway</body></html>",
                       content_type="text/html")
            return

        try:
            answer = self._info(body) if path == "/info" else self._exchange(body)
        except Exception as exc:  # a fake's bug must show up, not hang the client
            self._send(handler, 500, f"fake server error: {type(exc).__name__}: {exc}")
            raise
        record["answer"] = answer

        if name == "lost":
            # The venue applied it; the answer never arrives.
            handler.close_connection = True
            try:
                handler.connection.shutdown(2)
            except OSError:
                pass
            return
        if name == "lost_500":
            self._send(handler, 500, "Internal Server Error")
            return
        if name == "lost_timeout":
            self._stopping.wait(fault["delay"])
        self._send(handler, 200, json.dumps(answer))

    @staticmethod
    def _send(handler: BaseHTTPRequestHandler, status: int, text: str,
              content_type: str = "application/json") -> None:
        data = text.encode()
        try:
            handler.send_response(status)
            handler.send_header("Content-Type", content_type)
            handler.send_header("Content-Length", str(len(data)))
            handler.end_headers()
            handler.wfile.write(data)
        except OSError:  # the client gave up (timeout)
            pass

    # ------------------------------------------------------------------ /info
    def _meta(self) -> dict[str, Any]:
        return {"universe": [{"name": a["name"], "szDecimals": a["szDecimals"],
                              "maxLeverage": a["maxLeverage"]} for a in self.assets]}

    def _info(self, body: dict[str, Any]) -> Any:
        kind = body.get("type")
        with self._lock:
            if kind == "meta":
                return self._meta()
            if kind == "spotMeta":
                return {"universe": [], "tokens": []}
            if kind == "allMids":
                return {coin: fmt(self.mid(coin)) for coin in self.marks}
            if kind == "metaAndAssetCtxs":
                ctxs = []
                for a in self.assets:
                    mark, mid = self.marks[a["name"]], self.mid(a["name"])
                    ctxs.append({"funding": a["funding"], "openInterest": "1000.0",
                                 "prevDayPx": a["prevDayPx"], "dayNtlVlm": "123456789.0",
                                 "premium": "0.0", "oraclePx": fmt(mark), "markPx": fmt(mark),
                                 "midPx": fmt(mid), "impactPxs": [fmt(mid), fmt(mid)],
                                 "dayBaseVlm": "1000.0"})
                return [self._meta(), ctxs]
            if kind == "l2Book":
                coin = body["coin"]
                mid = self.mid(coin)
                tick = Decimal(1).scaleb(-(6 - self.assets[self.asset_index[coin]]["szDecimals"]))
                tick = max(tick, (mid / 100_000).quantize(tick))
                return {"coin": coin, "time": now_ms(), "levels": [
                    [{"px": fmt(mid - tick), "sz": "10.0", "n": 3}],
                    [{"px": fmt(mid + tick), "sz": "10.0", "n": 2}],
                ]}
            if kind == "clearinghouseState":
                return self._clearinghouse(str(body["user"]).lower())
            if kind in ("openOrders", "frontendOpenOrders"):
                user = str(body["user"]).lower()
                live = [o for o in self.orders.values() if o.user == user and o.status == "open"
                        and time.time() >= o.visible_at]
                live.sort(key=lambda o: -o.oid)
                if kind == "frontendOpenOrders":
                    return [o.wire() for o in live]
                return [{"coin": o.coin, "limitPx": fmt(o.limit_px), "oid": o.oid,
                         "side": "B" if o.is_buy else "A", "sz": fmt(o.sz),
                         "timestamp": o.timestamp, "origSz": fmt(o.orig_sz), "cloid": o.cloid}
                        for o in live]
            if kind == "orderStatus":
                user, ref = str(body["user"]).lower(), body["oid"]
                order = (self.cloids.get((user, ref.lower())) if isinstance(ref, str)
                         else self.orders.get(int(ref)))
                if order is None or order.user != user or order.oid is None or time.time() < order.visible_at:
                    return {"status": "unknownOid"}
                return {"status": "order", "order": {"order": order.wire(), "status": order.status,
                                                     "statusTimestamp": order.status_ts}}
            if kind == "userFills":
                hidden = {o.oid for o in self.orders.values() if time.time() < o.visible_at}
                return [f for f in reversed(self._account(body["user"]).fills) if f["oid"] not in hidden][:2000]
            if kind == "activeAssetData":
                account, coin = self._account(body["user"]), body["coin"]
                lev, cross = self._leverage(account, coin)
                return {"user": account.address, "coin": coin,
                        "leverage": {"type": "cross" if cross else "isolated", "value": lev},
                        "maxTradeSzs": ["0.0", "0.0"], "availableToTrade": ["0.0", "0.0"],
                        "markPx": fmt(self.marks[coin])}
            if kind == "userRole":
                user = str(body["user"]).lower()
                if user in self.agents:
                    return {"role": "agent", "data": {"user": self.agents[user]}}
                if user in self.accounts:
                    return {"role": "user"}
                return {"role": "missing"}
            if kind == "candleSnapshot":
                return self._candles(body["req"])
        return None  # what the venue answers to an unknown type: null

    def _candles(self, req: dict[str, Any]) -> list[dict[str, Any]]:
        coin, interval = req["coin"], req["interval"]
        step = INTERVAL_MS[interval]
        start = (int(req["startTime"]) // step + 1) * step
        end = int(req.get("endTime") or now_ms())
        mark = self.marks[coin]
        out = []
        t = start
        while t <= end and len(out) < 5000:
            wiggle = Decimal((t // step) % 7 - 3) / 1000
            o = (mark * (1 + wiggle)).quantize(Decimal("0.1"))
            c = (mark * (1 - wiggle / 2)).quantize(Decimal("0.1"))
            out.append({"t": t, "T": t + step - 1, "s": coin, "i": interval, "o": fmt(o),
                        "c": fmt(c), "h": fmt(max(o, c) + 1), "l": fmt(min(o, c) - 1),
                        "v": "12.5", "n": 42})
            t += step
        return out

    def _account(self, address: str) -> FakeAccount:
        address = address.lower()
        if address not in self.accounts:
            self.accounts[address] = FakeAccount(address=address)
        return self.accounts[address]

    def _max_leverage(self, coin: str) -> int:
        return int(self.assets[self.asset_index[coin]]["maxLeverage"])

    def _leverage(self, account: FakeAccount, coin: str) -> tuple[int, bool]:
        # The venue's default for an asset never touched is 20x cross (capped by the asset's max).
        return account.leverage.get(coin, (min(20, self._max_leverage(coin)), True))

    def _clearinghouse(self, user: str) -> dict[str, Any]:
        account = self._account(user)
        ntl = upnl = margin = maint = D0
        rows = []
        for coin, pos in sorted(account.positions.items()):
            szi, entry, mark = pos["szi"], pos["entry"], self.marks[coin]
            lev, cross = self._leverage(account, coin)
            value = abs(szi) * mark
            pnl = szi * (mark - entry)
            used = value / lev
            ntl, upnl, margin = ntl + value, upnl + pnl, margin + used
            maint += value / (2 * self._max_leverage(coin))
            rows.append((coin, szi, entry, value, pnl, used, lev, cross))
        account_value = account.balance + upnl
        positions = []
        for coin, szi, entry, value, pnl, used, lev, cross in rows:
            liq = self.marks[coin] - (account_value - maint) / szi
            positions.append({"type": "oneWay", "position": {
                "coin": coin, "szi": fmt(szi),
                "leverage": {"type": "cross" if cross else "isolated", "value": lev},
                "entryPx": fmt(entry), "positionValue": fmt(value.quantize(Decimal("0.000001"))),
                "unrealizedPnl": fmt(pnl.quantize(Decimal("0.000001"))),
                "returnOnEquity": fmt((pnl / (abs(szi) * entry / lev)).quantize(Decimal("0.00000001"))),
                "liquidationPx": fmt(liq.quantize(Decimal("0.01"))) if liq > 0 else None,
                "marginUsed": fmt(used.quantize(Decimal("0.000001"))),
                "maxLeverage": self._max_leverage(coin),
                "cumFunding": {"allTime": "0.0", "sinceOpen": "0.0", "sinceChange": "0.0"},
            }})
        q = Decimal("0.000001")
        summary = {"accountValue": fmt(account_value.quantize(q)), "totalNtlPos": fmt(ntl.quantize(q)),
                   "totalRawUsd": fmt((account_value - sum(
                       (p["szi"] * self.marks[c] for c, p in account.positions.items()), D0)).quantize(q)),
                   "totalMarginUsed": fmt(margin.quantize(q))}
        return {"marginSummary": summary, "crossMarginSummary": dict(summary),
                "crossMaintenanceMarginUsed": fmt(maint.quantize(q)),
                "withdrawable": fmt(max(D0, account_value - margin).quantize(q)),
                "assetPositions": positions, "time": now_ms()}

    # ------------------------------------------------------------------ /exchange
    def _exchange(self, body: dict[str, Any]) -> dict[str, Any]:
        action, nonce = body.get("action") or {}, body.get("nonce")
        signature, vault = body.get("signature") or {}, body.get("vaultAddress")
        try:
            signer = recover_agent_or_user_from_l1_action(
                action, signature, vault, nonce, body.get("expiresAfter"), self.is_mainnet
            ).lower()
        except Exception:  # noqa: BLE001 - an unreadable signature
            return {"status": "err", "response": "Invalid signature."}
        with self._lock:
            user = self.agents.get(signer) or (signer if signer in self.accounts else None)
            if user is None:
                # Hyperliquid's answer when the recovered address is nobody's agent.
                return {"status": "err", "response": f"User or API Wallet {signer} does not exist."}
            if vault is not None and vault.lower() != user:
                return {"status": "err", "response": "Vault not registered: " + vault.lower()}
            if vault is not None:
                user = vault.lower()
            used = self.nonces.setdefault(signer, set())
            if nonce in used:
                return {"status": "err", "response": "Invalid nonce: duplicate nonce"}
            used.add(nonce)
            account = self._account(user)
            kind = action.get("type")
            if kind == "order":
                return self._orders(account, action)
            if kind in ("cancel", "cancelByCloid"):
                return self._cancels(account, action)
            if kind == "updateLeverage":
                return self._update_leverage(account, action)
            return {"status": "err", "response": f"Unsupported action type {kind}"}

    def _update_leverage(self, account: FakeAccount, action: dict[str, Any]) -> dict[str, Any]:
        asset, leverage = int(action["asset"]), int(action["leverage"])
        if not 0 <= asset < len(self.assets):
            return {"status": "err", "response": f"Unknown asset {asset}"}
        coin = self.assets[asset]["name"]
        if leverage < 1 or leverage > self._max_leverage(coin):
            return {"status": "err", "response": "Invalid leverage value"}
        if coin in account.positions and not action["isCross"]:
            current = self._leverage(account, coin)
            if current[1]:
                return {"status": "err", "response": "Cannot switch leverage type with open position."}
        account.leverage[coin] = (leverage, bool(action["isCross"]))
        return {"status": "ok", "response": {"type": "default"}}

    def _cancels(self, account: FakeAccount, action: dict[str, Any]) -> dict[str, Any]:
        statuses: list[Any] = []
        for cancel in action["cancels"]:
            if action["type"] == "cancel":
                asset, order = int(cancel["a"]), self.orders.get(int(cancel["o"]))
            else:
                asset, order = int(cancel["asset"]), self.cloids.get((account.address, cancel["cloid"].lower()))
            live = order is not None and order.user == account.address and order.asset == asset and (
                order.status == "open" or (order.oid is None and order.status == "waitingForFill"))
            if not live:
                statuses.append({"error": f"Order was never placed, already canceled, or filled. asset={asset}"})
                continue
            self._set_status(order, "canceled")
            for child in order.children:
                if child.status in ("open", "waitingForFill"):
                    self._set_status(child, "canceled")
            statuses.append("success")
        return {"status": "ok", "response": {"type": "cancel", "data": {"statuses": statuses}}}

    def _orders(self, account: FakeAccount, action: dict[str, Any]) -> dict[str, Any]:
        wires, grouping = action["orders"], action.get("grouping", "na")
        statuses: list[Any] = []
        if grouping == "normalTpsl" and len(wires) > 1:
            built: list[FakeOrder] = []
            try:
                for i, w in enumerate(wires):
                    built.append(self._new_order(account, w, child=i > 0))
            except VenueRefusal as exc:
                for order in built:  # the group is refused as a whole
                    self.cloids.pop((order.user, order.cloid or ""), None)
                return {"status": "ok", "response": {"type": "order", "data": {
                    "statuses": [{"error": str(exc)}] * len(wires)}}}
            parent, children = built[0], built[1:]
            parent.children = children
            first = self._execute(account, parent)
            statuses.append(first)
            filled = "filled" in first
            for child in children:
                child.parent = parent.oid
                if filled:
                    self._activate(child)
                    statuses.append("waitingForTrigger")
                elif "error" in first:
                    self._set_status(child, "canceled")
                    self.cloids.pop((child.user, child.cloid or ""), None)
                    statuses.append({"error": first["error"]})
                else:
                    statuses.append("waitingForFill")
            if filled:
                self._sweep(parent.coin)
            return {"status": "ok", "response": {"type": "order", "data": {"statuses": statuses}}}
        for wire in wires:
            try:
                order = self._new_order(account, wire)
            except VenueRefusal as exc:
                statuses.append({"error": str(exc)})
                continue
            statuses.append(self._execute(account, order))
        return {"status": "ok", "response": {"type": "order", "data": {"statuses": statuses}}}

    def _new_order(self, account: FakeAccount, wire: dict[str, Any], child: bool = False) -> FakeOrder:
        asset = int(wire["a"])
        if not 0 <= asset < len(self.assets):
            raise VenueRefusal(f"Invalid asset {asset}")
        meta = self.assets[asset]
        coin, sz_dec = meta["name"], int(meta["szDecimals"])
        sz, px = Decimal(wire["s"]), Decimal(wire["p"])
        if sz <= 0 or sz != sz.quantize(Decimal(1).scaleb(-sz_dec)):
            raise VenueRefusal(f"Order has invalid size. asset={asset}")
        if not self._valid_price(px, sz_dec):
            raise VenueRefusal(f"Order has invalid price. asset={asset}")
        cloid = wire.get("c")
        if cloid is not None:
            cloid = cloid.lower()
            if (account.address, cloid) in self.cloids:
                raise VenueRefusal(f"Duplicate cloid {cloid}. asset={asset}")
        t = wire["t"]
        order = FakeOrder(oid=None, user=account.address, coin=coin, asset=asset, is_buy=bool(wire["b"]),
                          sz=sz, orig_sz=sz, limit_px=px, reduce_only=bool(wire["r"]),
                          tif=t["limit"]["tif"] if "limit" in t else None, cloid=cloid)
        if "trigger" in t:
            trig = Decimal(t["trigger"]["triggerPx"])
            if not self._valid_price(trig, sz_dec):
                raise VenueRefusal(f"Order has invalid price. asset={asset}")
            order.trigger_px, order.tpsl = trig, t["trigger"]["tpsl"]
            order.is_market = bool(t["trigger"]["isMarket"])
        if child:
            order.status = "waitingForFill"
        if cloid is not None:
            self.cloids[(account.address, cloid)] = order
        return order

    @staticmethod
    def _valid_price(px: Decimal, sz_decimals: int) -> bool:
        if px <= 0:
            return False
        if px == px.to_integral_value():
            return True
        digits = px.normalize().as_tuple()
        decimals = -digits.exponent
        significant = len(digits.digits)
        return decimals <= 6 - sz_decimals and significant <= 5

    def subscribe(self, callback: Any) -> None:
        with self._lock:
            self._listeners.append(callback)

    def _emit(self, *event: Any) -> None:
        for callback in list(self._listeners):
            callback(*event)

    def _assign_oid(self, order: FakeOrder) -> None:
        if order.oid is None:
            order.oid = self._next_oid
            self._next_oid += 1
            self.orders[order.oid] = order
            if self.visibility_delay:
                order.visible_at = time.time() + self.visibility_delay
            if order.status == "open":
                self._emit("order", order)

    def _activate(self, child: FakeOrder) -> None:
        self._assign_oid(child)
        child.status = "open"
        child.status_ts = now_ms()
        self._emit("order", child)

    def _set_status(self, order: FakeOrder, status: str) -> None:
        order.status, order.status_ts = status, now_ms()
        if order.oid is not None:
            self._emit("order", order)

    def _refuse(self, order: FakeOrder, message: str, status: str) -> dict[str, Any]:
        self._set_status(order, status)
        if order.cloid is not None and order.oid is None:
            # A refused order gets no oid; its cloid may be used again.
            self.cloids.pop((order.user, order.cloid), None)
        return {"error": f"{message} asset={order.asset}"}

    def _execute(self, account: FakeAccount, order: FakeOrder) -> dict[str, Any]:
        """Place one order: fill, rest or refuse. Returns its status entry."""
        coin, mark = order.coin, self.marks[order.coin]
        if order.reduce_only:
            pos = account.positions.get(coin)
            if pos is None or (pos["szi"] > 0) == order.is_buy:
                return self._refuse(order, "Reduce only order would increase position.", "reduceOnlyRejected")
        elif order.limit_px * order.sz < 10 and not order.is_trigger:
            return self._refuse(order, "Order must have minimum value of $10.", "minTradeNtlRejected")
        if order.is_trigger:
            self._assign_oid(order)
            self._sweep(coin)
            return {"resting": {"oid": order.oid}}
        crosses = order.limit_px >= mark if order.is_buy else order.limit_px <= mark
        if not order.reduce_only and (crosses or order.tif != "Ioc"):
            lev, _ = self._leverage(account, coin)
            needed = order.sz * (mark if crosses else order.limit_px) / lev
            free = Decimal(self._clearinghouse(account.address)["withdrawable"])
            if self._increases(account, order) and needed > free:
                return self._refuse(order, "Insufficient margin to place order.", "perpMarginRejected")
        if order.tif == "Alo" and crosses:
            mid = self.mid(coin)
            return self._refuse(order, f"Post only order would have immediately matched, bbo was {fmt(mid)}@{fmt(mid)}.",
                                "badAloPxRejected")
        if order.tif == "Ioc" and not crosses:
            return self._refuse(order, "Order could not immediately match against any resting orders.",
                                "iocCancelRejected")
        self._assign_oid(order)
        if crosses:
            size = self._fill(account, order, mark, self.taker_fee, crossed=True,
                              limit=self.liquidity.get(coin))
            return {"filled": {"totalSz": fmt(size), "avgPx": fmt(mark), "oid": order.oid}}
        return {"resting": {"oid": order.oid}}

    @staticmethod
    def _increases(account: FakeAccount, order: FakeOrder) -> bool:
        pos = account.positions.get(order.coin)
        return pos is None or (pos["szi"] > 0) == order.is_buy or order.sz > abs(pos["szi"])

    def _fill(self, account: FakeAccount, order: FakeOrder, px: Decimal, fee_rate: Decimal,
              *, crossed: bool, limit: Decimal | None = None) -> Decimal:
        coin = order.coin
        pos = account.positions.get(coin, {"szi": D0, "entry": D0})
        szi, entry = pos["szi"], pos["entry"]
        size = order.sz if limit is None else min(order.sz, limit)
        if order.reduce_only:
            size = min(size, abs(szi))
        signed = size if order.is_buy else -size
        closed_pnl = D0
        if szi == 0 or (szi > 0) == order.is_buy:
            new_szi = szi + signed
            entry = (abs(szi) * entry + size * px) / abs(new_szi)
        else:
            closing = min(size, abs(szi))
            closed_pnl = closing * (px - entry) * (1 if szi > 0 else -1)
            new_szi = szi + signed
            if new_szi != 0 and (new_szi > 0) != (szi > 0):
                entry = px  # flipped: the remainder opened at the fill price
        fee = (size * px * fee_rate).quantize(Decimal("0.000001"), rounding=ROUND_HALF_EVEN)
        account.balance += closed_pnl - fee
        if new_szi == 0:
            account.positions.pop(coin, None)
        else:
            account.positions[coin] = {"szi": new_szi, "entry": entry}
        direction = ("Open" if closed_pnl == 0 and (szi == 0 or (szi > 0) == order.is_buy) else "Close")
        side_word = "Long" if (order.is_buy if direction == "Open" else szi > 0) else "Short"
        tid = self._next_tid
        self._next_tid += 1
        account.fills.append({
            "coin": coin, "px": fmt(px), "sz": fmt(size), "side": "B" if order.is_buy else "A",
            "time": now_ms(), "startPosition": fmt(szi), "dir": f"{direction} {side_word}",
            "closedPnl": fmt(closed_pnl), "hash": "0x" + hashlib.sha256(str(tid).encode()).hexdigest(),
            "oid": order.oid, "crossed": crossed, "fee": fmt(fee), "tid": tid, "feeToken": "USDC",
        })
        self._emit("fill", account.address, dict(account.fills[-1]))
        order.sz -= size
        if order.sz == 0 or order.is_trigger:
            self._set_status(order, "filled")
        elif order.reduce_only or order.tif == "Ioc":
            self._set_status(order, "canceled")  # the rest of it cannot execute
        if order.parent is None:
            for child in order.children:
                if child.status == "waitingForFill":
                    self._activate(child)
        if coin not in account.positions:
            # Reduce-only orders left with nothing to reduce are cancelled by the venue.
            for other in list(self.orders.values()):
                if (other.user == account.address and other.coin == coin and other.reduce_only
                        and other.status == "open"):
                    self._set_status(other, "reduceOnlyCanceled")
        return size

    def _triggered(self, order: FakeOrder, mark: Decimal) -> bool:
        above = (order.tpsl == "sl") == order.is_buy
        return mark >= order.trigger_px if above else mark <= order.trigger_px

    def _sweep(self, coin: str) -> None:
        """Fill whatever the current mark reaches: resting limits, then triggers."""
        mark = self.marks[coin]
        for order in sorted(self.orders.values(), key=lambda o: o.oid):
            if order.coin != coin or order.status != "open":
                continue
            account = self._account(order.user)
            if order.is_trigger:
                if not self._triggered(order, mark):
                    continue
                if order.reduce_only and order.coin not in account.positions:
                    self._set_status(order, "reduceOnlyCanceled")
                    continue
                self._fill(account, order, mark, self.taker_fee, crossed=True)
            elif (order.is_buy and mark <= order.limit_px) or (not order.is_buy and mark >= order.limit_px):
                if order.reduce_only and order.coin not in account.positions:
                    self._set_status(order, "reduceOnlyCanceled")
                    continue
                self._fill(account, order, order.limit_px, self.maker_fee, crossed=False)

