from __future__ import annotations

from decimal import Decimal

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q

from alpha_platform.common.models import TimeStampedModel, decimal_field

FRACTION = [MinValueValidator(Decimal("0")), MaxValueValidator(Decimal("1"))]
NON_NEGATIVE = [MinValueValidator(Decimal("0"))]


class RiskProfile(TimeStampedModel):
    """One per user; defaults from config/exchanges.yaml global_settings.risk_management.

    Fractions (``*_percent``) are shares of the user's equity across all accounts: 0.3 = 30%.
    """

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE,
                                related_name="risk_profile")
    max_leverage = models.PositiveSmallIntegerField(default=5, validators=[MinValueValidator(1), MaxValueValidator(125)])
    max_position_notional_usd = decimal_field(default=Decimal("10000"), validators=NON_NEGATIVE,
                                              help_text="Largest position per symbol, in USD notional.")
    max_position_percent = decimal_field(default=Decimal("0.2"), validators=FRACTION,
                                         help_text="Largest position per symbol as a share of equity.")
    max_total_exposure_percent = decimal_field(default=Decimal("0.5"), validators=FRACTION,
                                               help_text="All positions on all accounts, as a share of equity.")
    max_exchange_exposure_percent = decimal_field(default=Decimal("0.3"), validators=FRACTION,
                                                  help_text="Positions on one venue, as a share of equity.")
    daily_loss_limit_percent = decimal_field(default=Decimal("0.15"), validators=FRACTION,
                                             help_text="A loss this large today (UTC) trips the kill switch.")
    min_notional_usd = decimal_field(default=Decimal("5"), validators=NON_NEGATIVE)
    allowed_symbols = models.JSONField(default=list, blank=True,
                                       help_text='Internal symbols such as "BTC/USDT"; empty allows none.')
    max_open_positions = models.PositiveSmallIntegerField(default=5)
    max_orders_per_minute = models.PositiveSmallIntegerField(default=10)
    max_orders_per_hour = models.PositiveIntegerField(default=120)
    loss_cooldown_seconds = models.PositiveIntegerField(default=300,
                                                        help_text="No new position this long after a losing close.")
    monthly_llm_budget_usd = decimal_field(default=Decimal("50"), validators=NON_NEGATIVE)

    class Meta:
        constraints = [
            models.CheckConstraint(condition=Q(max_leverage__gte=1), name="risk_profile_leverage_min_1"),
            *[
                models.CheckConstraint(condition=Q(**{f"{f}__gte": 0}, **{f"{f}__lte": 1}),
                                       name=f"risk_profile_{f}_fraction")
                for f in ("max_position_percent", "max_total_exposure_percent",
                          "max_exchange_exposure_percent", "daily_loss_limit_percent")
            ],
            *[
                models.CheckConstraint(condition=Q(**{f"{f}__gte": 0}), name=f"risk_profile_{f}_non_negative")
                for f in ("max_position_notional_usd", "min_notional_usd", "monthly_llm_budget_usd")
            ],
        ]

    def __str__(self) -> str:
        return f"Risk profile of {self.user}"


class KillSwitch(TimeStampedModel):
    """A trip of a kill switch, kept as history. ``scope=global`` stops every order on the
    platform; ``scope=user`` stops one user's. At most one active trip per scope/user."""

    class Scope(models.TextChoices):
        GLOBAL = "global", "Global (every user)"
        USER = "user", "One user"

    scope = models.CharField(max_length=8, choices=Scope.choices)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.CASCADE,
                             related_name="kill_switches")
    active = models.BooleanField(default=True)
    reason = models.TextField()
    tripped_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True,
                                   on_delete=models.SET_NULL, related_name="+")
    tripped_by_label = models.CharField(max_length=100, help_text="Who or what tripped it.")
    lifted_at = models.DateTimeField(null=True, blank=True)
    lifted_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True,
                                  on_delete=models.SET_NULL, related_name="+")
    summary = models.JSONField(default=dict, blank=True,
                               help_text="What the trip did: the accounts to flatten and each one's report.")

    # The flattening of a user's trip runs in a Celery task (trading.kill_switch_flatten)
    # after the trip commits; these fields are its progress, written as it goes.
    class FlattenState(models.TextChoices):
        NONE = "", "Nothing to flatten"  # the global halt
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        DONE = "done", "Done"
        FAILED = "failed", "Failed"
        STOPPED = "stopped", "Stopped: lifted before it finished"

    flatten_state = models.CharField(max_length=8, choices=FlattenState.choices, blank=True, default="")
    flatten_accounts_total = models.PositiveIntegerField(default=0)
    flatten_accounts_done = models.PositiveIntegerField(default=0)
    flatten_orders_cancelled = models.PositiveIntegerField(default=0)
    flatten_positions_closed = models.PositiveIntegerField(default=0)
    flatten_errors = models.JSONField(default=list, blank=True,
                                      help_text="What the last pass could not do, per account.")
    flatten_attempts = models.PositiveSmallIntegerField(default=0, help_text="Passes started (retries included).")
    flatten_started_at = models.DateTimeField(null=True, blank=True)
    flatten_finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        permissions = [("trip_global_halt", "Can trip and lift the global halt (every user)")]
        constraints = [
            models.CheckConstraint(
                condition=(Q(scope="global", user__isnull=True) | Q(scope="user", user__isnull=False)),
                name="kill_switch_scope_matches_user",
            ),
            models.UniqueConstraint(fields=["user"], condition=Q(active=True, scope="user"),
                                    name="kill_switch_one_active_per_user"),
            models.UniqueConstraint(fields=["scope"], condition=Q(active=True, scope="global"),
                                    name="kill_switch_one_active_global"),
        ]

    def __str__(self) -> str:
        who = "global" if self.scope == self.Scope.GLOBAL else f"user {self.user_id}"
        return f"Kill switch ({who}, {'active' if self.active else 'lifted'})"


class RiskEvent(models.Model):
    """Every verdict of the risk gate (allow or reject), and every trip of a switch."""

    class Kind(models.TextChoices):
        PRE_TRADE = "pre_trade", "Pre-trade check"
        KILL_SWITCH = "kill_switch", "Kill switch"
        GLOBAL_HALT = "global_halt", "Global halt"
        DAILY_LOSS = "daily_loss", "Daily loss limit"
        RECONCILE = "reconcile", "Reconciliation discrepancy"
        BUDGET = "budget", "LLM budget"

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="risk_events")
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    kind = models.CharField(max_length=16, choices=Kind.choices, default=Kind.PRE_TRADE)
    allowed = models.BooleanField()
    rule = models.CharField(max_length=64, help_text="The rule that decided (the first that failed, or 'all').")
    message = models.TextField(help_text="The verdict in a sentence a person understands.")
    details = models.JSONField(default=dict, blank=True, help_text="The numbers behind the verdict.")
    symbol = models.CharField(max_length=32, blank=True, default="")
    venue = models.CharField(max_length=32, blank=True, default="")
    actor = models.CharField(max_length=100, blank=True, default="",
                             help_text="Who asked: agent:<id>, api, portal, admin, system.")

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["user", "-created_at"])]

    def __str__(self) -> str:
        return f"{'ALLOW' if self.allowed else 'REJECT'} {self.rule}: {self.message[:60]}"
