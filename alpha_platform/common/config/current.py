"""The process's configuration: config/exchanges.yaml for settings.ALPHA_ENV, loaded and
validated on first use and then cached (a broken file fails the first caller, and
``manage.py check_config`` reports every fault).

The one module of the package that reads Django settings (when called).
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from alpha_platform.common.config.loader import PlatformConfig, load_config


@lru_cache(maxsize=4)
def _cached(path: str, environment: str) -> PlatformConfig:
    return load_config(path, environment=environment)


def get_config() -> PlatformConfig:
    from django.conf import settings

    return _cached(str(Path(settings.ALPHA_CONFIG_DIR) / "exchanges.yaml"), settings.ALPHA_ENV)


def clear_config_cache() -> None:
    _cached.cache_clear()
