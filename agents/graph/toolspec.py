"""The agent's tools as offered to the model, and the check that runs in the graph BEFORE
anything reaches the executor. Both come from the typed argument models of
``agents.graph.tool_args`` (one pydantic model per tool).

Schemas follow OpenAI's strict mode (Structured Outputs): ``"strict": true``, every
property listed in ``required``, ``additionalProperties: false``, optional values as
nullable types (``["number", "null"]``), nullable enums that include ``null``, and only the
keywords strict mode supports (type, enum, minimum / maximum). ``build_tools`` turns each
model's JSON schema into that form and fills in what depends on the agent (its symbols as
the enum of ``symbol``, its leverage bound as the maximum of ``leverage``).

Validation does not trust the model (or a server that ignores ``strict``): the arguments'
JSON is parsed strictly (no NaN/Infinity, fractions as Decimal, nothing a double cannot
hold) and validated with ``Model.model_validate`` in the agent's context, which also checks
the rules a schema cannot say (exactly one size field, stop-loss side, limit price). Any
failure is an ``invalid`` tool call whose error text goes back to the model; the executor
is never called for it, so no order is placed.
"""

from __future__ import annotations

import copy
import functools
import inspect
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from pydantic import ValidationError

from agents.graph.tool_args import (
    MAX_NUMBER,
    MAX_REASON_CHARS,
    MAX_STRING_CHARS,
    MIN_POSITIVE,
    TOOL_MODELS,
    ArgsContext,
    ToolArgs,
)
from alpha_platform.common.money import to_decimal
from alpha_platform.common.safe_json import clip as _clip
from alpha_platform.common.safe_json import int_digits

__all__ = [
    "CLOSE_TOOLS", "HOLD_TOOL", "MAX_ARGUMENTS_CHARS", "MAX_CONTENT_CHARS", "MAX_NAME_CHARS", "MAX_NUMBER",
    "MAX_REASON_CHARS", "MAX_STRING_CHARS", "MIN_POSITIVE", "OPEN_TOOLS", "ORDER_TOOLS", "READ_TOOLS",
    "TOOL_NAMES", "WRITE_TOOLS", "Validated", "build_tools", "clip", "parse_arguments", "validate_call",
]

OPEN_TOOLS = frozenset({"open_long", "open_short"})
CLOSE_TOOLS = frozenset({"close_long", "close_short"})
ORDER_TOOLS = OPEN_TOOLS | CLOSE_TOOLS
# Tools that change something at the venue: they decide "executed" / "rejected".
WRITE_TOOLS = ORDER_TOOLS | {"cancel_order", "set_leverage"}
READ_TOOLS = frozenset({"get_positions", "get_balance", "get_market_data"})
HOLD_TOOL = "hold"
TOOL_NAMES = WRITE_TOOLS | READ_TOOLS | {HOLD_TOOL}
assert TOOL_NAMES == set(TOOL_MODELS), "every tool has its argument model"

MAX_ARGUMENTS_CHARS = 8192  # a call's arguments text; longer is invalid without being parsed
MAX_CONTENT_CHARS = 8000  # model text kept in the conversation and in the stored reply
MAX_NAME_CHARS = 100  # a tool call's id, name and type as carried and stored


def clip(text: str, limit: int = MAX_CONTENT_CHARS) -> str:
    """``text`` cut to ``limit`` characters (model text by default) with a marker saying how
    long it was; clipping twice changes nothing (alpha_platform.common.safe_json.clip)."""
    return _clip(text, limit)


# --------------------------------------------------------------------------- the schemas sent

_KEPT_KEYWORDS = ("type", "enum", "minimum", "maximum")  # what strict mode supports, in this order


def _strict_property(schema: Mapping[str, Any]) -> dict[str, Any]:
    """One property of a model's JSON schema in strict-mode form: ``anyOf [X, null]``
    becomes X with a nullable type (and ``null`` in its enum); titles, string lengths and
    the like are left out (validation enforces them; they would cost prompt tokens)."""
    members = list(schema.get("anyOf") or [schema])
    nullable = {"type": "null"} in members
    members = [m for m in members if m != {"type": "null"}]
    if len(members) != 1:
        raise ValueError(f"a tool argument must have one JSON type, not {members}")
    member = members[0]
    out = {key: member[key] for key in _KEPT_KEYWORDS if key in member}
    if nullable:
        out["type"] = [out["type"], "null"]
        if "enum" in out:
            out["enum"] = [*out["enum"], None]
    return out


