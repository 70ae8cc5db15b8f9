"""Paper venue benchmarks (issue 3).

(a) Order throughput: market orders per second through ``PaperTrader.place_order`` with
    the database-backed book (``DjangoPaperStore``, what the platform runs) against the
    same with ``MemoryPaperStore`` (the baseline: the cost of persistence). Buys and sells
    alternate (open a long, close it) so margin never runs out. The book keeps up to
    ``history_limit`` closed orders and fills, so it grows as an account trades: the rate
    is reported for a fresh book and again once the history is full.
(c) Sync cost: ``PaperEngine.sync`` over an untouched span of one-second steps (a minute, an
    hour, a day) on the simulated market, for 1 and 3 symbols each with a position and two
    resting limits: quiet (no level reached) and busy (limits that fill during the span);
    ms per symbol, and the ratio to the one-minute sync in the same run.
(b) Market-data latency: N reads of candles(1m, 50) and of the ticker, straight from the
    trader (no cache) and through ``exchanges.market_data`` (the shared Redis cache, warm),
    median and p99; then the cold case: K threads asking for the same missing key at once,
    counting the fetches that reach the venue (single-flight: should be 1).

    .venv/bin/python bench/paper_venue.py [--quick] [--database-url postgresql://...]
"""

from __future__ import annotations

import threading
import time
from decimal import Decimal

from _common import (
    QTY,
    STORES,
    SYMBOL,
    Bench,
    base_parser,
    load,
    median_of,
    place_alternating,
    prefill_book,
    print_table,
    ratio,
    summarize,
    trader_with_store,
)



def parse():
    p = base_parser(__doc__.split("\n\n")[0])
    p.add_argument("--histories", type=str, default=None,
                   help="book history sizes (closed orders) to pre-fill, comma-separated (default 0,1000,10000; "
                        "quick 0,1000)")
    p.add_argument("--window", type=int, default=None, help="orders measured per run (default 100, quick 40)")
    p.add_argument("--reads", type=int, default=None, help="market-data reads per kind (default 2000, quick 300)")
    p.add_argument("--threads", type=str, default="8,32", help="cold single-flight: thread counts")
    only = p.add_argument_group("selection")
    only.add_argument("--only", choices=["orders", "market-data", "sync"], default=None)
    return p.parse_args()


# --------------------------------------------------------------------------- (a) orders
def bench_orders(b: Bench, histories: list[int], window: int, repeats: int) -> None:
    from _common import fresh_account

    runs: dict[str, dict[int, list[dict]]] = {s: {h: [] for h in histories} for s in STORES}
    last_trader = None
    for r in range(repeats):
        for h in histories:
            for store in STORES:  # interleaved: load changes hit all alike
                account = fresh_account(f"orders-{store}-{h}-{r}")
                trader = trader_with_store(account, store)
                size = prefill_book(account, store, trader, h, f"{store}{h}{r}")
                la = load()
                lat = place_alternating(trader, window, f"{store}{h}{r}")
                res = {"history": h, "book_bytes_before": size, "orders": window, "per_s": window / sum(lat),
                       "ms": summarize([x * 1000 for x in lat]), "load": la}
                runs[store][h].append(res)
                if store == "django":
                    last_trader = trader
                print(f"  run {r + 1}/{repeats} history {h:5d} {store:6s}: {res['per_s']:7.1f} orders/s "
                      f"(p50 {res['ms']['median']:.2f} ms), book {size / 1024:.0f} KiB, load {la[0]}", flush=True)

    def med(store, h, key, stat=None):
        return median_of((x[key][stat] if stat else x[key]) for x in runs[store][h])

    rows = []
    for h in histories:
        eng, mem, dj = med("engine", h, "per_s"), med("memory", h, "per_s"), med("django", h, "per_s")
        rows.append([h, med("django", h, "book_bytes_before") / 1024, eng, mem, dj, ratio(dj, mem), ratio(dj, eng),
                     med("memory", h, "ms", "median"), med("django", h, "ms", "median"), med("django", h, "ms", "p99")])
    print_table(f"(a) market orders/s through PaperTrader.place_order, one account ({window} alternating orders per "
                f"run after pre-filling the book with H closed orders; median of {repeats} runs; "
                "baseline = MemoryPaperStore)",
                ["history H", "book KiB", "engine/s*", "memory/s", "django/s", "django/memory", "django/engine",
                 "memory ms p50", "django ms p50", "django ms p99"], rows)
    print("  * engine = a bench-only store handing back the live book (no copy, no serialisation, no DB): "
          "the engine's own cost, the floor under both real stores")
    serial = serialisation_cost(last_trader)
    print_table("(a) what one open of that book costs (every PaperTrader call, reads included, reads the state "
                "and the open orders and writes the state), ms", ["step", "ms"], [[k, v] for k, v in serial.items()])
    b.results["orders"] = {
        "window": window, "repeats": repeats, "histories": histories, "runs": runs,
        "table": [dict(zip(["history", "book_kib", "engine_per_s", "memory_per_s", "django_per_s",
                            "django_over_memory", "django_over_engine", "memory_ms_p50", "django_ms_p50",
                            "django_ms_p99"], row)) for row in rows],
        "book_open_cost_ms": serial}


