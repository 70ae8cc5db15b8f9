"""Shared pieces of the REST API: the error handler (one error style), pagination,
per-user throttles, the money field, query values and schema helpers.

This module imports no app (exchanges, risk, trading, agents): every app's views under
alpha_platform/web/api/<app>/ import it, and it stays a leaf of the web layer. Nor does it import
rest_framework.views: settings name its throttles, which APIView reads when defined.

Error style, everywhere:
  * field validation errors: DRF's ``{"field": ["message", ...], ...}`` (HTTP 400);
  * everything else: ``{"message": "...", "extra": {...}}`` with the fitting status.
"""

from __future__ import annotations

import logging
from decimal import Decimal
from typing import Any

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404
from drf_spectacular.utils import OpenApiResponse
from rest_framework import exceptions, serializers, status
from rest_framework.pagination import PageNumberPagination
from rest_framework.response import Response
from rest_framework.serializers import as_serializer_error
from rest_framework.settings import api_settings
from rest_framework.throttling import AnonRateThrottle, UserRateThrottle

from alpha_platform.common.errors import ApplicationError, PlatformUnavailable
from alpha_platform.common.money import DECIMAL_PLACES, MAX_DIGITS, decimal_input, decimal_str

logger = logging.getLogger(__name__)

NON_FIELD_KEYS = {api_settings.NON_FIELD_ERRORS_KEY, "__all__"}


# --------------------------------------------------------------------------- errors
def error_body(message: str, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"message": message, "extra": extra or {}}


def _flatten_messages(detail: Any) -> list[str]:
    if isinstance(detail, dict):
        return [m for value in detail.values() for m in _flatten_messages(value)]
    if isinstance(detail, list):
        return [m for value in detail for m in _flatten_messages(value)]
    return [str(detail)]


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """DRF's EXCEPTION_HANDLER: maps the platform's and Django's exceptions onto the one
    error style. Unknown exceptions return None (a 500, logged by Django)."""
    if isinstance(exc, DjangoValidationError):
        exc = exceptions.ValidationError(as_serializer_error(exc))
    elif isinstance(exc, ApplicationError):
        from rest_framework.views import set_rollback

        set_rollback()
        if isinstance(exc, PlatformUnavailable):
            retry = exc.extra.get("retry_after_seconds")
            return Response(error_body(exc.message, {"code": "service_unavailable", **exc.extra}),
                            status=status.HTTP_503_SERVICE_UNAVAILABLE,
                            headers={"Retry-After": str(int(retry))} if retry else {})
        return Response(error_body(exc.message, exc.extra), status=status.HTTP_400_BAD_REQUEST)
    elif isinstance(exc, Http404):
        exc = exceptions.NotFound("Not found.")
    elif isinstance(exc, (DjangoPermissionDenied, PermissionError)):
        exc = exceptions.PermissionDenied(str(exc) or None)

    if not isinstance(exc, exceptions.APIException):
        return None
    from rest_framework.views import set_rollback  # not at import: see the module docstring

    set_rollback()

    headers: dict[str, str] = {}
    if getattr(exc, "auth_header", None):
        headers["WWW-Authenticate"] = exc.auth_header
    if getattr(exc, "wait", None) is not None:
        headers["Retry-After"] = str(int(exc.wait))

    if isinstance(exc, exceptions.ValidationError):
        detail = exc.detail
        if isinstance(detail, dict):
            detail = {api_settings.NON_FIELD_ERRORS_KEY if k == "__all__" else k: v for k, v in detail.items()}
            if not set(detail) <= NON_FIELD_KEYS:
                return Response(detail, status=exc.status_code, headers=headers)
        messages = _flatten_messages(detail)
        return Response(error_body(" ".join(messages) or "Invalid request."),
                        status=exc.status_code, headers=headers)

    extra: dict[str, Any] = {}
    codes = exc.get_codes()
    if isinstance(codes, str):
        extra["code"] = codes
    if isinstance(exc, exceptions.Throttled) and exc.wait is not None:
        extra["wait_seconds"] = int(exc.wait)
    message = " ".join(_flatten_messages(exc.detail))
    return Response(error_body(message, extra), status=exc.status_code, headers=headers)


class ServiceUnavailable(exceptions.APIException):
    status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    default_detail = "A service the platform depends on is unavailable; try again shortly."
    default_code = "service_unavailable"


def nested_errors(exc: DjangoValidationError, *, under: str, keys: set[str]) -> Exception:
    """A service's errors with those for ``keys`` moved under one field (credential fields
    under ``credentials``), so field errors follow the request's shape. Use as
    ``raise nested_errors(exc, ...) from None``."""
    if not hasattr(exc, "error_dict"):
        return exc
    kept: dict[str, Any] = {}
    nested: dict[str, list[str]] = {}
    for key, errors in exc.message_dict.items():
        (nested if key in keys else kept)[key] = errors
    if not nested:
        return exc
    if under in kept:  # errors about the field as a whole sit beside its parts' errors
        nested[api_settings.NON_FIELD_ERRORS_KEY] = kept.pop(under)
    kept = {api_settings.NON_FIELD_ERRORS_KEY if k == "__all__" else k: v for k, v in kept.items()}
    return exceptions.ValidationError({**kept, under: nested})


# --------------------------------------------------------------------------- pagination
class Pagination(PageNumberPagination):
    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 200


