"""Query-parameter filters of the API's lists, with django-filter: the backend, and the few
kinds of filter the lists' FilterSets (alpha_platform/web/api/<app>/filters.py) are made of.

drf-spectacular documents every list's parameters from its FilterSet. A malformed value is
a 400 in the one error style (common.py): ``{"<parameter>": ["message"]}``, the messages
below. Filters narrow the view's queryset, which is already the user's own: a filter on
another user's id finds nothing (never a 403, never their rows).

Like common.py this module imports no app.
"""

from __future__ import annotations

from datetime import UTC, datetime, time
from typing import Any

import django_filters
from django import forms
from django.core.exceptions import ValidationError
from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime
from django_filters.rest_framework import DjangoFilterBackend
from drf_spectacular.utils import extend_schema_field

# The largest value a database integer (BigAutoField, bigint) holds: beyond it SQLite raises
# OverflowError and PostgreSQL a DataError, so a larger parameter is bad input, not a 500.
DB_INT_MAX = 2**63 - 1


class ListFilterBackend(DjangoFilterBackend):
    """DEFAULT_FILTER_BACKENDS: filters the list action only. A detail URL (and its actions:
    cancel, close) names one object, whatever the query string says."""

    def filter_queryset(self, request, queryset, view):
        if getattr(view, "action", "list") != "list":
            return queryset
        return super().filter_queryset(request, queryset, view)


# --------------------------------------------------------------------------- form fields
class _IdField(forms.IntegerField):
    default_error_messages = {
        "invalid": "A whole number is required.",
        "min_value": "Must be at least %(limit_value)s.",
        "max_value": "Must be at most %(limit_value)s.",
    }

    def to_python(self, value: Any) -> int | None:
        # Django's IntegerField takes "5.0" for 5; an id is a whole number as written.
        if value in self.empty_values:
            return None
        try:
            return int(str(value))
        except (TypeError, ValueError):
            raise ValidationError(self.error_messages["invalid"], code="invalid") from None


class _DateTimeField(forms.Field):
    """An ISO 8601 date (midnight) or date-time; naive values are UTC, not the server's zone."""

    default_error_messages = {"invalid": "An ISO 8601 date or date-time is required."}

    def to_python(self, value: Any) -> datetime | None:
        if value in self.empty_values:
            return None
        try:
            parsed = parse_datetime(value)
            if parsed is None:
                day = parse_date(value)
                parsed = datetime.combine(day, time.min) if day else None
        except (ValueError, OverflowError):
            parsed = None
        if parsed is None:
            raise ValidationError(self.error_messages["invalid"], code="invalid")
        return parsed.replace(tzinfo=UTC) if timezone.is_naive(parsed) else parsed


# --------------------------------------------------------------------------- filters
class IdFilter(django_filters.NumberFilter):
    """An object's id (1 to the database's largest integer)."""

    field_class = _IdField

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("min_value", 1)
        kwargs.setdefault("max_value", DB_INT_MAX)
        super().__init__(*args, **kwargs)
        # The schema: an integer and its bounds (drf-spectacular would guess a number from the
        # field's type, and drop the bounds), with the help text as its description.
        schema = {"type": "integer", "minimum": kwargs["min_value"], "maximum": kwargs["max_value"]}
        if kwargs.get("help_text"):
            schema["description"] = str(kwargs["help_text"])
        extend_schema_field(schema)(self)

    def get_max_validator(self):
        return None  # the field's max_value is the bound (NumberFilter would add 1e50 beside it)


class TextFilter(django_filters.CharFilter):
    """An exact text value (a symbol, a venue), at most ``max_length`` characters, taken as written."""

    def __init__(self, *args: Any, max_length: int = 32, **kwargs: Any) -> None:
        kwargs.setdefault("error_messages", {"max_length": "At most %(limit_value)d characters."})
        super().__init__(*args, max_length=max_length, strip=False, **kwargs)


class ChoiceFilter(django_filters.ChoiceFilter):
    """One of ``choices`` (values, or (value, label) pairs); anything else is a 400 listing
    them. With ``default``, an absent or empty parameter means that value."""

    def __init__(self, *args: Any, choices, default: str | None = None, **kwargs: Any) -> None:
        pairs = [c if isinstance(c, (tuple, list)) else (c, c) for c in choices]
        listed = ", ".join(str(value) for value, _ in pairs).replace("%", "%%")
        kwargs.setdefault("error_messages", {"invalid_choice": f"Choose one of: {listed}."})
        if default is not None:
            kwargs.update(empty_value=default, coerce=str)
        super().__init__(*args, choices=pairs, **kwargs)
        if default is not None:
            self.field_class = forms.TypedChoiceField


def true_false(help_text: str, **kwargs: Any) -> ChoiceFilter:
    """The values true and false, nothing else (not 1, yes or maybe), for a ``method`` filter."""
    return ChoiceFilter(choices=["true", "false"], help_text=help_text, **kwargs)


class DateTimeFilter(django_filters.IsoDateTimeFilter):
    """A moment: an ISO 8601 date or date-time (naive values are UTC)."""

    field_class = _DateTimeField
