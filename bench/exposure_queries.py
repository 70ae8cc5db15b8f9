"""Cost of the exposure picture (issue 12): SQL statements and wall time of one risk check
for a user with 1 account x 1 symbol (the baseline) and with 3x3, 5x3 and 10x3 accounts x
symbols, each account holding an open position in each of its symbols and one order in
flight (a resting LIMIT far from the mark), printed as ratios to the baseline measured in
the same run. The issue asks for a bounded number of queries however many accounts and
symbols a user has: the statement ratios should stay at 1.0.

(a) the gate as order_submit runs it under the user's risk lock: select_for_update of the
    RiskProfile + ``risk_snapshot`` (the live read of the target account comes before the
    lock and is timed apart; it is one account's venue calls whatever the user holds);
    if the snapshot's signature changed, (a) says so and (b) still runs.
(b) the whole ``order_submit`` on the paper venue: a small BTC long on the first account,
    closed again after each measurement so the book stays the same size (only the opening
    order is measured).

    .venv/bin/python bench/exposure_queries.py [--quick] [--database-url postgresql://...]
"""

from __future__ import annotations

import time
from decimal import Decimal

from _common import (
    Bench,
    QueryCounter,
    base_parser,
    make_paper_account,
    make_user,
    median_of,
    print_table,
    ratio,
    relax_risk,
)

SHAPES = ((1, 1), (3, 3), (5, 3), (10, 3))  # (accounts, symbols)
SYMBOLS = ("BTC/USDT", "ETH/USDT", "SOL/USDT")
POSITION_USD = Decimal(150)
PROBE_QTY = Decimal("0.001")


def parse():
    p = base_parser(__doc__.split("\n\n")[0])
    p.add_argument("--checks", type=int, default=None, help="measurements per shape (default 30, quick 8)")
    return p.parse_args()


def setup_user(accounts: int, symbols: int, tag: str):
    """A user with ``accounts`` paper accounts, each long ``symbols`` symbols (about
    150 USD each) with one resting BUY LIMIT at half the mark in flight."""
    from exchanges.services import trader_for_account
    from trading.services import order_submit

    user = make_user(f"exp-{tag}")
    relax_risk(user, max_total_exposure_percent=Decimal(1), max_exchange_exposure_percent=Decimal(1),
               max_position_percent=Decimal(1), max_open_positions=100)
    made = []
    for a in range(accounts):
        account = make_paper_account(user, f"paper-{a}")
        trader = trader_for_account(account)
        try:
            for symbol in SYMBOLS[:symbols]:
                mark = trader.get_market_price(symbol)
                qty = trader.format_quantity(symbol, POSITION_USD / mark)
                res = order_submit(account=account, symbol=symbol, side="BUY", position_side="LONG", quantity=qty,
                                   source="api", actor="bench")
                assert res.order.status == "FILLED", (res.order.status, res.order.error)
            symbol = SYMBOLS[0]
            mark = trader.get_market_price(symbol)
            res = order_submit(account=account, symbol=symbol, side="BUY", position_side="LONG",
                               quantity=trader.format_quantity(symbol, POSITION_USD / mark), order_type="LIMIT",
                               price=trader.format_price(symbol, mark / 2), source="api", actor="bench")
            assert res.order.status == "NEW", (res.order.status, res.order.error)
        finally:
            trader.close()
        made.append(account)
    return user, made


def measure_snapshot(user, account, n: int) -> dict:
    from django.db import transaction

    from exchanges.services import trader_for_account
    from risk.models import RiskProfile
    from trading.services import snapshot as snap_mod

    trader = trader_for_account(account)
    lat, read_lat, counts = [], [], []
    try:
        for _ in range(n):
            t0 = time.perf_counter()
            read = snap_mod.live_read(account=account, trader=trader, symbol=SYMBOLS[0])
            t1 = time.perf_counter()
            with QueryCounter() as q, transaction.atomic():
                t2 = time.perf_counter()
                RiskProfile.objects.select_for_update().get(user=user)
                snapshot = snap_mod.risk_snapshot(user=user, read=read)
                t3 = time.perf_counter()
            read_lat.append((t1 - t0) * 1000)
            lat.append((t3 - t2) * 1000)
            counts.append(q.counts.get("total", 0))
    except TypeError as exc:  # the snapshot's signature is not this one any more
        return {"error": f"{type(exc).__name__}: {exc}"}
    finally:
        trader.close()
    return {"queries": max(counts), "ms": median_of(lat), "live_read_ms": median_of(read_lat),
            "positions": len(snapshot.positions or ()), "reserved": len(snapshot.reserved)}


def measure_submit(account, n: int) -> dict:
    from trading.services import order_submit

    lat, counts = [], []
    for _ in range(n):
        with QueryCounter() as q:
            t0 = time.perf_counter()
            res = order_submit(account=account, symbol=SYMBOLS[0], side="BUY", position_side="LONG",
                               quantity=PROBE_QTY, source="api", actor="bench")
            t1 = time.perf_counter()
        if res.order.status != "FILLED":
            raise RuntimeError(f"probe not filled: {res.order.status} {res.order.error}")
        lat.append((t1 - t0) * 1000)
        counts.append(q.counts.get("total", 0))
        close = order_submit(account=account, symbol=SYMBOLS[0], side="SELL", position_side="LONG",
                             quantity=PROBE_QTY, reduce_only=True, source="api", actor="bench")
        if close.order.status != "FILLED":
            raise RuntimeError(f"close not filled: {close.order.status} {close.order.error}")
    return {"queries": median_of(counts), "queries_max": max(counts), "ms": median_of(lat)}


def main() -> None:
    args = parse()
    n = args.checks or (8 if args.quick else 30)
    with Bench("exposure_queries", args) as b:
        b.header("SQL statements and time of one risk check vs accounts x symbols")
        rows = []
        for accounts, symbols in SHAPES:
            user, made = setup_user(accounts, symbols, f"{accounts}x{symbols}")
            rows.append({"accounts": accounts, "symbols": symbols, "snapshot": measure_snapshot(user, made[0], n),
                         "submit": measure_submit(made[0], n)})
        base = rows[0]
        b.results["params"] = {"checks": n, "shapes": SHAPES}
        b.results["rows"] = rows
        table = []
        for r in rows:
            s, o, bs, bo = r["snapshot"], r["submit"], base["snapshot"], base["submit"]
            snap_q = s.get("queries")
            table.append([f"{r['accounts']}x{r['symbols']}", s.get("positions"), s.get("reserved"),
                          snap_q, ratio(snap_q, bs.get("queries")) if snap_q is not None else None,
                          s.get("ms"), ratio(s["ms"], bs["ms"]) if "ms" in s else None,
                          o["queries"], ratio(o["queries"], bo["queries"]), o["ms"], ratio(o["ms"], bo["ms"])])
        print_table("Risk check under the lock (a) and the whole order_submit (b); ratios to 1x1 in this run",
                    ["accounts x symbols", "positions seen", "in flight seen", "(a) SQL", "ratio", "(a) ms",
                     "ratio", "(b) SQL", "ratio", "(b) ms", "ratio"], table)
        for r in rows:
            if "error" in r["snapshot"]:
                print(f"  (a) {r['accounts']}x{r['symbols']}: {r['snapshot']['error']}")
        from django.db import connection

        b.write_results(variant=connection.vendor)


if __name__ == "__main__":
    main()
