"""A worker process for the process bursts: started with multiprocessing's spawn (a fork
of a threaded test process can deadlock), it sets Django up against the test's own
database and Redis, then for each burst arms one thread per order it was given, waits
for the parent's "go" and submits them all at once through order_submit."""

from __future__ import annotations

import os
from decimal import Decimal
from typing import Any


def _setup(db_name: str, prices: dict[str, str]) -> None:
    # tests.settings starts a Redis of its own in a new process unless told this one may
    # use the inherited REDIS_URL: the parent's, which holds the locks and counters.
    os.environ["ALPHA_TEST_REDIS_PID"] = str(os.getpid())
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")
    from django.conf import settings

    settings.DATABASES["default"]["NAME"] = db_name
    import django

    django.setup()
    from exchanges.services import adapter_runtime
    from tests.fakes.markets import FixedMarket

    adapter_runtime().extra["market"] = FixedMarket(prices)


def serve(db_name: str, prices: dict[str, str], jobs: Any, results: Any, go: Any) -> None:
    """jobs: lists of (account_id, symbol, quantity, leverage), None to stop. Answers
    ("ready", pid) once, then per burst ("armed", n) and ("done", [outcome, ...])."""
    _setup(db_name, prices)
    import threading

    from django.db import connection

    from exchanges.models import ExchangeAccount
    from trading.services import order_submit

    results.put(("ready", os.getpid()))
    while True:
        job = jobs.get()
        if job is None:
            break
        outcomes: list[str] = [""] * len(job)
        armed = threading.Barrier(len(job) + 1)

        def submit(outcomes: list[str], armed: threading.Barrier, i: int, account_id: int, symbol: str,
                   quantity: str, leverage: int) -> None:
            try:
                account = ExchangeAccount.objects.select_related("owner").get(pk=account_id)
                armed.wait(60)
                go.wait(60)
                result = order_submit(account=account, symbol=symbol, side="BUY", position_side="LONG",
                                      quantity=Decimal(quantity), leverage=leverage, source="api",
                                      actor=f"burst-process-{os.getpid()}")
                outcomes[i] = result.order.status
            except BaseException as exc:  # noqa: BLE001 (every attempt's fate is reported to the parent)
                outcomes[i] = f"raised {type(exc).__name__}"
            finally:
                connection.close()

        threads = [threading.Thread(target=submit, args=(outcomes, armed, i, *args), daemon=True) for i, args in enumerate(job)]
        for t in threads:
            t.start()
        armed.wait(60)
        results.put(("armed", len(job)))
        for t in threads:
            t.join(120)
        results.put(("done", outcomes))
    connection.close()
