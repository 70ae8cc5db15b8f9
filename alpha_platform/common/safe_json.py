"""Values every database stores as JSON and text: PostgreSQL's jsonb refuses NaN and
Infinity, and its text and jsonb refuse NUL characters and lone surrogates. Venue answers
and model replies carry any of them. No Django imports."""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any

JSON_MAX_STR = 20_000  # characters per string inside an audit JSON value
JSON_MAX_ITEMS = 500  # items per list / keys per object
JSON_MAX_DEPTH = 24


def clean_text(value: str, limit: int) -> str:
    """PostgreSQL refuses NUL characters and lone surrogates in text and jsonb: replace them."""
    text = value.replace("\x00", "\ufffd")
    if len(text) > limit:
        text = text[:limit] + f"…[{len(value) - limit} characters cut]"
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = text.encode("utf-8", "replace").decode("utf-8")
    return text


def json_safe(value: Any, *, max_str: int = JSON_MAX_STR, _depth: int = 0) -> Any:
    """A copy of ``value`` that every database stores as JSON: no NaN/Infinity (PostgreSQL
    jsonb refuses them; they become strings), no NUL or lone surrogates, Decimals and
    other objects as text, strings, lists and objects bounded."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int):
        return value if -(2 ** 63) < value < 2 ** 63 else str(value)[:64]
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, str):
        return clean_text(value, max_str)
    if _depth >= JSON_MAX_DEPTH:
        return "…[nested too deep]"
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for i, (key, item) in enumerate(value.items()):
            if i >= JSON_MAX_ITEMS:
                out["…"] = f"[{len(value) - JSON_MAX_ITEMS} keys cut]"
                break
            out[clean_text(str(key), 200)] = json_safe(item, max_str=max_str, _depth=_depth + 1)
        return out
    if isinstance(value, (list, tuple)):
        items = [json_safe(item, max_str=max_str, _depth=_depth + 1) for item in list(value)[:JSON_MAX_ITEMS]]
        if len(value) > JSON_MAX_ITEMS:
            items.append(f"…[{len(value) - JSON_MAX_ITEMS} items cut]")
        return items
    if isinstance(value, datetime):
        return value.isoformat()
    return clean_text(str(value), max_str)
