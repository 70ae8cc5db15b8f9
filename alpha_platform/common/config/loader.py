"""Loading config/exchanges.yaml: interpolation, environment overrides, validation.

The file is validated once, when a process first asks for it (``get_config()``, cached
per file and ALPHA_ENV; ``check_config`` loads it on purpose): the base as written, then
each environment's merged result, every fault named with its path in the file.

No Django here (adapters, scripts and the decision graph use it): the process's cached
``get_config()``, which reads the path and ALPHA_ENV from Django settings, is in
``alpha_platform.common.config.current``.
"""

from __future__ import annotations

import copy
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from alpha_platform.common.config.platform import OVERRIDABLE, ExchangesFile, RiskDefaults
from alpha_platform.common.config.report import format_path, problems_of
from alpha_platform.common.config.types import suggest
from alpha_platform.common.config.venue import Auth, Venue
from alpha_platform.common.errors import ConfigError

ENVIRONMENTS = ("development", "testing", "production")
_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
PathT = tuple[str | int, ...]


def _interpolate(node: Any, environ: Mapping[str, str], path: str) -> Any:
    if isinstance(node, dict):
        return {k: _interpolate(v, environ, f"{path}.{k}" if path else str(k)) for k, v in node.items()}
    if isinstance(node, list):
        return [_interpolate(v, environ, f"{path}[{i}]") for i, v in enumerate(node)]
    if isinstance(node, str):
        def sub(match: re.Match[str]) -> str:
            name, default = match.group(1), match.group(2)
            if name in environ:
                return environ[name]
            if default is not None:
                return default
            raise ConfigError(
                f"{path}: environment variable {name} is not set",
                extra={"path": path, "variable": name},
            )

        return _VAR.sub(sub, node)
    return node


