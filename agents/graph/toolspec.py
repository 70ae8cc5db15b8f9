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
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from alpha_platform.common.safe_json import clip as _clip
from alpha_platform.common.safe_json import int_digits

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
# Bounds on what a model may send. Numbers: the money columns hold 20 integer digits and 12
# decimal places (alpha_platform/common/money.py); 1e15 is far inside them and far above any
# real size or price. The smallest positive number is the columns' last decimal place.
MAX_NUMBER = 10**15
MIN_POSITIVE = 1e-12
MAX_STRING_CHARS = 2000  # any string argument (a hold reason is then cut to MAX_REASON_CHARS)
MAX_ARGUMENTS_CHARS = 8192  # a call's arguments text; longer is invalid without being parsed
MAX_CONTENT_CHARS = 8000  # model text kept in the conversation and in the stored reply
MAX_NAME_CHARS = 100  # a tool call's id, name and type as carried and stored


def clip(text: str, limit: int = MAX_CONTENT_CHARS) -> str:
    """``text`` cut to ``limit`` characters (model text by default) with a marker saying how
    long it was; clipping twice changes nothing (alpha_platform.common.safe_json.clip)."""
    return _clip(text, limit)


def _nullable_number() -> dict[str, Any]:
    # Positivity is checked by validate_call rather than with exclusiveMinimum: a keyword
    # on every number would cost prompt tokens on every call for a rule stated once. The
    # maximum is declared: a server honouring strict mode then cannot produce one above it.
    return {"type": ["number", "null"], "maximum": MAX_NUMBER}


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
                  {"order_id": {"type": "integer", "minimum": 1, "maximum": MAX_NUMBER}}),
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
    if type_name == "integer":  # 2.0 is a float: where an integer is declared, it is refused
        return isinstance(value, int) and not isinstance(value, bool)
    if type_name == "number":
        if isinstance(value, bool):
            return False
        return isinstance(value, int) or isinstance(value, float) and math.isfinite(value)
    if type_name == "object":
        return isinstance(value, dict)
    return False


def _show(value: int | float) -> str:
    if isinstance(value, float):
        return f"{value:.6g}" if abs(value) >= 1e6 else f"{value}"
    digits = int_digits(value)
    return f"{value}" if digits <= 24 else f"a {digits}-digit integer"


def _check(value: Any, schema: Mapping[str, Any], where: str) -> Any:
    """Validate ``value`` against the strict-mode subset; return it normalised."""
    types = schema.get("type")
    types = [types] if isinstance(types, str) else list(types or [])
    if types and not any(_type_ok(value, t) for t in types):
        shown = ("an object" if isinstance(value, dict) else "a list" if isinstance(value, list)
                 else clip(json.dumps(value), 60))
        raise _SchemaError(f"{where} must be {' or '.join(types)}, got {shown}")
    if "enum" in schema and value not in schema["enum"]:
        allowed = ", ".join(json.dumps(v) for v in schema["enum"])
        raise _SchemaError(f"{where} must be one of {allowed}, got {clip(json.dumps(value), 60)}")
    if value is None:
        return None
    if isinstance(value, str) and len(value) > MAX_STRING_CHARS:
        raise _SchemaError(f"{where} is longer than {MAX_STRING_CHARS} characters")
    if isinstance(value, int | float) and not isinstance(value, bool):
        if "minimum" in schema and value < schema["minimum"]:
            raise _SchemaError(f"{where} must be at least {schema['minimum']}, got {_show(value)}")
        if "maximum" in schema and value > schema["maximum"]:
            raise _SchemaError(f"{where} must be at most {schema['maximum']}, got {_show(value)}")
        if "exclusiveMinimum" in schema and value <= schema["exclusiveMinimum"]:
            raise _SchemaError(f"{where} must be greater than {schema['exclusiveMinimum']}, got {_show(value)}")
        if abs(value) > MAX_NUMBER:  # whatever the schema says: nothing larger is ever meant
            raise _SchemaError(f"{where} must be at most {MAX_NUMBER} in size, got {_show(value)}")
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
        elif value is not None and value < MIN_POSITIVE:
            errors.append(f"{key} must be at least {MIN_POSITIVE:g} (the smallest amount stored), got {value:g}")
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


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number JSON allows")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{text[:30]} is out of range")
    return value


def parse_arguments(text: str) -> Any:
    """Strict JSON: no NaN/Infinity literals (Python's json accepts them by default), no
    number that overflows to infinity. ValueError/RecursionError on anything else."""
    return json.loads(text, parse_constant=_refuse_constant, parse_float=_finite_float)


def validate_call(name: str, raw_arguments: str | None, *, schemas: Mapping[str, Mapping[str, Any]],
                  symbols: Sequence[str], prices: Mapping[str, Any], max_leverage: int,
                  kind: str = "function") -> Validated:
    try:
        return _validate(name, raw_arguments, schemas=schemas, symbols=symbols, prices=prices,
                         max_leverage=max_leverage, kind=kind)
    except Exception as exc:  # whatever a model sends, the answer is an invalid call, never a crash
        return Validated(False, {}, f"arguments could not be checked ({type(exc).__name__})")


def _validate(name: str, raw_arguments: str | None, *, schemas: Mapping[str, Mapping[str, Any]],
              symbols: Sequence[str], prices: Mapping[str, Any], max_leverage: int,
              kind: str = "function") -> Validated:
    """Check one tool call. ``prices`` maps the agent's symbols to this tick's price; ``kind``
    is the call's type as the model sent it: only ``function`` calls are ever executed.

    ``arguments`` of the result are the parsed object only when it fits the schema (its
    values then have the declared types); otherwise {} (the raw text is kept by the caller)."""
    if kind != "function":
        return Validated(False, {}, f"only function calls are executed; this call is of type "
                                    f"{clip(str(kind), 40)!r}")
    if name not in schemas:
        return Validated(False, {}, f"unknown tool {clip(str(name), 64)!r}; available: {', '.join(sorted(schemas))}")
    text = (raw_arguments or "").strip() or "{}"
    if len(text) > MAX_ARGUMENTS_CHARS:
        return Validated(False, {}, f"arguments are longer than {MAX_ARGUMENTS_CHARS} characters")
    try:
        parsed = parse_arguments(text)
    except (ValueError, RecursionError) as exc:
        return Validated(False, {}, f"arguments are not valid JSON ({exc.__class__.__name__}: {exc})"[:300])
    if not isinstance(parsed, dict):
        return Validated(False, {}, "arguments must be a JSON object")
    symbol = parsed.get("symbol")
    if "symbol" in schemas[name].get("properties", {}) and isinstance(symbol, str) and symbol not in symbols:
        return Validated(False, {"symbol": clip(symbol, 64)},
                         f"symbol {clip(symbol, 64)!r} is not one of this agent's symbols: {', '.join(symbols)}")
    try:
        args = _check(parsed, schemas[name], "arguments")
    except _SchemaError as exc:
        return Validated(False, {}, f"invalid arguments: {exc}")
    errors = _semantic_errors(name, args, prices=prices, max_leverage=max_leverage)
    if errors:
        return Validated(False, args, "invalid arguments: " + "; ".join(errors))
    return Validated(True, args)
