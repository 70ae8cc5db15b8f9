"""Django validators over the platform's Django-free rules (alpha_platform.common.money)."""

from __future__ import annotations

from typing import Any

from django import forms
from django.core.exceptions import ValidationError
from django.utils.deconstruct import deconstructible

from alpha_platform.common.money import decimal_input


@deconstructible
class DecimalInputValidator:
    """A Decimal the platform may store (money.INPUT_*), else a ValidationError naming the
    limit (code ``decimal_bounds``)."""

    code = "decimal_bounds"

    def __call__(self, value: Any) -> None:
        if value is None or value == "":
            return
        try:
            decimal_input(value, label="This value")
        except ValueError as exc:
            raise ValidationError(str(exc), code=self.code) from None

    def __eq__(self, other: object) -> bool:
        return isinstance(other, DecimalInputValidator)

    def __hash__(self) -> int:
        return hash(DecimalInputValidator)


def bound_decimal_fields(form: forms.BaseForm) -> None:
    """Give every DecimalField of ``form`` the DecimalInputValidator (once)."""
    for field in form.fields.values():
        if isinstance(field, forms.DecimalField) and not any(
                isinstance(v, DecimalInputValidator) for v in field.validators):
            field.validators.append(DecimalInputValidator())


class BoundedDecimalsMixin:
    """For forms: every Decimal input is bounded like the API's (a form error naming the
    limit, nothing stored)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        bound_decimal_fields(self)  # type: ignore[arg-type]
