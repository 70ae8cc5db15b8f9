"""The fake venue's algo (conditional) orders: STOP_MARKET and TAKE_PROFIT_MARKET placed
through the Algo Order API, queried, cancelled, and triggered by a mark move into reduce-only
MARKET orders (resting LIMIT orders that the move crosses fill too)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from tests.fakes.binance_server.spec import (
    ApiError,
    _now_ms,
)


class ConditionalOrdersMixin:
    """Conditional orders and what a mark move triggers."""

    # ------------------------------------------------------------------ algo (conditional) orders
    def _new_algo_order(self, params: dict[str, str]) -> dict[str, Any]:
        symbol = self._symbol(params)
        if params.get("algoType", "").upper() != "CONDITIONAL":
            raise ApiError(400, -1102, "Mandatory parameter 'algoType' was not sent, was empty/null, or malformed.")
        side = params.get("side", "").upper()
        otype = params.get("type", "").upper()
        if side not in ("BUY", "SELL"):
            raise ApiError(400, -1117, "Invalid side.")
        if otype not in ("STOP_MARKET", "TAKE_PROFIT_MARKET"):
            raise ApiError(400, -1116, "Invalid orderType.")
        qty = self._dec(params, "quantity")
        trigger = self._dec(params, "triggerPrice")
        if qty is None or trigger is None:
            raise ApiError(400, -1102, "Mandatory parameter 'quantity' or 'triggerPrice' was not sent.")
        reduce_only = params.get("reduceOnly", "false").lower() == "true"
        client_id = params.get("clientAlgoId") or f"fake-algo-{self._next_algo_id}"
        self._check_client_id(symbol, client_id)
        self._check_filters(symbol, qty, trigger, True, True)
        if self._would_trigger(side, otype, trigger, self.marks[symbol]):
            raise ApiError(400, -2021, "Order would immediately trigger.")
        now = _now_ms()
        algo_id = self._next_algo_id
        self._next_algo_id += 1
        order = {
            "algoId": algo_id, "clientAlgoId": client_id, "algoType": "CONDITIONAL", "orderType": otype,
            "symbol": symbol, "side": side, "positionSide": "BOTH", "timeInForce": "GTC",
            "quantity": self._qty(symbol, qty), "algoStatus": "NEW", "actualOrderId": "",
            "actualPrice": "0.00", "triggerPrice": self._px(symbol, trigger), "price": "0.00",
            "icebergQuantity": None, "selfTradePreventionMode": "EXPIRE_MAKER",
            "workingType": params.get("workingType", "CONTRACT_PRICE"), "priceMatch": "NONE",
            "closePosition": False, "priceProtect": False, "reduceOnly": reduce_only,
            "createTime": now, "updateTime": now, "triggerTime": 0, "goodTillDate": 0,
        }
        self.algo_orders[algo_id] = order
        self._client_ids.add((symbol, client_id))
        return dict(order)

    @staticmethod
    def _would_trigger(side: str, otype: str, trigger: Decimal, mark: Decimal) -> bool:
        if otype == "STOP_MARKET":
            return mark <= trigger if side == "SELL" else mark >= trigger
        return mark >= trigger if side == "SELL" else mark <= trigger

    def _find_algo(self, params: dict[str, str]) -> dict[str, Any]:
        if params.get("algoId"):
            order = self.algo_orders.get(int(params["algoId"]))
            if order is not None:
                return order
        elif params.get("clientAlgoId"):
            for order in self.algo_orders.values():
                if order["clientAlgoId"] == params["clientAlgoId"]:
                    return order
        else:
            raise ApiError(400, -1102, "Param 'clientAlgoId' or 'algoId' must be sent, but both were empty/null!")
        raise ApiError(400, -2013, "Order does not exist.")

    def _query_algo_order(self, params: dict[str, str]) -> dict[str, Any]:
        return dict(self._find_algo(params))

    def _cancel_algo_order(self, params: dict[str, str]) -> dict[str, Any]:
        try:
            order = self._find_algo(params)
        except ApiError as exc:
            if exc.code == -2013:
                raise ApiError(400, -2011, "Unknown order sent.") from None
            raise
        if order["algoStatus"] != "NEW":
            raise ApiError(400, -2011, "Unknown order sent.")
        order["algoStatus"] = "CANCELED"
        order["updateTime"] = _now_ms()
        return {"algoId": order["algoId"], "clientAlgoId": order["clientAlgoId"], "code": "200", "msg": "success"}

    def _open_algo_orders(self, params: dict[str, str]) -> list[dict[str, Any]]:
        symbol = self._symbol(params, required=False)
        return [dict(o) for o in self.algo_orders.values()
                if o["algoStatus"] == "NEW" and (symbol is None or o["symbol"] == symbol)]

    def _trigger(self, symbol: str) -> None:
        mark = self.marks[symbol]
        for algo in list(self.algo_orders.values()):
            if algo["symbol"] != symbol or algo["algoStatus"] != "NEW":
                continue
            if not self._would_trigger(algo["side"], algo["orderType"], Decimal(algo["triggerPrice"]), mark):
                continue
            now = _now_ms()
            order_id = self._next_order_id
            self._next_order_id += 1
            child = {
                "orderId": order_id, "symbol": symbol, "status": "NEW", "clientOrderId": algo["clientAlgoId"],
                "price": "0.00", "avgPrice": "0.00", "origQty": algo["quantity"], "executedQty": "0",
                "cumQty": "0", "cumQuote": "0", "timeInForce": "GTC", "type": "MARKET",
                "reduceOnly": algo["reduceOnly"], "closePosition": False, "side": algo["side"],
                "positionSide": "BOTH", "stopPrice": algo["triggerPrice"], "workingType": algo["workingType"],
                "priceProtect": False, "origType": algo["orderType"], "priceMatch": "NONE",
                "selfTradePreventionMode": "EXPIRE_MAKER", "goodTillDate": 0, "time": now, "updateTime": now,
            }
            self.orders[order_id] = child
            self._emit("order", dict(child), "NEW", None)
            self._fill(child, mark, maker=False)
            algo.update({"algoStatus": "FINISHED" if child["status"] == "FILLED" else "EXPIRED",
                         "actualOrderId": str(order_id), "actualPrice": child["avgPrice"],
                         "triggerTime": now, "updateTime": now})
        for order in list(self.orders.values()):
            if order["symbol"] != symbol or order["status"] not in ("NEW", "PARTIALLY_FILLED") \
                    or order["type"] != "LIMIT":
                continue
            price = Decimal(order["price"])
            if (order["side"] == "BUY" and mark <= price) or (order["side"] == "SELL" and mark >= price):
                self._fill(order, price, maker=True)
