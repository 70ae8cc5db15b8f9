"""Risk gate benchmarks (issue 4): how much of an order's time is the risk check?

(a) ``check_pre_trade`` alone: the pure policy on a realistic snapshot (the user has three
    paper accounts, positions on two of them, orders and fills in the database).
(b) the gate as ``trading.services.orders._submit`` runs it: ``live_read`` (balance,
    positions and price from the venue, no lock) + under the user's risk lock
    (``select_for_update`` of the RiskProfile) ``risk_snapshot`` + ``check_pre_trade``.
(c) the whole ``order_submit`` on the paper venue (as the API calls it: no trader passed),
    alternating open long / close long so the account stays within its limits; the
    timings of the gate's parts inside it are taken too (wrappers in this process only).

Each is reported for a small paper book (reset to empty whenever the account is flat and
the book holds 50 orders) and for a book holding its full history (1,000 closed orders,
pre-filled), because every venue call loads and saves the whole book.

    .venv/bin/python bench/risk_gate.py [--quick] [--database-url postgresql://...]
"""

from __future__ import annotations

import time
from collections import defaultdict
from decimal import Decimal

from _common import (
    SYMBOL,
    Bench,
    Probe,
    QueryCounter,
    base_parser,
    load,
    make_paper_account,
    make_user,
    median_of,
    prefill_book,
    print_table,
    ratio,
    relax_risk,
    summarize,
)

QTY = Decimal("0.001")
RESET_EVERY = 50


def parse():
    p = base_parser(__doc__.split("\n\n")[0])
    p.add_argument("--checks", type=int, default=None, help="(a) iterations (default 20000, quick 5000)")
    p.add_argument("--gates", type=int, default=None, help="(b) iterations, small book (default 300, quick 50)")
    p.add_argument("--orders", type=int, default=None, help="(c) orders, small book (default 300, quick 40)")
    p.add_argument("--full-gates", type=int, default=None, help="(b) iterations, full book (default 30, quick 6)")
    p.add_argument("--full-orders", type=int, default=None, help="(c) orders, full book (default 40, quick 6)")
    p.add_argument("--no-full", action="store_true", help="skip the full-history book")
    return p.parse_args()


# --------------------------------------------------------------------------- set-up
def setup_user(tag: str):
    """A user with three paper accounts: the target (trades BTC), two others holding an
    ETH long and a SOL short, recorded through order_submit like everything else."""
    from trading.services import order_submit

    user = make_user(f"risk-{tag}")
    relax_risk(user)
    target = make_paper_account(user, "target")
    other1 = make_paper_account(user, "other-1")
    other2 = make_paper_account(user, "other-2")
    for account, symbol, side, pside, qty in ((other1, "ETH/USDT", "BUY", "LONG", "0.05"),
                                              (other2, "SOL/USDT", "SELL", "SHORT", "1")):
        res = order_submit(account=account, symbol=symbol, side=side, position_side=pside, quantity=qty,
                           source="api", actor="bench")
        assert res.accepted and res.order.status == "FILLED", (res.order.status, res.order.error)
    # A little trading history on the target (orders, fills, a balance snapshot).
    for i in range(4):
        submit(target, i)
    return user, target


def submit(account, i: int):
    from trading.services import order_submit

    opening = i % 2 == 0
    res = order_submit(account=account, symbol=SYMBOL, side="BUY" if opening else "SELL", position_side="LONG",
                       quantity=QTY, source="api", actor="bench", reduce_only=not opening)
    if not res.accepted or res.order.status != "FILLED":
        raise RuntimeError(f"order {i} not filled: {res.order.status} {res.order.error} "
                           f"{res.verdict.rule if res.verdict else ''}")
    return res


def maybe_reset(account, i: int, small: bool) -> None:
    """Keep the small book small: forget it when the account is flat every RESET_EVERY orders."""
    if small and i % 2 == 1 and (i + 1) % RESET_EVERY == 0:
        from exchanges.services import adapter_runtime

        adapter_runtime().paper_store.delete(account.account_ref)


def intent_for(account, i: int):
    from risk.policy import OrderIntent

    opening = i % 2 == 0
    return OrderIntent(account_id=account.pk, venue=account.venue, symbol=SYMBOL, side="BUY" if opening else "SELL",
                       position_side="LONG", quantity=QTY, order_type="MARKET", price=None, leverage=1,
                       reduce_only=not opening)


