"""The fake venue's /info endpoint: meta and asset contexts, mids, candles, open orders,
order status, fills, and the clearinghouse state (margin, positions, withdrawable)."""

from __future__ import annotations

import time
from decimal import Decimal
from typing import Any

from tests.fakes.hyperliquid_server.state import (
    D0,
    INTERVAL_MS,
    FakeAccount,
    fmt,
    now_ms,
)


class InfoMixin:
    """Read-only answers of /info, from the venue's state."""

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