def deep_merge(base: dict[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    result = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(result.get(key), dict):
            result[key] = deep_merge(result[key], value)
        else:
            result[key] = copy.deepcopy(value)
    return result


# --------------------------------------------------------------------------- validation
def _model_problems(document: dict[str, Any]) -> tuple[ExchangesFile | None, list[tuple[PathT, str]]]:
    tables = ((document.get("global_settings") or {}) if isinstance(document.get("global_settings"), dict)
              else {}).get("symbol_mapping")
    context = {"symbol_tables": list(tables) if isinstance(tables, dict) else None}
    try:
        return ExchangesFile.model_validate(document, context=context), []
    except ValidationError as exc:
        return None, problems_of(exc, ExchangesFile)


def _environment_problems(environments: Any, venues: Any) -> list[tuple[PathT, str]]:
    """The shape of ``environments``: known names, mappings, keys an override may set,
    venues defined above. Values are checked in each merged result."""
    if environments is None:
        return []
    if not isinstance(environments, dict):
        return [(("environments",), f"expected a mapping, got {type(environments).__name__}")]
    found: list[tuple[PathT, str]] = []
    for env, override in environments.items():
        where: PathT = ("environments", str(env))
        if env not in ENVIRONMENTS:
            found.append((where, f"unknown environment{suggest(env, ENVIRONMENTS)}; "
                                 f"expected one of {', '.join(ENVIRONMENTS)}"))
            continue
        if override is None:
            continue
        if not isinstance(override, dict):
            found.append((where, "expected a mapping, got " + ("a list" if isinstance(override, list)
                                                              else repr(override))))
            continue
        for key in override:
            if key not in OVERRIDABLE:
                found.append((where + (str(key),), f"unknown key{suggest(key, OVERRIDABLE)}; "
                                                   f"expected one of {', '.join(OVERRIDABLE)}"))
        overridden = override.get("exchanges")
        if isinstance(overridden, dict) and isinstance(venues, dict):
            for name in overridden:
                if name not in venues:  # an override adjusts venues defined above; a new name is a typo
                    found.append((where + ("exchanges", str(name)),
                                  f"not a venue defined under exchanges{suggest(name, venues)}"))
    return found


def _in_override(override: Any, path: PathT) -> bool:
    node = override
    for part in path:
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and isinstance(part, int) and part < len(node):
            node = node[part]
        else:
            return False
    return True


def _raise(problems: list[tuple[PathT, str, str | None]]) -> None:
    lines = [f"{format_path(path)}: {msg}" + (f" (with environments.{env} applied)" if env else "")
             for path, msg, env in problems]
    message = lines[0]
    if len(lines) > 1:
        message += f"\n({len(lines) - 1} more problem(s))\n" + "\n".join(lines[1:])
    raise ConfigError(message, extra={
        "path": format_path(problems[0][0]),
        "environment": problems[0][2],
        "problems": [{"path": format_path(p), "message": line} for (p, _, _), line in zip(problems, lines, strict=True)],
    })


def validate(document: dict[str, Any], *, merged_for: str | None = None) -> dict[str, ExchangesFile]:
    """The models of ``document``, per environment; ConfigError naming the first fault's
    path if any (``extra['problems']`` lists all).

    ``merged_for=None``: ``document`` is the file as written (interpolated); its base, its
    overrides and each environment's merged result are checked (``""`` keys the base).
    ``merged_for=<env>``: the document is already merged for that environment.
    """
    base = {k: v for k, v in document.items() if k != "environments"}
    model, found = _model_problems(document if merged_for else base)
    problems: list[tuple[PathT, str, str | None]] = [(p, m, merged_for) for p, m in found]
    if merged_for is None:
        problems += [(p, m, None) for p, m in _environment_problems(document.get("environments"),
                                                                     base.get("exchanges"))]
    models = {merged_for or "": model} if model is not None else {}
    if merged_for is None and not problems:
        for env, override in (document.get("environments") or {}).items():
            if not override:
                models[env] = model  # type: ignore[assignment]
                continue
            merged_model, found = _model_problems(deep_merge(base, override))
            for path, msg in found:
                if _in_override(override, path):  # the value came from the override: point there
                    problems.append((("environments", env) + path, msg, None))
                else:
                    problems.append((path, msg, env))
            if merged_model is not None:
                models[env] = merged_model
    if problems:
        _raise(problems)
    return models


# --------------------------------------------------------------------------- the typed view
@dataclass(frozen=True)
class PlatformConfig:
    """The validated configuration for one ALPHA_ENV: ``model`` typed, ``raw`` the same
    merged document as a mapping (what an adapter's ``VenueSpec.config`` is built from)."""

    model: ExchangesFile
    raw: dict[str, Any]
    environment: str
    source: Path | None = None
    _cache: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @property
    def risk_defaults(self) -> RiskDefaults:
        return self.model.global_settings.risk_management

    @property
    def venues(self) -> list[str]:
        """Enabled venue names, by priority."""
        enabled = [(v.priority, k) for k, v in self.model.exchanges.items() if v.enabled]
        return [name for _, name in sorted(enabled)]

    def venue(self, name: str) -> Venue:
        try:
            return self.model.exchanges[name]
        except KeyError:
            raise ConfigError(f"Unknown venue {name!r}", extra={"venue": name}) from None

    def venue_block(self, name: str) -> dict[str, Any]:
        """The venue's validated block as a fresh mapping, for ``VenueSpec.config``."""
        self.venue(name)
        return copy.deepcopy(self.raw["exchanges"][name])

    def parameters_as_written(self, venue: str) -> dict[str, Any]:
        """The venue's validated ``parameters`` with the values as written (the API shows them)."""
        return dict(self.venue_block(venue).get("parameters") or {})

    def display_name(self, venue: str) -> str:
        return self.venue(venue).display_name

    def auth(self, venue: str) -> Auth:
        return self.venue(venue).auth

    def capabilities(self, venue: str) -> dict[str, bool]:
        """The venue's capability flags as configured (adapters merge them over their own
        defaults: ``BaseTrader.capabilities``)."""
        return dict(self.venue(venue).capabilities)

    def symbol_map(self, venue: str) -> dict[str, str]:
        """Internal symbol -> the venue's symbol, for the symbols the venue trades."""
        key = self.venue(venue).symbol_mapping
        return dict(self.model.global_settings.symbol_mapping.get(key, {}))

    def fee(self, venue: str, kind: str) -> Decimal:
        return self.venue(venue).fee(kind)

    @property
    def order_types(self) -> dict[str, list[str]]:
        """Order type (market, limit, stop_loss, take_profit) -> the venues' names for it."""
        return {k: list(v) for k, v in self.model.global_settings.order_types.items()}


def read_yaml(path: Path) -> Any:
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read ({exc.strerror})", extra={"path": str(path)}) from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ConfigError(f"{path.name}: not valid YAML{where}: {getattr(exc, 'problem', exc)}",
                          extra={"path": str(path)}) from None


def load_config(
    path: Path | str,
    *,
    environment: str = "development",
    environ: Mapping[str, str] | None = None,
) -> PlatformConfig:
    """Read, interpolate, validate (the base and every environment), merge ``environment``'s
    overrides."""
    path = Path(path)
    document = read_yaml(path)
    if not isinstance(document, dict):
        raise ConfigError(f"{path.name}: the top level must be a mapping", extra={"path": ""})
    document = _interpolate(document, os.environ if environ is None else environ, "")
    models = validate(document)
    overrides = (document.get("environments") or {}).get(environment) or {}
    merged = deep_merge({k: v for k, v in document.items() if k != "environments"}, overrides)
    return PlatformConfig(model=models.get(environment) or models[""], raw=merged,
                          environment=environment, source=path)
