"""A token estimator for where a server reports no usage (and the built-in model).

No tokenizer ships offline (tiktoken downloads its BPE files), so this is a documented
heuristic modelled on how BPE tokenizers of the cl100k/o200k family split text:

- a run of letters is one token per started 6 characters (common English words and JSON
  keys are single tokens; long or rare words split);
- a run of digits is one token per started 3 digits (those tokenizers group digits by 3);
- a run of other non-space characters (punctuation, JSON's ``":{``) is one token per
  started 2 characters;
- whitespace is absorbed by the following token, except line breaks (one each);
- each chat message costs 4 tokens of framing, each reply 3 (OpenAI's published counts);
- tool definitions are counted on a TypeScript-like rendering (``render_tools``), the form
  OpenAI turns function definitions into before they reach the model, not on their JSON.

On English prose this lands near the usual "~4 characters per token"; on compact JSON with
many numbers it counts more densely (~3 characters per token), which is where the plain
character rule undercounts. Treat the figure as an estimate within roughly +-20 %.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from typing import Any

MAX_TOKEN_COUNT = 10_000_000  # per reply: far above any context window, far inside the columns
_PIECE = re.compile(r"[A-Za-z]+|[0-9]+|\n|[^\sA-Za-z0-9]+|[^\x00-\x7f]")
MESSAGE_OVERHEAD = 4
REPLY_OVERHEAD = 3


def estimate_tokens(text: str | None) -> int:
    if not text:
        return 0
    total = 0
    for piece in _PIECE.findall(text):
        first = piece[0]
        if first.isascii() and first.isalpha():
            total += -(-len(piece) // 6)
        elif first.isdigit():
            total += -(-len(piece) // 3)
        elif first == "\n":
            total += 1
        elif first.isascii():
            total += -(-len(piece) // 2)
        else:  # non-ASCII: roughly a token per character
            total += 1
    return total


def _dumps(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, separators=(",", ":"), default=str)


def estimate_message_tokens(message: dict[str, Any]) -> int:
    total = MESSAGE_OVERHEAD
    for key in ("content", "name"):
        if message.get(key):
            total += estimate_tokens(_dumps(message[key]))
    for call in message.get("tool_calls") or ():
        fn = call.get("function", {})
        total += 3 + estimate_tokens(fn.get("name", "")) + estimate_tokens(fn.get("arguments", ""))
    return total


def _ts_type(schema: dict[str, Any]) -> str:
    if "enum" in schema:
        return " | ".join(json.dumps(v) for v in schema["enum"])
    types = schema.get("type", "any")
    types = [types] if isinstance(types, str) else list(types)
    names = {"integer": "number", "number": "number", "string": "string", "boolean": "boolean",
             "null": "null", "object": "object"}
    return " | ".join(names.get(t, "any") for t in types)


def render_tools(tools: Iterable[dict[str, Any]]) -> str:
    """Function definitions as the TypeScript-like namespace OpenAI renders them into."""
    lines = ["namespace functions {"]
    for tool in tools:
        fn = tool.get("function", {})
        if fn.get("description"):
            lines.append(f"// {fn['description']}")
        props = (fn.get("parameters") or {}).get("properties") or {}
        if not props:
            lines.append(f"type {fn.get('name', '')} = () => any;")
            continue
        lines.append(f"type {fn.get('name', '')} = (_: {{")
        for name, schema in props.items():
            if schema.get("description"):
                lines.append(f"// {schema['description']}")
            bounds = [f"{k}: {schema[k]}" for k in ("minimum", "maximum", "exclusiveMinimum") if k in schema]
            if bounds:
                lines.append(f"// {', '.join(bounds)}")
            lines.append(f"{name}: {_ts_type(schema)},")
        lines.append("}) => any;")
    lines.append("} // namespace functions")
    return "\n".join(lines)


def estimate_tools_tokens(tools: Iterable[dict[str, Any]]) -> int:
    tools = list(tools)
    return estimate_tokens(render_tools(tools)) + 9 if tools else 0


def estimate_prompt_tokens(messages: Iterable[dict[str, Any]], tools: Iterable[dict[str, Any]] = ()) -> int:
    return REPLY_OVERHEAD + sum(estimate_message_tokens(m) for m in messages) + estimate_tools_tokens(tools)


def estimate_completion_tokens(content: str | None, tool_calls: Iterable[Any] = ()) -> int:
    total = estimate_tokens(content)
    for call in tool_calls:
        name, arguments = call[1], call[2]
        total += 3 + estimate_tokens(name) + estimate_tokens(arguments)
    return total


def checked_token_count(value: Any) -> tuple[int | None, str]:
    """A token count as a server reported it: (count, "") when it is a non-negative integer
    below ``MAX_TOKEN_COUNT``; (None, "") when none was reported; (None, why) otherwise
    (negative, huge, a float, a string, NaN...), for the caller to estimate instead."""
    if value is None:
        return None, ""
    shown = repr(value)[:40]
    if isinstance(value, bool) or not isinstance(value, int):
        return None, f"reported {shown} is not an integer"
    if value < 0:
        return None, f"reported {shown} is negative"
    if value >= MAX_TOKEN_COUNT:
        return None, f"reported {shown} is not below {MAX_TOKEN_COUNT}"
    return int(value), ""
