"""pydantic's ValidationError -> the faults ``check_config`` prints, each with its path.

Every error pydantic collects becomes ``(path, message)``: the ``loc`` walked through the
model's types (a table's keys are names, a list's indexes are ``[i]``) and the message
either ours (the field types and rules raise it: ``types.fail``) or worded here from
pydantic's error type (an unknown key, a missing key, a mapping or list expected).
"""

from __future__ import annotations

import types
from typing import Annotated, Any, Union, get_args, get_origin

from pydantic import BaseModel, ValidationError

from alpha_platform.common.config.types import show, suggest

Path = tuple[str | int, ...]


def format_path(path: Path) -> str:
    text = ""
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
        elif "." in part or " " in part or not part:
            text += f"[{part!r}]"
        else:
            text += f".{part}" if text else part
    return text


def _bare(tp: Any) -> Any:
    while True:
        origin = get_origin(tp)
        if origin is Annotated:
            tp = get_args(tp)[0]
        elif origin in (Union, types.UnionType):
            args = [a for a in get_args(tp) if a is not type(None)]
            if len(args) != 1:
                return tp
            tp = args[0]
        else:
            return tp


def _is_model(tp: Any) -> bool:
    return isinstance(tp, type) and issubclass(tp, BaseModel)


def _walk(root: type[BaseModel], loc: tuple[Any, ...]) -> tuple[Path, Any]:
    """The file path of ``loc`` and the (bare) type of the node holding its last part."""
    path: list[str | int] = []
    tp: Any = root
    holder: Any = root
    for part in loc:
        if part == "[key]":
            continue  # the key itself is wrong (``5: 3`` under per_symbol): the path is the key's
        holder = tp = _bare(tp)
        origin = get_origin(tp)
        if _is_model(tp):
            path.append(str(part))
            field = tp.model_fields.get(str(part))
            tp = field.annotation if field else None
        elif origin is dict:
            path.append(str(part))
            tp = get_args(tp)[1]
        elif origin is list and isinstance(part, int):
            path.append(part)
            tp = get_args(tp)[0]
        else:
            path.append(part if isinstance(part, int) else str(part))
            tp = None
    return tuple(path), holder


def _message(error: Any, holder: Any, key: str) -> str:
    kind = error["type"]
    if kind == "extra_forbidden" and _is_model(holder):
        hints = getattr(holder, "HINTS", {})
        if key in hints:
            return f"unknown key: {hints[key]}"
        fields = list(holder.model_fields)
        return f"unknown key{suggest(key, fields)}; expected one of {', '.join(fields)}"
    if kind == "missing":
        return "required key is missing"
    if kind in ("model_type", "model_attributes_type", "dict_type"):
        return f"expected a mapping, got {show(error.get('input'))}"
    if kind == "list_type":
        return f"expected a list, got {show(error.get('input'))}"
    return str(error["msg"])


def problems_of(exc: ValidationError, root: type[BaseModel]) -> list[tuple[Path, str]]:
    found: list[tuple[Path, str]] = []
    for error in exc.errors(include_url=False):
        loc = tuple(error["loc"])
        path, holder = _walk(root, loc)
        if error["type"] == "alpha_config_rule":  # a rule: faults below the node
            found.extend((path + tuple(sub), msg) for sub, msg in error["ctx"]["problems"])
        elif error["type"] == "alpha_config":
            found.append((path, error["ctx"]["message"]))
        else:
            found.append((path, _message(error, holder, str(loc[-1]) if loc else "")))
    return found
