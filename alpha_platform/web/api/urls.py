"""The REST API under /api/: routes to each app's views (alpha_platform/web/api/<app>/),
plus the platform's own small endpoints (API tokens, ping), the OpenAPI schema and the
interactive documentation.

The token and ping views live here rather than in auth.py / common.py: those two are
named in REST_FRAMEWORK settings that DRF's APIView reads when it is defined, so they
must not import rest_framework.views themselves.
"""

from __future__ import annotations

from django.urls import include, path
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_view, inline_serializer
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerView
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.routers import SimpleRouter
from rest_framework.views import APIView

from alpha_platform.web.api.agents.views import AgentViewSet, DecisionViewSet, LLMCredentialView
from alpha_platform.web.api.auth import (
    TokenIssuedSerializer,
    TokenObtainSerializer,
    TokenSerializer,
    api_token_obtain,
    api_token_revoke,
)
from alpha_platform.web.api.common import AuthThrottle
from alpha_platform.web.api.exchanges.views import ExchangeAccountViewSet, ExchangeViewSet
from alpha_platform.web.api.risk.views import RiskEventViewSet, RiskProfileView
from alpha_platform.web.api.trading.views import (
    BalanceView,
    EquityView,
    KillSwitchLiftView,
    KillSwitchTripView,
    KillSwitchView,
    OrderViewSet,
    PnlView,
    PositionViewSet,
)
from alpha_platform.web.models import ApiToken


class TokenObtainView(APIView):
    """Exchange a username and password for a new API token (the key is shown once).

    Repeated failures lock sign-in out (429 with Retry-After), even with the right password,
    for the username from that address, the username, or the address: one lockout shared
    with the portal's and the admin's sign-in."""

    authentication_classes: list = []
    permission_classes = [AllowAny]
    throttle_classes = [AuthThrottle]

    @extend_schema(operation_id="auth_token_create", tags=["auth"], auth=[], request=TokenObtainSerializer,
                   responses={201: TokenIssuedSerializer})
    def post(self, request):
        serializer = TokenObtainSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        issued = api_token_obtain(request=request, username=data["username"], password=data["password"],
                                  name=data.get("name") or "api")
        token = issued.token
        return Response({"id": token.pk, "name": token.name, "key": issued.key, "key_prefix": token.key_prefix,
                         "created_at": token.created_at}, status=status.HTTP_201_CREATED)


@extend_schema_view(
    list=extend_schema(operation_id="auth_tokens_list", tags=["auth"],
                       description="Your API tokens (prefix and dates, never the key)."),
    destroy=extend_schema(operation_id="auth_tokens_revoke", tags=["auth"],
                          description="Revoke a token: requests with it fail from now on.",
                          responses={204: OpenApiResponse(description="Revoked.")}),
)
class TokenViewSet(mixins.ListModelMixin, viewsets.GenericViewSet):
    serializer_class = TokenSerializer
    queryset = ApiToken.objects.none()

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return ApiToken.objects.none()
        return ApiToken.objects.filter(user=self.request.user)

    def destroy(self, request, pk=None):
        api_token_revoke(token=self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)


class PingView(APIView):
    """The smallest authenticated endpoint: the baseline the latency bench compares with."""

    @extend_schema(operation_id="ping", tags=["meta"],
                   responses={200: inline_serializer("Ping", {"ok": serializers.BooleanField()})})
    def get(self, request):
        return Response({"ok": True})


router = SimpleRouter()
router.register("auth/tokens", TokenViewSet, basename="api-token")
router.register("exchanges", ExchangeViewSet, basename="exchange")
router.register("exchange-accounts", ExchangeAccountViewSet, basename="exchange-account")
router.register("positions", PositionViewSet, basename="position")
router.register("orders", OrderViewSet, basename="order")
router.register("risk-events", RiskEventViewSet, basename="risk-event")
router.register("agents", AgentViewSet, basename="agent")
router.register("decisions", DecisionViewSet, basename="decision")

app_name = "api"
urlpatterns = [
    path("auth/token/", TokenObtainView.as_view(), name="auth-token"),
    path("balance/", BalanceView.as_view(), name="balance"),
    path("equity/", EquityView.as_view(), name="equity"),
    path("pnl/", PnlView.as_view(), name="pnl"),
    path("risk-profile/", RiskProfileView.as_view(), name="risk-profile"),
    path("kill-switch/", KillSwitchView.as_view(), name="kill-switch"),
    path("kill-switch/trip/", KillSwitchTripView.as_view(), name="kill-switch-trip"),
    path("kill-switch/lift/", KillSwitchLiftView.as_view(), name="kill-switch-lift"),
    path("llm-credential/", LLMCredentialView.as_view(), name="llm-credential"),
    path("ping/", PingView.as_view(), name="ping"),
    path("", include(router.urls)),
    path("schema/", SpectacularAPIView.as_view(), name="schema"),
    path("docs/", SpectacularSwaggerView.as_view(url_name="api:schema"), name="docs"),
    path("redoc/", SpectacularRedocView.as_view(url_name="api:schema"), name="redoc"),
]
