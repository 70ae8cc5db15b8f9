"""Encryption of credentials at rest: MultiFernet over CREDENTIALS_ENCRYPTION_KEYS.

The first key encrypts; every key decrypts, so keys can be rotated: put the new key
first, run ``manage.py rotate_credentials_key``, then drop the old key.
"""

from __future__ import annotations

import json
from functools import lru_cache
from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings

from alpha_platform.common.errors import CredentialsError
from alpha_platform.common.secrets import Credentials


@lru_cache(maxsize=8)
def _fernet_for(keys: tuple[str, ...]) -> MultiFernet:
    return MultiFernet([Fernet(k) for k in keys])


def fernet() -> MultiFernet:
    return _fernet_for(tuple(settings.CREDENTIALS_ENCRYPTION_KEYS))


def encrypt_json(data: dict[str, Any]) -> str:
    plain = json.dumps(data, sort_keys=True, separators=(",", ":")).encode()
    return fernet().encrypt(plain).decode()


def decrypt_credentials(token: str) -> Credentials:
    if not token:
        return Credentials({})
    try:
        plain = fernet().decrypt(token.encode())
    except InvalidToken:
        raise CredentialsError(
            "Stored credentials cannot be decrypted with the configured "
            "CREDENTIALS_ENCRYPTION_KEYS: the key they were encrypted with is missing"
        ) from None
    return Credentials(json.loads(plain))


def rotate_token(token: str) -> str:
    """Re-encrypt under the newest key (raises CredentialsError if no key fits)."""
    try:
        return fernet().rotate(token.encode()).decode()
    except InvalidToken:
        raise CredentialsError(
            "A stored secret cannot be decrypted with any configured key; "
            "add the key it was encrypted with to CREDENTIALS_ENCRYPTION_KEYS"
        ) from None


def encrypted_with_newest(token: str) -> bool:
    try:
        Fernet(settings.CREDENTIALS_ENCRYPTION_KEYS[0]).decrypt(token.encode())
        return True
    except InvalidToken:
        return False
