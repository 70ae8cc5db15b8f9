"""Tool arguments declared once (agents/graph/tool_args.py): the schema offered to the model
and the check of what it sends come from the same models; money arrives as exact Decimals."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest

from agents.graph.tool_args import TOOL_MODELS
from agents.graph.toolspec import build_tools, validate_call

SYMBOLS = ("BTC/USDT", "ETH/USDT")
PRICES = {"BTC/USDT": Decimal("130"), "ETH/USDT": Decimal("3000")}


def order(**overrides):
    args = {"symbol": "BTC/USDT", "quantity": None, "usd_notional": 500, "leverage": 2, "stop_loss": None,
            "take_profit": None, "order_type": "market", "limit_price": None}
    return json.dumps({**args, **overrides})


def check(name, text, max_leverage=3):
    return validate_call(name, text, symbols=SYMBOLS, prices=PRICES, max_leverage=max_leverage)


def test_every_offered_tool_has_its_model_and_its_schema_lists_the_models_fields():
    tools = {t["function"]["name"]: t["function"] for t in build_tools(SYMBOLS, 4)}
    assert set(tools) == set(TOOL_MODELS)
    for name, fn in tools.items():
        params = fn["parameters"]
        assert list(params["properties"]) == list(TOOL_MODELS[name].model_fields)
        assert params["required"] == list(params["properties"]) and params["additionalProperties"] is False
        assert fn["strict"] is True and fn["description"]
        for prop in params["properties"].values():  # strict mode's subset only: no anyOf, titles, lengths
            assert set(prop) <= {"type", "enum", "minimum", "maximum"}, prop
    opening = tools["open_short"]["parameters"]["properties"]
    assert opening["symbol"] == {"type": "string", "enum": list(SYMBOLS)}
    assert opening["leverage"] == {"type": ["integer", "null"], "minimum": 1, "maximum": 4}
    assert opening["usd_notional"] == {"type": ["number", "null"], "maximum": 10**15}
    assert opening["order_type"] == {"type": ["string", "null"], "enum": ["market", "limit", None]}


def test_money_is_read_from_the_json_text_as_an_exact_decimal():
    text = order(usd_notional=None, quantity=None).replace('"quantity": null', '"quantity": 0.123456789012345678')
    checked = check("open_long", text)
    assert checked.ok, checked.error
    assert checked.params.quantity == Decimal("0.123456789012345678")  # a float would keep 17 digits
    assert checked.params.usd_notional is None and checked.params.leverage == 2
    assert checked.arguments["quantity"] == pytest.approx(0.123456789012345678)  # stored as a JSON number
    json.dumps(checked.arguments, allow_nan=False)


@pytest.mark.parametrize(("text", "error"), [
    (order(usd_notional=1e15 * 10), "usd_notional must be at most 1000000000000000"),
    (order(leverage=4), "leverage must be at most 3, got 4"),
    (order(leverage=0), "leverage must be at least 1, got 0"),
    (order(usd_notional="500"), 'usd_notional must be number or null, got "500"'),
    (order(order_type=None, limit_price=120), "limit_price is only for order_type limit"),
])
def test_the_model_s_rules_answer_in_words_the_model_can_act_on(text, error):
    checked = check("open_long", text)
    assert not checked.ok and checked.params is None
    assert error in checked.error, checked.error


def test_several_faults_are_all_reported():
    checked = check("open_long", order(leverage=2.5, usd_notional=True, extra=1))
    assert not checked.ok
    for part in ("unexpected argument(s): extra", "leverage must be integer or null, got 2.5",
                 "usd_notional must be number or null, got true"):
        assert part in checked.error, checked.error


def test_a_hold_reason_is_cut_and_a_read_tool_takes_no_arguments():
    checked = check("hold", json.dumps({"reason": "r" * 1500}))
    assert checked.ok and checked.arguments == {"reason": "r" * 500} and checked.params.reason == "r" * 500
    assert check("get_balance", "").ok
    assert "unexpected argument(s): symbol" in check("get_balance", '{"symbol": "BTC/USDT"}').error
