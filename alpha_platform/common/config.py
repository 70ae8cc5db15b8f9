"""Loading config/exchanges.yaml: interpolation, environment overrides, validation.

No Django imports at module level, so adapters and scripts can use it; the cached
``get_config()`` reads the path and environment from Django settings.
"""

from __future__ import annotations

import copy
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

from alpha_platform.common.errors import ConfigError

_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


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


@dataclass(frozen=True)
class PlatformConfig:
    """The validated configuration for one ALPHA_ENV."""

    raw: dict[str, Any]
    environment: str
    source: Path | None = None
    _venues: dict[str, dict[str, Any]] = field(default_factory=dict, repr=False)

    @property
    def risk_defaults(self) -> dict[str, Any]:
        return self.raw["global_settings"]["risk_management"]

    @property
    def venues(self) -> list[str]:
        """Enabled venue names, by priority."""
        enabled = [(v["priority"], k) for k, v in self.raw["exchanges"].items() if v.get("enabled", True)]
        return [name for _, name in sorted(enabled)]

    def venue(self, name: str) -> dict[str, Any]:
        try:
            return self.raw["exchanges"][name]
        except KeyError:
            raise ConfigError(f"Unknown venue {name!r}", extra={"venue": name}) from None

    def capabilities(self, venue: str) -> dict[str, bool]:
        """The venue's capability flags as configured (adapters merge them over their own
        defaults: ``BaseTrader.capabilities``)."""
        return dict(self.venue(venue).get("capabilities") or {})

    def symbol_map(self, venue: str) -> dict[str, str]:
        key = self.venue(venue).get("symbol_mapping")
        return dict(self.raw["global_settings"].get("symbol_mapping", {}).get(key, {}) or {})

    def fee(self, venue: str, kind: str) -> Decimal:
        return Decimal(str(self.venue(venue)["trading"]["fees"][kind]))


def load_config(
    path: Path | str,
    *,
    environment: str = "development",
    environ: Mapping[str, str] | None = None,
) -> PlatformConfig:
    """Read, interpolate, merge the environment's overrides and validate."""
    from alpha_platform.common.config_schema import validate  # local: keeps import light

    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read ({exc.strerror})", extra={"path": str(path)}) from None
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ConfigError(f"{path.name}: not valid YAML{where}: {getattr(exc, 'problem', exc)}",
                          extra={"path": str(path)}) from None
    if not isinstance(document, dict):
        raise ConfigError(f"{path.name}: the top level must be a mapping", extra={"path": ""})
    document = _interpolate(document, os.environ if environ is None else environ, "")
    validate(document)
    overrides = (document.get("environments") or {}).get(environment) or {}
    merged = deep_merge({k: v for k, v in document.items() if k != "environments"}, overrides)
    validate(merged, merged_for=environment)
    return PlatformConfig(raw=merged, environment=environment, source=path)


@lru_cache(maxsize=4)
def _cached(path: str, environment: str) -> PlatformConfig:
    return load_config(path, environment=environment)


def get_config() -> PlatformConfig:
    from django.conf import settings

    return _cached(str(Path(settings.ALPHA_CONFIG_DIR) / "exchanges.yaml"), settings.ALPHA_ENV)


def clear_config_cache() -> None:
    _cached.cache_clear()
