"""Fixtures of the Hyperliquid tests: a fake server, a main wallet funded with 10,000 USDC, an
agent wallet approved for it, a fake clock, and a trader signing as the agent."""

from __future__ import annotations

import pytest
from eth_account import Account

from tests.exchanges.hyperliquid.support import (
    FakeClock,
    make_trader,
)
from tests.fakes.hyperliquid_server import HyperliquidFakeServer


@pytest.fixture
def server():
    with HyperliquidFakeServer() as fake:
        yield fake


@pytest.fixture
def main_wallet():
    return Account.create()


@pytest.fixture
def agent(server, main_wallet):
    wallet = Account.create()
    server.fund(main_wallet.address, "10000")
    server.approve_agent(main_wallet.address, wallet.address)
    return wallet


@pytest.fixture
def clock():
    return FakeClock()


@pytest.fixture
def trader(server, agent, main_wallet, clock):
    t = make_trader(server, agent.key.hex(), main_wallet.address, clock)
    yield t
    t.close()
