"""LLM pricing: the cost in USD of a model call from its token counts (Django-free).

The table lives in ``config/llm_pricing.yaml`` (see the comments there for the matching
rules); ``load_pricing(path)`` reads any such file, ``default_pricing()`` the project's,
once per process.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

DEFAULT_PATH = Path(__file__).resolve().parent.parent / "config" / "llm_pricing.yaml"
COST_PLACES = Decimal("0.000000001")  # 1e-9 USD: well inside Decision.cost_usd's 12 places


class PricingConfigError(ValueError):
    """The pricing file is missing or malformed."""


@dataclass(frozen=True)
class ModelPrice:
    input: Decimal  # USD per `per_tokens` prompt tokens
    output: Decimal  # USD per `per_tokens` completion tokens


def _price(value: Any, where: str) -> ModelPrice:
    if not isinstance(value, Mapping) or set(value) != {"input", "output"}:
        raise PricingConfigError(f"{where}: give exactly `input` and `output` prices")
    try:
        price = ModelPrice(Decimal(str(value["input"])), Decimal(str(value["output"])))
    except (InvalidOperation, ValueError):
        raise PricingConfigError(f"{where}: prices must be numbers") from None
    if not (price.input.is_finite() and price.output.is_finite()) or price.input < 0 or price.output < 0:
        raise PricingConfigError(f"{where}: prices must be finite and not negative")
    return price


class PricingTable:
    def __init__(self, models: Mapping[str, ModelPrice], default: ModelPrice, *,
                 free_prefixes: tuple[str, ...] = ("builtin:",), per_tokens: int = 1_000_000) -> None:
        self.models = {k.strip().lower(): v for k, v in models.items()}
        self.default = default
        self.free_prefixes = tuple(p.lower() for p in free_prefixes)
        self.per_tokens = Decimal(per_tokens)

    @classmethod
    def from_dict(cls, data: Any) -> PricingTable:
        if not isinstance(data, Mapping):
            raise PricingConfigError("the pricing file must be a mapping")
        models = data.get("models") or {}
        if not isinstance(models, Mapping):
            raise PricingConfigError("`models` must be a mapping of model name to prices")
        if "default" not in data:
            raise PricingConfigError("a `default` price is required for unknown models")
        per_tokens = data.get("per_tokens", 1_000_000)
        if not isinstance(per_tokens, int) or isinstance(per_tokens, bool) or per_tokens <= 0:
            raise PricingConfigError("`per_tokens` must be a positive integer")
        free = data.get("free_prefixes", ["builtin:"]) or []
        if not isinstance(free, list) or not all(isinstance(p, str) and p for p in free):
            raise PricingConfigError("`free_prefixes` must be a list of strings")
        return cls({str(k): _price(v, f"models.{k}") for k, v in models.items()},
                   _price(data["default"], "default"), free_prefixes=tuple(free), per_tokens=per_tokens)

    def price(self, model: str) -> ModelPrice:
        name = (model or "").strip().lower()
        if self.free_prefixes and name.startswith(self.free_prefixes):
            return ModelPrice(Decimal(0), Decimal(0))
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
        return total.quantize(COST_PLACES) if total else Decimal("0")


def load_pricing(path: str | Path = DEFAULT_PATH) -> PricingTable:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise PricingConfigError(f"cannot read {path}: {exc.strerror or exc}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise PricingConfigError(f"{path} is not valid YAML: {exc}") from None
    return PricingTable.from_dict(data)


@lru_cache(maxsize=1)
def default_pricing() -> PricingTable:
    return load_pricing(DEFAULT_PATH)
