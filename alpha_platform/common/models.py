from __future__ import annotations

from django.db import models
from django.utils import timezone

from alpha_platform.common.money import DECIMAL_PLACES, MAX_DIGITS


def decimal_field(**kwargs) -> models.DecimalField:
    """Money, prices and quantities: one precision everywhere."""
    kwargs.setdefault("max_digits", MAX_DIGITS)
    kwargs.setdefault("decimal_places", DECIMAL_PLACES)
    return models.DecimalField(**kwargs)


class TimeStampedModel(models.Model):
    created_at = models.DateTimeField(default=timezone.now, db_index=True, editable=False)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        abstract = True


class EncryptedTextField(models.TextField):
    """Holds a Fernet token (ciphertext) only.

    The value is never decrypted on load: the owning model decrypts on demand, so a
    wrong key breaks only the operation that needs the secret, not every page.
    ``rotate_credentials_key`` finds every field of this type and re-encrypts it.
    """

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("blank", True)
        kwargs.setdefault("default", "")
        kwargs.setdefault("editable", False)
        super().__init__(*args, **kwargs)
