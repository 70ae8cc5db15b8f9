"""Structural validation of config/exchanges.yaml. Every problem names its path in the file.

The schema is data: nested dicts of field specs (``type``, ``required``, ``choices``,
ranges, per-key specs for open maps such as ``per_symbol``) plus a few cross-field
``checks``; one walker applies it. Environment overrides are walked against the same
schema with nothing required (an override may be partial, but may not invent keys), and
then every environment's merged result is validated in full, so a broken ``production``
section fails ``check_config`` in any ALPHA_ENV.

Kept free of Django and of ``exchanges`` (layering): the adapter names below mirror
``exchanges.adapters.registry.ADAPTERS`` (a test keeps them in step).
"""

from __future__ import annotations

import datetime
import difflib
import re
from collections.abc import Callable, Iterator
from typing import Any

from alpha_platform.common.errors import ConfigError

ADAPTER_NAMES = ("ccxt", "hyperliquid", "paper")
ENVIRONMENTS = ("development", "testing", "production")
# auth_type -> the credential fields a user enters (exchanges.credentials.SHAPES).
AUTH_FIELDS: dict[str, tuple[str, ...]] = {
    "api_key": ("api_key", "api_secret"),
    "wallet_key": ("private_key", "account_address"),
    "none": (),
}
PAPER_ONLY_PARAMETERS = ("starting_balance", "slippage_bps", "maintenance_margin_rate", "market_data")
CCXT_ONLY_KEYS = ("ccxt_options", "markets_ttl_seconds")

Path = tuple[str | int, ...]
Check = Callable[[Any, Path, "_Walk"], None]

_SYMBOL = re.compile(r"^[A-Z0-9]{1,20}/[A-Z0-9]{1,20}$")
_NAME = re.compile(r"^[a-z][a-z0-9_]{0,31}$")
_VERSION = re.compile(r"^\d+(\.\d+)*$")
_IDENT = re.compile(r"^[a-z][a-z0-9_]*$")
_HTTP = re.compile(r"^https?://\S+$")
_WS = re.compile(r"^wss?://\S+$")
_CREDENTIAL_KEYS = ("api_key", "api_secret", "wallet_address", "private_key", "main_wallet",
                    "account_address", "auth_source", "vault_path", "credentials_file")
_NO_CREDENTIALS = ("credentials are not configured in this file: each user's are stored "
                   "encrypted per account (declare auth.auth_type and auth.fields instead)")


# --------------------------------------------------------------------------- spec builders
def _int(lo: int | None = None, hi: int | None = None, **kw: Any) -> dict[str, Any]:
    return {"type": "int", "min": lo, "max": hi, **kw}


def _num(lo: float | None = None, hi: float | None = None, *, above: float | None = None,
         **kw: Any) -> dict[str, Any]:
    return {"type": "number", "min": lo, "max": hi, "above": above, **kw}


def _str(*, choices: tuple[str, ...] | None = None, pattern: re.Pattern[str] | None = None,
         what: str | None = None, **kw: Any) -> dict[str, Any]:
    return {"type": "str", "choices": choices, "pattern": pattern, "what": what, **kw}


def _bool(**kw: Any) -> dict[str, Any]:
    return {"type": "bool", **kw}


def _list(items: dict[str, Any], *, unique: bool = True, **kw: Any) -> dict[str, Any]:
    return {"type": "list", "items": items, "unique": unique, **kw}


def _map(fields: dict[str, dict[str, Any]], *, checks: tuple[Check, ...] = (),
         hints: dict[str, str] | None = None, **kw: Any) -> dict[str, Any]:
    """A mapping with a fixed set of keys (required unless marked ``opt``)."""
    return {"type": "map", "fields": fields, "checks": checks, "hints": hints or {}, **kw}


def _table(values: dict[str, Any], *, key: dict[str, Any] | None = None,
           checks: tuple[Check, ...] = (), min_items: int = 0, **kw: Any) -> dict[str, Any]:
    """A mapping whose keys are data (venue names, symbols), each value checked by ``values``."""
    return {"type": "table", "values": values, "key": key or _str(), "checks": checks,
            "min_items": min_items, **kw}


