"""REST API for venues and exchange accounts (/api/exchanges/, /api/exchange-accounts/).

Credentials are write-only: accepted on create and update, validated per venue by the
service, stored encrypted, and never returned (responses carry ``credentials_hint``).
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import transaction
from django.http import Http404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from alpha_platform.common.config import get_config
from alpha_platform.web.api.common import ERROR, ApiModelSerializer, MoneyField, nested_errors
from exchanges.credentials import SHAPES
from exchanges.models import ExchangeAccount
from exchanges.services import (
    exchange_account_create,
    exchange_account_delete,
    exchange_account_set_credentials,
    exchange_account_test_connection,
    exchange_account_update,
)

CREDENTIAL_KEYS = {name for shape in SHAPES.values() for name in shape}


def venue_choices() -> list[tuple[str, str]]:
    config = get_config()
    return [(name, config.display_name(name)) for name in config.venues]


def venue_display_name(venue: str) -> str:
    try:
        return get_config().display_name(venue)
    except Exception:  # a venue removed from the configuration after the account was made
        return venue


# --------------------------------------------------------------------------- serializers
class AccountBriefSerializer(serializers.Serializer):
    """An exchange account as other resources refer to it."""

    id = serializers.IntegerField()
    name = serializers.CharField()
    venue = serializers.CharField()
    testnet = serializers.BooleanField()
    status = serializers.ChoiceField(choices=ExchangeAccount.Status.choices)


class ExchangeAccountSerializer(ApiModelSerializer):
    venue_display_name = serializers.SerializerMethodField()

    class Meta:
        model = ExchangeAccount
        fields = ["id", "name", "venue", "venue_display_name", "testnet", "status", "last_error",
                  "last_checked_at", "credentials_hint", "created_at", "updated_at"]
        read_only_fields = fields

    def get_venue_display_name(self, obj: ExchangeAccount) -> str:
        return venue_display_name(obj.venue)


def _credentials_field(**kwargs: Any) -> serializers.DictField:
    kwargs.setdefault(
        "help_text",
        "Write-only. The venue's credential fields (GET /api/exchanges/ lists them as credential_fields): "
        "api_key and api_secret for Binance; private_key (agent wallet) and account_address for "
        "Hyperliquid; none for paper. Never returned.")
    return serializers.DictField(
        child=serializers.CharField(max_length=500, allow_blank=True, trim_whitespace=False),
        write_only=True, **kwargs)


class ExchangeAccountCreateSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=100)
    venue = serializers.ChoiceField(choices=[])
    testnet = serializers.BooleanField(default=False)
    credentials = _credentials_field(required=False, default=dict)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["venue"].choices = venue_choices()


class ExchangeAccountUpdateSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=100, required=False)
    testnet = serializers.BooleanField(required=False)
    credentials = _credentials_field(required=False,
                                     help_text="Write-only. Replaces the stored credentials; omit to keep them.")


class LeverageSerializer(serializers.Serializer):
    default = serializers.IntegerField()
    maximum = serializers.IntegerField()
    per_symbol = serializers.DictField(child=serializers.IntegerField(),
                                       help_text="Maximum leverage by internal symbol, where it differs.")


class PositionSizingSerializer(serializers.Serializer):
    min_notional = MoneyField(allow_null=True)
    max_position_percent = MoneyField(allow_null=True)
    quantity_precision = serializers.IntegerField(allow_null=True)
    price_precision = serializers.IntegerField(allow_null=True)


class FeesSerializer(serializers.Serializer):
    maker = MoneyField(help_text="A fraction of the notional; negative is a rebate.")
    taker = MoneyField()


class CapabilitiesSerializer(serializers.Serializer):
    order_types = serializers.ListField(child=serializers.CharField(),
                                        help_text="Order types the API accepts for this venue.")
    time_in_force = serializers.ListField(child=serializers.CharField())
    default_time_in_force = serializers.CharField()
    batch_orders = serializers.BooleanField()
    oco_orders = serializers.BooleanField()
    margin_mode = serializers.CharField()
    market_type = serializers.CharField()
    leverage = LeverageSerializer()
    position_sizing = PositionSizingSerializer()
    fees = FeesSerializer()
    parameters = serializers.DictField(child=serializers.JSONField(),
                                       help_text="The venue's other settings (hedge mode, funding, ...).")


class ExchangeSerializer(serializers.Serializer):
    name = serializers.CharField(help_text="The venue's id, used as `venue` elsewhere.")
    display_name = serializers.CharField()
    exchange_type = serializers.CharField()
    priority = serializers.IntegerField()
    auth_type = serializers.CharField()
    credential_fields = serializers.ListField(child=serializers.CharField())
    symbols = serializers.ListField(child=serializers.CharField(), help_text="Internal symbols, e.g. BTC/USDT.")
    capabilities = CapabilitiesSerializer()
    accounts = AccountBriefSerializer(many=True, help_text="Your accounts on this venue and their status.")


# --------------------------------------------------------------------------- capabilities
def _canonical_order_types(supported: list[str]) -> list[str]:
    aliases = get_config().order_types
    out = []
    for name in supported:
        for values in aliases.values():
            if name.lower() in {v.lower() for v in values}:
                canonical = values[0]
                break
        else:
            canonical = name
        if canonical not in out:
            out.append(canonical)
    return out


def exchange_summary(name: str, accounts: list[ExchangeAccount]) -> dict[str, Any]:
    config = get_config()
    venue = config.venue(name)
    trading = venue.trading
    orders, leverage, sizing = trading.order_management, trading.leverage, trading.position_sizing
    symbol_map = config.symbol_map(name)
    to_internal = {v: k for k, v in symbol_map.items()}
    return {
        "name": name,
        "display_name": venue.display_name,
        "exchange_type": venue.exchange_type,
        "priority": venue.priority,
        "auth_type": venue.auth.auth_type,
        "credential_fields": list(venue.auth.fields),
        "symbols": list(symbol_map),
        "capabilities": {
            "order_types": _canonical_order_types(list(orders.supported_types)),
            "time_in_force": list(orders.time_in_force),
            "default_time_in_force": orders.default_tif,
            "batch_orders": orders.batch_orders,
            "oco_orders": orders.oco_orders,
            "margin_mode": trading.margin_mode,
            "market_type": trading.default_type,
            "leverage": {"default": leverage.default, "maximum": leverage.maximum,
                         "per_symbol": {to_internal.get(k, k): v for k, v in leverage.per_symbol.items()}},
            "position_sizing": {"min_notional": sizing.min_notional,
                                "max_position_percent": sizing.max_position_percent,
                                "quantity_precision": sizing.quantity_precision,
                                "price_precision": sizing.price_precision},
            "fees": {"maker": trading.fees.maker, "taker": trading.fees.taker},
            "parameters": config.parameters_as_written(name),
        },
        "accounts": accounts,
    }


def venue_order_capabilities(venue: str) -> tuple[list[str], list[str]]:
    """(order types, time-in-force values) the venue accepts, for request validation."""
    caps = exchange_summary(venue, [])["capabilities"]
    return caps["order_types"], caps["time_in_force"]


# --------------------------------------------------------------------------- views
@extend_schema_view(
    list=extend_schema(operation_id="exchanges_list", tags=["exchanges"],
                       description="The venues the platform supports, their capabilities, and the status "
                                   "of each of your accounts on them."),
    retrieve=extend_schema(operation_id="exchanges_retrieve", tags=["exchanges"],
                           parameters=[OpenApiParameter("venue", OpenApiTypes.STR, OpenApiParameter.PATH,
                                                        enum=get_config().venues)]),
)
class ExchangeViewSet(viewsets.ViewSet):
    lookup_field = "venue"
    lookup_value_regex = r"[A-Za-z0-9_\-]+"
    serializer_class = ExchangeSerializer

    def _accounts_by_venue(self) -> dict[str, list[ExchangeAccount]]:
        grouped: dict[str, list[ExchangeAccount]] = defaultdict(list)
        for account in ExchangeAccount.objects.filter(owner=self.request.user).order_by("name"):
            grouped[account.venue].append(account)
        return grouped

    @extend_schema(responses=ExchangeSerializer(many=True))
    def list(self, request):
        accounts = self._accounts_by_venue()
        data = [exchange_summary(name, accounts.get(name, [])) for name in get_config().venues]
        return Response(ExchangeSerializer(data, many=True).data)

    @extend_schema(responses={200: ExchangeSerializer, 404: ERROR})
    def retrieve(self, request, venue=None):
        if venue not in get_config().venues:
            raise Http404
        data = exchange_summary(venue, self._accounts_by_venue().get(venue, []))
        return Response(ExchangeSerializer(data).data)


@extend_schema_view(
    list=extend_schema(operation_id="exchange_accounts_list", tags=["exchange-accounts"]),
    retrieve=extend_schema(operation_id="exchange_accounts_retrieve", tags=["exchange-accounts"]),
    create=extend_schema(operation_id="exchange_accounts_create", tags=["exchange-accounts"],
                         request=ExchangeAccountCreateSerializer,
                         responses={201: ExchangeAccountSerializer}),
    update=extend_schema(operation_id="exchange_accounts_update", tags=["exchange-accounts"],
                         request=ExchangeAccountUpdateSerializer, responses={200: ExchangeAccountSerializer}),
    partial_update=extend_schema(operation_id="exchange_accounts_partial_update", tags=["exchange-accounts"],
                                 request=ExchangeAccountUpdateSerializer,
                                 responses={200: ExchangeAccountSerializer}),
    destroy=extend_schema(operation_id="exchange_accounts_destroy", tags=["exchange-accounts"],
                          description="Delete an account with no open orders, no open positions and no agents.",
                          responses={204: OpenApiResponse(description="Deleted.")}),
)
class ExchangeAccountViewSet(viewsets.GenericViewSet):
    serializer_class = ExchangeAccountSerializer
    queryset = ExchangeAccount.objects.none()

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return ExchangeAccount.objects.none()
        return ExchangeAccount.objects.filter(owner=self.request.user).order_by("name", "id")

    def list(self, request):
        page = self.paginate_queryset(self.get_queryset())
        return self.get_paginated_response(ExchangeAccountSerializer(page, many=True).data)

    def retrieve(self, request, pk=None):
        return Response(ExchangeAccountSerializer(self.get_object()).data)

    def create(self, request):
        serializer = ExchangeAccountCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        try:
            account = exchange_account_create(owner=request.user, name=data["name"], venue=data["venue"],
                                              credentials=data.get("credentials") or {}, testnet=data["testnet"])
        except DjangoValidationError as exc:
            raise nested_errors(exc, under="credentials", keys=CREDENTIAL_KEYS) from None
        return Response(ExchangeAccountSerializer(account).data, status=status.HTTP_201_CREATED)

    def update(self, request, pk=None, partial=False):
        account = self.get_object()
        serializer = ExchangeAccountUpdateSerializer(data=request.data, partial=partial)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        try:
            with transaction.atomic():  # credentials and name change together or not at all
                if "credentials" in data:
                    account = exchange_account_set_credentials(account=account, credentials=data["credentials"])
                if "name" in data or "testnet" in data:
                    account = exchange_account_update(account=account, name=data.get("name"),
                                                      testnet=data.get("testnet"))
        except DjangoValidationError as exc:
            raise nested_errors(exc, under="credentials", keys=CREDENTIAL_KEYS) from None
        return Response(ExchangeAccountSerializer(account).data)

    def partial_update(self, request, pk=None):
        return self.update(request, pk=pk, partial=True)

    def destroy(self, request, pk=None):
        exchange_account_delete(account=self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(operation_id="exchange_accounts_test", tags=["exchange-accounts"], request=None,
                   responses={200: ExchangeAccountSerializer},
                   description="Check the credentials against the venue (fetches the balance); the outcome "
                               "is stored on the account as status and last_error.")
    @action(detail=True, methods=["post"])
    def test(self, request, pk=None):
        account = exchange_account_test_connection(account=self.get_object())
        return Response(ExchangeAccountSerializer(account).data)
