"""Structural validation of exchanges.yaml. Every problem names its path in the file.

(Minimal for now: extended with the full schema of the seed.)
"""

from __future__ import annotations

from typing import Any

from alpha_platform.common.errors import ConfigError


def validate(document: dict[str, Any], *, merged_for: str | None = None) -> None:
    for key in ("global_settings", "exchanges"):
        if key not in document:
            raise ConfigError(f"{key}: required section is missing", extra={"path": key})
    priorities: dict[Any, str] = {}
    for name, venue in (document.get("exchanges") or {}).items():
        prio = venue.get("priority")
        if prio in priorities:
            raise ConfigError(
                f"exchanges.{name}.priority: {prio} is already used by exchanges.{priorities[prio]}",
                extra={"path": f"exchanges.{name}.priority"},
            )
        priorities[prio] = name
