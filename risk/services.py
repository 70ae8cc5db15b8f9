"""Writes for risk profiles, kill switches and risk events."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from alpha_platform.common.config import get_config
from alpha_platform.common.money import decimal_input
from alpha_platform.common.realtime import send_to_user_on_commit
from risk.models import KillSwitch, RiskEvent, RiskProfile

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
    """Raises ValidationError (field -> messages) for a bad value; nothing is saved then.
    Every Decimal setting must be one the platform may store (money.decimal_input)."""
    errors: dict[str, str] = {}
    for name, value in changes.items():
        if name not in {f for f in _DEFAULTS_MAP.values()}:
            raise ValueError(f"{name} is not an editable risk setting")
        if value is not None and RiskProfile._meta.get_field(name).get_internal_type() == "DecimalField":
            try:
                changes[name] = decimal_input(value, field=name, label="This value")
            except ValueError as exc:
                errors[name] = str(exc)
    if errors:
        raise ValidationError(errors)
    for name, value in changes.items():
        setattr(profile, name, value)
    profile.full_clean()
    profile.save()
    return profile


# --------------------------------------------------------------------------- events and halts



def risk_event_record(*, user: AbstractBaseUser, allowed: bool, rule: str, message: str,
                      details: dict[str, Any] | None = None, kind: str = RiskEvent.Kind.PRE_TRADE,
                      symbol: str = "", venue: str = "", actor: str = "") -> RiskEvent:
    event = RiskEvent.objects.create(user=user, allowed=allowed, rule=rule, message=message,
                                     details=details or {}, kind=kind, symbol=symbol, venue=venue,
                                     actor=actor[:100])
    send_to_user_on_commit(user.pk, {
        "type": "risk.event", "id": event.pk, "kind": event.kind, "allowed": allowed, "rule": rule,
        "message": message, "symbol": symbol, "venue": venue, "created_at": event.created_at,
    })
    return event


#: What a user is shown as the author of a trip or lift done by someone else (staff, an
#: operator): never a staff user's name. Staff pages read ``tripped_by``/``lifted_by``.
OPERATOR_LABEL = "an operator"
GLOBAL_HALT_PERMISSION = "risk.trip_global_halt"
#: Actor labels that name a staff user (the admin's order form, staff trips of the global halt).
STAFF_ACTOR_PREFIXES = ("admin:", "staff:")


def actor_for_viewer(actor: str, viewer: AbstractBaseUser | None) -> str:
    """An order's or a risk event's actor as ``viewer`` may see it: a staff user's name is
    "an operator" to everyone but that staff user (the admin shows the stored value)."""
    actor = actor or ""
    if actor.startswith(STAFF_ACTOR_PREFIXES):
        name = actor.split(":", 1)[1]
        if viewer is None or name != viewer.get_username():
            return OPERATOR_LABEL
    return actor


def acts_for_other(*, user: AbstractBaseUser, by: AbstractBaseUser | None) -> bool:
    """Whether ``by`` (a person) acts on another user's objects."""
    return by is not None and by.pk != user.pk


def can_trip_global_halt(user: AbstractBaseUser | None) -> bool:
    return bool(user is not None and user.is_active and user.has_perm(GLOBAL_HALT_PERMISSION))


def global_halt_active() -> KillSwitch | None:
    return KillSwitch.objects.filter(scope=KillSwitch.Scope.GLOBAL, active=True).first()


def user_halt_active(user_id: int) -> KillSwitch | None:
    return KillSwitch.objects.filter(scope=KillSwitch.Scope.USER, user_id=user_id, active=True).first()


