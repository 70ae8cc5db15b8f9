"""A scripted stand-in for a venue call (a send, a look-up, a read)."""

from __future__ import annotations

from typing import Any


class Script:
    """A callable that raises or returns the scripted outcomes in turn (the last one for
    ever after), counting calls."""

    def __init__(self, *outcomes: Any) -> None:
        self.outcomes = list(outcomes)
        self.calls = 0

    def __call__(self) -> Any:
        self.calls += 1
        outcome = self.outcomes.pop(0) if len(self.outcomes) > 1 else self.outcomes[0]
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome
