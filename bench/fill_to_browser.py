"""Venue fill -> browser: how long a fill made at the venue takes to reach a signed-in
browser's websocket through the streams, beside a plain order_event push measured in
the same run.

    .venv/bin/python bench/fill_to_browser.py [--fills 40] [--pushes 40] [--database-url URL]

Starts the fake Binance USD-M venue (REST and user-data websocket) in this process, and
the real platform around it: an embedded Redis, daphne with the real ASGI app, and the
real ``manage.py venue_streams`` process (ccxt.pro talking to the fake). A websocket
client signed in with a session cookie listens as the browser does.

- fill: a resting LIMIT order placed through order_submit (so it is ours and NEW); the
  bench moves the venue's mark across it, stamped just before; the sample ends when the
  browser receives the order's "filled" event (and, separately, the position event).
  The path: fake venue -> ORDER_TRADE_UPDATE/ACCOUNT_UPDATE -> ccxt.pro -> stream ingest
  (order_apply_result, positions_sync) -> on-commit push -> Redis -> daphne -> client.
- baseline: ``trading.events.order_event`` sent on commit from this process (the last
  three hops alone), stamped just before the commit.

Prints p50/p95/max of each and the ratio; everything stops at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import queue
import statistics
import sys
import tempfile
import threading
import time
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

KEY, SECRET = "B1" * 32, "S1" * 32


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered) + 0.5) - 1))]  # nearest rank


class Browser:
    """The websocket client, in its own thread and loop; every message lands in a queue
    with its arrival time."""

    def __init__(self, url: str, cookie: str, origin: str) -> None:
        self.url, self.cookie, self.origin = url, cookie, origin
        self.inbox: queue.Queue = queue.Queue()
        self.ready = threading.Event()
        self._stop = threading.Event()
        self.thread = threading.Thread(target=lambda: asyncio.run(self._run()), daemon=True)

    async def _run(self) -> None:
        import aiohttp

        async with aiohttp.ClientSession() as session, session.ws_connect(
                self.url, headers={"Cookie": self.cookie, "Origin": self.origin}, max_msg_size=0) as ws:
            while not self._stop.is_set():
                try:
                    msg = await ws.receive(timeout=0.5)
                except TimeoutError:
                    continue
                arrived = time.time()
                if msg.type != aiohttp.WSMsgType.TEXT:
                    self.inbox.put((arrived, {"type": "closed", "detail": repr(msg.data)}))
                    return
                event = json.loads(msg.data)
                if event.get("type") == "hello":
                    self.ready.set()
                self.inbox.put((arrived, event))

    def start(self) -> None:
        self.thread.start()
        if not self.ready.wait(20):
            raise RuntimeError("the websocket client got no hello")

    def stop(self) -> None:
        self._stop.set()
        self.thread.join(5)

    def wait_for(self, predicate, timeout: float = 10.0) -> float:
        deadline = time.time() + timeout
        while time.time() < deadline:
            try:
                arrived, event = self.inbox.get(timeout=max(0.01, deadline - time.time()))
            except queue.Empty:
                break
            if event.get("type") == "closed":
                raise RuntimeError(f"the server closed the websocket: {event}")
            if predicate(event):
                return arrived, event
        raise TimeoutError("no matching event")

    def drain(self) -> None:
        while True:
            try:
                self.inbox.get_nowait()
            except queue.Empty:
                return


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--fills", type=int, default=40)
    parser.add_argument("--pushes", type=int, default=40)
    parser.add_argument("--database-url", default="", help="default: a throwaway SQLite database")
    args = parser.parse_args()

    from tests.e2e.stack import Stack
    from tests.fakes.binance_server import FakeBinanceFutures
    from tests.fakes.binance_ws import FakeBinanceUserStream

    started = time.time()
    shm = "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else None
    with tempfile.TemporaryDirectory(prefix="fill-to-browser-", dir=shm) as tmp, \
            FakeBinanceFutures(api_key=KEY, api_secret=SECRET, wallet_balance="1000000") as rest, \
            FakeBinanceUserStream(rest) as venue_ws:
        extra = {"BINANCE_FAPI_URL": rest.url, "BINANCE_FSTREAM_URL": venue_ws.url}
        if args.database_url:
            extra["DATABASE_URL"] = args.database_url
        with Stack(Path(tmp), worker=False, asgi="alpha_platform.asgi:application", extra_env=extra) as stack:
            os.environ.update(stack.env)
            import django

            django.setup()
            ids = setup_user()
            stack._spawn("streams", [sys.executable, str(ROOT / "manage.py"), "venue_streams", "--refresh", "1"])
            stack._wait_log("streams", f"stream of account {ids['account_id']} caught up", timeout=60)
            print(f"stack up in {time.time() - started:.1f}s (daphne {stack.url}, venue_streams, fake Binance "
                  f"{rest.url} / {venue_ws.url}, {'SQLite' if not args.database_url else 'the given database'})")
            browser = Browser(stack.url.replace("http://", "ws://") + "/ws/updates/",
                              f"sessionid={ids['session']}", stack.url)
            browser.start()
            try:
                samples = measure(rest, browser, ids, args.fills, args.pushes)
            finally:
                browser.stop()
            from django.db import connections

            connections.close_all()
            streams_log = stack.log("streams")
            if os.environ.get("BENCH_DEBUG"):
                Path("/tmp/streams_bench.log").write_text(streams_log)
    report(samples, started, streams_log)


def setup_user() -> dict:
    from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY
    from django.contrib.sessions.backends.db import SessionStore

    from bench._common import make_user, relax_risk
    from exchanges.services import exchange_account_create

    user = make_user(f"bench-{int(time.time())}")  # a given database may hold earlier runs
    account = exchange_account_create(owner=user, name="Binance", venue="binance_futures",
                                      credentials={"api_key": KEY, "api_secret": SECRET})
    relax_risk(user, allowed_symbols=["BTC/USDT"])
    session = SessionStore()
    session[SESSION_KEY] = str(user.pk)
    session[BACKEND_SESSION_KEY] = "django.contrib.auth.backends.ModelBackend"
    session[HASH_SESSION_KEY] = user.get_session_auth_hash()
    session.create()
    return {"user_id": user.pk, "account_id": account.pk, "session": session.session_key}


def measure(rest, browser: Browser, ids: dict, fills: int, pushes: int) -> dict[str, list[float]]:
    from django.db import transaction

    from exchanges.models import ExchangeAccount
    from trading.events import order_event
    from trading.models import Order
    from trading.services import order_submit

    account = ExchangeAccount.objects.get(pk=ids["account_id"])
    samples: dict[str, list[float]] = {"fill_order": [], "fill_position": [], "baseline": [], "missed": []}
    mark = Decimal("65000")
    for i in range(fills):
        opening = i % 2 == 0
        price = mark - 100 if opening else mark + 100
        result = order_submit(account=account, symbol="BTC/USDT", side="BUY" if opening else "SELL",
                              position_side="LONG", quantity=Decimal("0.002"), order_type="LIMIT", price=price,
                              reduce_only=not opening, source="system", actor="bench")
        order = result.order
        if order.status != Order.Status.NEW:
            raise RuntimeError(f"order {i} is {order.status} ({order.error}), expected resting")
        time.sleep(0.05)
        browser.drain()
        t0 = time.time()
        rest.set_mark_price("BTCUSDT", price - 100 if opening else price + 100)  # the venue fills it
        got_order = got_position = None
        seen = []
        try:
            while got_order is None or got_position is None:
                arrived, event = browser.wait_for(lambda e: e.get("type") in ("order", "position"), timeout=10)
                seen.append(event)
                if event["type"] == "order" and event["order"]["id"] == order.pk \
                        and event["order"]["status"] == "FILLED":
                    got_order = arrived
                elif event["type"] == "position" and event["position"]["account_id"] == account.pk:
                    got_position = arrived
        except TimeoutError:
            samples["missed"].append(i)
            if os.environ.get("BENCH_DEBUG"):
                print(f"fill {i} (order {order.pk}, now {Order.objects.get(pk=order.pk).status}): saw {seen}")
        if got_order is not None:
            samples["fill_order"].append((got_order - t0) * 1000)
        if got_position is not None:
            samples["fill_position"].append((got_position - t0) * 1000)
        rest.set_mark_price("BTCUSDT", mark)
        time.sleep(0.1)
    order = Order.objects.filter(account=account).first()
    for _ in range(pushes):
        browser.drain()
        t0 = time.time()
        with transaction.atomic():
            order_event(order, "updated")
        arrived, _ = browser.wait_for(lambda e: e.get("type") == "order" and e.get("action") == "updated")
        samples["baseline"].append((arrived - t0) * 1000)
        time.sleep(0.02)
    return samples


def report(samples: dict[str, list[float]], started: float, streams_log: str) -> None:
    rows = [("venue fill -> browser: the order's filled event", samples["fill_order"]),
            ("venue fill -> browser: the position event", samples["fill_position"]),
            ("baseline: plain order_event push on commit", samples["baseline"])]
    print(f"\nlatency to the browser's websocket, ms ({os.cpu_count()} cores; one machine, one clock)")
    print(f"{'':52s} {'n':>4s} {'p50':>8s} {'p95':>8s} {'max':>8s}")
    for label, values in rows:
        if values:
            print(f"{label:52s} {len(values):4d} {statistics.median(values):8.1f} {percentile(values, 95):8.1f} "
                  f"{max(values):8.1f}")
    if samples["missed"]:
        print(f"missed (no event within 10 s): fills {samples['missed']}")
        print("----- venue_streams log (tail) -----\n" + "\n".join(streams_log.splitlines()[-30:]))
    gaps = streams_log.count("gap (")
    print(f"stream gaps (catch-ups after a lost message) during the run: {gaps}")
    if samples["fill_order"] and samples["baseline"]:
        p50 = statistics.median(samples["fill_order"])
        print(f"ratio fill / baseline p50: {p50 / statistics.median(samples['baseline']):.1f}x; "
              f"fill p50 {'under' if p50 < 1000 else 'OVER'} 1 s")
    print(f"total run time {time.time() - started:.1f}s")
    out = ROOT / "var" / "bench" / "fill_to_browser.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({k: {"n": len(v), "p50_ms": statistics.median(v), "p95_ms": percentile(v, 95),
                                   "max_ms": max(v)} for k, v in samples.items() if v and k != "missed"}, indent=2))
    print(f"figures written to {out}")


if __name__ == "__main__":
    main()