def opt(spec: dict[str, Any]) -> dict[str, Any]:
    return {**spec, "required": False}


FRACTION = _num(0, 1)
FEE = _num(-1, 1)
POSITIVE_INT = _int(1)
SYMBOL = _str(pattern=_SYMBOL, what="a symbol in BASE/QUOTE form such as 'BTC/USDT'")
LEVERAGE = _int(1, 125)


# --------------------------------------------------------------------------- cross-field checks
def _get(node: Any, *keys: str) -> Any:
    for key in keys:
        if not isinstance(node, dict):
            return None
        node = node.get(key)
    return node


def _check_burst(node: dict[str, Any], path: Path, walk: _Walk) -> None:
    per_second, per_minute, burst = node.get("per_second"), node.get("per_minute"), node.get("burst")
    if per_second is not None and per_minute is not None and per_second > per_minute:
        walk.error(path + ("per_second",), f"{per_second} exceeds per_minute ({per_minute})")
    if burst is not None and per_minute is not None and burst > per_minute:
        walk.error(path + ("burst",), f"{burst} exceeds per_minute ({per_minute})")


def _check_leverage(node: dict[str, Any], path: Path, walk: _Walk) -> None:
    # per_symbol may exceed a lowered maximum (development caps at 5): the maximum wins.
    if node.get("default") is not None and node.get("maximum") is not None \
            and node["default"] > node["maximum"]:
        walk.error(path + ("default",), f"{node['default']} exceeds maximum ({node['maximum']})")


def _check_tif(node: dict[str, Any], path: Path, walk: _Walk) -> None:
    tifs = node.get("time_in_force")
    if tifs is not None and node.get("default_tif") is not None and node["default_tif"] not in tifs:
        walk.error(path + ("default_tif",),
                   f"{node['default_tif']!r} is not one of time_in_force ({', '.join(tifs)})")


def _check_mapping_table(node: dict[str, Any], path: Path, walk: _Walk) -> None:
    # Adapters reverse the table (venue symbol -> internal): it must be one-to-one.
    seen: dict[str, str] = {}
    for internal, venue_symbol in node.items():
        if venue_symbol in seen:
            walk.error(path + (internal,),
                       f"venue symbol {venue_symbol!r} is already mapped from {seen[venue_symbol]!r}")
        seen[venue_symbol] = internal


def _check_priorities(node: dict[str, Any], path: Path, walk: _Walk) -> None:
    used: dict[int, str] = {}
    for name, venue in node.items():
        priority = venue.get("priority")
        if priority in used:
            walk.error(path + (name, "priority"),
                       f"{priority} is already used by exchanges.{used[priority]}")
        else:
            used[priority] = name


def _check_market_data(node: dict[str, Any], path: Path, walk: _Walk) -> None:
    if node.get("source") == "ccxt" and not node.get("ccxt_id"):
        walk.error(path + ("ccxt_id",), "required when source is 'ccxt'")


def _check_venue(node: dict[str, Any], path: Path, walk: _Walk) -> None:
    kind, adapter = node.get("exchange_type"), node.get("adapter")
    if adapter is None and kind not in ADAPTER_NAMES:
        if kind in ("custom", "hybrid"):
            walk.error(path + ("adapter",), f"required when exchange_type is {kind!r} "
                       f"(one of {', '.join(ADAPTER_NAMES)})")
        else:
            walk.error(path + ("exchange_type",), f"no adapter for {kind!r}; expected one of "
                       f"{', '.join(ADAPTER_NAMES)}, or 'custom' with an adapter{_suggest(kind, ADAPTER_NAMES)}")
        return
    effective = adapter or kind
    if effective == "ccxt" and not node.get("ccxt_id"):
        walk.error(path + ("ccxt_id",), "required for a ccxt venue")

    tables = _get(walk.root, "global_settings", "symbol_mapping")
    table = node.get("symbol_mapping")
    if isinstance(tables, dict) and table not in tables:
        walk.error(path + ("symbol_mapping",), f"no table {table!r} in global_settings.symbol_mapping"
                   f"{_suggest(table, list(tables))}")

    auth = node.get("auth") or {}
    expected = AUTH_FIELDS.get(auth.get("auth_type"))
    if expected is not None and sorted(auth.get("fields", [])) != sorted(expected):
        walk.error(path + ("auth", "fields"), f"auth_type {auth['auth_type']!r} takes the fields "
                   f"[{', '.join(expected)}], got [{', '.join(map(str, auth.get('fields', [])))}]")
    rest_api = _get(node, "network", "rest_api")
    if auth.get("testnet") and isinstance(rest_api, dict) and not rest_api.get("testnet"):
        walk.error(path + ("network", "rest_api", "testnet"), "required because auth.testnet is true")

    parameters = node.get("parameters") or {}
    if effective != "paper":
        for key in PAPER_ONLY_PARAMETERS:
            if key in parameters:
                walk.error(path + ("parameters", key), "applies only to a paper venue")
    if effective != "ccxt":
        for key in CCXT_ONLY_KEYS:
            if key in node:
                walk.error(path + (key,), "applies only to a ccxt venue")