@transaction.atomic
def global_halt_trip(*, by: AbstractBaseUser, reason: str) -> KillSwitch:
    """Stop every order platform-wide until lifted. Needs ``risk.trip_global_halt``
    (superusers have it). Every user sees "an operator" as its author; ``tripped_by`` keeps who."""
    if not can_trip_global_halt(by):
        raise PermissionError("Halting the whole platform needs the permission to trip the global halt.")
    existing = KillSwitch.objects.select_for_update().filter(scope=KillSwitch.Scope.GLOBAL, active=True).first()
    if existing:
        return existing
    halt = KillSwitch(scope=KillSwitch.Scope.GLOBAL, reason=reason or "Global halt", tripped_by=by,
                      tripped_by_label=OPERATOR_LABEL)
    halt.full_clean()
    halt.save()
    risk_event_record(user=by, allowed=False, rule="global_halt", kind=RiskEvent.Kind.GLOBAL_HALT,
                      message=f"Global trading halt tripped by {by.get_username()}: {halt.reason}",
                      actor=f"staff:{by.get_username()}")
    return halt


@transaction.atomic
def global_halt_lift(*, by: AbstractBaseUser) -> int:
    if not can_trip_global_halt(by):
        raise PermissionError("Lifting the global halt needs the permission to trip the global halt.")
    lifted = KillSwitch.objects.filter(scope=KillSwitch.Scope.GLOBAL, active=True).update(
        active=False, lifted_at=timezone.now(), lifted_by=by)
    if lifted:
        risk_event_record(user=by, allowed=True, rule="global_halt", kind=RiskEvent.Kind.GLOBAL_HALT,
                          message=f"Global trading halt lifted by {by.get_username()}",
                          actor=f"staff:{by.get_username()}")
    return lifted


@transaction.atomic
def user_halt_record(*, user: AbstractBaseUser, label: str, reason: str,
                     by: AbstractBaseUser | None = None) -> tuple[KillSwitch, bool]:
    """Record a trip of the user's kill switch; returns (switch, created). Flattening the
    user's positions is trading's job (trading.services.kill_switch_trip).

    Tripped by someone else (``by`` another user: staff), the switch's label and the user's
    RiskEvent say "an operator" whatever ``label`` says; ``tripped_by`` keeps who, for staff."""
    if acts_for_other(user=user, by=by):
        if not by.has_perm("risk.add_killswitch"):
            raise PermissionError("Tripping another user's kill switch needs the permission to add kill switches.")
        label = OPERATOR_LABEL
    existing = KillSwitch.objects.select_for_update().filter(
        scope=KillSwitch.Scope.USER, user=user, active=True).first()
    if existing:
        return existing, False
    switch = KillSwitch(scope=KillSwitch.Scope.USER, user=user, reason=reason, tripped_by=by,
                        tripped_by_label=label[:100])
    switch.full_clean()
    switch.save()
    kind = RiskEvent.Kind.DAILY_LOSS if label == "daily_loss_limit" else RiskEvent.Kind.KILL_SWITCH
    risk_event_record(user=user, allowed=False, rule="kill_switch", kind=kind,
                      message=f"Kill switch tripped by {label}: {reason}", actor=label)
    return switch, True


@transaction.atomic
def user_halt_lift(*, user: AbstractBaseUser, by: AbstractBaseUser) -> int:
    """Lift the user's kill switch: the user's own, or another's with ``risk.change_killswitch``."""
    if acts_for_other(user=user, by=by) and not by.has_perm("risk.change_killswitch"):
        raise PermissionError("Lifting another user's kill switch needs the permission to change kill switches.")
    lifted = KillSwitch.objects.filter(scope=KillSwitch.Scope.USER, user=user, active=True).update(
        active=False, lifted_at=timezone.now(), lifted_by=by)
    if lifted:
        if acts_for_other(user=user, by=by):
            who, actor = OPERATOR_LABEL, OPERATOR_LABEL
        else:
            who, actor = by.get_username(), f"user:{by.get_username()}"
        risk_event_record(user=user, allowed=True, rule="kill_switch", kind=RiskEvent.Kind.KILL_SWITCH,
                          message=f"Kill switch lifted by {who}; agents stay paused until resumed", actor=actor)
    return lifted
