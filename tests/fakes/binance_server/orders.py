"""The fake venue's order book and matching: order checks (client ids, filters, margin),
placement, fills against the mark (taker) or at the limit price (maker), position and wallet
bookkeeping, queries and cancels of plain orders."""

from __future__ import annotations

import time
from decimal import Decimal
from typing import Any

from tests.fakes.binance_server.spec import (
    D0,
    SYMBOLS,
    ApiError,
    _fmt,
    _now_ms,
)


class OrdersMixin:
    """Plain (MARKET and LIMIT) orders and their fills."""

    # ------------------------------------------------------------------ orders
    def _check_client_id(self, symbol: str, client_id: str) -> None:
        if len(client_id) > 36 or not all(c.isalnum() or c in ".:/_-" for c in client_id):
            raise ApiError(400, -4015, "Client order id is not valid.")
        if (symbol, client_id) in self._client_ids:
            raise ApiError(400, -4116, "ClientOrderId is duplicated.")

    def _check_filters(self, symbol: str, qty: Decimal, price: Decimal | None, reduce_only: bool,
                       market: bool) -> None:
        spec = SYMBOLS[symbol]
        step, tick = Decimal(spec["step"]), Decimal(spec["tick"])
        if qty <= 0:
            raise ApiError(400, -4003, "Quantity less than or equal to zero.")
        if qty % step != 0:
            raise ApiError(400, -1111, "Precision is over the maximum defined for this asset.")
        if qty < Decimal(spec["min_qty"]):
            raise ApiError(400, -4004, "Quantity less than min quantity.")
        max_qty = Decimal(spec["market_max_qty"] if market else spec["max_qty"])
        if qty > max_qty:
            raise ApiError(400, -4005, "Quantity greater than max quantity.")
        if price is not None and price % tick != 0:
            raise ApiError(400, -4014, "Price not increased by tick size.")
        reference = price if price is not None else self.marks[symbol]
        if not reduce_only and qty * reference < Decimal(spec["min_notional"]):
            raise ApiError(400, -4164, f"Order's notional must be no smaller than {spec['min_notional']} "
                                       "(unless you choose reduce only).")

    def _new_order(self, params: dict[str, str]) -> dict[str, Any]:
        symbol = self._symbol(params)
        side = params.get("side", "").upper()
        otype = params.get("type", "").upper()
        if side not in ("BUY", "SELL"):
            raise ApiError(400, -1117, "Invalid side.")
        if otype in ("STOP", "STOP_MARKET", "TAKE_PROFIT", "TAKE_PROFIT_MARKET", "TRAILING_STOP_MARKET"):
            raise ApiError(400, -4120, "Order type not supported for this endpoint. Please use the Algo Order API endpoints instead.")
        if otype not in ("MARKET", "LIMIT"):
            raise ApiError(400, -1116, "Invalid orderType.")
        if params.get("positionSide", "BOTH") not in ("BOTH",):
            raise ApiError(400, -4061, "Order's position side does not match user's setting.")
        qty = self._dec(params, "quantity")
        if qty is None:
            raise ApiError(400, -1102, "Mandatory parameter 'quantity' was not sent, was empty/null, or malformed.")
        price = self._dec(params, "price")
        if otype == "LIMIT" and price is None:
            raise ApiError(400, -1102, "Mandatory parameter 'price' was not sent, was empty/null, or malformed.")
        reduce_only = params.get("reduceOnly", "false").lower() == "true"
        client_id = params.get("newClientOrderId") or f"fake-{self._next_order_id}"
        self._check_client_id(symbol, client_id)
        self._check_filters(symbol, qty, price if otype == "LIMIT" else None, reduce_only, otype == "MARKET")
        pos = self.positions[symbol].amount
        if reduce_only:
            reducing = (side == "SELL" and pos > 0) or (side == "BUY" and pos < 0)
            if not reducing:
                raise ApiError(400, -2022, "ReduceOnly Order is rejected.")
        else:
            signed = qty if side == "BUY" else -qty
            opening = max(abs(pos + signed) - abs(pos), D0)
            ref = price if otype == "LIMIT" else self.marks[symbol]
            needed = opening * ref / self.leverage[symbol] + qty * ref * self.taker_fee
            if opening > 0 and needed > self._available():
                raise ApiError(400, -2019, "Margin is insufficient.")
        now = _now_ms()
        order_id = self._next_order_id
        self._next_order_id += 1
        order = {
            "orderId": order_id, "symbol": symbol, "status": "NEW", "clientOrderId": client_id,
            "price": self._px(symbol, price) if price is not None else "0.00",
            "avgPrice": "0.00", "origQty": self._qty(symbol, qty), "executedQty": self._qty(symbol, D0),
            "cumQty": self._qty(symbol, D0), "cumQuote": "0.00000", "timeInForce": params.get("timeInForce", "GTC"),
            "type": otype, "reduceOnly": reduce_only, "closePosition": False, "side": side,
            "positionSide": "BOTH", "stopPrice": "0.00", "workingType": "CONTRACT_PRICE",
            "priceProtect": False, "origType": otype, "priceMatch": "NONE",
            "selfTradePreventionMode": "EXPIRE_MAKER", "goodTillDate": 0, "time": now, "updateTime": now,
        }
        self.orders[order_id] = order
        if self.visibility_delay:
            self._visible_at[order_id] = time.time() + self.visibility_delay
        self._client_ids.add((symbol, client_id))
        self._emit("order", dict(order), "NEW", None)
        mark = self.marks[symbol]
        if otype == "MARKET" or (side == "BUY" and price >= mark) or (side == "SELL" and price <= mark):
            available = self.liquidity.get(symbol)
            self._fill(order, mark, maker=False, limit=available)
            if order["status"] == "PARTIALLY_FILLED" and (otype == "MARKET" or order["timeInForce"] != "GTC"):
                order["status"] = "EXPIRED"  # the book ran out: the rest of a taker order expires
                self._emit("order", dict(order), "EXPIRED", None)
        return self._public_order(order, for_create=True)

    def _fill(self, order: dict[str, Any], price: Decimal, *, maker: bool, limit: Decimal | None = None) -> None:
        """Execute what is left of ``order`` at ``price`` (at most ``limit``)."""
        symbol, side = order["symbol"], order["side"]
        done = Decimal(order["executedQty"])
        qty = Decimal(order["origQty"]) - done
        if limit is not None:
            qty = min(qty, limit)
        pos = self.positions[symbol]
        if order["reduceOnly"]:
            qty = min(qty, abs(pos.amount))
        if qty <= 0:
            if order["reduceOnly"] or done == 0:
                order["status"] = "EXPIRED"
                order["updateTime"] = _now_ms()
                self._emit("order", dict(order), "EXPIRED", None)
            return
        signed = qty if side == "BUY" else -qty
        realized = D0
        if pos.amount == 0 or (pos.amount > 0) == (signed > 0):
            total = abs(pos.amount) + qty
            pos.entry = (pos.entry * abs(pos.amount) + price * qty) / total
            pos.amount += signed
        else:
            closed = min(abs(pos.amount), qty)
            direction = 1 if pos.amount > 0 else -1
            realized = (price - pos.entry) * closed * direction
            pos.amount += signed
            if pos.amount == 0:
                pos.entry = D0
            elif (pos.amount > 0) != (direction > 0):  # flipped: the rest opens at this price
                pos.entry = price
        pos.updated = _now_ms()
        fee = (qty * price * (self.maker_fee if maker else self.taker_fee)).quantize(Decimal("0.00000001"))
        self.wallet_balance += realized - fee
        self.fees_paid += fee
        self.realized_pnl += realized
        quote = qty * price
        executed = done + qty
        total_quote = Decimal(order["cumQuote"]) + quote
        order.update({"status": "FILLED" if executed == Decimal(order["origQty"]) else "PARTIALLY_FILLED",
                      "avgPrice": self._px(symbol, total_quote / executed),
                      "executedQty": self._qty(symbol, executed), "cumQty": self._qty(symbol, executed),
                      "cumQuote": _fmt(total_quote, "0.00000"), "updateTime": _now_ms()})
        trade_id = self._next_trade_id
        self._next_trade_id += 1
        self.trades.append({
            "buyer": side == "BUY", "commission": _fmt(fee, "0.00000000"), "commissionAsset": "USDT",
            "id": trade_id, "maker": maker, "orderId": order["orderId"], "price": self._px(symbol, price),
            "qty": self._qty(symbol, qty), "quoteQty": _fmt(quote, "0.00000"),
            "realizedPnl": _fmt(realized, "0.00000000"), "side": side, "positionSide": "BOTH",
            "symbol": symbol, "time": _now_ms(),
        })
        self._emit("account", symbol)
        self._emit("order", dict(order), "TRADE", dict(self.trades[-1]))

    @staticmethod
    def _public_order(order: dict[str, Any], *, for_create: bool = False) -> dict[str, Any]:
        out = dict(order)
        if for_create:
            out.pop("time", None)  # the create answer carries updateTime only
        return out

    def _find_order(self, params: dict[str, str], *, query: bool = False) -> dict[str, Any]:
        symbol = self._symbol(params)
        if params.get("orderId"):
            order = self.orders.get(int(params["orderId"]))
            if order is not None and order["symbol"] == symbol and (not query or self.visible(order)):
                return order
        elif params.get("origClientOrderId"):
            for order in self.orders.values():
                if order["symbol"] == symbol and order["clientOrderId"] == params["origClientOrderId"] \
                        and (not query or self.visible(order)):
                    return order
        else:
            raise ApiError(400, -1102, "Param 'origClientOrderId' or 'orderId' must be sent, but both were empty/null!")
        raise ApiError(400, -2013, "Order does not exist.")

    def _query_order(self, params: dict[str, str]) -> dict[str, Any]:
        return self._public_order(self._find_order(params, query=True))

    def _cancel_order(self, params: dict[str, str]) -> dict[str, Any]:
        try:
            order = self._find_order(params)
        except ApiError as exc:
            if exc.code == -2013:
                raise ApiError(400, -2011, "Unknown order sent.") from None
            raise
        if order["status"] not in ("NEW", "PARTIALLY_FILLED"):
            raise ApiError(400, -2011, "Unknown order sent.")
        order["status"] = "CANCELED"
        order["updateTime"] = _now_ms()
        self._emit("order", dict(order), "CANCELED", None)
        return self._public_order(order, for_create=True)

    def _open_orders(self, params: dict[str, str]) -> list[dict[str, Any]]:
        symbol = self._symbol(params, required=False)
        return [self._public_order(o) for o in self.orders.values()
                if o["status"] in ("NEW", "PARTIALLY_FILLED") and (symbol is None or o["symbol"] == symbol)
                and self.visible(o)]

    def _all_orders(self, params: dict[str, str]) -> list[dict[str, Any]]:
        symbol = self._symbol(params)
        return [self._public_order(o) for o in self.orders.values() if o["symbol"] == symbol and self.visible(o)]

    def _user_trades(self, params: dict[str, str]) -> list[dict[str, Any]]:
        symbol = self._symbol(params)
        order_id = params.get("orderId")
        return [dict(t) for t in self.trades if t["symbol"] == symbol
                and (order_id is None or str(t["orderId"]) == order_id)
                and self.visible(self.orders.get(t["orderId"], {}))]
