"""The paper venue's passage of time: between two touches of an account, the price path is
walked in time order (``walk.PathWalk``) and what it reaches executes, earliest first:
resting limits, stops and take-profits, and liquidations. Part of ``PaperEngine`` (its
base class), apart from placing and cancelling. Django-free.

Liquidation (cross): when the account's margin balance meets its maintenance margin, its
open orders are cancelled and its positions closed, the one losing most first, each at its
own market's price at that moment (the price, within its path then, at which the balance
met the maintenance margin; where the market gapped past it, the market's price but never
worse than the bankruptcy price), until the balance is above the maintenance margin again.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from alpha_platform.common.money import ZERO
from alpha_platform.common.vocabulary import OrderSide, OrderStatus, OrderType
from exchanges.adapters.errors import InsufficientFunds
from exchanges.adapters.paper.margin import Margin, Marks
from exchanges.adapters.paper.market import PriceSource
from exchanges.adapters.paper.rules import PaperRules, money
from exchanges.adapters.paper.store import (
    PaperBook,
    PaperFill,
    PaperFunding,
    PaperOrder,
)
from exchanges.adapters.paper.walk import PathWalk


class Timeline:
    """What ``PaperEngine`` does as time passes (``sync``)."""

    rules: PaperRules
    market: PriceSource
    margin: Margin

    # provided by PaperEngine
    def _apply_fill(self, book: PaperBook, order: PaperOrder, quantity: Decimal, price: Decimal,
                    now: datetime, *, maker: bool, liquidation: bool = False) -> PaperFill:
        raise NotImplementedError

    def _close_order(self, order: PaperOrder, status: OrderStatus, now: datetime, note: str = "") -> None:
        raise NotImplementedError

    @staticmethod
    def _held(book: PaperBook, order: PaperOrder) -> bool:
        raise NotImplementedError

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

    def _funding_times(self, start: datetime, end: datetime) -> list[datetime]:
        """The funding moments in (start, end]: whole multiples of the interval since the epoch."""
        if not self.rules.has_funding:
            return []
        interval = self.rules.funding_interval_seconds
        first = (int(start.timestamp()) // interval + 1) * interval
        last = int(end.timestamp())
        return [datetime.fromtimestamp(t, tz=UTC) for t in range(first, last + 1, interval)]

    def _pay_funding(self, book: PaperBook, at: datetime) -> None:
        """Each position pays (or receives) its notional at mark x the symbol's rate."""
        interval = timedelta(seconds=self.rules.funding_interval_seconds)
        for position in list(book.positions.values()):
            premium_of = getattr(self.market, "funding_premium", None)
            premium = premium_of(position.symbol, at - interval, at) if premium_of else ZERO
            rate = self.rules.funding_rate(premium)
            mark = self.market.price(position.symbol, at)
            amount = money(-position.quantity * mark * rate)
            payment = PaperFunding(payment_id=book.next_id("F"), symbol=position.symbol, funding_time=at, rate=rate,
                                   mark_price=mark, quantity=position.quantity, amount=amount)
            book.funding.append(payment)
            book.wallet_balance += amount
            book.funding_total += amount
            position.funding += amount

    def _walk(self, book: PaperBook, walk: PathWalk) -> None:
        """Event after event, earliest first: the next leaf in which a resting order's level
        is reached or the account's margin balance meets its maintenance margin. An order
        is searched only from the leaf after it became live (an attached order's parent
        filled, or it was placed), so it never executes on older prices."""
        live_from: dict[str, int] = {}
        found: dict[str, int | None] = {}
        cursor = 0  # the leaf of the last event: others may still happen in it
        fresh = 0  # where an order that becomes live now starts: the leaf after the last event
        funding = self._funding_times(walk.start, walk.end)
        for _ in range(len(book.orders) + 2 * len(book.positions) + len(funding) + 2):
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
            if funding:  # a funding moment comes before whatever else happens in its leaf
                leaf = max(0, walk.index_of(funding[0]) - 1)
                if (best is None or leaf <= best[0]) and (liquidation is None or leaf <= liquidation[0]):
                    self._pay_funding(book, funding.pop(0))
                    cursor = max(cursor, leaf)
                    continue
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
                                  walk.at(cursor + 1), reached=self._reached(walk, order, cursor))

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
        price = min(max(price, low), high)
        # A market that gapped through the liquidation price closes the position no worse
        # than its bankruptcy price (the account's margin balance, fee included, at zero):
        # the insurance fund takes the rest, as on Binance.
        bankruptcy = self.margin.bankruptcy_price(book, worst.symbol, marks, self.rules.taker_fee)
        if bankruptcy is not None:
            price = max(price, bankruptcy) if worst.quantity > 0 else min(price, bankruptcy)
        return worst.symbol, price

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

    def _reached(self, walk: PathWalk, order: PaperOrder, leaf: int) -> Decimal:
        """The price a triggered order executes from: its level if the path traded through it
        in the leaf, else (the market gapped past it: no price between) the first price
        beyond it, the least bad one the leaf had."""
        level, direction = self._trigger(order)  # type: ignore[misc]
        low, high = walk.extremes(order.symbol, leaf, leaf + 1)
        if direction == "down":
            return level if high >= level else high
        return level if low <= level else low

    def _execute_resting(self, book: PaperBook, order: PaperOrder, marks: Marks, now: datetime,
                         *, reached: Decimal | None = None) -> None:
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
        # A stop or take-profit is a market order once triggered: from its trigger price, or
        # from the market's price where it gapped through (a worse fill for a stop).
        price = self.rules.slipped(reached if reached is not None else order.stop_price, order.side)  # type: ignore[arg-type]
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