def serialisation_cost(trader, n: int = 20) -> dict:
    """Time the pieces of DjangoPaperStore.book() that do not depend on the engine: what
    every call reads and writes (the state document and the open orders), whatever the
    account's history."""
    import json

    from django.db import transaction

    from exchanges.adapters.paper import PaperBook
    from exchanges.models import PaperAccountState, PaperOrderRecord

    row = PaperAccountState.objects.get(account_ref=trader.account_ref)
    state = row.book
    open_rows = list(PaperOrderRecord.objects.filter(state=row, is_open=True).values_list("data", flat=True))
    text = json.dumps(state)
    book = PaperBook.from_dict(state, orders=open_rows)
    out = {}
    for name, fn in (("json.loads (state document)", lambda: json.loads(text)),
                     ("PaperBook.from_dict (state + open orders)", lambda: PaperBook.from_dict(state, orders=open_rows)),
                     ("PaperBook.state_dict", lambda: book.state_dict()),
                     ("json.dumps (state document)", lambda: json.dumps(state))):
        out[name] = median_of(_lat(fn, n))

    def locked_read_and_save():
        with transaction.atomic():
            r = PaperAccountState.objects.select_for_update().get(pk=row.pk)
            list(PaperOrderRecord.objects.filter(state=r, is_open=True).values_list("pk", "order_id", "data"))
            r.save()

    out["SELECT FOR UPDATE + open orders + UPDATE (incl. JSON codec)"] = median_of(_lat(locked_read_and_save, n))
    out["state document KiB"] = len(text) / 1024
    out["order records of the account"] = PaperOrderRecord.objects.filter(state=row).count()
    out["open orders read by a call"] = len(open_rows)
    return out


# --------------------------------------------------------------------------- (c) sync
def bench_sync(b: Bench, repeats: int) -> None:
    from datetime import UTC, datetime, timedelta

    from exchanges.adapters.paper import PaperEngine, PaperRules, SimulatedMarket
    from exchanges.adapters.paper.store import PaperBook, PaperOrder, PaperPosition

    config = {"BTC/USDT": {"start_price": 65000, "annual_volatility": 0.6},
              "ETH/USDT": {"start_price": 3200, "annual_volatility": 0.75},
              "SOL/USDT": {"start_price": 150, "annual_volatility": 0.9}}
    market = SimulatedMarket(20251118, config, epoch=datetime(2026, 11, 1, tzinfo=UTC))
    engine = PaperEngine(PaperRules(), market)

    def book_at(start: datetime, n: int, busy: bool) -> PaperBook:
        book = PaperBook.new("bench", Decimal("10000000"), now=start)
        for k, symbol in enumerate(list(config)[:n]):
            price = market.price(symbol, start)
            qty = (Decimal(1000) / price).quantize(Decimal("0.000001"))
            book.positions[symbol] = PaperPosition(symbol, qty, price, start, start, position_id=f"p{k}")
            away = Decimal("0.003") if busy else Decimal("0.3")
            for side, level in (("BUY", price * (1 - away)), ("SELL", price * (1 + away))):
                oid = book.next_id("")
                book.orders[oid] = PaperOrder(oid, f"c{oid}", symbol, side, "LIMIT", qty, "NEW", start, start,
                                              price=level.quantize(Decimal("0.01")), reserve_quantity=qty)
        book.last_sync = start
        return book

    spans = {"1 minute": 60, "1 hour": 3600, "1 day": 86400}
    rows, results = [], {}
    for busy in (False, True):
        for n in (1, 3):
            per = {}
            for name, seconds in spans.items():
                times = []
                for r in range(repeats):
                    start = datetime(2026, 11, 20, tzinfo=UTC) + timedelta(days=3 * r + 40 * busy + 10 * n)
                    book = book_at(start, n, busy)
                    t0 = time.perf_counter()
                    engine.sync(book, start + timedelta(seconds=seconds))
                    times.append((time.perf_counter() - t0) * 1000 / n)
                per[name] = median_of(times)
            results[f"{'busy' if busy else 'quiet'}-{n}"] = per
            rows.append(["busy" if busy else "quiet", n, *(per[k] for k in spans),
                         ratio(per["1 day"], per["1 minute"])])
    print_table(f"(c) PaperEngine.sync over an untouched span, ms per symbol (median of {repeats}; cold price "
                "caches: each run starts on another day)",
                ["orders", "symbols", *spans, "day / minute"], rows)
    b.results["sync"] = results


