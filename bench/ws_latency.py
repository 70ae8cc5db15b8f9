"""Live-update latency: from an order fill recorded in a worker process to the message
arriving at a websocket client, beside a bare Channels round trip, in the same run.

    .venv/bin/python bench/ws_latency.py [--fills 200] [--pings 200] [--quick]

Starts an embedded Redis and daphne (the real ASGI app) on a throwaway SQLite database,
signs a websocket client in with a session cookie, then runs two worker-like processes
(Django set up as a Celery worker has it, no web request involved):

- bare:  ``alpha_platform.common.realtime._send`` to the user's group (the process's one
  sender loop), as the platform pushes after a commit, stamped just before the send;
- a2s:   ``async_to_sync(channel_layer.group_send)`` per message (a new event loop, helper
  thread and Redis connection each time: how the platform sent before the sender loop);
- fills: ``trading.services.order_submit`` on a paper account, alternately opening and
  closing 0.001 BTC. Each fill is stamped when the service's on-commit push for it starts,
  right after the fill's transaction commits (the stamp rides in the event itself).

Another row sends the same pings from inside one event loop (one Redis connection pool):
the transport alone.

The client stamps each message on arrival; latency = arrival - stamp (one machine, one
clock). Prints median, p99 and max of both, and their ratio; stops everything; well under
two minutes.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


# --------------------------------------------------------------------------- producer side
def produce(mode: str, user_id: int, account_id: int, count: int) -> None:
    """Runs in a separate process (the "worker")."""
    import django

    django.setup()
    from asgiref.sync import async_to_sync
    from channels.layers import get_channel_layer

    from alpha_platform.common import realtime

    layer = get_channel_layer()
    group = realtime.user_group(user_id)

    def ping(seq: int, kind: str) -> dict:
        return {"type": "platform.event", "event": {"type": "bench.ping", "kind": kind, "seq": seq, "t0": time.time()}}

    if mode == "bare":  # as the platform pushes: realtime._send, through the sender loop
        for seq in range(count):
            realtime._send([group], ping(seq, "bare")["event"])
            time.sleep(0.005)
        return
    if mode == "a2s":  # the previous way: async_to_sync per message
        for seq in range(count):
            async_to_sync(layer.group_send)(group, ping(seq, "a2s"))
            time.sleep(0.005)
        return
    if mode == "loop":  # the transport alone: one event loop, one Redis connection pool
        async def pings():
            for seq in range(count):
                await layer.group_send(group, ping(seq, "loop"))
                await asyncio.sleep(0.005)
        asyncio.run(pings())
        return

    from decimal import Decimal

    from exchanges.models import ExchangeAccount
    from trading.services import order_submit

    original = realtime._send

    def stamped(groups, event):
        if event.get("type") == "order" and event.get("action") == "filled":
            event = {**event, "bench_t0": time.time()}
        original(groups, event)

    realtime._send = stamped  # the on-commit callback looks the name up when it runs
    account = ExchangeAccount.objects.select_related("owner").get(pk=account_id)
    fills = 0
    for i in range(count):
        side = "BUY" if i % 2 == 0 else "SELL"
        result = order_submit(account=account, symbol="BTC/USDT", side=side, position_side="LONG",
                              quantity=Decimal("0.001"), reduce_only=side == "SELL", source="system",
                              actor="bench")
        if result.order.status != "FILLED":
            print(f"order {i} not filled: {result.order.status} {result.order.error}", file=sys.stderr)
        else:
            fills += 1
    print(json.dumps({"fills": fills}))


# --------------------------------------------------------------------------- client side
async def collect(url: str, cookie: str, origin: str, ready: asyncio.Event, done: asyncio.Event,
                  samples: dict[str, list[float]]) -> None:
    import aiohttp

    async with aiohttp.ClientSession() as session:
        async with session.ws_connect(url, headers={"Cookie": cookie, "Origin": origin}, max_msg_size=0) as ws:
            async for msg in ws:
                arrived = time.time()
                if msg.type != aiohttp.WSMsgType.TEXT:
                    samples["closed"].append(f"{msg.type.name} {msg.data!r} {ws.close_code}")
                    break
                event = json.loads(msg.data)
                if event.get("type") == "hello":
                    ready.set()
                elif event.get("type") == "bench.ping":
                    samples[event["kind"]].append((arrived - event["t0"]) * 1000)
                elif event.get("type") == "order" and "bench_t0" in event:
                    samples["fill"].append((arrived - event["bench_t0"]) * 1000)
                if done.is_set():
                    break


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, round(q / 100 * len(ordered) + 0.5) - 1))  # nearest rank
    return ordered[index]


async def run_phase(stack, mode: str, ids: dict, count: int, samples: dict, key: str, timeout: float) -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, __file__, "--produce", mode, "--user-id", str(ids["user_id"]),
        "--account-id", str(ids["account_id"]), "--count", str(count),
        cwd=ROOT, env=stack.env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout=timeout)
    except asyncio.TimeoutError:
        proc.kill()
        await proc.wait()
        raise RuntimeError(f"the {mode} producer did not finish within {timeout:.0f}s (is the machine busy?)") from None
    if proc.returncode:
        raise RuntimeError(f"{mode} producer failed:\n{err.decode()[-3000:]}")
    expected = count if mode != "fills" else json.loads(out.decode().strip().splitlines()[-1])["fills"]
    deadline = time.time() + 5
    while len(samples[key]) < expected and time.time() < deadline:
        await asyncio.sleep(0.05)
    if len(samples[key]) < expected:
        print(f"warning: {mode}: {expected - len(samples[key])} of {expected} messages did not arrive")
        if not samples[key]:
            import redis

            r = redis.Redis.from_url(stack.env["REDIS_URL"])
            groups = {k.decode(): r.zrange(k, 0, -1) for k in r.keys("asgi*group*")}
            print(f"  redis {stack.env['REDIS_URL']} pid {r.info('server')['process_id']} (ours: "
                  f"{stack.redis.pid}); groups {groups}; keys {len(r.keys('*'))}\n{stack.tails(15)}")


async def measure(stack, ids: dict, pings: int, fills: int) -> dict[str, list[float]]:
    samples: dict[str, list] = {"bare": [], "a2s": [], "loop": [], "fill": [], "closed": []}
    ready, done = asyncio.Event(), asyncio.Event()
    ws_url = stack.url.replace("http://", "ws://") + "/ws/updates/?stream=user"
    client = asyncio.create_task(collect(ws_url, f"sessionid={ids['session']}", stack.url, ready, done, samples))
    await asyncio.wait_for(ready.wait(), timeout=15)
    await run_phase(stack, "loop", ids, pings, samples, "loop", timeout=60)
    await run_phase(stack, "bare", ids, pings, samples, "bare", timeout=60)
    await run_phase(stack, "a2s", ids, pings, samples, "a2s", timeout=60)
    await run_phase(stack, "fills", ids, fills, samples, "fill", timeout=240)
    if client.done() and client.exception() is not None:
        raise RuntimeError(f"the websocket client failed: {client.exception()!r}")
    if samples["closed"]:
        raise RuntimeError(f"the server closed the websocket: {samples['closed']}\n{stack.tails()}")
    done.set()
    client.cancel()
    try:
        await client
    except (asyncio.CancelledError, Exception):
        pass
    return samples


SETUP = """
import json
from decimal import Decimal
from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY, get_user_model
from django.contrib.sessions.backends.db import SessionStore
from exchanges.services import exchange_account_create
from risk.models import RiskProfile
from risk.services import risk_profile_update