@functools.cache
def _base_function(model: type[ToolArgs]) -> dict[str, Any]:
    schema = model.model_json_schema()
    properties = {name: _strict_property(prop) for name, prop in schema.get("properties", {}).items()}
    return {
        "type": "function",
        "function": {
            "name": model.tool,
            "description": inspect.cleandoc(model.__doc__ or ""),
            "strict": True,
            "parameters": {
                "type": "object",
                "properties": properties,
                "required": list(properties),
                "additionalProperties": False,
            },
        },
    }


def build_tools(symbols: Sequence[str], max_leverage: int) -> list[dict[str, Any]]:
    """The tool list offered to the model for an agent trading ``symbols``: each tool's
    schema generated from its argument model, with the agent's symbols and leverage bound.

    Per-property descriptions are kept out: they would repeat in four tools on every call
    (prompt tokens); the system message states the sizing rule once."""
    tools = []
    for model in TOOL_MODELS.values():
        tool = copy.deepcopy(_base_function(model))
        properties = tool["function"]["parameters"]["properties"]
        if "symbol" in properties:
            properties["symbol"]["enum"] = list(symbols)
        if "leverage" in properties:
            properties["leverage"]["maximum"] = int(max_leverage)
        tools.append(tool)
    return tools


# --------------------------------------------------------------------------- validation


@dataclass(frozen=True)
class Validated:
    ok: bool
    # The arguments as JSON values (what is stored and shown): the model's object when it
    # fits its tool's model (a hold's reason cut to MAX_REASON_CHARS), else {}.
    arguments: dict[str, Any]
    error: str = ""
    params: ToolArgs | None = None  # the typed arguments (money as Decimal) when ok


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number JSON allows")


def _decimal(text: str) -> Decimal:
    if not math.isfinite(float(text)):  # beyond what a double holds: no JSON peer could mean it
        raise ValueError(f"{text[:30]} is out of range")
    return to_decimal(text)


def parse_arguments(text: str) -> Any:
    """Strict JSON: no NaN/Infinity literals (Python's json accepts them by default), no
    number that overflows a double; fractions are read as Decimal from their text (never
    through float). ValueError/RecursionError on anything else."""
    return json.loads(text, parse_constant=_refuse_constant, parse_float=_decimal)


def _as_json(value: Any) -> Any:
    """The parsed arguments with their Decimals as JSON numbers again (for storage and the
    conversation); a float holds what the model wrote as well as its JSON text did."""
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, dict):
        return {k: _as_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_as_json(v) for v in value]
    return value


def _shown(value: Any) -> str:
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "a list"
    return clip(json.dumps(_as_json(value)), 60)


def _show(value: Any) -> str:
    if isinstance(value, Decimal):
        return f"{float(value):.6g}" if abs(value) >= 10**6 else str(value)
    if isinstance(value, int) and not isinstance(value, bool):
        digits = int_digits(value)
        return f"{value}" if digits <= 24 else f"a {digits}-digit integer"
    return _shown(value)


_TYPE_ERRORS = frozenset({"int_type", "string_type", "number_type", "bool_type", "float_type", "decimal_type",
                          "is_instance_of"})


def _describe(error: Mapping[str, Any], properties: Mapping[str, Any]) -> str:
    """One pydantic error in the words the model is told (field, rule, what it sent)."""
    loc = error.get("loc") or ()
    where = str(loc[0]) if loc else "arguments"
    kind, value, ctx = error["type"], error.get("input"), error.get("ctx") or {}
    prop = properties.get(where, {})
    types = prop.get("type", [])
    types = [types] if isinstance(types, str) else list(types)
    if kind in _TYPE_ERRORS or kind == "literal_error" and not isinstance(value, str):
        return f"{where} must be {' or '.join(types) or 'valid'}, got {_shown(value)}"
    if kind == "literal_error":
        allowed = ", ".join(json.dumps(v) for v in prop.get("enum", []))
        return f"{where} must be one of {allowed}, got {clip(json.dumps(value), 60)}"
    if kind == "string_too_long":
        return f"{where} is longer than {MAX_STRING_CHARS} characters"
    if kind == "greater_than":
        return f"{where} must be greater than {ctx.get('gt')}, got {_show(value)}"
    if kind == "greater_than_equal":
        return f"{where} must be at least {ctx.get('ge')}, got {_show(value)}"
    if kind == "less_than_equal":
        return f"{where} must be at most {ctx.get('le')}, got {_show(value)}"
    if kind == "below_storage":
        return f"{where} must be at least {ctx.get('min')} (the smallest amount stored), got {value:g}"
    if kind == "tool_rule" or not loc:
        return str(error.get("msg", kind))
    return f"{where}: {error.get('msg', kind)}"


