"""The platform's own errors: one hierarchy, messages safe to show a person."""

from __future__ import annotations

from typing import Any


class ApplicationError(Exception):
    """A business-rule failure with a message meant for a person, plus structured extra."""

    def __init__(self, message: str, *, extra: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.extra = extra or {}


class PlatformUnavailable(ApplicationError):
    """A service the platform itself depends on (Redis, the database) failed: the request
    was refused with nothing half-written, and may be retried. The API answers 503 with
    the message and ``extra['retry_after_seconds']`` when known."""


class CredentialsError(ApplicationError):
    """Credentials are missing, malformed or cannot be decrypted."""


class ConfigError(ApplicationError):
    """The YAML configuration is invalid; ``extra['path']`` names where."""
