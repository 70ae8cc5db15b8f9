"""Credential shapes per venue. Messages name the field, never the value."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from django.core.exceptions import ValidationError

_HEX64 = re.compile(r"^0x[0-9a-fA-F]{64}$")
_ADDR = re.compile(r"^0x[0-9a-fA-F]{40}$")
_API = re.compile(r"^[A-Za-z0-9]{16,128}$")

SHAPES: dict[str, dict[str, tuple[re.Pattern[str], str]]] = {
    "api_key": {
        "api_key": (_API, "must be 16 to 128 letters and digits (Binance API keys are 64)"),
        "api_secret": (_API, "must be 16 to 128 letters and digits (Binance API secrets are 64)"),
    },
    "wallet_key": {
        "private_key": (_HEX64, "must be the agent wallet's private key: 0x followed by 64 hex digits"),
        "account_address": (_ADDR, "must be the main account address: 0x followed by 40 hex digits"),
    },
    "none": {},
}

# Fields that are not secret and may be shown back (in part).
PUBLIC_FIELDS = {"account_address"}


def clean_credentials(auth_type: str, data: Mapping[str, Any]) -> dict[str, str]:
    """Return the stripped credentials or raise ValidationError keyed by field."""
    shape = SHAPES.get(auth_type)
    if shape is None:
        raise ValidationError({"credentials": f"Unsupported authentication type {auth_type!r}"})
    errors: dict[str, str] = {}
    unknown = sorted(set(data) - set(shape))
    if unknown:
        errors["credentials"] = f"Unexpected credential field(s): {', '.join(unknown)}"
    cleaned: dict[str, str] = {}
    for name, (pattern, explanation) in shape.items():
        value = data.get(name)
        if value is None or (isinstance(value, str) and not value.strip()):
            errors[name] = "This credential is required."
            continue
        if not isinstance(value, str) or not pattern.match(value.strip()):
            errors[name] = f"{name.replace('_', ' ').capitalize()} {explanation}."
            continue
        cleaned[name] = value.strip()
    if errors:
        raise ValidationError(errors)
    return cleaned


def credentials_hint(cleaned: Mapping[str, str]) -> str:
    parts = []
    for name, value in sorted(cleaned.items()):
        if name in PUBLIC_FIELDS:
            parts.append(f"{name} {value[:6]}…{value[-4:]}")
        elif name == "api_key":
            parts.append(f"api_key …{value[-4:]}")
    return "; ".join(parts)
