"""REST API for the user's risk profile (/api/risk-profile/) and the risk gate's
verdicts (/api/risk-events/)."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import mixins, serializers, viewsets
from rest_framework.response import Response
from rest_framework.views import APIView

from alpha_platform.common.config import get_config
from alpha_platform.web.api.common import ApiModelSerializer
from alpha_platform.web.api.risk.filters import RiskEventFilter
from risk.models import KillSwitch, RiskEvent, RiskProfile
from risk.services import actor_for_viewer, flatten_progress, risk_profile_update

EDITABLE = ["max_leverage", "max_position_notional_usd", "max_position_percent", "max_total_exposure_percent",
            "max_exchange_exposure_percent", "daily_loss_limit_percent", "min_notional_usd", "allowed_symbols",
            "max_open_positions", "max_orders_per_minute", "max_orders_per_hour", "loss_cooldown_seconds",
            "monthly_llm_budget_usd"]


def known_symbols() -> list[str]:
    config = get_config()
    seen: list[str] = []
    for venue in config.venues:
        for symbol in config.symbol_map(venue):
            if symbol not in seen:
                seen.append(symbol)
    return seen


class RiskProfileSerializer(ApiModelSerializer):
    allowed_symbols = serializers.ListField(
        child=serializers.CharField(max_length=32), max_length=100, required=False,
        help_text='Internal symbols the gate allows, e.g. ["BTC/USDT"]; empty allows none.')

    class Meta:
        model = RiskProfile
        fields = [*EDITABLE, "updated_at"]
        read_only_fields = ["updated_at"]

    def validate_allowed_symbols(self, value: list[str]) -> list[str]:
        known = known_symbols()
        unknown = [s for s in value if s not in known]
        if unknown:
            raise serializers.ValidationError(
                f"Unknown symbol(s): {', '.join(unknown)}; the platform trades {', '.join(known)}.")
        return list(dict.fromkeys(value))


class RiskProfileView(APIView):
    """Your risk profile: the limits every order is checked against."""

    def get_object(self) -> RiskProfile:
        return RiskProfile.objects.get(user=self.request.user)

    @extend_schema(operation_id="risk_profile_retrieve", tags=["risk"], responses=RiskProfileSerializer)
    def get(self, request):
        return Response(RiskProfileSerializer(self.get_object()).data)

    def _update(self, request, partial: bool):
        profile = self.get_object()
        serializer = RiskProfileSerializer(profile, data=request.data, partial=partial)
        serializer.is_valid(raise_exception=True)
        profile = risk_profile_update(profile=profile, **serializer.validated_data)
        return Response(RiskProfileSerializer(profile).data)

    @extend_schema(operation_id="risk_profile_update", tags=["risk"], request=RiskProfileSerializer,
                   responses=RiskProfileSerializer)
    def put(self, request):
        return self._update(request, partial=False)

    @extend_schema(operation_id="risk_profile_partial_update", tags=["risk"], request=RiskProfileSerializer,
                   responses=RiskProfileSerializer)
    def patch(self, request):
        return self._update(request, partial=True)


class KillSwitchProgressSerializer(serializers.Serializer):
    """A trip's flattening, which a worker does after the trip (``switch`` is the KillSwitch)."""

    state = serializers.ChoiceField(choices=KillSwitch.FlattenState.choices, help_text=(
        '"queued", "running", "done", "failed" (some account reported an error: retry it), "stopped" '
        '(lifted before it finished); "" for the global halt, which flattens nothing.'))
    accounts_total = serializers.IntegerField(help_text="Accounts to flatten.")
    accounts_done = serializers.IntegerField(help_text="Accounts flattened so far (with or without errors).")
    orders_cancelled = serializers.IntegerField()
    positions_closed = serializers.IntegerField()
    errors = serializers.ListField(child=serializers.DictField(), help_text=(
        'What could not be done, per account: {"account_id", "account", "error"}.'))
    attempts = serializers.IntegerField(help_text="Passes started (retries included).")
    started_at = serializers.DateTimeField(allow_null=True)
    finished_at = serializers.DateTimeField(allow_null=True)
    text = serializers.CharField(help_text='The progress in a sentence, e.g. "Flattening 1 of 3 accounts…".')

    def to_representation(self, switch: KillSwitch) -> dict:
        return super().to_representation(flatten_progress(switch))


class RiskEventSerializer(ApiModelSerializer):
    actor = serializers.SerializerMethodField(
        help_text='Who asked: "agent:<id>", "user:<id>", "system", or "an operator" for staff acting for you.')

    class Meta:
        model = RiskEvent
        fields = ["id", "created_at", "kind", "allowed", "rule", "message", "details", "symbol", "venue", "actor"]
        read_only_fields = fields

    def get_actor(self, event: RiskEvent) -> str:
        request = self.context.get("request")
        return actor_for_viewer(event.actor, getattr(request, "user", None))


@extend_schema_view(
    list=extend_schema(operation_id="risk_events_list", tags=["risk"],
                       description="The risk gate's verdicts and kill-switch events, newest first."),
    retrieve=extend_schema(operation_id="risk_events_retrieve", tags=["risk"]),
)
class RiskEventViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    serializer_class = RiskEventSerializer
    filterset_class = RiskEventFilter  # the list's parameters, on top of the user's own events
    queryset = RiskEvent.objects.none()

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return RiskEvent.objects.none()
        return RiskEvent.objects.filter(user=self.request.user).order_by("-created_at", "-id")
