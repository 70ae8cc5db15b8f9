"""The base of every configuration model."""

from __future__ import annotations

from typing import ClassVar

from pydantic import BaseModel, ConfigDict


class ConfigModel(BaseModel):
    """Frozen, and unknown keys are errors (``extra="forbid"``).

    A field whose default is ``None`` is optional: absent, it reads as ``None`` (or the
    default given); written as an explicit ``null`` in the file it is an error, as it always
    was (defaults are not validated, values are).
    ``HINTS`` maps a key that is not allowed to the reason given instead of "unknown key".
    """

    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=False,
                              arbitrary_types_allowed=False)
    HINTS: ClassVar[dict[str, str]] = {}
