"""Writes for risk profiles, kill switches and risk events."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction

from alpha_platform.common.config import get_config
from risk.models import RiskProfile

# config key (global_settings.risk_management) -> RiskProfile field
_DEFAULTS_MAP = {
    "max_leverage": "max_leverage",
    "max_position_notional_usd": "max_position_notional_usd",
    "max_position_percent": "max_position_percent",
    "max_total_exposure_percent": "max_total_exposure_percent",
    "max_exchange_exposure_percent": "max_exchange_exposure_percent",
    "emergency_stop_loss_percent": "daily_loss_limit_percent",
    "min_notional_usd": "min_notional_usd",
    "allowed_symbols": "allowed_symbols",
    "max_open_positions": "max_open_positions",
    "max_orders_per_minute": "max_orders_per_minute",
    "max_orders_per_hour": "max_orders_per_hour",
    "loss_cooldown_seconds": "loss_cooldown_seconds",
    "monthly_llm_budget_usd": "monthly_llm_budget_usd",
}


def risk_profile_defaults() -> dict[str, Any]:
    defaults = get_config().risk_defaults
    values: dict[str, Any] = {}
    for key, field_name in _DEFAULTS_MAP.items():
        if key not in defaults:
            continue
        field = RiskProfile._meta.get_field(field_name)
        value = defaults[key]
        if field.get_internal_type() == "DecimalField":
            value = Decimal(str(value))
        elif field.get_internal_type() == "JSONField":
            value = list(value)
        values[field_name] = value
    return values


@transaction.atomic
def risk_profile_create(*, user: AbstractBaseUser) -> RiskProfile:
    existing = RiskProfile.objects.filter(user=user).first()
    if existing:
        return existing
    profile = RiskProfile(user=user, **risk_profile_defaults())
    profile.full_clean()
    profile.save()
    return profile


@transaction.atomic
def risk_profile_update(*, profile: RiskProfile, **changes: Any) -> RiskProfile:
    for name, value in changes.items():
        if name not in {f for f in _DEFAULTS_MAP.values()}:
            raise ValueError(f"{name} is not an editable risk setting")
        setattr(profile, name, value)
    profile.full_clean()
    profile.save()
    return profile
