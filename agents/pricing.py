"""LLM pricing: the cost in USD of a model call from its token counts (Django-free).

The table lives in ``config/llm_pricing.yaml`` (see the comments there for the matching
rules); ``load_pricing(path)`` reads any such file, ``default_pricing()`` the project's,
once per process.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from functools import lru_cache
from pathlib import Path
from typing import Any

from alpha_platform.common.config.pricing import PricingFile, load_pricing_file, validate_pricing
from alpha_platform.common.errors import ConfigError
from alpha_platform.common.money import ZERO

DEFAULT_PATH = Path(__file__).resolve().parent.parent / "config" / "llm_pricing.yaml"
COST_PLACES = Decimal("0.000000001")  # 1e-9 USD: well inside Decision.cost_usd's 12 places


class PricingConfigError(ValueError):
    """The pricing file is missing or malformed (the message names the path and the reason)."""


@dataclass(frozen=True)
class ModelPrice:
    input: Decimal  # USD per `per_tokens` prompt tokens
    output: Decimal  # USD per `per_tokens` completion tokens


class PricingTable:
    def __init__(self, models: Mapping[str, ModelPrice], default: ModelPrice, *,
                 free_prefixes: tuple[str, ...] = ("builtin:",), per_tokens: int = 1_000_000) -> None:
        self.models = {k.strip().lower(): v for k, v in models.items()}
        self.default = default
        self.free_prefixes = tuple(p.lower() for p in free_prefixes)
        self.per_tokens = Decimal(per_tokens)

    @classmethod
    def from_dict(cls, data: Any) -> PricingTable:
        try:
            return cls.from_file(validate_pricing(data))
        except ConfigError as exc:
            raise PricingConfigError(exc.message) from None

    @classmethod
    def from_file(cls, file: PricingFile) -> PricingTable:
        return cls({name: ModelPrice(p.input, p.output) for name, p in file.models.items()},
                   ModelPrice(file.default.input, file.default.output),
                   free_prefixes=tuple(file.free_prefixes), per_tokens=file.per_tokens)

    def price(self, model: str) -> ModelPrice:
        name = (model or "").strip().lower()
        if self.free_prefixes and name.startswith(self.free_prefixes):
            return ModelPrice(ZERO, ZERO)
        for candidate in dict.fromkeys((name, name.rsplit("/", 1)[-1])):
            if candidate in self.models:
                return self.models[candidate]
            matches = [k for k in self.models if candidate.startswith(k + "-")]
            if matches:
                return self.models[max(matches, key=len)]
        return self.default

    def cost(self, model: str, prompt_tokens: int, completion_tokens: int) -> Decimal:
        if prompt_tokens < 0 or completion_tokens < 0:
            raise ValueError("token counts must not be negative")
        price = self.price(model)
        total = (price.input * prompt_tokens + price.output * completion_tokens) / self.per_tokens
        return total.quantize(COST_PLACES) if total else ZERO


def load_pricing(path: str | Path = DEFAULT_PATH) -> PricingTable:
    try:
        return PricingTable.from_file(load_pricing_file(path))
    except ConfigError as exc:
        raise PricingConfigError(exc.message) from None


@lru_cache(maxsize=1)
def default_pricing() -> PricingTable:
    return load_pricing(DEFAULT_PATH)