# --------------------------------------------------------------------------- the schema
RATE_LIMIT = _map({"per_second": POSITIVE_INT, "per_minute": POSITIVE_INT, "burst": opt(POSITIVE_INT)},
                  checks=(_check_burst,))

VENUE = _map(
    {
        "enabled": opt(_bool()),
        "exchange_type": _str(choices=(*ADAPTER_NAMES, "custom", "hybrid")),
        "adapter": opt(_str(choices=ADAPTER_NAMES)),
        "ccxt_id": opt(_str(pattern=_IDENT, what="a ccxt exchange id such as 'binanceusdm'")),
        "display_name": _str(),
        "priority": POSITIVE_INT,
        "symbol_mapping": _str(pattern=_NAME, what="the name of a global_settings.symbol_mapping table"),
        "auth": _map(
            {
                "auth_type": _str(choices=tuple(AUTH_FIELDS)),
                "fields": _list(_str()),
                "testnet": opt(_bool()),
            },
            hints={key: _NO_CREDENTIALS for key in _CREDENTIAL_KEYS},
        ),
        "network": opt(_map({
            "rest_api": opt(_map({
                "production": _str(pattern=_HTTP, what="an http(s):// URL"),
                "testnet": opt(_str(pattern=_HTTP, what="an http(s):// URL")),
                "timeout": opt(_int(1, 600_000)),  # milliseconds
                "rate_limit": opt(_bool()),
                "retries": opt(_int(0, 10)),
                "retry_delay": opt(_int(0, 60_000)),  # milliseconds
            })),
            "websocket": opt(_map({
                "production": _str(pattern=_WS, what="a ws(s):// URL"),
                "testnet": opt(_str(pattern=_WS, what="a ws(s):// URL")),
                "reconnect_attempts": opt(_int(0, 1000)),
                "ping_interval": opt(_num(1, 3600)),  # seconds
            })),
        })),
        "trading": _map({
            "default_type": _str(choices=("future", "perpetual", "swap")),
            "margin_mode": _str(choices=("cross", "isolated")),
            "leverage": _map(
                {"default": LEVERAGE, "maximum": LEVERAGE, "per_symbol": opt(_table(LEVERAGE))},
                checks=(_check_leverage,),
            ),
            "position_sizing": _map({
                "min_notional": _num(0),
                "max_position_percent": FRACTION,
                "quantity_precision": _int(0, 18),
                "price_precision": _int(0, 18),
            }),
            "order_management": _map(
                {
                    "supported_types": _list(_str(), min_items=1),
                    "time_in_force": _list(_str(choices=("GTC", "IOC", "FOK", "GTX", "GTD", "ALO")),
                                           min_items=1),
                    "default_tif": _str(choices=("GTC", "IOC", "FOK", "GTX", "GTD", "ALO")),
                    "batch_orders": opt(_bool()),
                    "oco_orders": opt(_bool()),
                },
                checks=(_check_tif,),
            ),
            "fees": _map({"maker": FEE, "taker": FEE, "funding_rate_check_interval": opt(_int(1, 86_400))}),
        }),
        "parameters": opt(_map({
            "dual_side_position": opt(_bool()),
            "hedge_mode": opt(_bool()),
            "position_side": opt(_bool()),
            "reduce_only": opt(_bool()),
            "cross_margin_only": opt(_bool()),
            "has_funding": opt(_bool()),
            "slippage_tolerance": opt(FRACTION),
            "starting_balance": opt(_num(above=0)),
            "slippage_bps": opt(_num(0, 10_000)),
            "maintenance_margin_rate": opt(FRACTION),
            "market_data": opt(_map(
                {
                    "source": _str(choices=("simulated", "ccxt")),
                    "ccxt_id": opt(_str(pattern=_IDENT, what="a ccxt exchange id such as 'binanceusdm'")),
                    "seed": opt(_int()),
                    "epoch": opt({"type": "date"}),  # where the simulated walk starts
                    "symbols": opt(_table(
                        _map({"start_price": _num(above=0), "annual_volatility": _num(0, 10)}),
                        key=SYMBOL,
                    )),
                },
                checks=(_check_market_data,),
            )),
        })),
        "rate_limits": _map({"orders": RATE_LIMIT, "requests": RATE_LIMIT}),
        "circuit_breaker": opt(_map({
            "failure_threshold": _int(1, 1000),
            "cooldown_seconds": _num(1, 300),
        })),
        # Overrides of the adapter's capability flags (capabilities are data, not branches).
        "capabilities": opt(_table(_bool(), key=_str(pattern=_IDENT, what="a capability name"))),
        "markets_ttl_seconds": opt(_num(1, 86_400)),
        "ccxt_options": opt({"type": "any_map"}),  # passed through to the ccxt constructor
    },
    checks=(_check_venue,),
)

