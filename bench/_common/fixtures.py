"""Platform objects the benchmarks need (after ``Bench`` set Django up): a user, a paper
account, relaxed risk limits, an agent, a query counter and a probe that times a function."""

from __future__ import annotations

import threading
import time
from typing import Any


# --------------------------------------------------------------------------- fixtures (after setup)
def make_user(username: str):
    """A user (its RiskProfile is made by the risk app's signal)."""
    from django.contrib.auth import get_user_model

    return get_user_model().objects.create_user(username, f"{username}@example.invalid", "bench-pw-0123456789")


def make_paper_account(owner, name: str):
    from exchanges.services import exchange_account_create

    return exchange_account_create(owner=owner, name=name, venue="paper", credentials={})


def relax_risk(user, **overrides: Any):
    """Limits that do not get in the way of a benchmark that trades in a loop (rate,
    cooldown, symbols), through the service, so the profile is what the platform would hold."""
    from decimal import Decimal

    from django.conf import settings  # noqa: F401  (Django is set up)

    from alpha_platform.common.config import get_config
    from risk.models import RiskProfile
    from risk.services import risk_profile_update

    changes: dict[str, Any] = dict(max_orders_per_minute=30000, max_orders_per_hour=1_000_000,
                                   loss_cooldown_seconds=0, max_open_positions=50,
                                   daily_loss_limit_percent=Decimal("1"),
                                   allowed_symbols=sorted(get_config().symbol_map("paper")))
    changes.update(overrides)
    return risk_profile_update(profile=RiskProfile.objects.get(user=user), **changes)


def make_agent(owner, account, name: str, symbols: list[str], **kw: Any):
    from agents.services import agent_create

    return agent_create(owner=owner, account=account, name=name, symbols=symbols, **kw)


class QueryCounter:
    """``with QueryCounter() as q:`` counts SQL statements by verb (and paper-book writes)
    on the default connection of the current thread."""

    def __init__(self) -> None:
        self.counts: dict[str, int] = {}
        self._cm = None

    def __call__(self, execute, sql, params, many, context):
        verb = sql.lstrip().split(None, 1)[0].upper() if sql else "?"
        self.counts[verb] = self.counts.get(verb, 0) + 1
        if verb == "UPDATE" and "exchanges_paperaccountstate" in sql:
            self.counts["paper_book_writes"] = self.counts.get("paper_book_writes", 0) + 1
        self.counts["total"] = self.counts.get("total", 0) + 1
        return execute(sql, params, many, context)

    def __enter__(self) -> QueryCounter:
        from django.db import connection

        self._cm = connection.execute_wrapper(self)
        self._cm.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self._cm.__exit__(*exc)


class Probe:
    """Accumulate the time spent in wrapped functions, per thread, between ``start()`` and
    ``take()`` (monkeypatched in this process only; the platform's code is not changed)."""

    def __init__(self) -> None:
        self.local = threading.local()
        self.patches: list[tuple[object, str, object]] = []

    def wrap(self, owner, name: str, label: str) -> None:
        original = getattr(owner, name)
        probe = self

        def wrapper(*a, **kw):
            t0 = time.perf_counter()
            try:
                return original(*a, **kw)
            finally:
                acc = getattr(probe.local, "acc", None)
                if acc is not None:
                    acc[label] += (time.perf_counter() - t0) * 1000

        self.patches.append((owner, name, original))
        setattr(owner, name, wrapper)

    def start(self) -> None:
        from collections import defaultdict

        self.local.acc = defaultdict(float)

    def take(self) -> dict[str, float]:
        acc, self.local.acc = getattr(self.local, "acc", None) or {}, None
        return dict(acc)

    def undo(self) -> None:
        for owner, name, original in reversed(self.patches):
            setattr(owner, name, original)
        self.patches.clear()


def fresh_account(label: str, *, relaxed: bool = True):
    """A new user with one paper account (and, by default, relaxed risk limits)."""
    user = make_user(f"u-{label}")
    if relaxed:
        relax_risk(user)
    return make_paper_account(user, f"paper-{label}")
