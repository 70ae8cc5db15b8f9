"""The paper venue's account figures under cross margin: mark prices at one moment, each
position's notional, uPnL, initial and maintenance margin and liquidation price, the
account's available margin, and the check that an order's margin is there. Django-free.

Cross margin: margin balance = wallet + uPnL; initial margin = notional at mark / leverage;
available = margin balance - initial margin - margin reserved by resting opening limits;
maintenance = notional x the rate of the symbol's margin bracket for that notional - the
bracket's maintenance amount (``rules.Bracket``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal

from alpha_platform.common.money import ZERO
from alpha_platform.common.vocabulary import OrderSide, OrderType
from exchanges.adapters.errors import InsufficientFunds
from exchanges.adapters.paper.market import PriceSource
from exchanges.adapters.paper.rules import PaperRules, money
from exchanges.adapters.paper.store import PaperBook, PaperPosition


@dataclass(frozen=True)
class PositionView:
    position: PaperPosition
    mark_price: Decimal
    leverage: int
    notional: Decimal
    unrealized_pnl: Decimal
    initial_margin: Decimal
    maintenance_margin: Decimal
    liquidation_price: Decimal | None


@dataclass(frozen=True)
class AccountView:
    wallet_balance: Decimal
    unrealized_pnl: Decimal
    margin_balance: Decimal
    position_margin: Decimal
    order_margin: Decimal
    maintenance_margin: Decimal
    available: Decimal  # may be negative: the DTO clamps, risk checks may want the truth
    positions: tuple[PositionView, ...]


class Marks:
    """Mark prices at one moment, each asked of the price source once."""

    def __init__(self, market: PriceSource, at: datetime, preset: Mapping[str, Decimal] | None = None) -> None:
        self.market = market
        self.at = at
        self._prices: dict[str, Decimal] = dict(preset or {})

    def __getitem__(self, symbol: str) -> Decimal:
        price = self._prices.get(symbol)
        if price is None:
            price = self._prices[symbol] = self.market.price(symbol, self.at)
        return price


class Margin:
    """The figures of one venue's rules over a book."""

    def __init__(self, rules: PaperRules) -> None:
        self.rules = rules

    def leverage(self, book: PaperBook, symbol: str) -> int:
        return int(book.leverage.get(symbol, self.rules.default_leverage))

    @staticmethod
    def opening_quantity(position_qty: Decimal, side: str, quantity: Decimal) -> Decimal:
        """The part of an order that would increase exposure (all of it, the excess over the
        position when it flips one, none when it only reduces)."""
        delta = quantity if side == OrderSide.BUY else -quantity
        if position_qty == 0 or (position_qty > 0) == (delta > 0):
            return quantity
        return max(ZERO, quantity - abs(position_qty))

    def maintenance(self, symbol: str, quantity: Decimal, price: Decimal) -> Decimal:
        """A position's maintenance margin at ``price``."""
        notional = abs(quantity) * price
        return self.rules.bracket(symbol, notional).maintenance(notional)

    def position_excess(self, position: PaperPosition, price: Decimal) -> Decimal:
        """What one position adds to the account's margin balance less what it asks of it
        in maintenance margin, with its symbol at ``price``: linear in the price, so over a
        price range its least is at one end."""
        return (position.quantity * (price - position.entry_price)
                - self.maintenance(position.symbol, position.quantity, price))

    def worst_excess(self, position: PaperPosition, low: Decimal, high: Decimal) -> tuple[Decimal, Decimal]:
        """(least excess, the price giving it) over ``low .. high``."""
        at_low, at_high = self.position_excess(position, low), self.position_excess(position, high)
        return (at_low, low) if at_low <= at_high else (at_high, high)

    def liquidation_price(self, book: PaperBook, symbol: str, marks: Marks) -> Decimal | None:
        """Cross margin: solve W + U_o + q(P - E) = M_o + rate |q| P - cum for P, the other
        positions (U_o their uPnL, M_o their maintenance margin) held at mark, with the rate
        and cum of the bracket the position's notional falls in at P (Binance's formula)."""
        position = book.positions.get(symbol)
        if position is None or position.quantity == 0:
            return None
        other_upnl = other_mm = ZERO
        for other in book.positions.values():
            if other.symbol == symbol:
                continue
            mark = marks[other.symbol]
            other_upnl += other.quantity * (mark - other.entry_price)
            other_mm += self.maintenance(other.symbol, other.quantity, mark)
        q = position.quantity
        base = book.wallet_balance + other_upnl - other_mm - q * position.entry_price
        for bracket in self.rules.brackets(symbol):
            denominator = bracket.rate * abs(q) - q
            if denominator == 0:
                continue
            price = (base + bracket.amount) / denominator
            if price > 0 and bracket.holds(abs(q) * price):
                return self.rules.tick(price)
        return None  # a long that no fall can liquidate (or a short's nonsense root)

    def bankruptcy_price(self, book: PaperBook, symbol: str, marks: Marks, fee_rate: Decimal) -> Decimal | None:
        """The price at which closing the position (paying ``fee_rate``) leaves the account's
        margin balance at zero, the other positions at mark: W + U_o + q(P - E) - |q| P f = 0.
        Rounded to the tick in the account's favour, so the balance stays >= 0."""
        position = book.positions.get(symbol)
        if position is None:
            return None
        others = sum((o.quantity * (marks[o.symbol] - o.entry_price)
                      for o in book.positions.values() if o.symbol != symbol), ZERO)
        q = position.quantity
        denominator = q - abs(q) * fee_rate
        if denominator == 0:
            return None
        price = (q * position.entry_price - book.wallet_balance - others) / denominator
        if price <= 0:
            return None
        return self.rules.tick(price, ROUND_CEILING if q > 0 else ROUND_FLOOR)

    def account(self, book: PaperBook, marks: Marks) -> AccountView:
        views: list[PositionView] = []
        upnl = im = mm = ZERO
        for position in book.positions.values():
            mark = marks[position.symbol]
            lev = self.leverage(book, position.symbol)
            notional = abs(position.quantity) * mark
            pnl = position.quantity * (mark - position.entry_price)
            p_im = notional / lev
            p_mm = self.maintenance(position.symbol, position.quantity, mark)
            upnl += pnl
            im += p_im
            mm += p_mm
            views.append(PositionView(
                position=position, mark_price=mark, leverage=lev, notional=money(notional),
                unrealized_pnl=money(pnl), initial_margin=money(p_im), maintenance_margin=money(p_mm),
                liquidation_price=self.liquidation_price(book, position.symbol, marks),
            ))
        order_margin = ZERO
        for order in book.open_orders():
            if order.order_type == OrderType.LIMIT and not order.reduce_only and order.price is not None:
                order_margin += order.reserve_quantity * order.price / self.leverage(book, order.symbol)
        margin_balance = book.wallet_balance + upnl
        return AccountView(
            wallet_balance=money(book.wallet_balance), unrealized_pnl=money(upnl),
            margin_balance=money(margin_balance), position_margin=money(im),
            order_margin=money(order_margin), maintenance_margin=money(mm),
            available=money(margin_balance - im - order_margin), positions=tuple(views),
        )

    def require_margin(self, book: PaperBook, marks: Marks, symbol: str, opening: Decimal,
                       quantity: Decimal, price: Decimal, fee_rate: Decimal) -> None:
        if opening <= 0:
            return
        lev = self.leverage(book, symbol)
        needed = money(opening * price / lev + quantity * price * max(fee_rate, ZERO))
        available = self.account(book, marks).available
        if needed > available:
            raise InsufficientFunds(
                f"Margin is insufficient: the order needs {needed} USDT at {lev}x, "
                f"{max(available, ZERO)} USDT is available",
                venue=self.rules.venue, code="-2019",
            )
