"""The query parameters of /api/decisions/ (a django-filter FilterSet, which the schema
documents). They narrow the view's queryset, the user's own decisions."""

from __future__ import annotations

import django_filters

from agents.models import Decision
from alpha_platform.web.api.filters import ChoiceFilter, DateTimeFilter, IdFilter


class DecisionFilter(django_filters.FilterSet):
    agent = IdFilter(field_name="agent_id", help_text="Only this agent's decisions.")
    status = ChoiceFilter(choices=Decision.Status.choices, help_text="Only decisions with this outcome.")
    since = DateTimeFilter(field_name="started_at", lookup_expr="gte",
                           help_text="Only decisions started at or after this time (ISO 8601).")
    until = DateTimeFilter(field_name="started_at", lookup_expr="lt",
                           help_text="Only decisions started before this time (ISO 8601).")

    class Meta:
        model = Decision
        fields: list[str] = []
