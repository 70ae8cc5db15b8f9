"""Placing and cancelling orders on Hyperliquid: the legs of an order (a market order as an
IOC limit at the mid moved by the slippage tolerance, triggers for stop-loss / take-profit),
sent in one signed action through ``Guard.submit`` (a lost answer is looked up by cloid,
never sent again), and what the venue's statuses say of each leg."""

from __future__ import annotations

import logging
import re
from dataclasses import replace
from decimal import ROUND_DOWN, ROUND_UP, Decimal
from typing import Any

from hyperliquid.utils.types import Cloid

from exchanges.adapters.base import (
    D0,
    OrderRequest,
    OrderResult,
    OrderSide,
    OrderStatus,
    OrderType,
    utcnow,
)
from exchanges.adapters.errors import (
    ExchangeError,
    ExchangeUnavailable,
    InvalidOrderError,
    OrderNotFound,
)
from exchanges.adapters.hyperliquid.wire import (
    TIF,
    TRIGGER_SLIPPAGE,
    _d,
    _Leg,
    _scrub,
    cloid_for,
    round_price,
)

logger = logging.getLogger(__name__)


class OrderPlacement:
    """Mixed into HyperliquidTrader: needs its ``_coin``, ``_clients``, ``_call``, ``_read``,
    ``_signed``, ``_statuses``, ``_venue_error``, ``_guard``, ``_known`` and the order reads."""

    def place_order(self, request: OrderRequest) -> OrderResult:
        coin, asset = self._coin(request.symbol)
        szd = int(asset["szDecimals"])
        quantity = self.format_quantity(request.symbol, request.quantity)
        is_buy = request.side == OrderSide.BUY
        toward_mid = ROUND_DOWN if is_buy else ROUND_UP  # never pay more than asked
        trigger_px: Decimal | None = None
        tif: str | None = None
        if request.order_type == OrderType.MARKET:
            reference = self._mid(coin)
            limit_px = round_price(reference * (1 + self.slippage if is_buy else 1 - self.slippage),
                                   szd, toward_mid)
            tif = "Ioc"
        elif request.order_type == OrderType.LIMIT:
            if request.price is None:
                raise InvalidOrderError("A LIMIT order needs a price", venue=self.spec.venue)
            tif = TIF.get(request.time_in_force.upper())
            if tif is None:
                raise InvalidOrderError(f"Time in force {request.time_in_force!r} is not supported "
                                        f"on {self.spec.venue} (GTC, IOC, ALO)", venue=self.spec.venue)
            reference = limit_px = round_price(request.price, szd, toward_mid)
        else:
            if request.stop_price is None:
                raise InvalidOrderError(f"A {request.order_type} order needs a stop_price", venue=self.spec.venue)
            trigger_px = round_price(request.stop_price, szd)
            limit_px = self._trigger_limit(trigger_px, is_buy, szd)
            reference = trigger_px

        entry = _Leg(request.client_order_id, cloid_for(request.client_order_id), request.order_type, is_buy,
                     quantity, limit_px, trigger_px, request.reduce_only, tif, request.position_side)
        legs = [entry]
        wants_brackets = request.stop_loss is not None or request.take_profit is not None
        if wants_brackets and request.is_opening and not request.reduce_only \
                and request.order_type in (OrderType.MARKET, OrderType.LIMIT):
            legs += self._bracket_legs(request, entry, reference, szd)

        for leg in legs:
            leg.check_wire()
        if request.leverage:
            self.set_leverage(request.symbol, int(request.leverage))
        self._ensure_signer()
        for leg in legs:
            self._known.remember(leg.cloid, (leg.client_order_id, leg.position_side, leg.order_type))
        grouping = "normalTpsl" if len(legs) > 1 else "na"
        orders = [leg.sdk_request(coin) for leg in legs]

        def send() -> OrderResult:
            response = self._signed(lambda ex: ex.bulk_orders(orders, grouping=grouping))
            statuses = self._statuses(response, self._venue_error, self.spec.venue)
            if len(statuses) != len(legs):
                raise ExchangeUnavailable(f"{self.spec.venue}: answer has {len(statuses)} statuses for "
                                          f"{len(legs)} orders", venue=self.spec.venue)
            first = statuses[0]
            if isinstance(first, dict) and "error" in first:
                error = self._venue_error(first["error"])
                if error.code == "duplicate_cloid":
                    # Sent before (another attempt or process): that order is this order.
                    return lookup()
                raise error
            result = self._result_from_status(request.symbol, entry, first)
            attached = tuple(self._child_result(request.symbol, leg, status)
                             for leg, status in zip(legs[1:], statuses[1:], strict=True))
            return replace(result, attached=attached)

        def lookup() -> OrderResult:
            result = self._query(request.symbol, coin, cloid=entry.cloid, retry=False)
            attached = []
            for leg in legs[1:]:
                try:
                    attached.append(self._query(request.symbol, coin, cloid=leg.cloid, retry=False))
                except OrderNotFound:  # a child still waiting for its entry to fill
                    attached.append(self._leg_result(request.symbol, leg, "", OrderStatus.NEW,
                                                     {"status": "waitingForFill"}))
            return replace(result, attached=tuple(attached))

        result = self._guard.submit(send, lookup)
        return self._with_fills(result)

    def _trigger_limit(self, trigger: Decimal, is_buy: bool, szd: int) -> Decimal:
        bound = trigger * (1 + TRIGGER_SLIPPAGE) if is_buy else trigger * (1 - TRIGGER_SLIPPAGE)
        return round_price(bound, szd, ROUND_DOWN if is_buy else ROUND_UP)

    def _bracket_legs(self, request: OrderRequest, entry: _Leg, reference: Decimal, szd: int) -> list[_Leg]:
        legs = []
        long = entry.is_buy
        for kind, price in ((OrderType.STOP_MARKET, request.stop_loss),
                            (OrderType.TAKE_PROFIT_MARKET, request.take_profit)):
            if price is None:
                continue
            trigger = round_price(price, szd)
            below = kind == OrderType.STOP_MARKET if long else kind == OrderType.TAKE_PROFIT_MARKET
            if (trigger >= reference) if below else (trigger <= reference):
                raise InvalidOrderError(
                    f"{'Stop-loss' if kind == OrderType.STOP_MARKET else 'Take-profit'} {trigger} is on the "
                    f"wrong side of the entry price {reference}", venue=self.spec.venue)
            suffix = "sl" if kind == OrderType.STOP_MARKET else "tp"
            coid = f"{request.client_order_id}:{suffix}"
            legs.append(_Leg(coid, cloid_for(coid), kind, not long, entry.quantity,
                             self._trigger_limit(trigger, not long, szd), trigger, True, None,
                             request.position_side))
        return legs

    def _mid(self, coin: str) -> Decimal:
        info, _ = self._clients()

        def read() -> Decimal:
            mids = self._call(info.all_mids)
            value = _d(mids.get(coin)) if isinstance(mids, dict) else None
            if value is None or value <= 0:
                raise ExchangeUnavailable(f"{self.spec.venue}: no mid price for {coin}", venue=self.spec.venue)
            return value

        return self._read(read)

    def _leg_result(self, symbol: str, leg: _Leg, order_id: str, status: OrderStatus, raw: dict[str, Any],
                    executed: Decimal = D0, avg_px: Decimal | None = None) -> OrderResult:
        return OrderResult(
            symbol=symbol, order_id=order_id, client_order_id=leg.client_order_id, side=leg.side,
            order_type=leg.order_type, quantity=leg.quantity,
            price=leg.limit_px if leg.order_type != OrderType.MARKET else None,
            executed_quantity=executed, executed_price=avg_px, status=status, fees=D0, timestamp=utcnow(),
            exchange=self.spec.venue, raw_data=raw, position_side=leg.position_side,
            reduce_only=leg.reduce_only, stop_price=leg.trigger_px, fee_currency="USDC",
            venue_client_order_id=leg.cloid)

    def _result_from_status(self, symbol: str, leg: _Leg, status: Any) -> OrderResult:
        venue = self.spec.venue
        raw = {"status": status, "cloid": leg.cloid, "limit_px": str(leg.limit_px)}
        if isinstance(status, dict) and "resting" in status:
            return self._leg_result(symbol, leg, str(status["resting"]["oid"]), OrderStatus.NEW, raw)
        if isinstance(status, dict) and "filled" in status:
            filled = status["filled"]
            size = _d(filled.get("totalSz")) or D0
            if size >= leg.quantity:
                state = OrderStatus.FILLED
            else:  # an IOC's rest is cancelled; a GTC's keeps resting
                state = OrderStatus.EXPIRED if leg.tif == "Ioc" else OrderStatus.PARTIALLY_FILLED
            return self._leg_result(symbol, leg, str(filled["oid"]), state, raw, size, _d(filled.get("avgPx")))
        raise ExchangeUnavailable(f"{venue}: unexpected order status {_scrub(status)[:80]}", venue=venue)

    def _child_result(self, symbol: str, leg: _Leg, status: Any) -> OrderResult:
        """An attached stop/target. Never raises: the entry is placed whatever became of it."""
        raw = {"status": status, "cloid": leg.cloid}
        if isinstance(status, dict) and "error" in status:
            return replace(self._leg_result(symbol, leg, "", OrderStatus.REJECTED, raw),
                           raw_data={**raw, "error": _scrub(status["error"])})
        if isinstance(status, dict) and ("resting" in status or "filled" in status):
            return self._result_from_status(symbol, leg, status)
        # "waitingForTrigger" / "waitingForFill": no oid in the answer; ask for it.
        order_id = ""
        try:
            found = self._read(lambda: self._order_status(self._coin(symbol)[0], leg.cloid))
            if found is not None:
                order_id = str(found["order"]["oid"])
        except ExchangeError as exc:
            logger.info("%s: attached order %s not looked up (%s)", self.spec.venue, leg.cloid, type(exc).__name__)
        return self._leg_result(symbol, leg, order_id, OrderStatus.NEW, raw)

    def venue_client_order_id(self, client_order_id: str) -> str:
        return self._cloid_ref(client_order_id)

    @staticmethod
    def _cloid_ref(client_order_id: str) -> str:
        # A cloid read back from the venue may be passed in as the client order id.
        if re.fullmatch(r"0x[0-9a-fA-F]{32}", client_order_id):
            return client_order_id.lower()
        return cloid_for(client_order_id)

    def cancel_order(self, symbol: str, *, order_id: str | None = None,
                     client_order_id: str | None = None) -> OrderResult:
        coin, _ = self._coin(symbol)
        if order_id is None and client_order_id is None:
            raise InvalidOrderError("cancel_order needs order_id or client_order_id", venue=self.spec.venue)
        self._ensure_signer()
        cloid = self._cloid_ref(client_order_id) if client_order_id is not None else None

        def send() -> None:
            if cloid is not None:
                response = self._signed(lambda ex: ex.cancel_by_cloid(coin, Cloid(cloid)))
            else:
                response = self._signed(lambda ex: ex.cancel(coin, int(order_id)))
            status = self._statuses(response, self._venue_error, self.spec.venue)[0]
            if status != "success":
                raise self._venue_error(status.get("error") if isinstance(status, dict) else status)

        try:
            # A cancel may be repeated safely: a second one is refused as already cancelled.
            self._guard.read(send, kind="orders")
        except OrderNotFound:
            pass  # already cancelled or filled, or unknown: the look-up below tells which
        return self.get_order(symbol, order_id=order_id, client_order_id=client_order_id)
