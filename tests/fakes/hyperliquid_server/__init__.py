"""A fake Hyperliquid API that the official SDK really talks to (loopback only).

``POST /info`` serves what ``hyperliquid.info.Info`` needs at construction (``meta``,
``spotMeta``) and the reads the adapter makes. ``POST /exchange`` takes signed L1 actions
(order, cancel, cancelByCloid, updateLeverage), recovers the signer with the SDK's own
hashing and eth_account, and acts for the account that signer is an approved agent of,
as the real venue does. Answers use Hyperliquid's shapes, including its error shapes.

State is a tiny cross-margin perpetual venue: orders by oid and cloid, positions
(szi, entryPx), a USDC balance, leverage per asset, resting limit orders and trigger
orders that fire when a test moves the mark (``set_mark``). Every request is recorded;
tests script faults with ``inject``:

    with HyperliquidFakeServer() as server:
        server.approve_agent(main.address, agent.address)
        server.inject(kind="order", fault="lost")          # accept, then drop the answer
        server.inject(kind="info:allMids", fault="http500", times=2)

Fault kinds: ``order`` | ``cancel`` | ``cancelByCloid`` | ``updateLeverage`` (an
/exchange action type), ``exchange`` (any action), ``info:<type>``, ``info`` (any read).
Faults: ``timeout`` (answer after ``delay`` seconds), ``http500``, ``http429``,
``malformed`` (200 with a body that is not JSON), ``lost`` (the action is applied, then
the connection is closed without an answer), ``lost_500`` (applied, then HTTP 500: a 5xx
after executing), ``lost_timeout`` (applied, then the answer comes after ``delay``
seconds), ``late`` (held for ``delay`` seconds, past the client's timeout, THEN applied:
the client sees a timeout and its look-ups find nothing, yet the order exists afterwards).

Misbehaviour as the real venue shows it, beside the faults:

- ``visibility_delay`` (seconds, constructor or attribute): a new order acts at once (it
  fills, moves the position) but ``orderStatus`` answers ``unknownOid`` and the open-order
  and fill lists leave it out until the delay has passed (the API's indexing lag);
- ``set_liquidity(coin, sz)``: what one taker order can fill at the mark. An IOC order (a
  market order) fills that much and the rest is cancelled (orderStatus "canceled" with
  sz < origSz); a GTC limit that crosses fills that much and rests with the remainder.
  ``None`` (the default) is unlimited.

Layout: ``state`` (assets, faults, orders, accounts), ``venue`` (state, lifecycle, test
helpers), ``transport`` (HTTP and faults), ``info`` (/info), ``exchange`` (/exchange: signatures,
nonces, actions), ``matching`` (order life cycle and fills).
"""

from tests.fakes.hyperliquid_server.state import (
    D0,
    DEFAULT_ASSETS,
    FAULTS,
    INTERVAL_MS,
    FakeAccount,
    FakeOrder,
    VenueRefusal,
    fmt,
    now_ms,
)
from tests.fakes.hyperliquid_server.venue import HyperliquidFakeServer

__all__ = [
    "D0",
    "FAULTS",
    "DEFAULT_ASSETS",
    "INTERVAL_MS",
    "fmt",
    "now_ms",
    "VenueRefusal",
    "FakeOrder",
    "FakeAccount",
    "HyperliquidFakeServer",
]