# --------------------------------------------------------------------------- (a) and (b)
def bench_check_alone(user, account, n: int) -> dict:
    from exchanges.services import trader_for_account
    from risk.models import RiskProfile
    from risk.policy import Limits, check_pre_trade
    from trading.services.snapshot import live_read, risk_snapshot

    trader = trader_for_account(account)
    read = live_read(account=account, trader=trader, symbol=SYMBOL)
    snap = risk_snapshot(user=user, read=read)
    profile = RiskProfile.objects.get(user=user)
    intent = intent_for(account, 0)
    limits = Limits.from_profile(profile)
    verdict = check_pre_trade(limits, intent, snap)
    assert verdict.allowed, verdict
    lat, lat_limits = [], []
    pc = time.perf_counter
    for _ in range(n):
        t0 = pc()
        check_pre_trade(limits, intent, snap)
        t1 = pc()
        lat.append((t1 - t0) * 1e6)
    for _ in range(max(1, n // 10)):
        t0 = pc()
        Limits.from_profile(profile)
        lat_limits.append((pc() - t0) * 1e6)
    return {"check_us": summarize(lat), "limits_from_profile_us": summarize(lat_limits),
            "snapshot": {"positions": len(snap.positions or ()), "reserved": len(snap.reserved),
                         "orders_last_hour": snap.orders_last_hour}}


def bench_gate(user, account, n: int, small: bool) -> dict:
    """(b): live_read, then under the lock risk_snapshot + check_pre_trade (rolled back:
    nothing is written but what the venue's book writes itself)."""
    from django.db import transaction

    from exchanges.services import trader_for_account
    from risk.models import RiskProfile
    from risk.policy import Limits, check_pre_trade
    from trading.services.snapshot import live_read, risk_snapshot

    trader = trader_for_account(account)
    parts = defaultdict(list)
    pc = time.perf_counter
    for j in range(n):
        t0 = pc()
        read = live_read(account=account, trader=trader, symbol=SYMBOL)
        t1 = pc()
        with transaction.atomic():
            profile = RiskProfile.objects.select_for_update().get(user=user)
            t2 = pc()
            snap = risk_snapshot(user=user, read=read)
            t3 = pc()
            verdict = check_pre_trade(Limits.from_profile(profile), intent_for(account, 0), snap)  # opening: every rule runs
            t4 = pc()
        t5 = pc()
        if not verdict.allowed:
            raise RuntimeError(f"gate rejected: {verdict.rule} {verdict.message}")
        parts["live_read"].append((t1 - t0) * 1000)
        parts["lock (select_for_update)"].append((t2 - t1) * 1000)
        parts["risk_snapshot"].append((t3 - t2) * 1000)
        parts["check_pre_trade"].append((t4 - t3) * 1000)
        parts["commit"].append((t5 - t4) * 1000)
        parts["gate total"].append((t5 - t0) * 1000)
        if j % 10 == 9:  # trade now and then so positions and history change as in use
            submit(account, 0)  # open
            submit(account, 1)  # close: flat again
            if small and (j + 1) % RESET_EVERY == 0:
                maybe_reset(account, RESET_EVERY - 1, small)
    return {k: summarize(v) for k, v in parts.items()}


# --------------------------------------------------------------------------- (c)
TOP_LEVEL = [("orders", "trader_for_account", "build trader"),
             ("orders", "live_read", "live_read (no lock)"),
             ("PaperTrader", "place_order", "venue place_order"),
             ("orders", "_record_placed", "record: position + balance read, result, fills, fold")]
OTHER = "rest: validate, the locked block (below), Order save, ..."
def bench_submit(user, account, n: int, small: bool, offset: int) -> dict:
    import alpha_platform.common.realtime as realtime
    import trading.services.orders as orders_mod
    from exchanges.adapters.paper import PaperTrader
    from trading.models import Order

    probe = Probe()
    for owner, name, label in TOP_LEVEL:
        probe.wrap({"orders": orders_mod, "PaperTrader": PaperTrader}[owner], name, label)
    probe.wrap(orders_mod, "order_apply_result", "  order_apply_result (in the record)")
    probe.wrap(orders_mod, "risk_snapshot", "  risk_snapshot (in the lock)")
    probe.wrap(orders_mod, "check_pre_trade", "  check_pre_trade (in the lock)")
    probe.wrap(orders_mod, "risk_event_record", "  risk_event_record (in the lock)")
    probe.wrap(Order, "full_clean", "  Order.full_clean (in the lock)")
    probe.wrap(realtime, "_send", "  realtime pushes after commit (all parts)")
    totals: list[float] = []
    parts = defaultdict(list)
    queries: list[dict] = []
    top = {label for _, _, label in TOP_LEVEL}
    try:
        for j in range(n):
            i = offset + j
            probe.start()
            with QueryCounter() as q:
                t0 = time.perf_counter()
                submit(account, i)
                total = (time.perf_counter() - t0) * 1000
            timing = probe.take()
            totals.append(total)
            for k, v in timing.items():
                parts[k].append(v)
            parts[OTHER].append(total - sum(v for k, v in timing.items() if k in top))
            queries.append(q.counts)
            maybe_reset(account, i, small)
    finally:
        probe.undo()
    return {"total_ms": summarize(totals), "parts_ms": {k: summarize(v) for k, v in parts.items()},
            "queries_per_order": {k: median_of(qc.get(k, 0) for qc in queries)
                                  for k in sorted({k for qc in queries for k in qc})}}


# --------------------------------------------------------------------------- main
def main() -> None:
    args = parse()
    quick = args.quick
    n_a = args.checks or (5000 if quick else 20000)
    n_b = args.gates or (50 if quick else 300)
    n_c = args.orders or (40 if quick else 300)
    n_bf = args.full_gates or (6 if quick else 30)
    n_cf = args.full_orders or (6 if quick else 40)
    repeats = args.repeats or (1 if quick else 3)
    phases = [("small book", True, n_b, n_c)] + ([] if args.no_full else [("full history", False, n_bf, n_cf)])
    with Bench("risk_gate", args) as b:
        b.header("risk check vs the whole order_submit")
        b.results["params"] = {"checks": n_a, "gates": n_b, "orders": n_c, "full_gates": n_bf, "full_orders": n_cf,
                               "repeats": repeats}
        per_phase: dict[str, list[dict]] = defaultdict(list)
        for r in range(repeats):
            for label, small, gates, orders in phases:
                user, account = setup_user(f"{r}-{'s' if small else 'f'}")
                if not small:
                    from exchanges.services import trader_for_account

                    # Flat (4 orders so far), so the pre-filled book is consistent with the rows.
                    prefill_book(account, "django", trader_for_account(account), 1000, f"rg{r}")
                la = load()
                t0 = time.perf_counter()
                res = {"load": la,
                       "a": bench_check_alone(user, account, n_a),
                       "b": bench_gate(user, account, gates, small),
                       "c": bench_submit(user, account, orders, small, 10_000)}
                res["seconds"] = time.perf_counter() - t0
                per_phase[label].append(res)
                print(f"  run {r + 1}/{repeats} {label}: check {res['a']['check_us']['median']:.1f} us, "
                      f"gate {res['b']['gate total']['median']:.2f} ms, order_submit "
                      f"{res['c']['total_ms']['median']:.1f} ms  (load {la[0]}, {res['seconds']:.0f} s)", flush=True)

        summary = {}
        rows, share_rows = [], []
        for label, runs in per_phase.items():
            a50 = median_of(x["a"]["check_us"]["median"] for x in runs) / 1000
            a99 = median_of(x["a"]["check_us"]["p99"] for x in runs) / 1000
            b50 = median_of(x["b"]["gate total"]["median"] for x in runs)
            b99 = median_of(x["b"]["gate total"]["p99"] for x in runs)
            c50 = median_of(x["c"]["total_ms"]["median"] for x in runs)
            c99 = median_of(x["c"]["total_ms"]["p99"] for x in runs)
            rows += [[label, "(a) check_pre_trade alone", a50, a99],
                     [label, "(b) gate: live_read + lock + snapshot + check", b50, b99],
                     [label, "(c) whole order_submit", c50, c99]]
            insitu_check = median_of(x["c"]["parts_ms"]["  check_pre_trade (in the lock)"]["median"] for x in runs)
            insitu_gate = sum(median_of(x["c"]["parts_ms"][k]["median"] for x in runs)
                              for k in ("live_read (no lock)", "  risk_snapshot (in the lock)",
                                        "  check_pre_trade (in the lock)"))
            share_rows.append([label, ratio(a50, c50), ratio(b50, c50), ratio(insitu_check, c50),
                               ratio(insitu_gate, c50)])
            summary[label] = {"check_ms": {"median": a50, "p99": a99}, "gate_ms": {"median": b50, "p99": b99},
                              "order_submit_ms": {"median": c50, "p99": c99},
                              "share": dict(zip(["a_over_c", "b_over_c", "insitu_check_over_c", "insitu_gate_over_c"],
                                                share_rows[-1][1:]))}
        print_table(f"risk check vs whole order (ms; median of {repeats} runs of each; p99 within a run)",
                    ["paper book", "what", "median ms", "p99 ms"], rows)
        print_table("share of the whole order_submit (median / median)",
                    ["paper book", "a/c check", "b/c gate", "check in situ / c", "gate in situ / c"], share_rows)
        for label, runs in per_phase.items():
            keys = list(runs[0]["b"].keys())
            print_table(f"(b) the gate's parts, {label} (ms, median of runs)", ["part", "p50", "p99"],
                        [[k, median_of(x["b"][k]["median"] for x in runs), median_of(x["b"][k]["p99"] for x in runs)]
                         for k in keys])
            keys = [label_ for _, _, label_ in TOP_LEVEL] + [OTHER] + sorted(
                k for k in {k for x in runs for k in x["c"]["parts_ms"]} if k.startswith("  "))
            c50 = summary[label]["order_submit_ms"]["median"]
            print_table(f"(c) inside order_submit, {label} (ms per order, median of runs; indented parts are "
                        "nested inside the ones above)", ["part", "p50", "share of total"],
                        [[k, median_of(x["c"]["parts_ms"][k]["median"] for x in runs if k in x["c"]["parts_ms"]),
                          ratio(median_of(x["c"]["parts_ms"][k]["median"] for x in runs if k in x["c"]["parts_ms"]),
                                c50)] for k in keys])
            q = runs[-1]["c"]["queries_per_order"]
            print(f"  SQL statements per order_submit ({label}): " + ", ".join(f"{k} {v:g}" for k, v in q.items()))
        b.results["runs"] = dict(per_phase)
        b.results["summary"] = summary
        b.write_results()


if __name__ == "__main__":
    main()
