"""The agent's tools: strict OpenAI function schemas and the validation that runs in the
graph BEFORE anything reaches the executor.

Schemas follow OpenAI's strict mode (Structured Outputs): ``"strict": true``, every
property listed in ``required``, ``additionalProperties: false``, optional values as
nullable types (``["number", "null"]``), nullable enums that include ``null``, and only the
numeric keywords strict mode supports (minimum / maximum).

Validation does not trust the model (or a server that ignores ``strict``): it re-checks
the JSON against the same schema with a small validator for exactly that subset, then
the rules a schema cannot say (exactly one size field, stop-loss side, limit price).
Any failure is an ``invalid`` tool call whose error text goes back to the model; the
executor is never called for it, so no order is placed.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

OPEN_TOOLS = frozenset({"open_long", "open_short"})
CLOSE_TOOLS = frozenset({"close_long", "close_short"})
ORDER_TOOLS = OPEN_TOOLS | CLOSE_TOOLS
# Tools that change something at the venue: they decide "executed" / "rejected".
WRITE_TOOLS = ORDER_TOOLS | {"cancel_order", "set_leverage"}
READ_TOOLS = frozenset({"get_positions", "get_balance", "get_market_data"})
HOLD_TOOL = "hold"
TOOL_NAMES = WRITE_TOOLS | READ_TOOLS | {HOLD_TOOL}

MAX_REASON_CHARS = 500
POSITIVE_FIELDS = ("quantity", "usd_notional", "stop_loss", "take_profit", "limit_price")


def _nullable_number() -> dict[str, Any]:
    # Positivity is checked by validate_call rather than with exclusiveMinimum: a keyword
    # on every number would cost prompt tokens on every call for a rule stated once.
    return {"type": ["number", "null"]}


def _object(properties: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": properties,
        "required": list(properties),
        "additionalProperties": False,
    }


def _function(name: str, description: str, properties: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "function",
        "function": {
            "name": name,
            "description": description,
            "strict": True,
            "parameters": _object(properties),
        },
    }


def build_tools(symbols: Sequence[str], max_leverage: int) -> list[dict[str, Any]]:
    """The tool list offered to the model for an agent trading ``symbols``."""
    symbol = {"type": "string", "enum": list(symbols)}
    # Per-property descriptions are kept out: they would repeat in four tools on every call
    # (prompt tokens); the system message states the sizing rule once.
    size = {"quantity": _nullable_number(), "usd_notional": _nullable_number()}
    order_type = {
        "order_type": {"type": ["string", "null"], "enum": ["market", "limit", None]},
        "limit_price": _nullable_number(),
    }
    leverage = {"type": "integer", "minimum": 1, "maximum": int(max_leverage)}
    opening = {
        "symbol": symbol,
        **size,
        "leverage": {**leverage, "type": ["integer", "null"]},
        "stop_loss": _nullable_number(),
        "take_profit": _nullable_number(),
        **order_type,
    }
    closing = {"symbol": symbol, **size, **order_type}
    return [
        _function("open_long", "Open or add to a long.", opening),
        _function("open_short", "Open or add to a short.", opening),
        _function("close_long", "Reduce a long; its full qty closes it.", closing),
        _function("close_short", "Reduce a short; its full qty closes it.", closing),
        _function("cancel_order", "Cancel an open order.",
                  {"order_id": {"type": "integer", "minimum": 1}}),
        _function("set_leverage", "Set a symbol's leverage.", {"symbol": symbol, "leverage": leverage}),
        _function("hold", "Do nothing this tick.", {"reason": {"type": "string"}}),
        _function("get_positions", "Current positions.", {}),
        _function("get_balance", "Account balance.", {}),
        _function("get_market_data", "Fresh market data.", {"symbol": symbol}),
    ]


def tool_schemas(tools: Sequence[Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    return {t["function"]["name"]: t["function"]["parameters"] for t in tools}


# --------------------------------------------------------------------------- validation


@dataclass(frozen=True)
class Validated:
    ok: bool
    arguments: dict[str, Any]  # parsed JSON ({} if it did not parse)
    error: str = ""


class _SchemaError(ValueError):
    pass


def _type_ok(value: Any, type_name: str) -> bool:
    if type_name == "null":
        return value is None
    if type_name == "string":
        return isinstance(value, str)
    if type_name == "boolean":
        return isinstance(value, bool)
    if type_name == "integer":
        return isinstance(value, int) and not isinstance(value, bool) or (
            isinstance(value, float) and value.is_integer())
    if type_name == "number":
        return isinstance(value, int | float) and not isinstance(value, bool) and value == value
    if type_name == "object":
        return isinstance(value, dict)
    return False


def _check(value: Any, schema: Mapping[str, Any], where: str) -> Any:
    """Validate ``value`` against the strict-mode subset; return it normalised."""
    types = schema.get("type")
    types = [types] if isinstance(types, str) else list(types or [])
    if types and not any(_type_ok(value, t) for t in types):
        shown = json.dumps(value) if not isinstance(value, dict) else "an object"
        raise _SchemaError(f"{where} must be {' or '.join(types)}, got {shown}")
    if "enum" in schema and value not in schema["enum"]:
        allowed = ", ".join(json.dumps(v) for v in schema["enum"])
        raise _SchemaError(f"{where} must be one of {allowed}, got {json.dumps(value)}")
    if value is None:
        return None
    if isinstance(value, float) and "integer" in types and "number" not in types:
        value = int(value)
    if isinstance(value, int | float) and not isinstance(value, bool):
        if "minimum" in schema and value < schema["minimum"]:
            raise _SchemaError(f"{where} must be at least {schema['minimum']}, got {value}")
        if "maximum" in schema and value > schema["maximum"]:
            raise _SchemaError(f"{where} must be at most {schema['maximum']}, got {value}")
        if "exclusiveMinimum" in schema and value <= schema["exclusiveMinimum"]:
            raise _SchemaError(f"{where} must be greater than {schema['exclusiveMinimum']}, got {value}")
    if isinstance(value, dict):
        props = schema.get("properties", {})
        if schema.get("additionalProperties") is False:
            extra = sorted(set(value) - set(props))
            if extra:
                raise _SchemaError(f"unexpected argument(s): {', '.join(extra)}")
        missing = [k for k in schema.get("required", []) if k not in value]
        if missing:
            raise _SchemaError(f"missing argument(s): {', '.join(missing)}")
        return {k: _check(v, props[k], k) if k in props else v for k, v in value.items()}
    return value


def _semantic_errors(name: str, args: dict[str, Any], *, prices: Mapping[str, Any],
                     max_leverage: int) -> list[str]:
    errors: list[str] = []
    for key in POSITIVE_FIELDS:
        value = args.get(key)
        if value is not None and value <= 0:
            errors.append(f"{key} must be greater than 0, got {value}")
    if name in ORDER_TOOLS:
        qty, usd = args.get("quantity"), args.get("usd_notional")
        if (qty is None) == (usd is None):
            errors.append("give exactly one of quantity or usd_notional")
        order_type = args.get("order_type") or "market"
        limit_price = args.get("limit_price")
        if order_type == "limit" and limit_price is None:
            errors.append("a limit order needs limit_price")
        if order_type == "market" and limit_price is not None:
            errors.append("limit_price is only for order_type limit")
    if name in OPEN_TOOLS:
        symbol = args.get("symbol")
        leverage = args.get("leverage")
        if leverage is not None and not 1 <= leverage <= max_leverage:
            errors.append(f"leverage must be between 1 and {max_leverage}")
        market_price = prices.get(symbol)
        if market_price is None:
            errors.append(f"no market data for {symbol} this tick; opening is not allowed")
        ref = args.get("limit_price") or (float(market_price) if market_price is not None else None)
        if ref is not None:
            long = name == "open_long"
            stop, target = args.get("stop_loss"), args.get("take_profit")
            if stop is not None and (stop >= ref if long else stop <= ref):
                errors.append(f"stop_loss {stop} must be {'below' if long else 'above'} the entry price {ref} "
                              f"for a {'long' if long else 'short'}")
            if target is not None and (target <= ref if long else target >= ref):
                errors.append(f"take_profit {target} must be {'above' if long else 'below'} the entry price {ref} "
                              f"for a {'long' if long else 'short'}")
    if name == "hold" and len(args.get("reason") or "") > MAX_REASON_CHARS:
        args["reason"] = args["reason"][:MAX_REASON_CHARS]
    return errors


def validate_call(name: str, raw_arguments: str | None, *, schemas: Mapping[str, Mapping[str, Any]],
                  symbols: Sequence[str], prices: Mapping[str, Any], max_leverage: int) -> Validated:
    """Check one tool call. ``prices`` maps the agent's symbols to this tick's price."""
    if name not in schemas:
        return Validated(False, {}, f"unknown tool {name!r}; available: {', '.join(sorted(schemas))}")
    text = (raw_arguments or "").strip() or "{}"
    try:
        parsed = json.loads(text)
    except (ValueError, RecursionError) as exc:
        return Validated(False, {}, f"arguments are not valid JSON ({exc.__class__.__name__}: {exc})"[:300])
    if not isinstance(parsed, dict):
        return Validated(False, {}, "arguments must be a JSON object")
    symbol = parsed.get("symbol")
    if "symbol" in schemas[name].get("properties", {}) and isinstance(symbol, str) and symbol not in symbols:
        return Validated(False, parsed,
                         f"symbol {symbol!r} is not one of this agent's symbols: {', '.join(symbols)}")
    try:
        args = _check(parsed, schemas[name], "arguments")
    except _SchemaError as exc:
        return Validated(False, parsed, f"invalid arguments: {exc}")
    errors = _semantic_errors(name, args, prices=prices, max_leverage=max_leverage)
    if errors:
        return Validated(False, args, "invalid arguments: " + "; ".join(errors))
    return Validated(True, args)