def _refusal(exc: ValidationError, parsed: dict[str, Any], properties: Mapping[str, Any],
             symbols: Sequence[str]) -> Validated:
    errors = exc.errors(include_url=False)
    symbol = next((e for e in errors if e["type"] == "unknown_symbol"), None)
    if symbol is not None:
        shown = clip(str(parsed.get("symbol")), 64)
        return Validated(False, {"symbol": shown},
                         f"symbol {shown!r} is not one of this agent's symbols: {', '.join(symbols)}")
    if all(e["type"] == "tool_rule" for e in errors):  # the values fit; a rule across them does not
        return Validated(False, _as_json(parsed), "invalid arguments: " + "; ".join(e["msg"] for e in errors))
    parts = []
    extra = sorted(str(e["loc"][0]) for e in errors if e["type"] == "extra_forbidden")
    if extra:
        parts.append(f"unexpected argument(s): {', '.join(extra)}")
    missing = [str(e["loc"][0]) for e in errors if e["type"] == "missing"]
    if missing:
        parts.append(f"missing argument(s): {', '.join(missing)}")
    parts += [_describe(e, properties) for e in errors if e["type"] not in ("extra_forbidden", "missing")]
    return Validated(False, {}, "invalid arguments: " + "; ".join(parts))


def validate_call(name: str, raw_arguments: str | None, *, symbols: Sequence[str], prices: Mapping[str, Any],
                  max_leverage: int, kind: str = "function") -> Validated:
    try:
        return _validate(name, raw_arguments, symbols=symbols, prices=prices, max_leverage=max_leverage, kind=kind)
    except Exception as exc:  # whatever a model sends, the answer is an invalid call, never a crash
        return Validated(False, {}, f"arguments could not be checked ({type(exc).__name__})")


def _validate(name: str, raw_arguments: str | None, *, symbols: Sequence[str], prices: Mapping[str, Any],
              max_leverage: int, kind: str = "function") -> Validated:
    """Check one tool call. ``prices`` maps the agent's symbols to this tick's price; ``kind``
    is the call's type as the model sent it: only ``function`` calls are ever executed."""
    if kind != "function":
        return Validated(False, {}, f"only function calls are executed; this call is of type "
                                    f"{clip(str(kind), 40)!r}")
    model = TOOL_MODELS.get(name) if isinstance(name, str) else None
    if model is None:
        return Validated(False, {}, f"unknown tool {clip(str(name), 64)!r}; "
                                    f"available: {', '.join(sorted(TOOL_MODELS))}")
    text = (raw_arguments or "").strip() or "{}"
    if len(text) > MAX_ARGUMENTS_CHARS:
        return Validated(False, {}, f"arguments are longer than {MAX_ARGUMENTS_CHARS} characters")
    try:
        parsed = parse_arguments(text)
    except (ValueError, RecursionError) as exc:
        return Validated(False, {}, f"arguments are not valid JSON ({exc.__class__.__name__}: {exc})"[:300])
    if not isinstance(parsed, dict):
        return Validated(False, {}, "arguments must be a JSON object")
    context = ArgsContext(symbols=tuple(symbols), max_leverage=int(max_leverage), prices=prices)
    try:
        params = model.model_validate(parsed, context={"tool": context})
    except ValidationError as exc:
        properties = _base_function(model)["function"]["parameters"]["properties"]
        return _refusal(exc, parsed, properties, context.symbols)
    # Stored and shown as the model wrote them: numbers as its JSON numbers, texts as validated.
    arguments = {key: _as_json(parsed[key]) if isinstance(value, Decimal) else value
                 for key, value in params.model_dump().items()}
    return Validated(True, arguments, params=params)
