"""Hyperliquid across adapter instances: a fresh adapter reports each order's cloid, and the
nonce clock is the signer's across trader instances."""

from __future__ import annotations

from decimal import Decimal

from exchanges.adapters.base import (
    OrderStatus,
)
from exchanges.adapters.hyperliquid import cloid_for
from tests.exchanges.hyperliquid.support import (
    make_trader,
)


# ------------------------------------------------------------------------------- fresh adapters
def test_a_fresh_adapter_reports_each_orders_cloid(server, agent, main_wallet, clock):
    """Reconciliation and flattening may run in another process than the one that placed
    an order: every result carries the venue's cloid, which the trading layer maps to ours
    (Order.venue_client_order_id), with no memory of what was sent."""
    def fresh():
        return make_trader(server, agent.key.hex(), main_wallet.address, clock)

    placed = fresh().open_long("BTC/USDT", Decimal("0.01"), client_order_id="rest-1", order_type="LIMIT",
                               price=Decimal("60000"))
    assert (placed.client_order_id, placed.venue_client_order_id) == ("rest-1", cloid_for("rest-1"))
    fresh().open_long("ETH/USDT", Decimal("0.1"), client_order_id="rest-2", order_type="LIMIT",
                      price=Decimal("3000"), stop_loss=Decimal("2800"))

    listed = fresh().get_open_orders()
    assert sorted(o.venue_client_order_id for o in listed) == sorted(
        cloid_for(c) for c in ("rest-1", "rest-2"))  # the bracket waits for its entry's fill
    assert all(o.client_order_id == o.venue_client_order_id for o in listed)  # ours is not known here
    [btc] = fresh().get_open_orders("BTC/USDT")
    assert btc.order_id == placed.order_id and btc.venue_client_order_id == cloid_for("rest-1")

    by_cid = fresh().get_order("BTC/USDT", client_order_id="rest-1")
    assert (by_cid.client_order_id, by_cid.venue_client_order_id) == ("rest-1", cloid_for("rest-1"))
    by_oid = fresh().get_order("BTC/USDT", order_id=placed.order_id)
    assert by_oid.venue_client_order_id == cloid_for("rest-1")
    cancelled = fresh().cancel_order("BTC/USDT", order_id=placed.order_id)
    assert cancelled.status == OrderStatus.CANCELLED and cancelled.venue_client_order_id == cloid_for("rest-1")


def test_the_nonce_clock_is_the_signers_across_trader_instances(server, agent, main_wallet, clock, monkeypatch):
    """Two instances signing for one agent key at once (two callers, or an old and a new
    pooled trader) never send the same nonce, which the venue would refuse. The clock the
    nonces come from ticks every 100 ms here, so instances that did not share the signer's
    nonce clock would collide within a tick."""
    import threading
    import time as real_time
    import types

    import hyperliquid.exchange as sdk_exchange

    import exchanges.adapters.hyperliquid.trader as adapter_module

    def coarse() -> float:
        return (int(real_time.time() * 10)) / 10.0

    monkeypatch.setattr(sdk_exchange, "get_timestamp_ms", lambda: int(coarse() * 1000))
    monkeypatch.setattr(adapter_module, "time", types.SimpleNamespace(time=coarse, sleep=real_time.sleep))
    traders = [make_trader(server, agent.key.hex(), main_wallet.address, clock) for _ in range(2)]
    for trader in traders:
        trader.get_market_price("SOL/USDT")  # clients built before the race
    barrier, errors = threading.Barrier(2), []

    def place(index):
        try:
            barrier.wait()
            for i in range(8):
                traders[index].open_long("SOL/USDT", Decimal("1"), client_order_id=f"n{index}-{i}")
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=place, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == []
    nonces = [r["body"]["nonce"] for r in server.exchange_requests("order")]
    assert len(nonces) == len(set(nonces)) == 16
    assert len(server.placed_orders(main_wallet.address)) == 16
