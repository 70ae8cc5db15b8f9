"""The paper venue's matching engine: USDT-margined perpetuals, one-way positions, cross
margin. Django-free and store-free: it mutates a ``PaperBook`` handed to it and reads
prices from a ``PriceSource``; its figures and roundings are ``rules.PaperRules``, the
account's margin figures ``margin.Margin``.

Conventions (as on Binance USD-M, simplified):

- market orders walk the book's depth (``depth``: the first level at mark +/-
  ``slippage_bps``, one fill per level) and pay the taker fee; what the depth does not hold
  expires. A limit priced at or through the mark is marketable and walks the same levels,
  never worse than its limit; by time in force the rest then expires (IOC), nothing fills
  unless all can (FOK, else EXPIRED), the order expires unfilled (GTX, post-only), or the
  rest rests at the limit (GTC). A resting limit fills at its price as maker when the price
  path reaches it;
- prices off the symbol's tick (-4014), quantities off its step (-1111) and notionals
  under its minimum (-4164) are refused (``rules.filters``);
- STOP_MARKET / TAKE_PROFIT_MARKET fill at their trigger +/- slippage as taker; one the
  market gapped past (no price between) fills from the first price beyond it;
- reduce-only orders never increase or flip a position: refused when they would, clipped
  to the position when larger, expired when the position they protect is gone; having no
  opening part they need no margin, even when the account's available margin is negative;
- realized PnL excludes fees (fees are tracked separately), the wallet gets both; each
  fill's fee and realized PnL are rounded to 8 places (half even), and account figures are
  sums of such rounded terms;
- a resting limit's margin reserve is its opening part when placed;
- cross margin (see ``margin``), with the symbol's leverage brackets (``rules.Bracket``);
- liquidation (cross): when the account's margin balance meets its maintenance margin,
  its open orders are cancelled and its positions closed, the one losing most first, each
  at its own market's price at that moment (the price, within its path then, at which the
  balance met the maintenance margin; through a gap never worse than the bankruptcy
  price), paying the taker fee as a clearance fee, until the balance is above the
  maintenance margin again (``timeline``);
- funding every interval on each open position (``timeline``, ``rules.funding_rate``).

Every touch of an account first ``sync``s it: the price path since the last touch is
walked in time order (``walk.PathWalk``, steps of a second or less: a span is cut into
equal leaves), so resting orders, triggers, funding and liquidations happen in the order
the prices reach them, each order only on prices from after it became live.
"""

from __future__ import annotations

from datetime import datetime
from decimal import ROUND_HALF_EVEN, Decimal

from alpha_platform.common.money import ZERO, to_decimal
from alpha_platform.common.vocabulary import (
    TRIGGER_ORDER_TYPES,
    OrderSide,
    OrderStatus,
    OrderType,
    PositionSide,
)
from exchanges.adapters.base import OrderRequest
from exchanges.adapters.errors import (
    BadPrecision,
    InsufficientFunds,
    InvalidOrderError,
    OrderNotFound,
)
from exchanges.adapters.paper import depth
from exchanges.adapters.paper.margin import AccountView, Margin, Marks, PositionView
from exchanges.adapters.paper.market import PriceSource
from exchanges.adapters.paper.rules import ENTRY, PaperRules, money
from exchanges.adapters.paper.store import (
    PaperBook,
    PaperFill,
    PaperOrder,
    PaperPosition,
)
from exchanges.adapters.paper.timeline import Timeline

__all__ = ["AccountView", "Marks", "PaperEngine", "PaperRules", "PositionView", "money"]