ROOT_FIELDS: dict[str, dict[str, Any]] = {
    "version": _str(pattern=_VERSION, what="a version string such as \"1.0\" (quoted)"),
    "metadata": opt(_map({
        "created_at": opt({"type": "date"}),
        "updated_at": opt({"type": "date"}),
        "description": opt(_str()),
    })),
    "global_settings": _map({
        # Defaults of every new user's RiskProfile (risk.services._DEFAULTS_MAP).
        "risk_management": _map({
            "max_total_exposure_percent": FRACTION,
            "max_exchange_exposure_percent": FRACTION,
            "emergency_stop_loss_percent": FRACTION,
            "position_correlation_limit": FRACTION,
            "max_leverage": opt(LEVERAGE),
            "max_position_notional_usd": opt(_num(0)),
            "max_position_percent": opt(FRACTION),
            "min_notional_usd": opt(_num(0)),
            "max_open_positions": opt(_int(0, 32_767)),
            "max_orders_per_minute": opt(_int(0, 32_767)),
            "max_orders_per_hour": opt(_int(0)),
            "loss_cooldown_seconds": opt(_int(0, 86_400)),
            "monthly_llm_budget_usd": opt(_num(0)),
            "allowed_symbols": opt(_list(SYMBOL)),
        }),
        "symbol_mapping": _table(
            _table(_str(), key=SYMBOL, checks=(_check_mapping_table,)),
            key=_str(pattern=_NAME, what="a table name such as 'internal_to_binance'"),
        ),
        "order_types": opt(_table(_list(_str(), min_items=1),
                                  key=_str(choices=("market", "limit", "stop_loss", "take_profit")))),
    }),
    "exchanges": _table(
        VENUE,
        key=_str(pattern=_NAME, what="a venue name of lowercase letters, digits and _ (at most 32)"),
        checks=(_check_priorities,),
        min_items=1,
    ),
}
ROOT = _map({**ROOT_FIELDS, "environments": opt({"type": "environments"})})
# What an environment may override: anything but version, metadata and environments.
OVERRIDE = _map({k: v for k, v in ROOT_FIELDS.items() if k not in ("version", "metadata")})


