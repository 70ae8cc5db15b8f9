"""Burst helpers for tests/trading/test_cap_bursts.py (and bench/cap_bursts.py, which runs
that module with more bursts).

A burst: a fresh user whose risk profile makes the total exposure cap the binding limit,
one or more accounts, then 10 to 40 opening orders released at once (threads, processes,
the API, agents' ticks) sized so that any two fit the cap and any three do not. After the
burst the exposure is read from the venues' own books (the paper venue's stored book, the
Binance fake's positions) at each symbol's mark and compared with the cap as RiskProfile
defines it: ``max_total_exposure_percent`` of the user's equity across all accounts, the
equity being each venue's wallet balance plus unrealised PnL at the mark.
"""

from __future__ import annotations

import json
import os
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import ROUND_DOWN, Decimal
from typing import Any

D0 = Decimal(0)
PRICES = {"BTC/USDT": Decimal(50000), "ETH/USDT": Decimal(3000), "SOL/USDT": Decimal(100)}
SYMBOLS = tuple(PRICES)
TOTAL_CAP = Decimal("0.5")
LEVERAGE = 5  # the venue's margin (10,000 at 5x) must not be what stops the third order
# Each order is worth cap / ORDER_SHARE: 2 x 0.417 = 0.83 of the cap fits (fees and the
# paper venue's slippage included), 3 x 0.417 = 1.25 does not.
ORDER_SHARE = Decimal("2.4")


def bursts() -> int:
    return int(os.environ.get("CAP_BURSTS", "5"))


def burst_size(i: int) -> int:
    """10 to 40 orders, varying from burst to burst."""
    return 10 + (i * 17) % 31


def cap_limits() -> dict[str, Any]:
    """Only the total exposure cap binds: per-symbol and per-venue caps at or above it,
    and the rate, cooldown and open-position rules out of the way of a burst."""
    return {"max_total_exposure_percent": TOTAL_CAP, "max_exchange_exposure_percent": TOTAL_CAP,
            "max_position_percent": Decimal(1), "max_position_notional_usd": Decimal(1000000),
            "max_leverage": LEVERAGE, "max_open_positions": 50, "max_orders_per_minute": 30000,
            "max_orders_per_hour": 1_000_000, "loss_cooldown_seconds": 0, "daily_loss_limit_percent": Decimal(1),
            "allowed_symbols": list(SYMBOLS)}


def set_cap_profile(user) -> None:
    from risk.models import RiskProfile
    from risk.services import risk_profile_update

    risk_profile_update(profile=RiskProfile.objects.get(user=user), **cap_limits())


# ------------------------------------------------------------------ the venues' own books

@dataclass(frozen=True)
class Leg:
    account_id: int
    venue: str
    symbol: str
    size: Decimal  # signed
    mark: Decimal

    @property
    def notional(self) -> Decimal:
        return abs(self.size) * self.mark


@dataclass
class VenueBook:
    legs: list[Leg]
    equity: Decimal


def paper_book(account, marks: dict[str, Decimal]) -> VenueBook:
    """The paper venue's stored book for the account: its positions, and its equity
    (wallet + unrealised PnL at the mark)."""
    from alpha_platform.common.config import get_config
    from exchanges.services import adapter_runtime

    internal = {v: k for k, v in get_config().symbol_map("paper").items()}
    book = adapter_runtime().paper_store.load(account.account_ref)
    if book is None:
        return VenueBook([], Decimal(10000))
    legs, upnl = [], D0
    for venue_symbol, pos in book.positions.items():
        symbol = internal.get(venue_symbol, venue_symbol)
        mark = marks[symbol]
        legs.append(Leg(account.pk, "paper", symbol, pos.quantity, mark))
        upnl += pos.quantity * (mark - pos.entry_price)
    return VenueBook(legs, book.wallet_balance + upnl)


def binance_book(account, fake) -> VenueBook:
    """The Binance fake's book (one account per fake server), at the fake's marks."""
    from alpha_platform.common.config import get_config

    internal = {v: k for k, v in get_config().symbol_map("binance_futures").items()}
    legs = []
    for venue_symbol in list(fake.positions):
        pos = fake.position(venue_symbol)
        if pos.amount:
            legs.append(Leg(account.pk, "binance_futures", internal.get(venue_symbol, venue_symbol), pos.amount,
                            fake.marks[venue_symbol]))
    return VenueBook(legs, fake.wallet_balance + fake.unrealized_pnl())


