"""Values every database stores as JSON and text: PostgreSQL's jsonb refuses NaN and
Infinity, and its text and jsonb refuse NUL characters and lone surrogates. Venue answers
and model replies carry any of them, at any size. No Django imports."""

from __future__ import annotations

import math
import re
from datetime import datetime
from typing import Any

JSON_MAX_STR = 20_000  # characters per string inside an audit JSON value
JSON_MAX_ITEMS = 500  # items per list / keys per object
JSON_MAX_DEPTH = 24
JSON_MAX_KEY = 100  # characters of an object key
JSON_MAX_INT = 10**18  # larger integers are kept as text, up to JSON_MAX_INT_TEXT digits
JSON_MAX_INT_TEXT = 64  # longer ones are described (str() of a 4,300-digit int raises in 3.11+)

_CLIPPED = re.compile(r"…\[truncated: \d+ characters\]\Z")


def clip(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters plus a marker saying how long it was (a text
    already clipped to ``limit`` is left as it is, so clipping twice changes nothing)."""
    if len(text) <= limit:
        return text
    marker = _CLIPPED.search(text, limit)
    if marker is not None and marker.start() == limit:
        return text
    return f"{text[:limit]}…[truncated: {len(text)} characters]"


def int_digits(value: int) -> int:
    """How many digits ``value`` has (4000 for anything at least that long)."""
    return len(str(abs(value))) if abs(value) < 10**4000 else 4000


def clean_text(value: str, limit: int) -> str:
    """``value`` clipped to ``limit``, with NUL characters and lone surrogates replaced."""
    text = clip(value.replace("\x00", "\ufffd"), limit)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = text.encode("utf-8", "replace").decode("utf-8")
    return text


def json_safe(value: Any, *, max_str: int = JSON_MAX_STR, max_items: int = JSON_MAX_ITEMS,
              max_depth: int = JSON_MAX_DEPTH, _depth: int = 0) -> Any:
    """A copy of ``value`` that every database stores as JSON: no NaN/Infinity (they become
    strings), no NUL or lone surrogates, integers beyond ``JSON_MAX_INT`` as text, Decimals
    and other objects as text; strings, lists, objects and nesting bounded."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int):
        if abs(value) < JSON_MAX_INT:
            return value
        digits = int_digits(value)
        return str(value) if digits <= JSON_MAX_INT_TEXT else f"{digits}-digit integer"
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, str):
        return clean_text(value, max_str)
    if _depth >= max_depth:
        return "…[nested too deep]"
    bounds = dict(max_str=max_str, max_items=max_items, max_depth=max_depth, _depth=_depth + 1)
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for i, (key, item) in enumerate(value.items()):
            if i >= max_items:
                out["…"] = f"[{len(value) - max_items} keys cut]"
                break
            out[clean_text(str(key), JSON_MAX_KEY)] = json_safe(item, **bounds)
        return out
    if isinstance(value, (list, tuple)):
        items = [json_safe(item, **bounds) for item in list(value)[:max_items]]
        if len(value) > max_items:
            items.append(f"…[{len(value) - max_items} items cut]")
        return items
    if isinstance(value, datetime):
        return value.isoformat()
    return clean_text(str(value), max_str)
