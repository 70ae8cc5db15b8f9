"""API tokens: made from a username and password, stored hashed, revocable.

A key is ``secrets.token_urlsafe(32)`` (43 characters), shown once. The database keeps
its first 8 characters (to find the row and to show) and its SHA-256. Clients send
``Authorization: Token <key>`` (``Bearer <key>`` is accepted too).

No views here: DRF's APIView reads DEFAULT_AUTHENTICATION_CLASSES when it is defined,
so a module named there must not import rest_framework.views (the token endpoints live
in alpha_platform.web.api.urls).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.utils import timezone
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import serializers
from rest_framework.authentication import BaseAuthentication, get_authorization_header
from rest_framework.exceptions import AuthenticationFailed, Throttled, ValidationError

from alpha_platform.web import login_throttle

PREFIX_LENGTH = 8
KEYWORDS = (b"token", b"bearer")
# last_used_at is written at most this often per token, so reads stay reads.
LAST_USED_RESOLUTION = timedelta(seconds=60)


def _hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


# --------------------------------------------------------------------------- services
@dataclass(frozen=True)
class IssuedToken:
    token: Any  # ApiToken
    key: str  # the only time the key exists outside the client


@transaction.atomic
def api_token_create(*, user: AbstractBaseUser, name: str = "") -> IssuedToken:
    from alpha_platform.web.models import ApiToken

    key = secrets.token_urlsafe(32)
    token = ApiToken(user=user, name=(name or "").strip()[:100], key_prefix=key[:PREFIX_LENGTH],
                     key_hash=_hash(key))
    token.full_clean()
    token.save()
    return IssuedToken(token=token, key=key)


def api_token_obtain(*, request, username: str, password: str, name: str = "") -> IssuedToken:
    """A new token for the username and password given, through ``authenticate(request=...)``
    so the sign-in throttle (alpha_platform.web.login_throttle) counts and refuses here exactly as
    on the portal and the admin. Locked out: Throttled (429, Retry-After), even with the right
    password; wrong: one message, whether or not the username exists."""
    from django.contrib.auth import authenticate

    user = authenticate(request, username=username, password=password)
    if user is None or not user.is_active:
        wait = login_throttle.seconds_locked(request, username)
        if wait:
            raise Throttled(wait=wait, detail=login_throttle.message(wait))
        raise ValidationError("Unable to log in with the username and password given.")
    login_throttle.login_succeeded(request, username)
    return api_token_create(user=user, name=name or "api")


def api_token_revoke(*, token) -> None:
    if token.revoked_at is None:
        token.revoked_at = timezone.now()
        token.save(update_fields=["revoked_at"])


def api_token_authenticate(key: str):
    """The active token for ``key`` and its user, or None."""
    from alpha_platform.web.models import ApiToken

    if not key or len(key) > 200:
        return None
    digest = _hash(key)
    # No ordering: the model's default one would be compiled (and sorted) on every request,
    # and the hash picks the one row anyway.
    candidates = ApiToken.objects.filter(key_prefix=key[:PREFIX_LENGTH], revoked_at__isnull=True)
    for token in candidates.select_related("user").order_by():
        if hmac.compare_digest(token.key_hash, digest):
            now = timezone.now()
            if token.last_used_at is None or now - token.last_used_at > LAST_USED_RESOLUTION:
                ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
                token.last_used_at = now
            return token
    return None


# --------------------------------------------------------------------------- authentication
class ApiTokenAuthentication(BaseAuthentication):
    """``Authorization: Token <key>`` or ``Authorization: Bearer <key>``."""

    def authenticate(self, request):
        parts = get_authorization_header(request).split()
        if not parts or parts[0].lower() not in KEYWORDS:
            return None
        if len(parts) != 2:
            raise AuthenticationFailed("Invalid token header: give `Token <key>`.")
        try:
            key = parts[1].decode("ascii")
        except UnicodeDecodeError:
            raise AuthenticationFailed("Invalid token.") from None
        token = api_token_authenticate(key)
        if token is None or not token.user.is_active:
            raise AuthenticationFailed("Invalid or revoked token.")
        return token.user, token

    def authenticate_header(self, request) -> str:
        return "Token"


class ApiTokenScheme(OpenApiAuthenticationExtension):
    target_class = "alpha_platform.web.api.auth.ApiTokenAuthentication"
    name = "tokenAuth"

    def get_security_definition(self, auto_schema):
        return {"type": "apiKey", "in": "header", "name": "Authorization",
                "description": "`Token <key>` (or `Bearer <key>`); get a key from POST /api/auth/token/."}


# --------------------------------------------------------------------------- serializers
class TokenObtainSerializer(serializers.Serializer):
    username = serializers.CharField(max_length=150, write_only=True)
    password = serializers.CharField(max_length=128, write_only=True, trim_whitespace=False,
                                     style={"input_type": "password"})
    name = serializers.CharField(max_length=100, required=False, allow_blank=True, default="",
                                 help_text="A label to tell your tokens apart, e.g. the script using it.")


class TokenIssuedSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    key = serializers.CharField(help_text="The full key. Shown once: store it now.")
    key_prefix = serializers.CharField()
    created_at = serializers.DateTimeField()


class TokenSerializer(serializers.Serializer):
    id = serializers.IntegerField(read_only=True)
    name = serializers.CharField(read_only=True)
    key_prefix = serializers.CharField(read_only=True, help_text="The key's first 8 characters (never the key).")
    created_at = serializers.DateTimeField(read_only=True)
    last_used_at = serializers.DateTimeField(read_only=True, allow_null=True)
    revoked_at = serializers.DateTimeField(read_only=True, allow_null=True)
    active = serializers.BooleanField(read_only=True, source="is_active")