def binance_marks(fake) -> dict[str, Decimal]:
    from alpha_platform.common.config import get_config

    return {internal: Decimal(str(fake.marks[venue])) for internal, venue in
            get_config().symbol_map("binance_futures").items() if venue in fake.marks}


# ------------------------------------------------------------------ plans and verdicts

@dataclass(frozen=True)
class Slot:
    """Where one order of the burst goes."""

    account_id: int
    symbol: str
    quantity: Decimal
    notional: Decimal  # at the mark


def plan_slots(places: list[tuple[Any, str, Decimal]], cap: Decimal) -> list[Slot]:
    """One slot per (account, symbol, mark): an opening order worth about cap / 2.4,
    rounded down to the venue's step. Checks the premise: two fit, three do not."""
    from exchanges.services import trader_for_account

    slots = []
    traders: dict[int, Any] = {}
    for account, symbol, mark in places:
        trader = traders.get(account.pk) or traders.setdefault(account.pk, trader_for_account(account))
        qty = Decimal(str(trader.format_quantity(symbol, (cap / ORDER_SHARE / mark).quantize(
            Decimal("0.00000001"), rounding=ROUND_DOWN))))
        slots.append(Slot(account.pk, symbol, qty, qty * mark))
    for trader in traders.values():
        trader.close()
    notionals = [s.notional for s in slots]
    assert 2 * max(notionals) <= cap * Decimal("0.9") and 3 * min(notionals) > cap, (notionals, cap)
    return slots


@dataclass
class BurstResult:
    variant: str
    index: int
    orders: int
    exposure: Decimal
    cap: Decimal
    outcomes: Counter = field(default_factory=Counter)

    @property
    def breached(self) -> bool:
        return self.exposure > self.cap

    def line(self) -> str:
        return (f"{self.variant} burst {self.index}: {self.orders} orders, exposure {self.exposure:.2f} "
                f"vs cap {self.cap:.2f}{' BREACH' if self.breached else ''}; {dict(self.outcomes)}")


def measure(variant: str, index: int, orders: int, books: list[VenueBook], outcomes: Counter) -> BurstResult:
    exposure = sum((leg.notional for b in books for leg in b.legs), D0)
    equity = sum((b.equity for b in books), D0)
    return BurstResult(variant, index, orders, exposure, TOTAL_CAP * equity, outcomes)


def outcome_of(value: Any) -> str:
    """What one attempt came to: the order's status, an HTTP status, or the exception."""
    if isinstance(value, BaseException):
        return f"raised {type(value).__name__}"
    return str(value)


def run_threads(n: int, work: Callable[[int], Any], *, timeout: float = 120) -> list[Any]:
    """Run work(0..n-1) in n threads released together; each result or exception. Each
    thread closes its own database connection (PostgreSQL teardown waits for them)."""
    from django.db import connection

    barrier = threading.Barrier(n)
    results: list[Any] = [None] * n

    def target(i: int) -> None:
        try:
            barrier.wait(timeout)
            results[i] = work(i)
        except BaseException as exc:  # noqa: BLE001 (reported as an outcome, not lost in a thread)
            results[i] = exc
        finally:
            connection.close()

    threads = [threading.Thread(target=target, args=(i,), daemon=True) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout)
    return results


def report(results: list[BurstResult]) -> str:
    """A summary line (and, with CAP_BURSTS_REPORT=path, one JSON line appended there)."""
    from django.db import connection

    breaches = sum(r.breached for r in results)
    worst = max((r.exposure / r.cap for r in results), default=D0)
    variant = results[0].variant if results else "?"
    summary = {"variant": variant, "database": connection.vendor, "bursts": len(results), "breaches": breaches,
               "attempts": sum(r.orders for r in results), "worst_exposure_over_cap": f"{worst:.3f}",
               "outcomes": dict(sum((r.outcomes for r in results), Counter()))}
    path = os.environ.get("CAP_BURSTS_REPORT")
    if path:
        with open(path, "a") as f:
            f.write(json.dumps(summary) + "\n")
    return json.dumps(summary)
