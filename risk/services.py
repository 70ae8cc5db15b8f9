"""Writes for risk profiles, kill switches and risk events."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Q
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
    given = get_config().risk_defaults.given()  # typed: amounts and fractions are Decimal
    values: dict[str, Any] = {}
    for key, field_name in _DEFAULTS_MAP.items():
        if key not in given:
            continue
        value = given[key]
        if RiskProfile._meta.get_field(field_name).get_internal_type() == "JSONField":
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


# --------------------------------------------------------------------------- flattening progress
# A user's trip is flattened by a Celery task after the trip commits (trading owns the
# task and the venues); these record its progress on the KillSwitch row and announce each
# step on commit, so the portal and the admin follow it live.
FlattenState = KillSwitch.FlattenState
FLATTEN_PENDING = (FlattenState.QUEUED, FlattenState.RUNNING)


def flatten_progress(switch: KillSwitch) -> dict[str, Any]:
    """The flattening's progress as the API, the pages and the events show it."""
    return {
        "state": switch.flatten_state, "accounts_total": switch.flatten_accounts_total,
        "accounts_done": switch.flatten_accounts_done, "orders_cancelled": switch.flatten_orders_cancelled,
        "positions_closed": switch.flatten_positions_closed, "errors": list(switch.flatten_errors or []),
        "attempts": switch.flatten_attempts, "started_at": switch.flatten_started_at,
        "finished_at": switch.flatten_finished_at, "text": flatten_progress_text(switch),
    }


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def flatten_progress_text(switch: KillSwitch) -> str:
    state, total, done = switch.flatten_state, switch.flatten_accounts_total, switch.flatten_accounts_done
    did = (f"{_plural(switch.flatten_orders_cancelled, 'order')} cancelled, "
           f"{_plural(switch.flatten_positions_closed, 'position')} closed")
    if state == FlattenState.QUEUED:
        return f"Flattening queued: {_plural(total, 'account')} to flatten."
    if state == FlattenState.RUNNING:
        return f"Flattening {min(done + 1, total)} of {_plural(total, 'account')}… ({did} so far)"
    if state == FlattenState.DONE:
        return f"Flattened {_plural(total, 'account')}: {did}."
    if state == FlattenState.FAILED:
        failed = len({e.get("account_id") for e in switch.flatten_errors or []})
        return (f"Flattening failed on {failed} of {_plural(total, 'account')} ({did}); "
                "retry it or act on the venue.")
    if state == FlattenState.STOPPED:
        return f"Flattening stopped: the kill switch was lifted ({did})."
    return ""


def _flatten_event(switch: KillSwitch) -> None:
    send_to_user_on_commit(switch.user_id, {"type": "kill_switch", "id": switch.pk, "active": switch.active,
                                            "progress": flatten_progress(switch)})


def kill_switch_flatten_queued(*, switch: KillSwitch, account_ids: list[int]) -> KillSwitch:
    """Mark a (new, or failed) trip's flattening as queued for these accounts. The caller
    queues the task on commit."""
    switch.flatten_state = FlattenState.QUEUED
    switch.flatten_accounts_total = len(account_ids)
    switch.flatten_finished_at = None
    summary = dict(switch.summary or {})
    summary["account_ids"] = list(account_ids)
    summary.setdefault("accounts", {})
    switch.summary = summary
    switch.save(update_fields=["flatten_state", "flatten_accounts_total", "flatten_finished_at", "summary",
                               "updated_at"])
    _flatten_event(switch)
    return switch


@transaction.atomic
def kill_switch_flatten_start(*, switch_id: int) -> KillSwitch | None:
    """Begin (or resume) a pass: the switch when its flattening is queued, or running and
    left by a pass that died (the caller holds the user's flatten lock, so no pass is alive);
    None when there is nothing to do (done, failed, stopped, or no such switch)."""
    switch = KillSwitch.objects.select_for_update().filter(pk=switch_id, scope=KillSwitch.Scope.USER).first()
    if switch is None or switch.flatten_state not in FLATTEN_PENDING:
        return None
    now = timezone.now()
    switch.flatten_state = FlattenState.RUNNING
    switch.flatten_attempts += 1
    switch.flatten_started_at = switch.flatten_started_at or now
    switch.save(update_fields=["flatten_state", "flatten_attempts", "flatten_started_at", "updated_at"])
    _flatten_event(switch)
    return switch


