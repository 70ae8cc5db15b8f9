"""Loading the Fernet keys that encrypt credentials at rest.

Django-free: settings.py turns a ``CredentialsError`` into Django's ImproperlyConfigured.
"""

from __future__ import annotations

import os
from pathlib import Path

from cryptography.fernet import Fernet

from alpha_platform.common.errors import CredentialsError


def load_encryption_keys(raw: str, *, generate_into: Path | None) -> list[str]:
    """Return the configured keys, newest first.

    With nothing configured and ``generate_into`` given (the embedded run), a key is
    generated once into that file and reused on every later start.
    """
    if not raw.strip() and generate_into is not None:
        if not generate_into.exists():
            generate_into.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(generate_into, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as fh:
                fh.write(Fernet.generate_key().decode() + "\n")
        raw = generate_into.read_text().strip()
    keys = [k.strip() for k in raw.split(",") if k.strip()]
    if not keys:
        raise CredentialsError(
            "CREDENTIALS_ENCRYPTION_KEYS is not set: give one or more Fernet keys, newest first"
        )
    for position, key in enumerate(keys, start=1):
        try:
            Fernet(key)
        except (ValueError, TypeError):
            # Never echo the key itself: only its position in the list.
            raise CredentialsError(
                f"CREDENTIALS_ENCRYPTION_KEYS: key #{position} is not a valid Fernet key "
                "(32 url-safe base64-encoded bytes; make one with "
                "`python -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())'`)"
            ) from None
    return keys
