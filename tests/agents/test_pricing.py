from __future__ import annotations

from decimal import Decimal

import pytest

from agents.pricing import DEFAULT_PATH, PricingConfigError, PricingTable, default_pricing, load_pricing


def test_the_project_table_loads_and_prices_exactly():
    table = load_pricing(DEFAULT_PATH)
    # gpt-4o-mini: 0.15 / 0.60 USD per 1M -> 1000 * 0.15e-6 + 500 * 0.60e-6
    assert table.cost("gpt-4o-mini", 1000, 500) == Decimal("0.00045")
    assert table.cost("gpt-4o", 1_000_000, 1_000_000) == Decimal("12.5")
    assert isinstance(table.cost("gpt-4o", 1, 1), Decimal)
    assert default_pricing() is default_pricing()  # loaded once


@pytest.mark.parametrize(("model", "priced_as"), [
    ("gpt-4o-2024-08-06", "gpt-4o"),
    ("gpt-4o-mini-2024-07-18", "gpt-4o-mini"),  # the longest listed prefix wins
    ("gpt-4.1-mini-2025-04-14", "gpt-4.1-mini"),
    ("openai/gpt-4o", "gpt-4o"),  # provider prefix ignored
    ("GPT-4O", "gpt-4o"),
])
def test_model_name_variants(model, priced_as):
    table = default_pricing()
    assert table.price(model) == table.price(priced_as)


def test_unknown_models_use_the_default_and_builtins_are_free():
    table = default_pricing()
    assert table.price("llama3.1:70b") == table.default
    assert table.price("gpt-4") == table.default  # "gpt-4" is not "gpt-4o": prefixes need a "-"
    assert table.cost("builtin:trend", 10_000, 10_000) == 0
    assert table.cost("", 0, 0) == 0


def test_custom_table_from_a_path(tmp_path):
    path = tmp_path / "pricing.yaml"
    path.write_text(
        "models:\n  my-model: {input: '1', output: '3'}\n"
        "default: {input: 10, output: 20}\nper_tokens: 1000\nfree_prefixes: ['local:']\n")
    table = load_pricing(path)
    assert table.cost("my-model", 1000, 1000) == Decimal("4")
    assert table.cost("other", 100, 100) == Decimal("3")  # 0.1 * 10 + 0.1 * 20
    assert table.cost("local:x", 100, 100) == 0
    assert table.cost("builtin:trend", 100, 100) == Decimal("3")  # not free in this table


@pytest.mark.parametrize("text", [
    "models: {}\n",  # no default
    "default: {input: -1, output: 1}\n",
    "default: {input: abc, output: 1}\n",
    "default: {input: 1}\n",
    "- a list\n",
    "default: {input: 1, output: 1}\nper_tokens: 0\n",
    "default: {input: 1, output: 1\n",  # not YAML
])
def test_bad_tables_are_refused(tmp_path, text):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(PricingConfigError):
        load_pricing(path)


def test_missing_file_and_negative_tokens():
    with pytest.raises(PricingConfigError):
        load_pricing("/nonexistent/pricing.yaml")
    with pytest.raises(ValueError):
        default_pricing().cost("gpt-4o", -1, 0)


def test_from_dict():
    table = PricingTable.from_dict({"default": {"input": "0.5", "output": "1.5"}})
    assert table.cost("x", 2_000_000, 0) == Decimal("1")


def test_a_bad_price_names_its_path_and_reason(tmp_path):
    path = tmp_path / "pricing.yaml"
    path.write_text("models:\n  gpt-x: {input: '1', output: cheap}\n  gpt-y: {input: '1', output: '2', cached: '0.5'}\n"
                    "default: {input: '1', output: '2'}\nper_tokens: 0\n")
    with pytest.raises(PricingConfigError) as caught:
        load_pricing(path)
    assert str(caught.value).splitlines() == [
        "per_tokens: expected a positive integer, got 0",
        "models.gpt-x.output: expected a price in USD (a non-negative number such as \"2.50\"), got 'cheap'",
        "models.gpt-y.cached: unknown key; expected one of input, output",
    ]


def test_an_unknown_top_level_key_is_an_error(tmp_path):
    path = tmp_path / "pricing.yaml"
    path.write_text("default: {input: '1', output: '2'}\nfree_prefix: ['local:']\n")
    with pytest.raises(PricingConfigError, match=r"^free_prefix: unknown key \(did you mean 'free_prefixes'\?\)"):
        load_pricing(path)


def test_prices_are_exact_decimals_whether_quoted_or_not(tmp_path):
    path = tmp_path / "pricing.yaml"
    path.write_text("models:\n  a: {input: 0.1, output: '0.2'}\ndefault: {input: 1, output: 2}\n")
    table = load_pricing(path)
    assert table.price("a").input == Decimal("0.1") and isinstance(table.price("a").input, Decimal)
    assert table.cost("a", 3, 0) == Decimal("0.0000003")  # 3 * 0.1 / 1e6, not a float's 3.0000000000000004e-07
    assert table.per_tokens == Decimal(1_000_000)  # the default when the key is absent
    assert table.free_prefixes == ("builtin:",)
