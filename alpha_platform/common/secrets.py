"""Values that must never be shown back: a wrapper whose repr and str are masked.

Django-free, so exchange adapters and the decision graph can take it too.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

MASK = "********"


class Secret:
    """A secret string. ``reveal()`` is the one explicit way to read it."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        object.__setattr__(self, "_value", value)

    def reveal(self) -> str:
        return self._value

    def __setattr__(self, name: str, value: Any) -> None:  # immutable
        raise AttributeError("Secret is immutable")

    def __repr__(self) -> str:
        return f"Secret('{MASK}')"

    __str__ = lambda self: MASK  # noqa: E731

    def __format__(self, spec: str) -> str:
        return MASK

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(("Secret", self._value))

    def __bool__(self) -> bool:
        return bool(self._value)

    def __reduce__(self):  # pickling would write the plaintext somewhere
        raise TypeError("Secret values cannot be pickled")


class Credentials(Mapping[str, Secret]):
    """Decrypted credentials: a read-only mapping of field name to ``Secret``."""

    __slots__ = ("_items",)

    def __init__(self, items: Mapping[str, Any]) -> None:
        self._items = {
            k: v if isinstance(v, Secret) else Secret(str(v)) for k, v in items.items()
        }

    def __getitem__(self, key: str) -> Secret:
        return self._items[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def reveal(self, key: str, default: str = "") -> str:
        value = self._items.get(key)
        return value.reveal() if value is not None else default

    def reveal_all(self) -> dict[str, str]:
        return {k: v.reveal() for k, v in self._items.items()}

    def __repr__(self) -> str:
        inner = ", ".join(f"{k}={MASK}" for k in self._items)
        return f"Credentials({inner})"

    __str__ = __repr__

    def __reduce__(self):
        raise TypeError("Credentials cannot be pickled")
