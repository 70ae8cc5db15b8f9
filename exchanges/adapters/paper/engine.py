"""The paper venue's matching engine: USDT-margined perpetuals, one-way positions, cross
margin. Django-free and store-free: it mutates a ``PaperBook`` handed to it and reads
prices from a ``PriceSource``; its figures and roundings are ``rules.PaperRules``, the
account's margin figures ``margin.Margin``.

Conventions (as on Binance USD-M, simplified):

- market orders fill at mark +/- ``slippage_bps`` and pay the taker fee; a marketable
  limit fills the same way (never worse than its limit), a resting limit fills at its
  price as maker when the price path reaches it;
- STOP_MARKET / TAKE_PROFIT_MARKET fill at their trigger +/- slippage as taker;
- reduce-only orders never increase or flip a position: refused when they would, clipped
  to the position when larger, expired when the position they protect is gone;
- realized PnL excludes fees (fees are tracked separately), the wallet gets both;
- cross margin (see ``margin``);
- liquidation (cross): when the account's margin balance meets its maintenance margin,
  its open orders are cancelled and its positions closed, the one losing most first, each
  at its own market's price at that moment (the price, within its path then, at which the
  balance met the maintenance margin), paying the taker fee as a clearance fee, until the
  balance is above the maintenance margin again.

Every touch of an account first ``sync``s it: the price path since the last touch is
walked in time order (``walk.PathWalk``, one-second steps), so resting orders, triggers
and liquidations execute in the order the prices reach them, each order only on prices
from after it became live.
"""

from __future__ import annotations

from datetime import datetime
from decimal import ROUND_HALF_EVEN, Decimal

from alpha_platform.common.money import ZERO
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
from exchanges.adapters.paper.margin import AccountView, Margin, Marks, PositionView
from exchanges.adapters.paper.market import PriceSource
from exchanges.adapters.paper.rules import ENTRY, PaperRules, money
from exchanges.adapters.paper.store import (
    PaperBook,
    PaperFill,
    PaperOrder,
    PaperPosition,
)
from exchanges.adapters.paper.walk import PathWalk

__all__ = ["AccountView", "Marks", "PaperEngine", "PaperRules", "PositionView", "money"]