# --------------------------------------------------------------------------- throttles
class _RatesFromSettings:
    """DRF's throttles copy the rates once, at import; reading them at use lets tests
    (and settings overrides) change them."""

    def get_rate(self) -> str | None:
        return api_settings.DEFAULT_THROTTLE_RATES.get(self.scope)


class UserThrottle(_RatesFromSettings, UserRateThrottle):
    """Every authenticated request, per user (anonymous ones per address)."""

    scope = "user"


class AuthThrottle(_RatesFromSettings, AnonRateThrottle):
    """Obtaining a token, per client address: slows password guessing."""

    scope = "auth"

    def get_cache_key(self, request, view):
        return self.cache_format % {"scope": self.scope, "ident": self.get_ident(request)}


class OrderThrottle(_RatesFromSettings, UserRateThrottle):
    """Placing orders, per user (on top of the risk profile's own order-rate rules)."""

    scope = "orders"


# --------------------------------------------------------------------------- fields
class MoneyField(serializers.DecimalField):
    """Money, prices and quantities: a JSON string, never a float, without trailing
    zeros ("0.01", not "0.010000000000").

    As input, a value must be one the platform may store (alpha_platform.common.money,
    INPUT_*: at most 1,000,000,000 in size, 12 decimal places, 15 significant digits), or
    the field answers 400 naming the limit. As output, any stored value is written out,
    whatever its size (a row from before the bound must not make a read fail)."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("max_digits", MAX_DIGITS)
        kwargs.setdefault("decimal_places", DECIMAL_PLACES)
        kwargs["coerce_to_string"] = True
        super().__init__(**kwargs)

    def validate_precision(self, value: Decimal) -> Decimal:
        # Called by DecimalField.to_internal_value once the text parsed as a finite number;
        # the platform's bound is stricter than max_digits/decimal_places.
        try:
            return decimal_input(value, label=self.field_name or "This value")
        except ValueError as exc:
            raise serializers.ValidationError(str(exc), code="decimal_bounds") from None

    def to_representation(self, value: Any) -> str | None:
        if value is None:
            return None
        value = Decimal(str(value)) if not isinstance(value, Decimal) else value
        return decimal_str(value, self.decimal_places)


class ApiModelSerializer(serializers.ModelSerializer):
    """ModelSerializer whose decimal fields are MoneyFields."""

    def build_standard_field(self, field_name, model_field):
        from django.db import models

        field_class, field_kwargs = super().build_standard_field(field_name, model_field)
        if isinstance(model_field, models.DecimalField):
            field_kwargs.pop("coerce_to_string", None)
            field_class = MoneyField
        return field_class, field_kwargs


# --------------------------------------------------------------------------- query parameters
# The lists' parameters are django-filter FilterSets (filters.py, <app>/filters.py). Another
# view's parameters are a serializer, documented by ``extend_schema(parameters=[Query])``.
def query_values(serializer_class: type[serializers.Serializer], request) -> dict[str, Any]:
    """The request's query parameters as validated by ``serializer_class``; a bad value is a
    400 naming the parameter. An empty value (``?days=``) counts as absent: the default."""
    serializer = serializer_class(data={k: v for k, v in request.query_params.items() if v != ""})
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data


# --------------------------------------------------------------------------- schema
class ErrorSerializer(serializers.Serializer):
    """Every error that is not a field validation error."""

    message = serializers.CharField()
    extra = serializers.DictField(child=serializers.JSONField(), help_text="Structured details; may be empty.")


ERROR = OpenApiResponse(ErrorSerializer, description="An error: message and structured extra.")


def _error_component() -> dict[str, Any]:
    return {
        "type": "object",
        "description": "An error that is not a field validation error.",
        "properties": {
            "message": {"type": "string"},
            "extra": {"type": "object", "additionalProperties": {}},
        },
        "required": ["message", "extra"],
    }


def _field_errors_component() -> dict[str, Any]:
    return {
        "type": "object",
        "description": 'Field validation errors: {"field": ["message", ...]}, nested for nested fields.',
        "additionalProperties": {},
    }


_STANDARD = {
    "401": "Not authenticated: give `Authorization: Token <key>` (or a session).",
    "403": "Not allowed.",
    "404": "Not found (or not yours).",
    "429": "Throttled: too many requests; see Retry-After.",
}


def postprocess_errors(result: dict[str, Any], generator, request, public) -> dict[str, Any]:
    """A POSTPROCESSING_HOOK: every operation documents the shared error responses, so
    clients (and the schema-driven fuzz run) know every status the API can return."""
    schemas = result.setdefault("components", {}).setdefault("schemas", {})
    schemas.setdefault("Error", _error_component())
    schemas.setdefault("FieldErrors", _field_errors_component())
    error_ref = {"$ref": "#/components/schemas/Error"}
    bad_request = {"anyOf": [{"$ref": "#/components/schemas/FieldErrors"}, error_ref]}
    for methods in result.get("paths", {}).values():
        for operation in methods.values():
            if not isinstance(operation, dict) or "responses" not in operation:
                continue
            responses = operation["responses"]
            for code, description in _STANDARD.items():
                responses.setdefault(code, {"description": description,
                                            "content": {"application/json": {"schema": error_ref}}})
            responses.setdefault("400", {"description": "Invalid request: field errors or an error message.",
                                         "content": {"application/json": {"schema": bad_request}}})
            for code in ("400", "401", "403", "404", "409", "422", "429", "503"):
                body = responses.get(code)
                if body and "content" not in body:
                    body["content"] = {"application/json": {"schema": error_ref}}
    return result