# --------------------------------------------------------------------------- the walker
def _suggest(word: Any, candidates: Any) -> str:
    if not isinstance(word, str):
        return ""
    close = difflib.get_close_matches(word, [str(c) for c in candidates], n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _show(value: Any) -> str:
    if value is None:
        return "nothing (null)"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _describe(spec: dict[str, Any]) -> str:
    kind = spec["type"]
    if kind in ("int", "number"):
        noun, article = ("integer", "an") if kind == "int" else ("number", "a")
        lo, hi, above = spec.get("min"), spec.get("max"), spec.get("above")
        if above == 0 or (lo == 1 and hi is None and kind == "int"):
            return f"a positive {noun}"
        if lo is not None and hi is not None:
            return f"{article} {noun} between {lo} and {hi}"
        if lo == 0:
            return f"a non-negative {noun}"
        return f"{article} {noun}" + (f" of at least {lo}" if lo is not None else "")
    if kind == "str":
        if spec.get("choices"):
            return "one of " + ", ".join(spec["choices"])
        return spec.get("what") or "a non-empty string"
    return {"bool": "true or false", "list": "a list", "map": "a mapping", "table": "a mapping",
            "date": "an ISO date such as \"2025-11-18\"", "environments": "a mapping",
            "any_map": "a mapping"}[kind]


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


def _in_range(value: float, spec: dict[str, Any]) -> bool:
    lo, hi, above = spec.get("min"), spec.get("max"), spec.get("above")
    return not ((lo is not None and value < lo) or (hi is not None and value > hi)
                or (above is not None and value <= above))


def _scalar_problem(value: Any, spec: dict[str, Any]) -> str | None:
    """None if ``value`` fits the scalar ``spec``; else a note to append ("" or a suggestion)."""
    kind = spec["type"]
    if kind in ("int", "number"):
        ok_type = int if kind == "int" else (int, float)
        fits = (not isinstance(value, bool) and isinstance(value, ok_type) and value == value
                and _in_range(value, spec))
        return None if fits else ""
    if kind == "bool":
        return None if isinstance(value, bool) else ""
    if kind == "date":
        if isinstance(value, datetime.date):
            return None
        try:
            datetime.datetime.fromisoformat(str(value))
        except ValueError:
            return ""
        return None
    if not isinstance(value, str) or not value.strip():
        return ""
    if spec.get("choices") and value not in spec["choices"]:
        return _suggest(value, spec["choices"])
    if spec.get("pattern") and not spec["pattern"].match(value):
        return ""
    return None


class _Walk:
    def __init__(self, root: dict[str, Any]) -> None:
        self.root = root
        self.errors: list[tuple[Path, str]] = []

    def error(self, path: Path, message: str) -> None:
        self.errors.append((path, message))

    def bad(self, path: Path, spec: dict[str, Any], value: Any, note: str = "") -> None:
        self.error(path, f"expected {_describe(spec)}, got {_show(value)}{note}")

    def node(self, value: Any, spec: dict[str, Any], path: Path, partial: bool) -> None:
        before = len(self.errors)
        getattr(self, "_" + spec["type"])(value, spec, path, partial)
        # Cross-field checks need a whole, well-typed node: not in a partial override.
        if not partial and len(self.errors) == before:
            for check in spec.get("checks", ()):
                check(value, path, self)

    # -- scalars
    def _scalar(self, value: Any, spec: dict[str, Any], path: Path, partial: bool) -> None:
        problem = _scalar_problem(value, spec)
        if problem is not None:
            self.bad(path, spec, value, problem)

    _int = _number = _bool = _str = _date = _scalar

    # -- containers
    def _list(self, value: Any, spec: dict[str, Any], path: Path, partial: bool) -> None:
        if not isinstance(value, list):
            self.bad(path, spec, value)
            return
        if not partial and len(value) < spec.get("min_items", 0):
            self.error(path, f"expected at least {spec['min_items']} item(s), got none")
        seen: list[Any] = []
        for i, item in enumerate(value):
            self.node(item, spec["items"], path + (i,), partial)
            if spec.get("unique") and item in seen:
                self.error(path + (i,), f"{_show(item)} is listed twice")
            seen.append(item)

    def _any_map(self, value: Any, spec: dict[str, Any], path: Path, partial: bool) -> None:
        if not isinstance(value, dict):
            self.bad(path, spec, value)
        else:
            list(self._keys(value, path))  # the contents are ccxt's business; keys must be strings

    def _keys(self, value: dict[Any, Any], path: Path) -> Iterator[str]:
        for key in value:
            if isinstance(key, str):
                yield key
            else:
                self.error(path + (str(key),), f"keys must be strings, got {_show(key)} (quote it)")

    def _map(self, value: Any, spec: dict[str, Any], path: Path, partial: bool) -> None:
        if not isinstance(value, dict):
            self.bad(path, spec, value)
            return
        fields = spec["fields"]
        for key in self._keys(value, path):
            if key in fields:
                self.node(value[key], fields[key], path + (key,), partial)
            elif key in spec["hints"]:
                self.error(path + (key,), f"unknown key: {spec['hints'][key]}")
            else:
                self.error(path + (key,), f"unknown key{_suggest(key, fields)}; expected one of "
                           f"{', '.join(fields)}")
        if not partial:
            for key, field in fields.items():
                if field.get("required", True) and key not in value:
                    self.error(path + (key,), "required key is missing")

    def _table(self, value: Any, spec: dict[str, Any], path: Path, partial: bool) -> None:
        if not isinstance(value, dict):
            self.bad(path, spec, value)
            return
        if not partial and len(value) < spec["min_items"]:
            self.error(path, f"expected at least {spec['min_items']} entry, got none")
        for key in self._keys(value, path):
            problem = _scalar_problem(key, spec["key"])
            if problem is None:
                self.node(value[key], spec["values"], path + (key,), partial)
            else:  # it is the key that is wrong, not its value
                self.error(path + (key,), f"key {key!r} is not {_describe(spec['key'])}{problem}")

    def _environments(self, value: Any, spec: dict[str, Any], path: Path, partial: bool) -> None:
        if not isinstance(value, dict):
            self.bad(path, spec, value)
            return
        venues = _get(self.root, "exchanges")
        for env in self._keys(value, path):
            if env not in ENVIRONMENTS:
                self.error(path + (env,), f"unknown environment{_suggest(env, ENVIRONMENTS)}; "
                           f"expected one of {', '.join(ENVIRONMENTS)}")
                continue
            override = value[env]
            if override is None:
                continue
            self.node(override, OVERRIDE, path + (env,), partial=True)
            # An override adjusts venues defined above; a new name there is a typo.
            overridden = _get(override, "exchanges")
            if isinstance(overridden, dict) and isinstance(venues, dict):
                for name in overridden:
                    if name not in venues:
                        self.error(path + (env, "exchanges", name),
                                   f"not a venue defined under exchanges{_suggest(name, venues)}")


def _problems(document: Any) -> list[tuple[Path, str]]:
    walk = _Walk(document if isinstance(document, dict) else {})
    walk.node(document, ROOT, (), partial=False)
    return walk.errors


def _in_override(override: Any, path: Path) -> bool:
    node = override
    for part in path:
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and isinstance(part, int) and part < len(node):
            node = node[part]
        else:
            return False
    return True


def validate(document: dict[str, Any], *, merged_for: str | None = None) -> None:
    """Raise ConfigError naming the first problem's path; ``extra['problems']`` lists all.

    ``merged_for=None``: ``document`` is the file as written (interpolated); its base, its
    overrides and each environment's merged result are checked. ``merged_for=<env>``: the
    document is already merged for that environment.
    """
    from alpha_platform.common.config import deep_merge  # config imports this module lazily

    problems = [(path, msg, merged_for) for path, msg in _problems(document)]
    if merged_for is None and not problems:
        base = {k: v for k, v in document.items() if k != "environments"}
        for env, override in (document.get("environments") or {}).items():
            if not override:
                continue
            for path, msg in _problems(deep_merge(base, override)):
                if _in_override(override, path):  # the value came from the override: point there
                    problems.append((("environments", env) + path, msg, None))
                else:
                    problems.append((path, msg, env))
    if not problems:
        return
    lines = [f"{format_path(path)}: {msg}" + (f" (with environments.{env} applied)" if env else "")
             for path, msg, env in problems]
    message = lines[0]
    if len(lines) > 1:
        message += f"\n({len(lines) - 1} more problem(s))\n" + "\n".join(lines[1:])
    raise ConfigError(message, extra={
        "path": format_path(problems[0][0]),
        "environment": problems[0][2],
        "problems": [{"path": format_path(p), "message": line} for (p, _, _), line in zip(problems, lines)],
    })
