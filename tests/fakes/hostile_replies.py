"""Hostile script items for ``FakeOpenAIServer``: replies an OpenAI-compatible server may send
that the real ``openai`` client accepts but that used to crash the decision's record step.

Each takes the server (for its ids and completion builder) and returns a ``Scripted`` item.
"""

from __future__ import annotations

from typing import Any

from tests.fakes.openai_server import FakeOpenAIServer, Scripted

ORDER_DEFAULTS: dict[str, Any] = {"symbol": "BTC/USDT", "quantity": None, "usd_notional": 500, "leverage": 1,
                                  "stop_loss": None, "take_profit": None, "order_type": "market",
                                  "limit_price": None}


def usage(prompt: int, completion: int) -> dict[str, int]:
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


def open_long(server: FakeOpenAIServer, *, usd_notional: float = 500, prompt: int = 1200,
              completion: int = 80, delay: float = 0.0) -> Scripted:
    """A valid market long with a fixed ``usage`` (so a test knows the round's spend)."""
    return server.tool_calls(("open_long", {**ORDER_DEFAULTS, "usd_notional": usd_notional}),
                             usage=usage(prompt, completion), delay=delay)


def negative_usage(server: FakeOpenAIServer) -> Scripted:
    """A plain reply whose ``usage`` block counts minus a million tokens."""
    return server.reply("done", usage=usage(-1_000_000, -5))


def huge_usage(server: FakeOpenAIServer) -> Scripted:
    """A plain reply whose ``usage`` counts more tokens than any integer column holds."""
    return server.reply("done", usage=usage(10 ** 15, 10 ** 12))


def nan_arguments(server: FakeOpenAIServer) -> Scripted:
    """Tool calls with NaN, Infinity and 1e308 as numbers (Python's json reads them all)."""
    base = '"symbol": "BTC/USDT", "quantity": null, "leverage": 1, "stop_loss": null, ' \
           '"take_profit": null, "order_type": "market", "limit_price": null'
    return server.tool_calls(("open_long", "{" + base + ', "usd_notional": NaN}'),
                             ("open_short", "{" + base + ', "usd_notional": Infinity}'),
                             ("close_long", "{" + base.replace('"quantity": null', '"quantity": 1e308')
                              + ', "usd_notional": null}'),
                             usage=usage(900, 60))


def symbol_as_list(server: FakeOpenAIServer) -> Scripted:
    """A symbol sent as a list (and a NUL character in the reason of a hold)."""
    return server.tool_calls(("open_long", {**ORDER_DEFAULTS, "symbol": ["BTC/USDT", "ETH/USDT"]}),
                             ("hold", {"reason": "nothing\u0000to do"}), usage=usage(900, 60))