# --------------------------------------------------------------------------- (b) market data
class CountingTrader:
    """Proxy counting the market-data calls that reach the venue."""

    def __init__(self, trader) -> None:
        self._t = trader
        self.calls = {"get_candles": 0, "get_ticker": 0}
        self._lock = threading.Lock()

    def get_candles(self, *a, **kw):
        with self._lock:
            self.calls["get_candles"] += 1
        return self._t.get_candles(*a, **kw)

    def get_ticker(self, *a, **kw):
        with self._lock:
            self.calls["get_ticker"] += 1
        return self._t.get_ticker(*a, **kw)

    def __getattr__(self, name):
        return getattr(self._t, name)


def _lat(fn, n: int) -> list[float]:
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t0) * 1000)
    return out


def bench_market_data(b: Bench, reads: int, thread_counts: list[int], repeats: int) -> None:
    from django.core.cache import cache

    from _common import fresh_account
    from exchanges import market_data
    from exchanges.services import trader_for_account

    account = fresh_account("md")
    trader = CountingTrader(trader_for_account(account))
    kw = dict(trader=trader, venue=account.venue, testnet=account.testnet, symbol=SYMBOL)
    kinds = {
        "candles 1m x50": (lambda: trader._t.get_candles(SYMBOL, "1m", 50),
                           lambda: market_data.candles(**kw, timeframe="1m", limit=50)),
        "ticker": (lambda: trader._t.get_ticker(SYMBOL), lambda: market_data.ticker(**kw)),
    }
    rows, out = [], {}
    for name, (direct, cached) in kinds.items():
        per: dict[str, list] = {"direct": [], "cached": [], "fetches_in_warm_loop": []}
        for _ in range(repeats):
            direct()  # warm the process-level path caches of the simulated market
            d = summarize(_lat(direct, reads))
            cached()  # warm the Redis key
            before = dict(trader.calls)
            c = summarize(_lat(cached, reads))
            per["direct"].append(d)
            per["cached"].append(c)
            per["fetches_in_warm_loop"].append(sum(trader.calls.values()) - sum(before.values()))
        dmed = median_of(x["median"] for x in per["direct"])
        dp99 = median_of(x["p99"] for x in per["direct"])
        cmed = median_of(x["median"] for x in per["cached"])
        cp99 = median_of(x["p99"] for x in per["cached"])
        rows.append([name, dmed, dp99, cmed, cp99, ratio(cmed, dmed), max(per["fetches_in_warm_loop"])])
        out[name] = {"direct_ms": {"median": dmed, "p99": dp99}, "cached_warm_ms": {"median": cmed, "p99": cp99},
                     "runs": per}
    print_table(f"(b) market-data read latency, ms ({reads} reads per kind, median of {repeats} runs; "
                "baseline = direct trader call)",
                ["read", "direct p50", "direct p99", "cache p50", "cache p99", "cache/direct", "venue fetches*"], rows)
    print("  * venue fetches during the warm cached loop (a key rolls over at its time-bucket edge: "
          "1 min for 1m candles, 5 s for tickers)")

    # Cold single-flight: K threads, same missing key, at once.
    trials_n = 5 if b.results["quick"] else 10
    cold_rows, cold = [], {}
    for k in thread_counts:
        entry: dict = {}
        for variant in ("platform",):
            trials = [cold_trial(trader, kw, k) for _ in range(trials_n)]
            entry[variant] = trials
            fetches = [t["venue_calls"]["get_candles"] + t["venue_calls"]["get_ticker"] for t in trials]
            cold_rows.append([k, variant, median_of(fetches), max(fetches), sum(1 for f in fetches if f > 2),
                              median_of(t["latency_ms"]["median"] for t in trials),
                              median_of(t["latency_ms"]["max"] for t in trials)])
        lat_direct = direct_burst(trader, k)
        entry["uncached"] = summarize(lat_direct)
        cold_rows.append([k, "no cache", 2 * k, 2 * k, "-", entry["uncached"]["median"], entry["uncached"]["max"]])
        cold[str(k)] = entry
    print_table(f"(b) cold cache: K threads read candles+ticker of one symbol at once ({trials_n} trials each; "
                "ideal = 2 venue fetches, one per key; latency per thread in ms, median over trials)",
                ["threads K", "single-flight", "fetches p50", "fetches max", "trials > 2", "cold p50", "cold max"],
                cold_rows)
    print("  platform = exchanges.market_data as is (it re-reads the key after winning the lock). Waiters poll "
          "every 20 ms,\n  so a cold read costs the fetch plus up to 20 ms for every thread but the first.")
    b.results["market_data"] = {"reads": reads, "repeats": repeats, "warm": out, "cold": cold}


