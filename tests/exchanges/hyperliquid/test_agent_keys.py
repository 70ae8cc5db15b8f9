"""Hyperliquid authentication: unapproved, revoked and foreign agent keys are refused, and a
malformed key never appears in an error."""

from __future__ import annotations

from decimal import Decimal

import pytest
from eth_account import Account

from exchanges.adapters.errors import (
    AuthenticationError,
)
from tests.exchanges.hyperliquid.support import (
    make_trader,
)


# ------------------------------------------------------------------------------- auth
def test_unapproved_agent_key_is_an_authentication_error(server, main_wallet, clock):
    stranger = Account.create()
    key = stranger.key.hex()
    trader = make_trader(server, key, main_wallet.address, clock)
    with pytest.raises(AuthenticationError) as caught:
        trader.open_long("BTC/USDT", Decimal("0.01"), client_order_id="a-1")
    text = str(caught.value) + repr(caught.value.args) + repr(trader)
    assert key.removeprefix("0x") not in text.lower() and "approve" in text
    assert server.placed_orders() == []


def test_revoked_agent_is_refused_by_the_venue_signature_check(server, trader, agent, main_wallet):
    trader.open_long("SOL/USDT", Decimal("1"), client_order_id="r-1")  # verified and signed
    server.revoke_agent(agent.address)
    with pytest.raises(AuthenticationError) as caught:
        trader.open_long("SOL/USDT", Decimal("1"), client_order_id="r-2")
    # the fake recovered the agent from the signature and found it approved for nobody
    last = server.exchange_requests("order")[-1]
    assert last["answer"] == {"status": "err",
                              "response": f"User or API Wallet {agent.address.lower()} does not exist."}
    message = str(caught.value)
    assert "does not exist" in message
    assert agent.key.hex().removeprefix("0x") not in message.lower()
    assert last["body"]["signature"]["r"].removeprefix("0x") not in message.lower()
    assert len(server.placed_orders()) == 1


def test_agent_of_another_account_is_refused_before_signing(server, agent, clock):
    other_account = Account.create()
    trader = make_trader(server, agent.key.hex(), other_account.address, clock)
    with pytest.raises(AuthenticationError, match="another account"):
        trader.set_leverage("BTC/USDT", 2)
    assert server.exchange_requests() == []


def test_malformed_credentials_never_echo_the_key(server, main_wallet, clock):
    bad = "0x" + "ab" * 31 + "zz"
    with pytest.raises(AuthenticationError) as caught:
        make_trader(server, bad, main_wallet.address, clock)
    assert "ab" * 31 not in str(caught.value)
