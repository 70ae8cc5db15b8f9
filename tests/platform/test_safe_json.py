"""What venues and models send is stored whatever it holds: PostgreSQL's jsonb refuses NaN
and Infinity, and its text refuses NUL characters and lone surrogates."""

import json
import math
from decimal import Decimal

import pytest

from alpha_platform.common.safe_json import JSON_MAX_DEPTH, JSON_MAX_ITEMS, clean_text, json_safe
from tests.factories import make_account
from trading.models import Order
from trading.services.positions import _json_safe


def test_json_safe_leaves_nothing_a_strict_encoder_refuses():
    hostile = {"nan": float("nan"), "inf": float("inf"), "ninf": -math.inf, "nul": "a\x00b", "lone": "\ud800x",
               "big": 10 ** 30, "dec": Decimal("1.5"), "list": list(range(JSON_MAX_ITEMS + 10)),
               "deep": None}
    node = hostile
    for _ in range(JSON_MAX_DEPTH + 5):
        node["deep"] = {"deep": None}
        node = node["deep"]
    safe = json_safe(hostile)
    text = json.dumps(safe, allow_nan=False)  # raises on NaN/Infinity
    text.encode("utf-8")  # raises on a lone surrogate
    assert "\x00" not in text
    assert safe["nan"] == "nan" and safe["inf"] == "inf" and safe["dec"] == "1.5" and safe["big"] == str(10 ** 30)
    assert len(safe["list"]) == JSON_MAX_ITEMS + 1 and "cut" in safe["list"][-1]
    assert clean_text("x" * 50, 10) == "x" * 10 + "…[truncated: 50 characters]"
    assert clean_text(clean_text("x" * 50, 10), 10) == clean_text("x" * 50, 10)  # clipping twice changes nothing


@pytest.mark.django_db
def test_a_venue_answer_with_nan_is_stored_with_the_order(user):
    """An order's raw venue answer goes through the same cleaning (order_apply_result): on
    PostgreSQL a NaN in it made the order's row unwritable after the venue had filled it."""
    account = make_account(user)
    order = Order.objects.create(owner=user, account=account, source="api", client_order_id="nan-1",
                                 symbol="BTC/USDT", side="BUY", position_side="LONG", quantity=Decimal("0.01"),
                                 raw_data=_json_safe({"avgPrice": float("nan"), "info": {"mark": float("inf")}}))
    order.refresh_from_db()
    assert order.raw_data == {"avgPrice": "nan", "info": {"mark": "inf"}}