def cold_trial(trader, kw, k: int) -> dict:
    from django.core.cache import cache

    from exchanges import market_data

    cache.delete_pattern("md:*")
    market_data.reset_stats()
    calls_before = dict(trader.calls)
    barrier = threading.Barrier(k)
    lat = [0.0] * k
    errors: list[str] = []

    def worker(i: int) -> None:
        from django.db import connection

        try:
            barrier.wait()
            t0 = time.perf_counter()
            market_data.candles(**kw, timeframe="1m", limit=50)
            market_data.ticker(**kw)
            lat[i] = (time.perf_counter() - t0) * 1000
        except Exception as exc:  # noqa: BLE001
            errors.append(repr(exc))
        finally:
            connection.close()

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(k)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    venue = {n: trader.calls[n] - calls_before[n] for n in trader.calls}
    return {"venue_calls": venue, "stats": dict(market_data.stats), "latency_ms": summarize(lat), "errors": errors}


def direct_burst(trader, k: int) -> list[float]:
    """The same burst without the cache: every thread goes to the venue."""
    barrier = threading.Barrier(k)
    lat = [0.0] * k

    def worker(i: int) -> None:
        barrier.wait()
        t0 = time.perf_counter()
        trader._t.get_candles(SYMBOL, "1m", 50)
        trader._t.get_ticker(SYMBOL)
        lat[i] = (time.perf_counter() - t0) * 1000

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(k)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return lat


def main() -> None:
    args = parse()
    quick = args.quick
    histories = [int(x) for x in (args.histories or ("0,1000" if quick else "0,1000,10000")).split(",")]
    window = args.window or (40 if quick else 100)
    reads = args.reads or (300 if quick else 2000)
    repeats = args.repeats or (1 if quick else 3)
    threads = [int(x) for x in args.threads.split(",") if x]
    with Bench("paper_venue", args) as b:
        b.header("order throughput and market-data latency")
        b.results["params"] = {"histories": histories, "window": window, "reads": reads, "repeats": repeats, "threads": threads}
        if args.only in (None, "orders"):
            bench_orders(b, histories, window, repeats)
        if args.only in (None, "market-data"):
            bench_market_data(b, reads, threads, repeats)
        if args.only in (None, "sync"):
            bench_sync(b, repeats)
        b.write_results()


if __name__ == "__main__":
    main()
