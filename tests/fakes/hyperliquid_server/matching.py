"""The fake venue's matching: order ids, resting and triggered orders, fills at the mark
(taker) or the limit (maker) within the liquidity, positions and margin, and the events the
websocket fake listens to."""

from __future__ import annotations

import hashlib
import time
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

from tests.fakes.hyperliquid_server.state import (
    D0,
    FakeAccount,
    FakeOrder,
    fmt,
    now_ms,
)


class MatchingMixin:
    """Order life cycle and fills; callers hold the state lock."""

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
