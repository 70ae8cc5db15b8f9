"""The query parameters of trading's endpoints, which the schema documents: the lists'
(/api/positions/, /api/orders/) as django-filter FilterSets, which narrow the view's
queryset (the user's own rows), and the charts' ``days`` as serializers (common.query_values)."""

from __future__ import annotations

import django_filters
from rest_framework import serializers

from alpha_platform.web.api.filters import ChoiceFilter, DateTimeFilter, IdFilter, TextFilter, true_false
from trading.models import Order, Position

POSITION_STATUSES = ["open", "closed", "liquidated", "all"]


# --------------------------------------------------------------------------- lists

class PositionFilter(django_filters.FilterSet):
    status = ChoiceFilter(choices=POSITION_STATUSES, default="open", method="filter_status",
                          help_text="open (default), closed, liquidated or all.")
    venue = TextFilter(field_name="account__venue", help_text="Only positions on this venue.")
    account = IdFilter(field_name="account_id", help_text="Only positions of this exchange account.")
    symbol = TextFilter(help_text="Only this internal symbol, e.g. BTC/USDT.")

    class Meta:
        model = Position
        fields: list[str] = []

    def filter_status(self, queryset, name, value: str):
        """Open positions by account and symbol (as the portal shows them); the others newest first."""
        if value == "open":
            return queryset.filter(status=Position.Status.OPEN).order_by("account__name", "symbol")
        if value != "all":
            queryset = queryset.filter(status=value)
        return queryset.order_by("-opened_at", "-id")


class OrderFilter(django_filters.FilterSet):
    status = ChoiceFilter(choices=Order.Status.choices, help_text="Only orders in this status.")
    open = true_false("true: only open orders (pending, new, partially filled, unknown); false: the others.",
                      method="filter_open")
    account = IdFilter(field_name="account_id", help_text="Only orders of this exchange account.")
    venue = TextFilter(field_name="account__venue", help_text="Only orders on this venue.")
    symbol = TextFilter(help_text="Only this internal symbol, e.g. BTC/USDT.")
    source = ChoiceFilter(choices=Order.Source.choices, help_text="Only orders from this source.")
    since = DateTimeFilter(field_name="created_at", lookup_expr="gte",
                           help_text="Only orders created at or after this time (ISO 8601).")

    class Meta:
        model = Order
        fields: list[str] = []

    def filter_open(self, queryset, name, value: str):
        if value == "true":
            return queryset.filter(status__in=Order.OPEN_STATUSES)
        return queryset.exclude(status__in=Order.OPEN_STATUSES)


# --------------------------------------------------------------------------- charts
def _days(default: int, maximum: int, help_text: str) -> serializers.IntegerField:
    return serializers.IntegerField(
        min_value=1, max_value=maximum, default=default, help_text=help_text,
        error_messages={"invalid": "A whole number is required.", "min_value": "Must be at least {min_value}.",
                        "max_value": "Must be at most {max_value}."})


class EquityQuery(serializers.Serializer):
    days = _days(7, 90, "How far back, 1 to 90 days (default 7).")


class PnlQuery(serializers.Serializer):
    days = _days(30, 365, "Days of daily PnL, 1 to 365 (default 30).")
