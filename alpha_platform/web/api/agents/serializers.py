"""Serializers of the agents API."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from agents.models import MIN_INTERVAL_SECONDS, AgentConfig, Decision, LLMCredential, ToolCall
from agents.services import llm_base_url_check
from alpha_platform.common.config import get_config
from alpha_platform.web.api.common import ApiModelSerializer, MoneyField
from alpha_platform.web.api.exchanges.views import AccountBriefSerializer
from alpha_platform.web.api.risk.views import known_symbols
from alpha_platform.web.api.trading.serializers import OrderSerializer, RiskVerdictSerializer
from exchanges.models import ExchangeAccount


class DecisionSerializer(ApiModelSerializer):
    agent_name = serializers.CharField(source="agent.name", read_only=True)

    class Meta:
        model = Decision
        fields = ["id", "agent", "agent_name", "status", "trigger", "model_name", "started_at", "finished_at",
                  "summary", "error", "prompt_tokens", "completion_tokens", "cost_usd", "node_timings"]
        read_only_fields = fields


class ToolCallSerializer(ApiModelSerializer):
    order = OrderSerializer(read_only=True, allow_null=True, help_text="The order this call placed, if any.")
    risk = RiskVerdictSerializer(source="risk_event", read_only=True, allow_null=True,
                                 help_text="The risk gate's verdict on this call's order, if any.")

    class Meta:
        model = ToolCall
        fields = ["index", "round", "call_id", "name", "arguments", "status", "result", "order", "risk",
                  "duration_ms"]
        read_only_fields = fields


class DecisionDetailSerializer(DecisionSerializer):
    tool_calls = ToolCallSerializer(many=True, read_only=True)

    class Meta(DecisionSerializer.Meta):
        fields = [*DecisionSerializer.Meta.fields, "market_snapshot", "context", "messages", "raw_reply",
                  "tool_calls"]
        read_only_fields = fields


class AgentPnlSerializer(serializers.Serializer):
    realized = MoneyField()
    fees = MoneyField()
    llm_spend_month = MoneyField(help_text="LLM cost of this agent's decisions this month, USD.")


class AgentSerializer(ApiModelSerializer):
    account = AccountBriefSerializer(read_only=True)
    last_decision = serializers.SerializerMethodField()

    class Meta:
        model = AgentConfig
        fields = ["id", "name", "account", "symbols", "interval_seconds", "model_name", "instructions",
                  "max_leverage", "max_tool_rounds", "status", "status_reason", "last_run_at", "last_decision",
                  "created_at", "updated_at"]
        read_only_fields = fields

    @extend_schema_field(DecisionSerializer(allow_null=True))
    def get_last_decision(self, obj: AgentConfig) -> dict[str, Any] | None:
        from agents.selectors import last_decision

        decision = last_decision(agent=obj)
        return DecisionSerializer(decision).data if decision else None


class AgentDetailSerializer(AgentSerializer):
    pnl = serializers.SerializerMethodField()

    class Meta(AgentSerializer.Meta):
        fields = [*AgentSerializer.Meta.fields, "pnl"]
        read_only_fields = fields

    @extend_schema_field(AgentPnlSerializer)
    def get_pnl(self, obj: AgentConfig) -> dict[str, Any]:
        from agents.selectors import agent_pnl

        return AgentPnlSerializer(agent_pnl(agent=obj)).data


class AgentWriteSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=100)
    account = serializers.PrimaryKeyRelatedField(queryset=ExchangeAccount.objects.none(),
                                                 help_text="The exchange account the agent trades on (yours).")
    symbols = serializers.ListField(child=serializers.ChoiceField(choices=[]), min_length=1, max_length=20,
                                    help_text='Internal symbols, e.g. ["BTC/USDT", "ETH/USDT"]; the account\'s '
                                              'venue must trade them.')
    interval_seconds = serializers.IntegerField(min_value=MIN_INTERVAL_SECONDS, max_value=7 * 24 * 3600,
                                                required=False, help_text="How often the agent decides.")
    model_name = serializers.CharField(max_length=100, required=False,
                                       help_text='"builtin:trend" (offline) or an OpenAI-compatible model name.')
    instructions = serializers.CharField(max_length=20000, required=False, allow_blank=True)
    max_leverage = serializers.IntegerField(min_value=1, max_value=125, required=False)
    max_tool_rounds = serializers.IntegerField(min_value=1, max_value=20, required=False)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        request = self.context.get("request")
        if request is not None and request.user.is_authenticated:
            self.fields["account"].queryset = ExchangeAccount.objects.filter(owner=request.user)
        self.fields["symbols"].child.choices = known_symbols()

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        account = attrs.get("account") or getattr(self.instance, "account", None)
        symbols = attrs.get("symbols")
        if account is not None and symbols is not None:
            tradable = get_config().symbol_map(account.venue)
            unknown = [s for s in symbols if s not in tradable]
            if unknown:
                raise serializers.ValidationError(
                    {"symbols": f"Not traded on {account.venue}: {', '.join(unknown)} "
                                f"(choose from {', '.join(tradable)})."})
            attrs["symbols"] = list(dict.fromkeys(symbols))
        return attrs


class AgentRunSerializer(serializers.Serializer):
    queued = serializers.BooleanField()
    agent = serializers.IntegerField()


class LLMCredentialSerializer(serializers.Serializer):
    configured = serializers.BooleanField(read_only=True)
    api_key = serializers.CharField(write_only=True, max_length=500, style={"input_type": "password"},
                                    help_text="Write-only: your key for an OpenAI-compatible server. Never returned.")
    api_key_hint = serializers.CharField(read_only=True)
    base_url = serializers.URLField(required=False, allow_blank=True, default="", max_length=200,
                                    help_text="The server's base URL; empty for OpenAI.")
    updated_at = serializers.DateTimeField(read_only=True, allow_null=True)

    def validate_base_url(self, value: str) -> str:
        """https on a public address, or a host the operator allows (LLM_ALLOWED_HOSTS)."""
        try:
            return llm_base_url_check(value)
        except ValidationError as exc:
            raise serializers.ValidationError(exc.message_dict["base_url"]) from None

    @staticmethod
    def state(credential: LLMCredential | None) -> dict[str, Any]:
        if credential is None:
            return {"configured": False, "api_key_hint": "", "base_url": "", "updated_at": None}
        return {"configured": bool(credential.api_key_encrypted), "api_key_hint": credential.api_key_hint,
                "base_url": credential.base_url, "updated_at": credential.updated_at}
