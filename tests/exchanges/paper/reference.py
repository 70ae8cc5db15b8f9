"""A reference model of a USD-M cross-margin account, written from the published definitions
(/work/shared/docs/usdm-reference.md) and the paper venue's documented conventions, not from
the engine: the oracle ``test_oracle`` checks the engine against. Pure Python, Decimal only.

Documented simplifications of Binance the venue makes (and this model follows): one mark
price = last price; a flat maintenance bracket; liquidation closes at the liquidation price
(rounded to the tick) paying only the taker fee: no bankruptcy price, no clearance fee into an
insurance fund, no bracket-by-bracket reduction; no funding.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from decimal import ROUND_CEILING, ROUND_FLOOR, ROUND_HALF_EVEN, Decimal

D = Decimal
ZERO = D(0)
TICK = D("0.01")
STEP = D("0.000001")
MONEY = D("0.00000001")
ENTRY = D("0.00000001")
INF = D("Infinity")


def money(value: Decimal) -> Decimal:
    return value.quantize(MONEY, rounding=ROUND_HALF_EVEN)


def tick(value: Decimal, rounding: str = ROUND_HALF_EVEN) -> Decimal:
    return (value / TICK).to_integral_value(rounding=rounding) * TICK


# --------------------------------------------------------------------------- brackets
@dataclass(frozen=True)
class Bracket:
    """One leverage bracket: notional floor (inclusive) .. cap (exclusive)."""

    floor: Decimal
    cap: Decimal
    max_leverage: int
    mmr: Decimal
    cum: Decimal


FLAT = (Bracket(ZERO, INF, 20, D("0.005"), ZERO),)  # the paper venue: one bracket, mmr 0.5 %


def bracket(brackets: tuple[Bracket, ...], notional: Decimal) -> Bracket:
    for b in brackets:
        if b.floor <= notional < b.cap:
            return b
    return brackets[-1]


def maintenance(brackets: tuple[Bracket, ...], quantity: Decimal, price: Decimal) -> Decimal:
    """q x MP x mmr - cum, mmr and cum of the bracket the notional falls in."""
    notional = abs(quantity) * price
    b = bracket(brackets, notional)
    return notional * b.mmr - b.cum


def liquidation_price(wb: Decimal, tmm1: Decimal, upnl1: Decimal, signed_qty: Decimal, entry: Decimal,
                      brackets: tuple[Bracket, ...]) -> Decimal | None:
    """LP = (WB - TMM1 + UPNL1 + cum - s*q*EP) / (q*mmr - s*q), with cum and mmr of the
    bracket the position falls in at that price (tried bracket by bracket). None when there
    is no positive solution."""
    q, s = abs(signed_qty), (1 if signed_qty > 0 else -1)
    for b in brackets:
        denom = q * b.mmr - s * q
        if denom == 0:
            continue
        lp = (wb - tmm1 + upnl1 + b.cum - s * q * entry) / denom
        if lp > 0 and b.floor <= q * lp < b.cap:
            return lp
    return None


@dataclass(frozen=True)
class Venue:
    start: Decimal = D("10000")
    maker: Decimal = D("0.0002")
    taker: Decimal = D("0.0005")
    slippage_bps: Decimal = D("2")
    min_notional: Decimal = D("5")
    brackets: tuple[Bracket, ...] = FLAT

    def bracket(self, notional: Decimal) -> Bracket:
        return bracket(self.brackets, notional)

    def slipped(self, price: Decimal, side: str) -> Decimal:
        f = self.slippage_bps / D(10000)
        return tick(price * (1 + f), ROUND_CEILING) if side == "BUY" else tick(price * (1 - f), ROUND_FLOOR)


# --------------------------------------------------------------------------- state
@dataclass
class Fill:
    cid: str
    symbol: str
    side: str
    quantity: Decimal
    price: Decimal
    fee: Decimal
    realized_pnl: Decimal
    maker: bool
    at: Decimal  # seconds since the model's start
    liquidation: bool = False


@dataclass
class Order:
    cid: str
    symbol: str
    side: str
    order_type: str  # MARKET | LIMIT | STOP_MARKET | TAKE_PROFIT_MARKET
    quantity: Decimal
    price: Decimal | None = None
    stop_price: Decimal | None = None
    reduce_only: bool = False
    status: str = "NEW"
    reserve: Decimal = ZERO  # opening quantity of a resting limit
    fills: list[Fill] = field(default_factory=list)
    parent: str | None = None  # an attached stop-loss / take-profit: held until it fills
    children: list[str] = field(default_factory=list)

    @property
    def is_open(self) -> bool:
        return self.status == "NEW"

    def trigger(self) -> tuple[Decimal, str]:
        """(level, 'down' | 'up'): the order executes when the price goes down/up to level."""
        if self.order_type == "LIMIT":
            return self.price, ("down" if self.side == "BUY" else "up")  # type: ignore[return-value]
        stop_like = self.order_type == "STOP_MARKET"
        up = (self.side == "BUY") == stop_like
        return self.stop_price, ("up" if up else "down")  # type: ignore[return-value]


@dataclass
class Position:
    quantity: Decimal  # signed
    entry: Decimal


@dataclass
class Event:
    at: Decimal
    kind: str  # "order" | "liquidation"
    cid: str = ""
    symbol: str = ""


class Refused(Exception):  # noqa: N818 - the reference's InsufficientFunds
    pass


class Account:
    def __init__(self, venue: Venue, leverage: dict[str, int], prices: dict[str, Decimal]) -> None:
        self.venue = venue
        self.leverage = dict(leverage)
        self.prices = dict(prices)
        self.wallet = venue.start
        self.positions: dict[str, Position] = {}
        self.orders: dict[str, Order] = {}
        self.fills: list[Fill] = []
        self.now = ZERO

    def clone(self) -> Account:
        return copy.deepcopy(self)

    # -- figures ------------------------------------------------------------------------
    def qty(self, symbol: str) -> Decimal:
        p = self.positions.get(symbol)
        return p.quantity if p else ZERO

    def upnl(self, symbol: str, price: Decimal | None = None) -> Decimal:
        p = self.positions[symbol]
        mp = self.prices[symbol] if price is None else price
        return p.quantity * (mp - p.entry)

    def initial_margin(self, symbol: str) -> Decimal:
        p = self.positions[symbol]
        return abs(p.quantity) * self.prices[symbol] / self.leverage[symbol]

    def maintenance(self, symbol: str, price: Decimal | None = None) -> Decimal:
        mp = self.prices[symbol] if price is None else price
        return maintenance(self.venue.brackets, self.positions[symbol].quantity, mp)

    def margin_balance(self) -> Decimal:
        return self.wallet + sum((self.upnl(s) for s in self.positions), ZERO)

    def total_maintenance(self) -> Decimal:
        return sum((self.maintenance(s) for s in self.positions), ZERO)

    def order_margin(self) -> Decimal:
        return sum((o.reserve * o.price / self.leverage[o.symbol]  # type: ignore[operator]
                    for o in self.orders.values() if o.is_open and o.reserve), ZERO)

    def available(self) -> Decimal:
        im = sum((self.initial_margin(s) for s in self.positions), ZERO)
        return self.margin_balance() - im - self.order_margin()

    def liquidation_price(self, symbol: str) -> Decimal | None:
        """The doc's LP formula, the other positions at their current prices."""
        others = [o for o in self.positions if o != symbol]
        tmm1 = sum((self.maintenance(o) for o in others), ZERO)
        upnl1 = sum((self.upnl(o) for o in others), ZERO)
        p = self.positions[symbol]
        return liquidation_price(self.wallet, tmm1, upnl1, p.quantity, p.entry, self.venue.brackets)

    def liquidatable(self) -> bool:
        return bool(self.positions) and self.margin_balance() <= self.total_maintenance()

    # -- orders -------------------------------------------------------------------------
    def opening_quantity(self, symbol: str, side: str, quantity: Decimal) -> Decimal:
        pos = self.qty(symbol)
        signed = quantity if side == "BUY" else -quantity
        if pos == 0 or (pos > 0) == (signed > 0):
            return quantity
        return max(ZERO, quantity - abs(pos))

    def required(self, symbol: str, side: str, quantity: Decimal, price: Decimal, maker: bool) -> Decimal:
        """Margin an order asks for: its opening part at ``price`` / leverage, plus its fee."""
        rate = self.venue.maker if maker else self.venue.taker
        opening = self.opening_quantity(symbol, side, quantity)
        if opening == 0:  # an order that only reduces is never refused for margin
            return -INF
        return opening * price / self.leverage[symbol] + quantity * price * rate

    def market(self, cid: str, symbol: str, side: str, quantity: Decimal) -> Order:
        price = self.venue.slipped(self.prices[symbol], side)
        if self.required(symbol, side, quantity, price, False) > self.available():
            raise Refused(cid)
        order = Order(cid, symbol, side, "MARKET", quantity)
        self.orders[cid] = order
        self.fill(order, price, quantity, maker=False)
        return order

    def limit(self, cid: str, symbol: str, side: str, quantity: Decimal, price: Decimal, *,
              stop_loss: Decimal | None = None, take_profit: Decimal | None = None) -> Order:
        """A limit: marketable (buy at or above the price, sell at or below) it fills as a
        market order, never worse than its limit; otherwise it rests and reserves margin for
        its opening part. Attached stop-loss / take-profit orders wait for it to fill."""
        mark = self.prices[symbol]
        marketable = price >= mark if side == "BUY" else price <= mark
        if marketable:
            slipped = self.venue.slipped(mark, side)
            fill_price = min(slipped, price) if side == "BUY" else max(slipped, price)
            if self.required(symbol, side, quantity, fill_price, False) > self.available():
                raise Refused(cid)
        elif self.required(symbol, side, quantity, price, True) > self.available():
            raise Refused(cid)
        order = Order(cid, symbol, side, "LIMIT", quantity, price=price,
                      reserve=ZERO if marketable else self.opening_quantity(symbol, side, quantity))
        self.orders[cid] = order
        close = "SELL" if side == "BUY" else "BUY"
        for suffix, kind, level in (("-sl", "STOP_MARKET", stop_loss), ("-tp", "TAKE_PROFIT_MARKET", take_profit)):
            if level is not None:
                child = self.trigger_order(cid + suffix, symbol, close, kind, quantity, level)
                child.parent = cid
                order.children.append(child.cid)
        if marketable:
            self.fill(order, fill_price, quantity, maker=False)
        return order

    def live(self, order: Order) -> bool:
        return order.is_open and (order.parent is None or self.orders[order.parent].status == "FILLED")

    def trigger_order(self, cid: str, symbol: str, side: str, order_type: str, quantity: Decimal,
                      stop: Decimal) -> Order:
        order = Order(cid, symbol, side, order_type, quantity, stop_price=stop, reduce_only=True)
        self.orders[cid] = order
        return order

    def cancel(self, cid: str) -> None:
        """Cancelling an order cancels its held attached orders too."""
        order = self.orders[cid]
        order.status = "CANCELLED"
        for child in order.children:
            if self.orders[child].is_open:
                self.orders[child].status = "CANCELLED"

    # -- fills --------------------------------------------------------------------------
    def fill(self, order: Order, price: Decimal, quantity: Decimal, *, maker: bool,
             liquidation: bool = False) -> Fill:
        rate = self.venue.maker if maker else self.venue.taker
        fee = money(quantity * price * rate)
        symbol = order.symbol
        signed = quantity if order.side == "BUY" else -quantity
        pos = self.positions.get(symbol)
        realized = ZERO
        if pos is None:
            self.positions[symbol] = Position(signed, price)
        elif (pos.quantity > 0) == (signed > 0):
            new = pos.quantity + signed
            entry = (abs(pos.quantity) * pos.entry + quantity * price) / abs(new)
            pos.quantity, pos.entry = new, entry.quantize(ENTRY, rounding=ROUND_HALF_EVEN)
        else:
            closed = min(abs(pos.quantity), quantity)
            s = 1 if pos.quantity > 0 else -1
            realized = money(closed * (price - pos.entry) * s)  # booked to 8 places, as fees
            new = pos.quantity + signed
            if new == 0:
                del self.positions[symbol]
            elif (new > 0) == (pos.quantity > 0):
                pos.quantity = new
            else:
                self.positions[symbol] = Position(new, price)
        self.wallet += realized - fee
        f = Fill(order.cid, symbol, order.side, quantity, price, fee, realized, maker, self.now, liquidation)
        order.fills.append(f)
        self.fills.append(f)
        if sum((x.quantity for x in order.fills), ZERO) >= order.quantity:
            order.status = "FILLED"
        if order.order_type == "LIMIT":
            order.reserve = ZERO
        if order.reduce_only:
            order.status = "FILLED"
        self._expire_reduce_only(symbol)
        return f

    def _expire_reduce_only(self, symbol: str) -> None:
        """Reduce-only orders that can no longer reduce the position expire."""
        pos = self.qty(symbol)
        for o in self.orders.values():
            if self.live(o) and o.reduce_only and o.symbol == symbol:
                reduces = pos != 0 and ((pos > 0) == (o.side == "SELL"))
                if not reduces:
                    o.status = "EXPIRED"

    def _execute(self, order: Order) -> None:
        if order.order_type == "LIMIT":
            self.fill(order, order.price, order.quantity, maker=True)  # type: ignore[arg-type]
            return
        qty = min(order.quantity, abs(self.qty(order.symbol)))  # reduce-only: clipped
        self.fill(order, self.venue.slipped(order.stop_price, order.side), qty, maker=False)  # type: ignore[arg-type]
        order.status = "FILLED"

    def liquidate(self) -> list[str]:
        """Cancel the open orders, then close the position losing most at its liquidation
        price (the others at their prices then), rounded half-even to the tick, paying the
        taker fee; repeat while the account is still short. Returns the symbols closed."""
        for o in self.orders.values():
            if o.is_open:
                o.status = "CANCELLED"
        closed: list[str] = []
        n = 0
        while self.positions and (n == 0 or self.liquidatable()):  # the first: met at the LP
            symbol = min(self.positions, key=lambda s: self.upnl(s))
            lp = self.liquidation_price(symbol)
            price = tick(lp if lp is not None else self.prices[symbol])
            pos = self.positions[symbol]
            side = "SELL" if pos.quantity > 0 else "BUY"
            n += 1
            order = Order(f"liq-{len(self.fills)}-{n}", symbol, side, "MARKET", abs(pos.quantity))
            self.orders[order.cid] = order
            self.fill(order, price, abs(pos.quantity), maker=False, liquidation=True)
            closed.append(symbol)
        return closed

    # -- price moves --------------------------------------------------------------------
    def next_event(self, symbol: str, p0: Decimal, p1: Decimal, t0: Decimal, n: Decimal) -> Event | None:
        """The first event while ``symbol`` moves linearly from p0 (time t0) to p1 (t0 + n)."""
        if p1 == p0:
            return None
        events: list[Event] = []

        def crossing(level: Decimal, direction: str) -> Decimal | None:
            going = "down" if p1 < p0 else "up"
            if direction != going:
                return None
            lo, hi = min(p0, p1), max(p0, p1)
            if not (lo <= level <= hi):
                return None
            return t0 + (level - p0) / (p1 - p0) * n

        for o in self.orders.values():
            if self.live(o) and o.symbol == symbol:
                level, direction = o.trigger()
                t = crossing(level, direction)
                if t is not None:
                    events.append(Event(t, "order", o.cid, symbol))
        if symbol in self.positions:
            lp = self.liquidation_price(symbol)
            if lp is not None:
                t = crossing(lp, "down" if self.positions[symbol].quantity > 0 else "up")
                if t is not None:
                    events.append(Event(t, "liquidation", symbol=symbol))
        events.sort(key=lambda e: (e.at, e.kind != "liquidation"))
        return events[0] if events else None

    def move(self, symbol: str, p1: Decimal, n: int) -> list[Event]:
        """Play ``symbol`` moving linearly to p1 over n seconds. Returns the events, in order."""
        p0, t0, end = self.prices[symbol], self.now, self.now + n
        done: list[Event] = []
        while True:
            ev = self.next_event(symbol, self.prices[symbol], p1, self.now, end - self.now)
            if ev is None:
                break
            start_price = p0 + (p1 - p0) * (ev.at - t0) / n
            self.now = ev.at
            done.append(ev)
            if ev.kind == "liquidation":
                self.prices[symbol] = self.liquidation_price(symbol) or start_price
                self.liquidate()
            else:
                self.prices[symbol] = start_price
                self._execute(self.orders[ev.cid])
            self.prices[symbol] = start_price
        self.prices[symbol], self.now = p1, end
        return done
