"""The query parameters of /api/risk-events/ (a django-filter FilterSet, which the schema
documents). They narrow the view's queryset, the user's own events."""

from __future__ import annotations

import django_filters

from alpha_platform.web.api.filters import ChoiceFilter, DateTimeFilter, TextFilter, true_false
from risk.models import RiskEvent


class RiskEventFilter(django_filters.FilterSet):
    kind = ChoiceFilter(choices=RiskEvent.Kind.choices, help_text="Only this kind.")
    allowed = true_false("true: only allowed; false: only rejected.", method="filter_allowed")
    symbol = TextFilter(help_text="Only this internal symbol, e.g. BTC/USDT.")
    since = DateTimeFilter(field_name="created_at", lookup_expr="gte",
                           help_text="Only events at or after this time (ISO 8601).")

    class Meta:
        model = RiskEvent
        fields: list[str] = []

    def filter_allowed(self, queryset, name, value: str):
        return queryset.filter(allowed=value == "true")