user = get_user_model().objects.create_user("bench", password="bench-Pass-12345")
account = exchange_account_create(owner=user, name="Paper", venue="paper", credentials={})
# The bench places hundreds of orders a minute: lift the rate limits and the loss cooldown.
risk_profile_update(profile=RiskProfile.objects.get(user=user), max_orders_per_minute=30000,
                    max_orders_per_hour=1000000, loss_cooldown_seconds=0)
session = SessionStore()
session[SESSION_KEY] = str(user.pk)
session[BACKEND_SESSION_KEY] = "django.contrib.auth.backends.ModelBackend"
session[HASH_SESSION_KEY] = user.get_session_auth_hash()
session.create()
print(json.dumps({"user_id": user.pk, "account_id": account.pk, "session": session.session_key}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--fills", type=int, default=200)
    parser.add_argument("--pings", type=int, default=200)
    parser.add_argument("--quick", action="store_true", help="50 of each (a smoke run)")
    parser.add_argument("--produce", choices=["bare", "a2s", "loop", "fills"], help=argparse.SUPPRESS)
    parser.add_argument("--user-id", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--account-id", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--count", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.produce:
        produce(args.produce, args.user_id, args.account_id, args.count)
        return

    from tests.e2e.stack import Stack

    if args.quick:
        args.fills = args.pings = 50
    started = time.time()
    # The database on tmpfs where there is one: SQLite's fsyncs are not what is measured.
    shm = "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else None
    with tempfile.TemporaryDirectory(prefix="ws-latency-", dir=shm) as tmp, \
            Stack(Path(tmp), worker=False, asgi="alpha_platform.asgi:application") as stack:
        ids = json.loads(stack.shell(SETUP).strip().splitlines()[-1])
        print(f"stack up in {time.time() - started:.1f}s (daphne {stack.url}, SQLite in {tmp}, embedded Redis)")
        samples = asyncio.run(measure(stack, ids, args.pings, args.fills))
        crash_log = stack.log("web")

    missing = [key for key in ("bare", "a2s", "loop", "fill") if not samples[key]]
    if missing:
        sys.exit(f"no {', '.join(missing)} message reached the websocket client: nothing to report"
                 + (" (the consumer died on a Redis read timeout: CHANNEL_LAYERS needs a socket_timeout "
                    "above channels_redis' 5 s blocking read; see tests/portal/test_consumer.py)"
                    if "TimeoutError" in crash_log else ""))
    rows = [("bare Channels round trip, as realtime sends", samples["bare"]),
            ("  the same, async_to_sync per message (before)", samples["a2s"]),
            ("  the same, one loop and Redis pool (transport)", samples["loop"]),
            ("order fill in a worker -> websocket client", samples["fill"])]
    print(f"\nwebsocket delivery latency, ms ({os.cpu_count()} cores; one machine, one clock)")
    print(f"{'':50s} {'n':>5s} {'median':>8s} {'p99':>8s} {'max':>8s}")
    for label, values in rows:
        print(f"{label:50s} {len(values):5d} {statistics.median(values):8.2f} {percentile(values, 99):8.2f} "
              f"{max(values):8.2f}")
    bare, fill = statistics.median(samples["bare"]), statistics.median(samples["fill"])
    print("\nbare: realtime._send from another process, as the platform pushes after a commit;")
    print("fill: the service's on-commit push of an order fill")
    print(f"ratio fill / bare: median {fill / bare:.1f}x, p99 "
          f"{percentile(samples['fill'], 99) / percentile(samples['bare'], 99):.1f}x")
    print(f"total run time {time.time() - started:.1f}s")
    summary = {key: {"n": len(samples[key]), "median_ms": statistics.median(samples[key]),
                     "p99_ms": percentile(samples[key], 99), "max_ms": max(samples[key])}
               for key in ("bare", "a2s", "loop", "fill")}
    summary["ratio_median_fill_over_bare"] = fill / bare
    out = ROOT / "var" / "bench" / "ws_latency.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(summary, indent=2))
    print(f"figures written to {out}")


if __name__ == "__main__":
    main()
