"""What the Hyperliquid tests build: a fake clock whose ``sleep`` only moves it, a runtime on
it, the venue spec pointed at the fake server, a trader, and the order wires the venue received."""

from __future__ import annotations

import copy

from alpha_platform.common.config import load_config
from alpha_platform.common.secrets import Credentials
from exchanges.adapters.base import (
    VenueSpec,
)
from exchanges.adapters.hyperliquid import HyperliquidTrader
from exchanges.adapters.resilience import AdapterRuntime, MemoryStore
from tests.fakes.hyperliquid_server import HyperliquidFakeServer

TIMEOUT_MS = 250  # the configured request timeout, small so timeout faults are quick


class FakeClock:
    def __init__(self, start: float = 1_800_000_000.0) -> None:
        self.now = start
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds

    def advance(self, seconds: float) -> None:
        self.now += seconds


def make_runtime(clock: FakeClock, **kw) -> AdapterRuntime:
    return AdapterRuntime(store=MemoryStore(clock=clock), clock=clock, sleep=clock.sleep, **kw)


def make_spec(server: HyperliquidFakeServer, **parameters) -> VenueSpec:
    cfg = load_config("config/exchanges.yaml", environment="testing",
                      environ={"HYPERLIQUID_API_URL": server.url})
    config = copy.deepcopy(cfg.venue_block("hyperliquid"))
    config["network"]["rest_api"]["timeout"] = TIMEOUT_MS
    config["parameters"].update(parameters)
    return VenueSpec(venue="hyperliquid", config=config, symbol_map=cfg.symbol_map("hyperliquid"),
                     testnet=False, account_ref="t1")


def make_trader(server, key: str, account: str, clock: FakeClock, *, runtime=None, **parameters):
    return HyperliquidTrader(spec=make_spec(server, **parameters),
                             credentials=Credentials({"private_key": key, "account_address": account}),
                             runtime=runtime or make_runtime(clock))


def order_wires(server) -> list[dict]:
    return [w for r in server.exchange_requests("order") for w in r["body"]["action"]["orders"]]
