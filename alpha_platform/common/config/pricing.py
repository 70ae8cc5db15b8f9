"""The model of config/llm_pricing.yaml: USD prices per ``per_tokens`` tokens of each model.

``load_pricing_file(path)`` reads and validates it (ConfigError naming the path and the
reason of every fault, as for exchanges.yaml); ``agents.pricing`` prices calls with it.
Prices are Decimal, from the written text ("1.25" or 1.25 alike).
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any

from pydantic import BeforeValidator, ValidationError

from alpha_platform.common.config.base import ConfigModel
from alpha_platform.common.config.report import format_path, problems_of
from alpha_platform.common.config.types import Int, Key, List, PositiveInt, Str, Table, fail, show
from alpha_platform.common.errors import ConfigError
from alpha_platform.common.money import to_decimal


def _price(value: Any) -> Decimal:
    if not isinstance(value, bool) and isinstance(value, (int, float, str)):
        price = to_decimal(str(value).strip(), invalid=None)
        if price is not None and price.is_finite() and price >= 0:
            return price
    raise fail(f"expected a price in USD (a non-negative number such as \"2.50\"), got {show(value)}")


Price = Annotated[Decimal, BeforeValidator(_price)]


class PriceModel(ConfigModel):
    input: Price  # USD per `per_tokens` prompt tokens
    output: Price  # USD per `per_tokens` completion tokens


class PricingFile(ConfigModel):
    version: Int(1) = None
    currency: Str(choices=("USD",)) = "USD"
    per_tokens: PositiveInt = 1_000_000
    models: Table(Key(), PriceModel) = {}
    default: PriceModel  # for models not listed: on the expensive side, so budgets stay safe
    free_prefixes: List(Str()) = ["builtin:"]


def validate_pricing(data: Any) -> PricingFile:
    if not isinstance(data, dict):
        raise ConfigError(f"the pricing file must be a mapping, got {show(data)}", extra={"path": ""})
    try:
        return PricingFile.model_validate(data)
    except ValidationError as exc:
        found = problems_of(exc, PricingFile)
    lines = [f"{format_path(path)}: {message}" for path, message in found]
    raise ConfigError("\n".join(lines), extra={
        "path": format_path(found[0][0]),
        "problems": [{"path": format_path(p), "message": line} for (p, _), line in zip(found, lines, strict=True)]})


def load_pricing_file(path: str | Path) -> PricingFile:
    from alpha_platform.common.config.loader import read_yaml

    return validate_pricing(read_yaml(Path(path)))
