"""What the per-process pool of long-lived traders saves (exchanges/adapters/pool.py, used
by exchanges.services.trader_for_account), against the local fake venues the real clients
talk to: FakeBinanceFutures (ccxt) and HyperliquidFakeServer (the official SDK).

For each venue, N small BTC/USDT market orders (opens with leverage 2 and closes,
alternating, so margin never runs out) are placed straight through the adapter:
(a) fresh: a new trader per order, the pool's bypass ``trader_for_account(pooled=False)``
    (= ``create_trader(venue_spec(account), ...)``), closed (shut down) after each order;
(b) pooled: ``trader_for_account(account)`` per order, ``close()`` (a release) after it.
Each mode gets its own fake server, a cold ccxt market cache and an empty pool, so the
counts are that mode's alone; ratios are pooled / fresh from the same run. Binance's
exchangeInfo is cached per process by the ccxt adapter (not the pool), so it is 1 either
way. "Rate-limit waits" are client-side sleeps (ccxt's per-client throttle: a pooled client
remembers its last request, a fresh one does not; the platform's RateLimiter).

    .venv/bin/python bench/trader_pool.py [--orders 20]
"""

from __future__ import annotations

import os
import statistics
import time
from decimal import Decimal

from _common import Bench, base_parser, load, make_user, percentile, print_table, ratio

API_KEY, API_SECRET = "A1" * 32, "S2" * 32
QTY = Decimal("0.002")
WAITED = [0.0]  # seconds slept in client-side rate limiting (ccxt's throttle, the platform's limiter)
URL_VARS = {"binance_futures": ("BINANCE_FAPI_URL", "BINANCE_FAPI_TESTNET_URL"),
            "hyperliquid": ("HYPERLIQUID_API_URL", "HYPERLIQUID_TESTNET_API_URL")}


def count_waits() -> None:
    """Time the client-side rate-limit sleeps: ccxt's per-instance throttle (a fresh ccxt
    client starts with no history, a pooled one remembers its last request) and the
    platform's shared RateLimiter (runtime.sleep)."""
    import ccxt as cx

    from exchanges.services import adapter_runtime

    def timed(fn):
        def wrapper(*a, **kw):
            t0 = time.perf_counter()
            try:
                return fn(*a, **kw)
            finally:
                WAITED[0] += time.perf_counter() - t0
        return wrapper

    cx.Exchange.throttle = timed(cx.Exchange.throttle)
    runtime = adapter_runtime()
    runtime.sleep = timed(runtime.sleep)


def settings_calls(venue: str, fake) -> dict[str, int]:
    """The calls the pool is meant to save, by name, as counted by the fake."""
    if venue == "binance_futures":
        return {"exchangeInfo": fake.count("GET", "/fapi/v1/exchangeInfo"),
                "leverage": fake.count("POST", "/fapi/v1/leverage"),
                "marginType": fake.count("POST", "/fapi/v1/marginType"),
                "orders": fake.count("POST", "/fapi/v1/order")}
    return {"meta": len(fake.info_requests("meta")), "spotMeta": len(fake.info_requests("spotMeta")),
            "userRole": len(fake.info_requests("userRole")),
            "updateLeverage": len(fake.exchange_requests("updateLeverage")),
            "orders": len(fake.exchange_requests("order"))}