@transaction.atomic
def kill_switch_flatten_step(*, switch_id: int, cancelled: int = 0, closed: int = 0,
                             account_report: dict[str, Any] | None = None) -> KillSwitch:
    """Record one step: an order cancelled, a position closed, or an account finished
    (``account_report``: account_id, name, ok, errors, ...)."""
    switch = KillSwitch.objects.select_for_update().get(pk=switch_id)
    switch.flatten_orders_cancelled += cancelled
    switch.flatten_positions_closed += closed
    if account_report is not None:
        summary = dict(switch.summary or {})
        reports = dict(summary.get("accounts") or {})
        reports[str(account_report["account_id"])] = account_report
        summary["accounts"] = reports
        switch.summary = summary
        switch.flatten_accounts_done = len(reports)
        switch.flatten_errors = [{"account_id": r["account_id"], "account": r.get("name", ""), "error": e}
                                 for r in reports.values() for e in r.get("errors", [])]
    switch.save(update_fields=["flatten_orders_cancelled", "flatten_positions_closed", "summary",
                               "flatten_accounts_done", "flatten_errors", "updated_at"])
    _flatten_event(switch)
    return switch


@transaction.atomic
def kill_switch_flatten_finish(*, switch_id: int, stopped: bool = False) -> KillSwitch:
    """End a pass: done when every account flattened cleanly, failed when any reported an
    error (the page offers a retry), stopped when the switch was lifted meanwhile."""
    switch = KillSwitch.objects.select_for_update().get(pk=switch_id)
    if stopped:
        switch.flatten_state = FlattenState.STOPPED
    else:
        switch.flatten_state = FlattenState.FAILED if switch.flatten_errors else FlattenState.DONE
    switch.flatten_finished_at = timezone.now()
    switch.save(update_fields=["flatten_state", "flatten_finished_at", "updated_at"])
    _flatten_event(switch)
    return switch


@transaction.atomic
def kill_switch_flatten_retry_mark(*, switch_id: int) -> KillSwitch | None:
    """A failed (active) trip's flattening queued again: the accounts that reported errors
    are flattened again, the others stay done. None when it is not a failed, active trip."""
    switch = KillSwitch.objects.select_for_update().filter(pk=switch_id, active=True,
                                                           flatten_state=FlattenState.FAILED).first()
    if switch is None:
        return None
    summary = dict(switch.summary or {})
    reports = {k: r for k, r in (summary.get("accounts") or {}).items() if not r.get("errors")}
    summary["accounts"] = reports
    switch.summary = summary
    switch.flatten_accounts_done = len(reports)
    switch.flatten_errors = []
    switch.save(update_fields=["summary", "flatten_accounts_done", "flatten_errors", "updated_at"])
    return kill_switch_flatten_queued(switch=switch, account_ids=list(summary.get("account_ids") or []))


def kill_switch_flatten_stalled(*, queued_for_seconds: float, running_still_seconds: float) -> list[int]:
    """Active trips whose flattening is still queued after ``queued_for_seconds`` (the task
    was never queued: the broker was down at the trip; or it waits in a long queue), or
    running without a step for ``running_still_seconds`` (its worker died)."""
    now = timezone.now()
    return list(KillSwitch.objects.filter(scope=KillSwitch.Scope.USER, active=True).filter(
        Q(flatten_state=FlattenState.QUEUED, updated_at__lt=now - timedelta(seconds=queued_for_seconds))
        | Q(flatten_state=FlattenState.RUNNING, updated_at__lt=now - timedelta(seconds=running_still_seconds)))
        .values_list("pk", flat=True))
