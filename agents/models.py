from __future__ import annotations

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MinValueValidator
from django.db import models
from django.db.models import Q

from alpha_platform.common import crypto
from alpha_platform.common.models import EncryptedTextField, TimeStampedModel, decimal_field
from alpha_platform.common.secrets import Credentials

MIN_INTERVAL_SECONDS = 10


class AgentConfig(TimeStampedModel):
    class Status(models.TextChoices):
        ACTIVE = "active", "Active"
        PAUSED = "paused", "Paused"
        HALTED = "halted", "Halted (kill switch)"

    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="agents")
    account = models.ForeignKey("exchanges.ExchangeAccount", on_delete=models.PROTECT, related_name="agents")
    name = models.CharField(max_length=100)
    symbols = models.JSONField(default=list, help_text='Internal symbols, e.g. ["BTC/USDT", "ETH/USDT"].')
    interval_seconds = models.PositiveIntegerField(
        default=60, validators=[MinValueValidator(MIN_INTERVAL_SECONDS)],
        help_text=f"How often the agent decides (at least {MIN_INTERVAL_SECONDS} s).")
    model_name = models.CharField(max_length=100, default="builtin:trend",
                                  help_text='"builtin:trend" (offline) or an OpenAI-compatible model name.')
    instructions = models.TextField(blank=True, default="")
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.ACTIVE, db_index=True)
    status_reason = models.CharField(max_length=200, blank=True, default="")
    max_leverage = models.PositiveSmallIntegerField(default=3, validators=[MinValueValidator(1)])
    max_tool_rounds = models.PositiveSmallIntegerField(default=4, validators=[MinValueValidator(1)])
    last_run_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["owner_id", "name"]
        constraints = [
            models.UniqueConstraint(fields=["owner", "name"], name="agent_unique_name_per_owner"),
            models.CheckConstraint(condition=Q(interval_seconds__gte=MIN_INTERVAL_SECONDS),
                                   name="agent_interval_at_least_10s"),
            models.CheckConstraint(condition=Q(status__in=["active", "paused", "halted"]), name="agent_status_valid"),
            models.CheckConstraint(condition=~Q(name=""), name="agent_name_not_empty"),
        ]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        errors: dict[str, list[str]] = {}
        if self.account_id and self.owner_id and self.account.owner_id != self.owner_id:
            errors.setdefault("account", []).append("The exchange account must belong to the agent's owner.")
        if not isinstance(self.symbols, list) or not self.symbols or not all(
            isinstance(s, str) and "/" in s for s in self.symbols
        ):
            errors.setdefault("symbols", []).append('Give one or more symbols such as "BTC/USDT".')
        if errors:
            raise ValidationError(errors)

    @property
    def is_builtin_model(self) -> bool:
        return self.model_name.startswith("builtin:")

    @property
    def periodic_task_name(self) -> str:
        return f"agent-{self.pk}"


class LLMCredential(TimeStampedModel):
    """A user's own key and base URL for an OpenAI-compatible server (encrypted)."""

    owner = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="llm_credential")
    base_url = models.URLField(blank=True, default="")
    api_key_encrypted = EncryptedTextField()
    api_key_hint = models.CharField(max_length=40, blank=True, default="")

    def __str__(self) -> str:
        return f"LLM credential of {self.owner}"

    def credentials(self) -> Credentials:
        return crypto.decrypt_credentials(self.api_key_encrypted)


class Decision(models.Model):
    """The audit of one agent tick: what it saw, what it asked, what was done."""

    class Status(models.TextChoices):
        RUNNING = "running", "Running"
        EXECUTED = "executed", "Executed"
        HELD = "held", "Held"
        REJECTED = "rejected", "Rejected by risk"
        ERROR = "error", "Error"
        SKIPPED = "skipped", "Skipped (previous tick still running)"
        BUDGET_EXCEEDED = "budget_exceeded", "LLM budget exceeded"

    class Trigger(models.TextChoices):
        SCHEDULE = "schedule", "Schedule"
        MANUAL = "manual", "Run now"

    agent = models.ForeignKey(AgentConfig, on_delete=models.CASCADE, related_name="decisions")
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="decisions")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.RUNNING, db_index=True)
    trigger = models.CharField(max_length=10, choices=Trigger.choices, default=Trigger.SCHEDULE)
    model_name = models.CharField(max_length=100)
    started_at = models.DateTimeField(db_index=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    deadline_at = models.DateTimeField(null=True, blank=True,
                                       help_text="The decision's own time limit (AGENT_TICK_TIME_LIMIT from its start).")
    tick_id = models.CharField(max_length=255, null=True, blank=True, unique=True,
                               help_text="The Celery task id of the tick: a redelivered tick never runs twice.")
    market_snapshot = models.JSONField(default=dict, blank=True)
    context = models.JSONField(default=dict, blank=True)
    messages = models.JSONField(default=list, blank=True)
    raw_reply = models.JSONField(default=list, blank=True)
    summary = models.TextField(blank=True, default="")
    error = models.TextField(blank=True, default="")
    prompt_tokens = models.PositiveIntegerField(default=0)
    completion_tokens = models.PositiveIntegerField(default=0)
    cost_usd = decimal_field(default=0)
    node_timings = models.JSONField(default=dict, blank=True, help_text="Milliseconds per graph node.")

    class Meta:
        ordering = ["-started_at", "-id"]
        indexes = [
            models.Index(fields=["agent", "-started_at"]),
            models.Index(fields=["owner", "-started_at"]),
        ]
        constraints = [
            models.CheckConstraint(condition=Q(cost_usd__gte=0), name="decision_cost_non_negative"),
        ]

    def __str__(self) -> str:
        return f"Decision {self.pk} of {self.agent_id} [{self.status}]"


class ToolCall(models.Model):
    class Status(models.TextChoices):
        PENDING = "pending", "Being executed (or the worker stopped while it was)"
        OK = "ok", "Done"
        INVALID = "invalid", "Invalid (unknown tool or bad arguments)"
        REJECTED = "rejected", "Rejected by risk"
        ERROR = "error", "Error"

    decision = models.ForeignKey(Decision, on_delete=models.CASCADE, related_name="tool_calls")
    index = models.PositiveSmallIntegerField()
    round = models.PositiveSmallIntegerField(default=0)
    call_id = models.CharField(max_length=100, blank=True, default="")
    name = models.CharField(max_length=64)
    arguments = models.JSONField(default=dict, blank=True)
    raw_arguments = models.TextField(blank=True, default="")
    status = models.CharField(max_length=10, choices=Status.choices)
    result = models.JSONField(default=dict, blank=True)
    order = models.ForeignKey("trading.Order", null=True, blank=True, on_delete=models.SET_NULL,
                              related_name="tool_calls")
    risk_event = models.ForeignKey("risk.RiskEvent", null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="tool_calls")
    duration_ms = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["decision_id", "index"]
        constraints = [
            models.UniqueConstraint(fields=["decision", "index"], name="tool_call_unique_index"),
        ]

    def __str__(self) -> str:
        return f"{self.name} [{self.status}]"
