"""Typed configuration: pydantic models of config/exchanges.yaml (``platform``, ``venue``)
and of config/llm_pricing.yaml (``pricing``), loaded and validated by ``loader``.

Django-free at import (the exchange adapters may import it); ``current.get_config()``
alone reads Django settings, when called. Code below the apps that must not even name
Django statically (the decision graph) imports the submodules, not this package.
"""

from alpha_platform.common.config.current import clear_config_cache, get_config
from alpha_platform.common.config.loader import (
    ENVIRONMENTS,
    PlatformConfig,
    _interpolate,
    deep_merge,
    load_config,
    validate,
)
from alpha_platform.common.config.platform import ExchangesFile, RiskDefaults
from alpha_platform.common.config.report import format_path
from alpha_platform.common.config.venue import ADAPTER_NAMES, AUTH_FIELDS, Venue

__all__ = [
    "ADAPTER_NAMES", "AUTH_FIELDS", "ENVIRONMENTS", "ExchangesFile", "PlatformConfig", "RiskDefaults",
    "Venue", "_interpolate", "clear_config_cache", "deep_merge", "format_path", "get_config",
    "load_config", "validate",
]