# --------------------------------------------------------------------------- the engine
class PaperEngine(Timeline):
    def __init__(self, rules: PaperRules, market: PriceSource) -> None:
        self.rules = rules
        self.market = market
        self.margin = Margin(rules)

    def account(self, book: PaperBook, marks: Marks) -> AccountView:
        return self.margin.account(book, marks)

    # -- small helpers --------------------------------------------------------------------
    def _reject(self, message: str, code: str) -> InvalidOrderError:
        return InvalidOrderError(message, venue=self.rules.venue, code=code)

    @staticmethod
    def _signed(side: str, quantity: Decimal) -> Decimal:
        return quantity if side == OrderSide.BUY else -quantity

    # -- fills ----------------------------------------------------------------------------
    def _apply_fill(self, book: PaperBook, order: PaperOrder, quantity: Decimal, price: Decimal,
                    now: datetime, *, maker: bool, liquidation: bool = False) -> PaperFill:
        """Move the position, the wallet and the order by one fill."""
        fee_rate = self.rules.maker_fee if maker else self.rules.taker_fee
        symbol = order.symbol
        delta = self._signed(order.side, quantity)
        position = book.positions.get(symbol)
        current = position.quantity if position else ZERO
        realized = ZERO
        if current != 0 and (current > 0) != (delta > 0):
            closing = min(abs(delta), abs(current))
            realized = money(closing * (price - position.entry_price) * (1 if current > 0 else -1))
        fee = money(quantity * price * fee_rate)
        new_qty = current + delta
        flipped = False
        if position is None or current == 0:
            position = PaperPosition(symbol=symbol, quantity=new_qty, entry_price=price, opened_at=now,
                                     updated_at=now, position_id=book.next_id(f"{symbol}#"))
            book.positions[symbol] = position
        elif new_qty == 0:
            position.quantity = ZERO
        elif (new_qty > 0) != (current > 0):  # flipped: the rest opens at this price
            position.quantity = new_qty
            position.entry_price = price
            position.opened_at = now
            position.position_id = book.next_id(f"{symbol}#")
            position.realized_pnl = ZERO
            position.fees = ZERO
            position.funding = ZERO
            flipped = True
        elif abs(new_qty) > abs(current):  # added: average the entry
            position.entry_price = ((abs(current) * position.entry_price + abs(delta) * price)
                                    / abs(new_qty)).quantize(ENTRY, rounding=ROUND_HALF_EVEN)
            position.quantity = new_qty
        else:
            position.quantity = new_qty
        if not flipped:  # a flipped position starts afresh; the old one's result is in the fill
            position.realized_pnl += realized
            position.fees += fee
        position.updated_at = now
        if position.quantity == 0:
            del book.positions[symbol]

        book.wallet_balance += realized - fee
        if not book.positions and book.wallet_balance < 0:
            book.wallet_balance = ZERO  # the insurance fund takes a bankrupt account's deficit
        book.realized_pnl_total += realized
        book.fees_total += fee

        fill = PaperFill(trade_id=book.next_id("T"), order_id=order.order_id, symbol=symbol,
                         side=order.side, quantity=quantity, price=price, fee=fee,
                         realized_pnl=realized, timestamp=now, maker=maker, liquidation=liquidation)
        order.fills.append(fill)
        filled_before = order.executed_quantity
        order.executed_quantity = filled_before + quantity
        order.average_price = price if filled_before == 0 else (
            (filled_before * (order.average_price or ZERO) + quantity * price) / order.executed_quantity
        ).quantize(ENTRY, rounding=ROUND_HALF_EVEN)
        order.fees += fee
        order.realized_pnl += realized
        order.status = (OrderStatus.FILLED.value if order.executed_quantity >= order.quantity
                        else OrderStatus.PARTIALLY_FILLED.value)
        order.updated_at = now
        self._after_fill(book, symbol, now)
        return fill

    def _close_order(self, order: PaperOrder, status: OrderStatus, now: datetime, note: str = "") -> None:
        order.status = status.value
        order.updated_at = now
        if note:
            order.note = note

    def _after_fill(self, book: PaperBook, symbol: str, now: datetime) -> None:
        """Reduce-only orders that can no longer reduce anything expire (a venue cancels a
        position's stop-loss and take-profit when the position is gone)."""
        position_qty = book.position_quantity(symbol)
        for order in book.open_orders(symbol):
            if not order.reduce_only or self._held(book, order):
                continue
            if position_qty == 0 or self.margin.opening_quantity(position_qty, order.side, order.quantity) == order.quantity:
                self._close_order(order, OrderStatus.EXPIRED, now,
                                  "reduce-only order expired: no position left to reduce")

    @staticmethod
    def _held(book: PaperBook, order: PaperOrder) -> bool:
        """An attached order waits until its parent has filled."""
        if order.parent_id is None:
            return False
        parent = book.orders.get(order.parent_id)
        return parent is not None and parent.status != OrderStatus.FILLED.value

    # -- placing --------------------------------------------------------------------------
    def place_order(self, book: PaperBook, request: OrderRequest, now: datetime) -> PaperOrder:
        """Validate, then fill, rest or refuse. Refusals raise (the caller's store block then
        saves nothing); an IOC limit that cannot fill is returned EXPIRED."""
        rules = self.rules
        symbol = request.symbol
        order_type = OrderType(request.order_type).value
        side = OrderSide(request.side).value
        if order_type not in rules.supported_types:
            raise self._reject(f"Order type {order_type} is not supported by {rules.venue}", "-1116")
        tif = (request.time_in_force or "GTC").upper()
        if tif not in rules.time_in_force:
            raise self._reject(f"Time in force {tif} is not supported by {rules.venue}", "-1115")
        if not request.client_order_id:
            raise self._reject("A client order id is required", "-1102")
        children_ids = [request.client_order_id + suffix for suffix, price in
                        (("-sl", request.stop_loss), ("-tp", request.take_profit)) if price is not None]
        taken = book.find_client_ids([request.client_order_id, *children_ids])
        for cid in [request.client_order_id, *children_ids]:
            if cid in taken:
                raise self._reject(f"Client order id {cid!r} is duplicated", "-4116")
        filters = rules.filters(symbol)
        quantity = Decimal(request.quantity)
        if quantity <= 0:
            raise self._reject("Quantity less than or equal to zero.", "-4003")
        if quantity % filters.step_size != 0:
            raise BadPrecision(f"Precision is over the maximum defined for this asset: quantity "
                               f"{request.quantity} is not a multiple of the step {filters.step_size}",
                               venue=rules.venue, code="-1111")
        quantity = rules.symbol_quantity(symbol, quantity)
        if request.leverage is not None:
            self.set_leverage(book, symbol, int(request.leverage), now)
        if request.reduce_only and (request.stop_loss is not None or request.take_profit is not None):
            raise self._reject("Stop-loss / take-profit can only be attached to an opening order", "-1106")

        marks = Marks(self.market, now)
        mark = marks[symbol]
        position_qty = book.position_quantity(symbol)
        limit_price = self._on_tick(symbol, request.price)
        stop_price = self._on_tick(symbol, request.stop_price)
        if order_type == OrderType.LIMIT and (limit_price is None or limit_price <= 0):
            raise self._reject("A limit order needs a positive price", "-1102")
        if order_type in TRIGGER_ORDER_TYPES and (stop_price is None or stop_price <= 0):
            raise self._reject(f"A {order_type} order needs a positive stop price", "-1102")

        order = PaperOrder(
            order_id=book.next_id(""), client_order_id=request.client_order_id, symbol=symbol,
            side=side, order_type=order_type, quantity=quantity, status=OrderStatus.NEW.value,
            created_at=now, updated_at=now, price=limit_price, stop_price=stop_price,
            reduce_only=request.reduce_only, time_in_force=tif,
            position_side=PositionSide(request.position_side).value if request.position_side else None,
        )

        # Where it would execute now, if it would.
        taker_price = depth.level_price(rules, symbol, mark, side, 0)
        immediate: Decimal | None = None
        if order_type == OrderType.MARKET:
            immediate = taker_price
        elif order_type == OrderType.LIMIT:
            # Priced at or through the last trade, it crosses the book and takes liquidity: as a
            # market order, but never worse than its limit.
            if side == OrderSide.BUY:
                immediate = min(taker_price, limit_price) if limit_price >= mark else None
            else:
                immediate = max(taker_price, limit_price) if limit_price <= mark else None
        elif self._triggered(order, mark, mark):
            raise self._reject(f"Order would immediately trigger: {order_type} {side} at {stop_price} "
                               f"with the mark at {mark}", "-2021")
        reference = immediate or limit_price or stop_price or mark

        if request.reduce_only:
            if self.margin.opening_quantity(position_qty, side, quantity) == quantity:
                raise self._reject("ReduceOnly Order is rejected: there is no position this order "
                                   "would reduce", "-2022")
            if quantity > abs(position_qty) and immediate is not None:
                order.requested_quantity = quantity
                order.quantity = quantity = rules.symbol_quantity(symbol, abs(position_qty))
        elif quantity * reference < filters.min_notional:
            raise self._reject(f"Order's notional {money(quantity * reference)} must be no smaller "
                               f"than {filters.min_notional}", "-4164")

        self._check_attached(request, side, reference)
        opening = ZERO if request.reduce_only else self.margin.opening_quantity(position_qty, side, quantity)
        if opening > 0:
            self._check_bracket(book, symbol, abs(position_qty + self._signed(side, quantity)) * reference)
        limit = order_type == OrderType.LIMIT
        taken = depth.take(rules, symbol, mark, side, quantity, limit_price) if immediate is not None else []
        filled = sum((q for _, q in taken), ZERO)
        expiry = None
        if limit and tif == "GTX" and immediate is not None:
            expiry = "post-only (GTX) order would take liquidity: expired"
        elif limit and tif == "FOK" and filled < quantity:
            expiry = f"FOK order could not fill in full now ({filled} of {quantity} available): expired"
        elif limit and tif == "IOC" and immediate is None:
            expiry = "IOC limit could not fill"
        if expiry is not None:  # nothing filled, nothing reserved; the venue keeps the record
            self._close_order(order, OrderStatus.EXPIRED, now, expiry)
            book.orders[order.order_id] = order
            return order
        if taken:
            self.margin.require_margin(book, marks, symbol, self.margin.opening_quantity(position_qty, side, filled)
                                       if opening > 0 else ZERO, filled, depth.average(taken), rules.taker_fee)
        book.orders[order.order_id] = order
        self._attach(book, request, order, now)
        for price, size in taken:
            self._apply_fill(book, order, size, price, now, maker=False)
        rest = quantity - filled
        if rest > 0 and limit and tif in ("GTC", "GTX"):  # the remainder rests at its limit, as maker
            rest_opening = ZERO if request.reduce_only else self.margin.opening_quantity(
                book.position_quantity(symbol), side, rest)
            self.margin.require_margin(book, marks, symbol, rest_opening, rest, limit_price, rules.maker_fee)
            order.reserve_quantity = rest_opening
        elif rest > 0 and (order_type == OrderType.MARKET or limit):
            # market and IOC: what the depth did not hold expires (a market order never rests)
            self._close_order(order, OrderStatus.EXPIRED, now,
                              f"the book's depth held {filled} of {quantity}: the rest expired")
        return order

    def _on_tick(self, symbol: str, price: Decimal | None) -> Decimal | None:
        """A price as given, refused (as Binance's PRICE_FILTER does) when off the symbol's tick."""
        if price is None:
            return None
        value = to_decimal(price)
        tick = self.rules.filters(symbol).tick_size
        if value % tick != 0:
            raise self._reject(f"Price not increased by tick size. ({price} on {symbol}: tick {tick})", "-4014")
        return value

    def _check_bracket(self, book: PaperBook, symbol: str, notional: Decimal) -> None:
        """A position's size is capped by its leverage: its notional's bracket allows at most
        so much leverage (Binance's leverage brackets)."""
        leverage = self.margin.leverage(book, symbol)
        if leverage > self.rules.max_leverage_for(symbol, notional):
            raise self._reject(f"Exceeded the maximum allowable position at current leverage: "
                               f"{money(notional)} USDT on {symbol} allows at most "
                               f"{self.rules.max_leverage_for(symbol, notional)}x, not {leverage}x", "-2027")

    def _check_attached(self, request: OrderRequest, side: str, reference: Decimal) -> None:
        sl, tp = request.stop_loss, request.take_profit
        long = side == OrderSide.BUY
        tick = self.rules.symbol_tick
        if sl is not None and (tick(request.symbol, sl) >= reference if long else tick(request.symbol, sl) <= reference):
            raise self._reject(f"Stop-loss {sl} is on the wrong side of the entry {reference}", "-2021")
        if tp is not None and (tick(request.symbol, tp) <= reference if long else tick(request.symbol, tp) >= reference):
            raise self._reject(f"Take-profit {tp} is on the wrong side of the entry {reference}", "-2021")

    def _attach(self, book: PaperBook, request: OrderRequest, parent: PaperOrder, now: datetime) -> None:
        close_side = OrderSide.SELL.value if parent.side == OrderSide.BUY else OrderSide.BUY.value
        for role, suffix, kind, price in (
            ("stop_loss", "-sl", OrderType.STOP_MARKET.value, request.stop_loss),
            ("take_profit", "-tp", OrderType.TAKE_PROFIT_MARKET.value, request.take_profit),
        ):
            if price is None:
                continue
            child = PaperOrder(
                order_id=book.next_id(""), client_order_id=request.client_order_id + suffix,
                symbol=parent.symbol, side=close_side, order_type=kind, quantity=parent.quantity,
                status=OrderStatus.NEW.value, created_at=now, updated_at=now,
                stop_price=self.rules.symbol_tick(parent.symbol, price), reduce_only=True, time_in_force="GTC",
                position_side=parent.position_side, parent_id=parent.order_id, attached_role=role,
            )
            book.orders[child.order_id] = child
            parent.attached_ids.append(child.order_id)

    # -- cancelling and leverage ----------------------------------------------------------
    def find(self, book: PaperBook, symbol: str, *, order_id: str | None = None,
             client_order_id: str | None = None) -> PaperOrder:
        if order_id is None and client_order_id is None:
            raise self._reject("Give an order id or a client order id", "-1102")
        order = book.find_order(order_id=order_id, client_order_id=client_order_id)
        if order is None or order.symbol != symbol:
            raise OrderNotFound(f"Order does not exist ({order_id or client_order_id} on {symbol})",
                                venue=self.rules.venue, code="-2013")
        return order

    def cancel_order(self, book: PaperBook, symbol: str, *, order_id: str | None = None,
                     client_order_id: str | None = None, now: datetime) -> PaperOrder:
        order = self.find(book, symbol, order_id=order_id, client_order_id=client_order_id)
        if not order.is_open:
            raise OrderNotFound(f"Unknown order sent: {order.order_id} is already {order.status}",
                                venue=self.rules.venue, code="-2011")
        self._close_order(order, OrderStatus.CANCELLED, now)
        order.reserve_quantity = ZERO
        for child_id in order.attached_ids:  # held protections go with an unfilled parent
            child = book.orders.get(child_id)
            if child is not None and child.is_open and order.executed_quantity == 0:
                self._close_order(child, OrderStatus.CANCELLED, now, "parent order cancelled")
        return order

    def set_leverage(self, book: PaperBook, symbol: str, leverage: int, now: datetime) -> None:
        position = book.positions.get(symbol)
        notional = abs(position.quantity) * Marks(self.market, now)[symbol] if position else None
        maximum = self.rules.max_leverage_for(symbol, notional)
        if not 1 <= int(leverage) <= maximum:
            raise self._reject(f"Leverage {leverage} is not valid for {symbol}: 1 to {maximum}", "-4028")
        previous = book.leverage.get(symbol)
        book.leverage[symbol] = int(leverage)
        if previous is not None and leverage < previous and (
            book.positions.get(symbol) or book.open_orders(symbol)
        ):
            if self.margin.account(book, Marks(self.market, now)).available < 0:
                book.leverage[symbol] = previous
                raise InsufficientFunds(f"Margin is insufficient to lower {symbol} leverage to {leverage}x",
                                        venue=self.rules.venue, code="-2027")