# --------------------------------------------------------------------------- the engine
class PaperEngine:
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
        book.fills.append(fill)
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
        for cid in [request.client_order_id, *children_ids]:
            if book.find_order(client_order_id=cid) is not None:
                raise self._reject(f"Client order id {cid!r} is duplicated", "-4116")
        quantity = self.rules.quantity(request.quantity)
        if quantity <= 0:
            raise BadPrecision(f"Quantity {request.quantity} is below the step {rules.quantity_step}",
                               venue=rules.venue, code="-1111")
        if request.leverage is not None:
            self.set_leverage(book, symbol, int(request.leverage), now)
        if request.reduce_only and (request.stop_loss is not None or request.take_profit is not None):
            raise self._reject("Stop-loss / take-profit can only be attached to an opening order", "-1106")

        marks = Marks(self.market, now)
        mark = marks[symbol]
        position_qty = book.position_quantity(symbol)
        limit_price = self.rules.tick(request.price) if request.price is not None else None
        stop_price = self.rules.tick(request.stop_price) if request.stop_price is not None else None
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
        taker_price = self.rules.slipped(mark, side)
        immediate: Decimal | None = None
        if order_type == OrderType.MARKET:
            immediate = taker_price
        elif order_type == OrderType.LIMIT:
            marketable = taker_price <= limit_price if side == OrderSide.BUY else taker_price >= limit_price
            immediate = taker_price if marketable else None
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
                order.quantity = quantity = self.rules.quantity(abs(position_qty))
        elif quantity * reference < rules.min_notional:
            raise self._reject(f"Order's notional {money(quantity * reference)} must be no smaller "
                               f"than {rules.min_notional}", "-4164")

        self._check_attached(request, side, reference)
        opening = ZERO if request.reduce_only else self.margin.opening_quantity(position_qty, side, quantity)
        if immediate is not None:
            self.margin.require_margin(book, marks, symbol, opening, quantity, immediate, rules.taker_fee)
        elif order_type == OrderType.LIMIT:
            if tif == "IOC":
                self._close_order(order, OrderStatus.EXPIRED, now, "IOC limit could not fill")
                book.orders[order.order_id] = order
                return order
            self.margin.require_margin(book, marks, symbol, opening, quantity, limit_price, rules.maker_fee)
            order.reserve_quantity = opening

        book.orders[order.order_id] = order
        self._attach(book, request, order, now)
        if immediate is not None:
            self._apply_fill(book, order, quantity, immediate, now, maker=False)
        book.trim(rules.history_limit, now=now, retention=rules.history_retention)
        return order

    def _check_attached(self, request: OrderRequest, side: str, reference: Decimal) -> None:
        sl, tp = request.stop_loss, request.take_profit
        long = side == OrderSide.BUY
        if sl is not None and (self.rules.tick(sl) >= reference if long else self.rules.tick(sl) <= reference):
            raise self._reject(f"Stop-loss {sl} is on the wrong side of the entry {reference}", "-2021")
        if tp is not None and (self.rules.tick(tp) <= reference if long else self.rules.tick(tp) >= reference):
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
                stop_price=self.rules.tick(price), reduce_only=True, time_in_force="GTC",
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
        maximum = self.rules.max_leverage_for(symbol)
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

    # -- the passage of time --------------------------------------------------------------
    @staticmethod
    def _trigger(order: PaperOrder) -> tuple[Decimal, str] | None:
        """(level, direction): the order executes when the price goes ``down`` to or
        ``up`` to level."""
        buy = order.side == OrderSide.BUY
        if order.order_type == OrderType.LIMIT:
            return order.price, ("down" if buy else "up")  # type: ignore[return-value]
        if order.order_type == OrderType.STOP_MARKET:
            return order.stop_price, ("up" if buy else "down")  # type: ignore[return-value]
        if order.order_type == OrderType.TAKE_PROFIT_MARKET:
            return order.stop_price, ("down" if buy else "up")  # type: ignore[return-value]
        return None

    def _triggered(self, order: PaperOrder, low: Decimal, high: Decimal) -> bool:
        trigger = self._trigger(order)
        if trigger is None:
            return False
        level, direction = trigger
        return low <= level if direction == "down" else high >= level

    def sync(self, book: PaperBook, now: datetime) -> None:
        """Play the price path from the last touch to ``now`` against resting orders and
        positions, in time order (``walk``), then remember ``now``."""
        start = book.last_sync
        if start is None or now <= start:
            book.last_sync = now if start is None else start
            return
        if book.positions or book.open_orders():
            self._walk(book, PathWalk(self.market, start, now, window_seconds=self.rules.sync_window_seconds))
        book.last_sync = now
        book.trim(self.rules.history_limit, now=now, retention=self.rules.history_retention)

    def _walk(self, book: PaperBook, walk: PathWalk) -> None:
        """Event after event, earliest first: the next leaf in which a resting order's level
        is reached or the account's margin balance meets its maintenance margin. An order
        is searched only from the leaf after it became live (an attached order's parent
        filled, or it was placed), so it never executes on older prices."""
        live_from: dict[str, int] = {}
        found: dict[str, int | None] = {}
        cursor = 0  # the leaf of the last event: others may still happen in it
        fresh = 0  # where an order that becomes live now starts: the leaf after the last event
        for _ in range(len(book.orders) + 2 * len(book.positions) + 2):
            best: tuple[int, Decimal, int, PaperOrder | None] | None = None
            for n, order in enumerate(book.open_orders()):
                if self._held(book, order) or self._trigger(order) is None:
                    continue
                if order.order_id not in live_from:
                    born = walk.index_of(order.created_at)
                    live_from[order.order_id] = max(born, fresh)
                if order.order_id not in found:
                    found[order.order_id] = self._first_trigger(walk, order, live_from[order.order_id])
                leaf = found[order.order_id]
                if leaf is None:
                    continue
                rank = self._distance(walk, order.symbol, leaf, self._trigger(order)[0])  # type: ignore[index]
                if best is None or (leaf, rank, n) < best[:3]:
                    best = (leaf, rank, n, order)
            liquidation = self._first_liquidation(book, walk, cursor)
            if liquidation is not None and (best is None or (liquidation[0], liquidation[1]) <= best[:2]):
                cursor = liquidation[0]
                fresh = cursor + 1
                self._liquidate_account(book, walk, cursor)
                continue
            if best is None:
                return
            cursor, order = best[0], best[3]
            fresh = cursor + 1
            self._execute_resting(book, order, Marks(self.market, walk.at(cursor + 1)),  # type: ignore[arg-type]
                                  walk.at(cursor + 1))

    def _first_trigger(self, walk: PathWalk, order: PaperOrder, i_min: int) -> int | None:
        level, direction = self._trigger(order)  # type: ignore[misc]
        symbol = order.symbol
        if direction == "down":
            return walk.first(i_min, lambda lo, hi: walk.extremes(symbol, lo, hi)[0] <= level)
        return walk.first(i_min, lambda lo, hi: walk.extremes(symbol, lo, hi)[1] >= level)

    @staticmethod
    def _distance(walk: PathWalk, symbol: str, leaf: int, level: Decimal) -> Decimal:
        """How far the path had to go, within its leaf, to reach ``level``: orders events in
        one leaf."""
        p0 = walk.price(symbol, leaf)
        return abs(level - p0) / p0 if p0 else ZERO

    def _worst_prices(self, book: PaperBook, walk: PathWalk, lo: int, hi: int) -> tuple[Decimal, dict[str, Decimal]]:
        """The account's least margin excess over leaves ``lo .. hi - 1`` (each position at
        the worst price of its own path there) and those prices."""
        excess = book.wallet_balance
        prices: dict[str, Decimal] = {}
        for position in book.positions.values():
            low, high = walk.extremes(position.symbol, lo, hi)
            least, prices[position.symbol] = self.margin.worst_excess(position, low, high)
            excess += least
        return excess, prices

    def _first_liquidation(self, book: PaperBook, walk: PathWalk, i_min: int) -> tuple[int, Decimal] | None:
        if not book.positions:
            return None
        leaf = walk.first(i_min, lambda lo, hi: self._worst_prices(book, walk, lo, hi)[0] <= 0)
        if leaf is None:
            return None
        symbol, price = self._to_liquidate(book, walk, leaf)
        return leaf, self._distance(walk, symbol, leaf, price)

    def _to_liquidate(self, book: PaperBook, walk: PathWalk, leaf: int) -> tuple[str, Decimal]:
        """The position closed first when the account falls short in ``leaf``: the one losing
        most there, at the price (within its path in that leaf) where the account's margin
        balance met its maintenance margin, the others at their own prices then."""
        _, prices = self._worst_prices(book, walk, leaf, leaf + 1)
        worst = min(book.positions.values(),
                    key=lambda p: (p.quantity * (prices[p.symbol] - p.entry_price), p.symbol))
        low, high = walk.extremes(worst.symbol, leaf, leaf + 1)
        marks = Marks(self.market, walk.at(leaf + 1), prices)
        price = self.margin.liquidation_price(book, worst.symbol, marks) or prices[worst.symbol]
        return worst.symbol, min(max(price, low), high)

    def _liquidate_account(self, book: PaperBook, walk: PathWalk, leaf: int) -> None:
        """The account's open orders are cancelled, then its positions closed, the worst
        first, until its margin balance is above the maintenance margin again."""
        now = walk.at(leaf + 1)
        for order in book.open_orders():
            self._close_order(order, OrderStatus.CANCELLED, now, "cancelled: the account is being liquidated")
            order.reserve_quantity = ZERO
        while book.positions and self._worst_prices(book, walk, leaf, leaf + 1)[0] <= 0:
            symbol, price = self._to_liquidate(book, walk, leaf)
            self._liquidate(book, symbol, price, now)

    def _execute_resting(self, book: PaperBook, order: PaperOrder, marks: Marks, now: datetime) -> None:
        order.triggered_at = now
        position_qty = book.position_quantity(order.symbol)
        quantity = order.quantity - order.executed_quantity
        if order.reduce_only:
            if self.margin.opening_quantity(position_qty, order.side, quantity) == quantity:
                self._close_order(order, OrderStatus.EXPIRED, now, "reduce-only order expired: no position to reduce")
                return
            if quantity > abs(position_qty):
                order.requested_quantity = order.quantity
                quantity = self.rules.quantity(abs(position_qty))
                order.quantity = order.executed_quantity + quantity
        if order.order_type == OrderType.LIMIT:
            order.reserve_quantity = ZERO
            self._apply_fill(book, order, quantity, order.price, now, maker=True)  # type: ignore[arg-type]
            return
        price = self.rules.slipped(order.stop_price, order.side)  # type: ignore[arg-type]
        if not order.reduce_only:
            opening = self.margin.opening_quantity(position_qty, order.side, quantity)
            try:
                self.margin.require_margin(book, marks, order.symbol, opening, quantity, price, self.rules.taker_fee)
            except InsufficientFunds as exc:
                self._close_order(order, OrderStatus.EXPIRED, now, f"triggered but {exc.message}")
                return
        self._apply_fill(book, order, quantity, price, now, maker=False)

    def _liquidate(self, book: PaperBook, symbol: str, price: Decimal, now: datetime) -> None:
        position = book.positions[symbol]
        side = OrderSide.SELL.value if position.quantity > 0 else OrderSide.BUY.value
        order = PaperOrder(
            order_id=book.next_id(""), client_order_id=f"autoclose-{book.sequence}", symbol=symbol,
            side=side, order_type=OrderType.MARKET.value, quantity=abs(position.quantity),
            status=OrderStatus.NEW.value, created_at=now, updated_at=now, reduce_only=True,
            position_side=position.side, liquidation=True,
            note=f"liquidated at {price}: margin balance fell to the maintenance margin",
        )
        book.orders[order.order_id] = order
        book.liquidations += 1
        self._apply_fill(book, order, order.quantity, price, now, maker=False, liquidation=True)

