"""Platform-level models that belong to no trading app: API tokens."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone


class ApiToken(models.Model):
    """A revocable API token. Only a SHA-256 hash of the key is stored; the key itself is
    shown once, when the token is made. ``key_prefix`` (the key's first 8 characters)
    finds the candidate rows and lets a person tell tokens apart."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens")
    name = models.CharField(max_length=100, blank=True, default="")
    key_prefix = models.CharField(max_length=8, db_index=True)
    key_hash = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = "API token"
        indexes = [models.Index(fields=["user", "-created_at"])]
        constraints = [
            models.CheckConstraint(condition=~Q(key_hash=""), name="api_token_hash_not_empty"),
        ]

    def __str__(self) -> str:
        return f"{self.name or 'token'} {self.key_prefix}… of {self.user}"

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None