def run_mode(venue: str, pooled: bool, n: int, user, tag: str) -> dict:
    from eth_account import Account

    from alpha_platform.common.config import clear_config_cache
    from exchanges.adapters.ccxt.markets import MarketsMixin
    from exchanges.services import exchange_account_create, trader_for_account, trader_pool
    from tests.fakes.binance_server import FakeBinanceFutures
    from tests.fakes.hyperliquid_server import HyperliquidFakeServer

    fake = (FakeBinanceFutures(api_key=API_KEY, api_secret=API_SECRET) if venue == "binance_futures"
            else HyperliquidFakeServer())
    with fake:
        for name in URL_VARS[venue]:
            os.environ[name] = fake.url
        clear_config_cache()
        MarketsMixin.clear_market_cache()
        trader_pool().close_all()
        if venue == "binance_futures":
            creds = {"api_key": API_KEY, "api_secret": API_SECRET}
        else:
            main, agent = Account.create(), Account.create()
            fake.fund(main.address, "100000")
            fake.approve_agent(main.address, agent.address)
            creds = {"private_key": "0x" + agent.key.hex().removeprefix("0x"), "account_address": main.address}
        account = exchange_account_create(owner=user, name=f"{venue}-{tag}", venue=venue, credentials=creds)
        builds0, ms, waits = trader_pool().builds, [], []
        for i in range(n):
            WAITED[0] = 0.0
            t0 = time.perf_counter()
            trader = trader_for_account(account, pooled=pooled)
            try:
                cid = f"bp-{tag}-{i}"
                result = (trader.open_long("BTC/USDT", QTY, client_order_id=cid, leverage=2) if i % 2 == 0
                          else trader.close_long("BTC/USDT", QTY, client_order_id=cid))
            finally:
                trader.close()
            ms.append((time.perf_counter() - t0) * 1000)
            waits.append(WAITED[0] * 1000)
            assert result.executed_quantity == QTY, (venue, i, result)
        total = len(fake.requests)
        out = {"requests": total, "per_order": total / n, "calls": settings_calls(venue, fake),
               "ms_p50": statistics.median(ms), "ms_p90": percentile(ms, 90), "ms_first": ms[0],
               "wait_ms_p50": statistics.median(waits), "wait_ms_total": sum(waits),
               "ms_p50_less_waits": statistics.median(m - w for m, w in zip(ms, waits)),
               "builds": trader_pool().builds - builds0}
        trader_pool().close_all()
    clear_config_cache()
    return out


def main() -> None:
    p = base_parser(__doc__.split("\n\n")[0])
    p.add_argument("--orders", type=int, default=20, help="orders per venue and mode")
    args = p.parse_args()
    n = max(2, args.orders)
    load_start = load()
    with Bench("trader_pool", args) as b:
        b.header(f"fresh trader per order vs the pooled trader, {n} orders per venue")
        print(f"   load average at start: {load_start}")
        user = make_user("bench-pool")
        count_waits()
        results: dict[str, dict] = {}
        for venue in ("binance_futures", "hyperliquid"):
            results[venue] = {mode: run_mode(venue, mode == "pooled", n, user, f"{venue[:2]}{mode[0]}")
                              for mode in ("fresh", "pooled")}
        rows = []
        for venue, r in results.items():
            f, q = r["fresh"], r["pooled"]
            calls = [(f"  {k} calls", ("calls", k)) for k in f["calls"]]
            for label, key in [("HTTP requests at the fake", "requests"), ("requests per order", "per_order"),
                               *calls, ("traders built by the pool", "builds"),
                               ("wall ms per order p50", "ms_p50"), ("wall ms per order p90", "ms_p90"),
                               ("wall ms, first order", "ms_first"),
                               ("  rate-limit waits ms/order p50", "wait_ms_p50"),
                               ("  rate-limit waits ms, total", "wait_ms_total"),
                               ("wall ms per order p50 less waits", "ms_p50_less_waits")]:
                a, c = (f[key[0]][key[1]], q[key[0]][key[1]]) if isinstance(key, tuple) else (f[key], q[key])
                rows.append([venue, label, a, c, None if key == "builds" else ratio(c, a)])
        print_table(f"fresh trader per order vs pooled trader_for_account ({n} orders: market open/close "
                    "BTC/USDT alternating, leverage 2 on opens)", ["venue", "what", "fresh", "pooled", "pooled/fresh"],
                    rows)
        b.results["params"] = {"orders": n, "quantity": QTY}
        b.results["load_at_start"] = load_start
        b.results["venues"] = results
        b.write_results(variant=b.results["database"])


if __name__ == "__main__":
    main()
