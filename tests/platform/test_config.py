"""config/exchanges.yaml: the loader (interpolation, environment overrides) and the schema.

Every broken variant starts from the real file, is mutated and written to tmp_path, then
loaded the way the platform loads it; the error must name the offending path in the file.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import yaml
from django.conf import settings
from django.core.management import CommandError, call_command

from alpha_platform.common.config import ADAPTER_NAMES, AUTH_FIELDS, deep_merge, load_config, validate
from alpha_platform.common.errors import ConfigError

REAL = Path(settings.BASE_DIR) / "config" / "exchanges.yaml"
ENVIRONMENTS = ("development", "testing", "production")


@pytest.fixture(scope="module")
def real_doc() -> dict[str, Any]:
    return yaml.safe_load(REAL.read_text())


def _write(tmp_path: Path, doc: dict[str, Any]) -> Path:
    path = tmp_path / "exchanges.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def _node(doc: dict[str, Any], dotted: str) -> tuple[dict[str, Any], str]:
    *parents, last = dotted.split(".")
    node = doc
    for part in parents:
        node = node[part]
    return node, last


def setin(dotted: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def mutate(doc: dict[str, Any]) -> None:
        node, last = _node(doc, dotted)
        node[last] = value
    return mutate


def delin(dotted: str) -> Callable[[dict[str, Any]], None]:
    def mutate(doc: dict[str, Any]) -> None:
        node, last = _node(doc, dotted)
        del node[last]
    return mutate


def both(*mutations: Callable[[dict[str, Any]], None]) -> Callable[[dict[str, Any]], None]:
    def mutate(doc: dict[str, Any]) -> None:
        for m in mutations:
            m(doc)
    return mutate


def load_broken(tmp_path: Path, real_doc: dict[str, Any], mutate: Callable[[dict[str, Any]], None],
                *, environment: str = "testing", environ: dict[str, str] | None = None) -> ConfigError:
    doc = copy.deepcopy(real_doc)
    mutate(doc)
    with pytest.raises(ConfigError) as caught:
        load_config(_write(tmp_path, doc), environment=environment, environ=environ or {})
    return caught.value


BF = "exchanges.binance_futures"
HL = "exchanges.hyperliquid"
PAPER = "exchanges.paper"
RISK = "global_settings.risk_management"
DEV = "environments.development"
PROD = "environments.production"

# (mutation, the path the error must name, a fragment of the message)
BROKEN = {
    # wrong types
    "rate limit not a number": (setin(f"{BF}.rate_limits.orders.per_minute", "fast"),
                                f"{BF}.rate_limits.orders.per_minute", "expected a positive integer, got 'fast'"),
    "bool expected": (setin(f"{PAPER}.enabled", "yes"), f"{PAPER}.enabled", "expected true or false"),
    "bool is not an integer": (setin(f"{PAPER}.priority", True), f"{PAPER}.priority",
                               "expected a positive integer, got True"),
    "mapping expected": (setin(f"{BF}.trading.leverage", 5), f"{BF}.trading.leverage",
                         "expected a mapping, got 5"),
    "null section": (setin(f"{HL}.rate_limits", None), f"{HL}.rate_limits", "got nothing (null)"),
    "list expected": (setin(f"{PAPER}.trading.order_management.time_in_force", "GTC"),
                      f"{PAPER}.trading.order_management.time_in_force", "expected a list"),
    "version must be quoted": (setin("version", 1.0), "version", "quoted"),
    "non-string key": (setin(f"{PAPER}.trading.leverage.per_symbol", {5: 3}),
                       f"{PAPER}.trading.leverage.per_symbol.5", "keys must be strings"),
    "empty display name": (setin(f"{PAPER}.display_name", " "), f"{PAPER}.display_name", "non-empty"),
    "rest url": (setin(f"{HL}.network.rest_api.production", "api.hyperliquid.xyz"),
                 f"{HL}.network.rest_api.production", "http(s)://"),
    # unknown and missing keys
    "unknown key, close": (setin(f"{BF}.trading.levrage", {"default": 1}), f"{BF}.trading.levrage",
                           "unknown key (did you mean 'leverage'?)"),
    "unknown key, far": (setin(f"{PAPER}.colour", "blue"), f"{PAPER}.colour", "unknown key; expected one of"),
    "unknown top-level key": (setin("exchange", {}), "exchange", "did you mean 'exchanges'?"),
    "unknown risk key": (setin(f"{RISK}.max_leverag", 3), f"{RISK}.max_leverag", "did you mean 'max_leverage'?"),
    "credentials in the file": (setin(f"{BF}.auth.api_key", "abc"), f"{BF}.auth.api_key",
                                "credentials are not configured in this file"),
    "missing key": (delin(f"{PAPER}.display_name"), f"{PAPER}.display_name", "required key is missing"),
    "missing section": (delin("global_settings"), "global_settings", "required key is missing"),
    "no venues": (setin("exchanges", {}), "exchanges", "at least 1 entry"),
    # ranges
    "fraction above 1": (setin(f"{RISK}.max_total_exposure_percent", 1.5), f"{RISK}.max_total_exposure_percent",
                         "expected a number between 0 and 1, got 1.5"),
    "fraction below 0": (setin(f"{HL}.trading.position_sizing.max_position_percent", -0.1),
                         f"{HL}.trading.position_sizing.max_position_percent", "between 0 and 1"),
    "maker fee below -1": (setin(f"{HL}.trading.fees.maker", -2), f"{HL}.trading.fees.maker",
                           "expected a number between -1 and 1, got -2"),
    "taker fee above 1": (setin(f"{BF}.trading.fees.taker", 1.5), f"{BF}.trading.fees.taker", "between -1 and 1"),
    "zero rate limit": (setin(f"{BF}.rate_limits.requests.per_second", 0), f"{BF}.rate_limits.requests.per_second",
                        "expected a positive integer, got 0"),
    "burst above per_minute": (setin(f"{BF}.rate_limits.orders.burst", 500), f"{BF}.rate_limits.orders.burst",
                               "500 exceeds per_minute (100)"),
    "per_second above per_minute": (setin(f"{HL}.rate_limits.requests.per_second", 700),
                                    f"{HL}.rate_limits.requests.per_second", "exceeds per_minute (600)"),
    "cooldown zero": (setin(f"{PAPER}.circuit_breaker.cooldown_seconds", 0),
                      f"{PAPER}.circuit_breaker.cooldown_seconds", "between 1 and 300, got 0"),
    "cooldown too long": (setin(f"{BF}.circuit_breaker.cooldown_seconds", 301),
                          f"{BF}.circuit_breaker.cooldown_seconds", "between 1 and 300"),
    "breaker threshold zero": (setin(f"{HL}.circuit_breaker.failure_threshold", 0),
                               f"{HL}.circuit_breaker.failure_threshold", "between 1 and 1000"),
    "leverage above venue cap": (setin(f"{BF}.trading.leverage.maximum", 200), f"{BF}.trading.leverage.maximum",
                                 "between 1 and 125"),
    "default leverage above maximum": (setin(f"{PAPER}.trading.leverage.default", 30),
                                       f"{PAPER}.trading.leverage.default", "30 exceeds maximum (20)"),
    "per_symbol leverage zero": (setin(f"{BF}.trading.leverage.per_symbol.BTCUSDT", 0),
                                 f"{BF}.trading.leverage.per_symbol.BTCUSDT", "between 1 and 125"),
    "negative paper balance": (setin(f"{PAPER}.parameters.starting_balance", -5),
                               f"{PAPER}.parameters.starting_balance", "expected a positive number"),
    # choices
    "time in force typo": (setin(f"{BF}.trading.order_management.time_in_force", ["GTC", "GTCC"]),
                           f"{BF}.trading.order_management.time_in_force[1]", "did you mean 'GTC'?"),
    "default tif not offered": (setin(f"{PAPER}.trading.order_management.default_tif", "GTD"),
                                f"{PAPER}.trading.order_management.default_tif", "is not one of time_in_force"),
    "margin mode": (setin(f"{HL}.trading.margin_mode", "crosss"), f"{HL}.trading.margin_mode",
                    "did you mean 'cross'?"),
    "market data source": (setin(f"{PAPER}.parameters.market_data.source", "live"),
                           f"{PAPER}.parameters.market_data.source", "expected one of simulated, ccxt, got 'live'"),
    "ccxt market data without id": (both(setin(f"{PAPER}.parameters.market_data.source", "ccxt"),
                                         delin(f"{PAPER}.parameters.market_data.ccxt_id")),
                                    f"{PAPER}.parameters.market_data.ccxt_id", "required when source is 'ccxt'"),
    "order types key": (setin("global_settings.order_types.markt", ["MARKET"]), "global_settings.order_types.markt",
                        "did you mean 'market'?"),
    # adapters
    "exchange_type with no adapter": (setin(f"{PAPER}.exchange_type", "kraken"), f"{PAPER}.exchange_type",
                                      "got 'kraken'"),
    "custom without adapter": (delin(f"{HL}.adapter"), f"{HL}.adapter", "required when exchange_type is 'custom'"),
    "unknown adapter": (setin(f"{HL}.adapter", "hyperliquidd"), f"{HL}.adapter", "did you mean 'hyperliquid'?"),
    "ccxt venue without ccxt_id": (delin(f"{BF}.ccxt_id"), f"{BF}.ccxt_id", "required for a ccxt venue"),
    "paper-only parameter elsewhere": (setin(f"{BF}.parameters.starting_balance", 1000),
                                       f"{BF}.parameters.starting_balance", "applies only to a paper venue"),
    # venues and mappings
    "duplicate priority": (setin(f"{PAPER}.priority", 1), f"{PAPER}.priority",
                           "1 is already used by exchanges.binance_futures"),
    "missing mapping table": (setin(f"{PAPER}.symbol_mapping", "internal_to_papr"), f"{PAPER}.symbol_mapping",
                              "no table 'internal_to_papr' in global_settings.symbol_mapping "
                              "(did you mean 'internal_to_paper'?)"),
    "mapping key not BASE/QUOTE": (setin("global_settings.symbol_mapping.internal_to_binance.btc-usdt", "BTCUSDT"),
                                   "global_settings.symbol_mapping.internal_to_binance.btc-usdt",
                                   "key 'btc-usdt' is not a symbol in BASE/QUOTE form"),
    "mapping not one-to-one": (setin("global_settings.symbol_mapping.internal_to_hyperliquid.ETH/USDT", "BTC"),
                               "global_settings.symbol_mapping.internal_to_hyperliquid.ETH/USDT",
                               "'BTC' is already mapped from 'BTC/USDT'"),
    "allowed symbol not BASE/QUOTE": (setin(f"{RISK}.allowed_symbols", ["BTC/USDT", "ETHUSDT"]),
                                      f"{RISK}.allowed_symbols[1]",
                                      "BASE/QUOTE form such as 'BTC/USDT', got 'ETHUSDT'"),
    "allowed symbol lower case": (setin(f"{RISK}.allowed_symbols", ["btc/usdt"]), f"{RISK}.allowed_symbols[0]",
                                  "BASE/QUOTE"),
    "allowed symbol twice": (setin(f"{RISK}.allowed_symbols", ["BTC/USDT", "BTC/USDT"]),
                             f"{RISK}.allowed_symbols[1]", "listed twice"),
    "market data symbol": (setin(f"{PAPER}.parameters.market_data.symbols.BTCUSDT", {"start_price": 1,
                                                                                      "annual_volatility": 0.5}),
                           f"{PAPER}.parameters.market_data.symbols.BTCUSDT", "BASE/QUOTE"),
    "auth fields do not fit auth_type": (setin(f"{HL}.auth.fields", ["api_key", "api_secret"]), f"{HL}.auth.fields",
                                         "auth_type 'wallet_key' takes the fields [private_key, account_address]"),
    "capability not a flag": (setin(f"{BF}.capabilities", {"book_ticker": "no"}), f"{BF}.capabilities.book_ticker",
                              "expected true or false"),
    "ccxt options on paper": (setin(f"{PAPER}.ccxt_options", {"verbose": True}), f"{PAPER}.ccxt_options",
                              "applies only to a ccxt venue"),
    "paper epoch": (setin(f"{PAPER}.parameters.market_data.epoch", "last monday"),
                    f"{PAPER}.parameters.market_data.epoch", "ISO date"),
    "bad venue name": (lambda d: d["exchanges"].__setitem__("Binance Spot", d["exchanges"].pop("paper")),
                       "exchanges['Binance Spot']", "is not a venue name"),
    # environments
    "unknown environment": (setin("environments.staging", {}), "environments.staging",
                            "unknown environment (did you mean 'testing'?)"),
    "override invents a key": (setin(f"{DEV}.exchanges.binance_futures.trading.leverage.maximun", 3),
                               f"{DEV}.exchanges.binance_futures.trading.leverage.maximun",
                               "unknown key (did you mean 'maximum'?)"),
    "override invents a venue": (setin(f"{DEV}.exchanges.binance_future", {"enabled": False}),
                                 f"{DEV}.exchanges.binance_future",
                                 "not a venue defined under exchanges (did you mean 'binance_futures'?)"),
    "override value out of range": (setin(f"{PROD}.global_settings.risk_management.max_total_exposure_percent", 3),
                                    f"{PROD}.global_settings.risk_management.max_total_exposure_percent",
                                    "between 0 and 1, got 3"),
    "override may not change version": (setin(f"{PROD}.version", "2.0"), f"{PROD}.version", "unknown key"),
    "override breaks a cross-field rule": (setin(f"{PROD}.exchanges", {"paper": {"rate_limits": {"orders": {
        "burst": 5000}}}}), f"{PROD}.exchanges.paper.rate_limits.orders.burst", "5000 exceeds per_minute (1000)"),
    "override breaks a rule of the base": (
        setin(f"{PROD}.exchanges", {"paper": {"rate_limits": {"orders": {"per_minute": 10}}}}),
        f"{PAPER}.rate_limits.orders.per_second", "exceeds per_minute (10) (with environments.production applied)"),
    "testnet without a testnet URL": (delin(f"{BF}.network.rest_api.testnet"), f"{BF}.network.rest_api.testnet",
                                      "required because auth.testnet is true (with environments.development applied)"),
}


@pytest.mark.parametrize("environment", ENVIRONMENTS)
def test_the_real_file_is_valid(environment):
    config = load_config(REAL, environment=environment, environ={})
    assert config.venues == ["binance_futures", "hyperliquid", "paper"]
    assert "environments" not in config.raw


@pytest.mark.parametrize("case", list(BROKEN), ids=list(BROKEN))
def test_a_broken_file_names_the_path(tmp_path, real_doc, case):
    mutate, path, fragment = BROKEN[case]
    error = load_broken(tmp_path, real_doc, mutate)
    first_line = error.message.splitlines()[0]
    assert first_line.startswith(f"{path}: "), error.message
    assert error.extra["path"] == path
    assert fragment in first_line, error.message


def test_the_exact_message_of_a_bad_rate_limit(tmp_path, real_doc):
    error = load_broken(tmp_path, real_doc, setin(f"{BF}.rate_limits.orders.per_minute", "fast"))
    assert error.message == f"{BF}.rate_limits.orders.per_minute: expected a positive integer, got 'fast'"


def test_every_problem_is_listed(tmp_path, real_doc):
    error = load_broken(tmp_path, real_doc, both(setin(f"{PAPER}.priority", "first"),
                                                 setin(f"{HL}.trading.fees.taker", 2)))
    paths = [p["path"] for p in error.extra["problems"]]
    assert paths == [f"{HL}.trading.fees.taker", f"{PAPER}.priority"]
    assert error.message.splitlines()[1] == "(1 more problem(s))"
    assert error.message.splitlines()[2].startswith(f"{PAPER}.priority: ")


def test_a_broken_override_fails_in_every_environment(tmp_path, real_doc):
    """The whole file is checked whichever ALPHA_ENV loads it: production's mistake fails CI."""
    error = load_broken(tmp_path, real_doc, setin(f"{PROD}.global_settings.risk_management.max_leverage", 0),
                        environment="development")
    assert error.extra["path"] == f"{PROD}.global_settings.risk_management.max_leverage"


def test_validate_of_a_merged_document_says_which_environment(real_doc):
    from alpha_platform.common.config import _interpolate

    doc = _interpolate(copy.deepcopy(real_doc), {}, "")
    merged = deep_merge({k: v for k, v in doc.items() if k != "environments"},
                       {"exchanges": {"paper": {"trading": {"leverage": {"maximum": 0}}}}})
    with pytest.raises(ConfigError) as caught:
        validate(merged, merged_for="production")
    assert caught.value.message.startswith(f"{PAPER}.trading.leverage.maximum: ")
    assert caught.value.message.endswith("(with environments.production applied)")
    assert caught.value.extra["environment"] == "production"


def test_optional_adapter_settings_are_accepted(tmp_path, real_doc):
    doc = copy.deepcopy(real_doc)
    doc["exchanges"]["binance_futures"].update(
        capabilities={"book_ticker": False}, markets_ttl_seconds=600, ccxt_options={"options": {"x": 1}})
    doc["exchanges"]["paper"]["parameters"]["market_data"]["epoch"] = "2025-11-18T00:00:00+00:00"
    config = load_config(_write(tmp_path, doc), environment="production", environ={})
    assert config.venue("binance_futures").capabilities == {"book_ticker": False}
    assert config.venue("binance_futures").markets_ttl_seconds == 600.0
    assert config.venue_block("binance_futures")["ccxt_options"] == {"options": {"x": 1}}


def test_yaml_dates_and_strings_are_both_accepted_in_metadata(tmp_path, real_doc):
    doc = copy.deepcopy(real_doc)
    (tmp_path / "a.yaml").write_text(yaml.safe_dump(doc).replace("created_at: '2025-11-18'",
                                                                 "created_at: 2025-11-18"))
    load_config(tmp_path / "a.yaml", environment="testing", environ={})
    error = load_broken(tmp_path, real_doc, setin("metadata.created_at", "yesterday"))
    assert error.extra["path"] == "metadata.created_at"


# --------------------------------------------------------------------------- the loader
def test_a_missing_variable_names_its_path(tmp_path, real_doc):
    error = load_broken(tmp_path, real_doc, setin(f"{BF}.network.rest_api.production", "${ALPHA_TEST_FAPI_URL}"))
    assert error.message == f"{BF}.network.rest_api.production: environment variable ALPHA_TEST_FAPI_URL is not set"
    assert error.extra == {"path": f"{BF}.network.rest_api.production", "variable": "ALPHA_TEST_FAPI_URL"}


def test_a_missing_variable_in_a_list_names_the_item(tmp_path, real_doc):
    error = load_broken(tmp_path, real_doc, setin(f"{RISK}.allowed_symbols", ["BTC/USDT", "${ALPHA_TEST_SYMBOL}"]))
    assert error.extra["path"] == f"{RISK}.allowed_symbols[1]"


def test_interpolation_uses_the_environment_then_the_default(real_doc):
    urls = lambda c: c.venue("hyperliquid").network.rest_api  # noqa: E731
    default = load_config(REAL, environment="testing", environ={})
    assert urls(default).production == "https://api.hyperliquid.xyz"
    given = load_config(REAL, environment="testing",
                        environ={"HYPERLIQUID_API_URL": "http://127.0.0.1:9999", "BINANCE_FAPI_URL": "http://x"})
    assert urls(given).production == "http://127.0.0.1:9999"
    assert urls(given).testnet == "https://api.hyperliquid-testnet.xyz"
    assert given.venue("binance_futures").network.rest_api.production == "http://x"
    # the adapters' mapping carries the same interpolated value
    assert given.venue_block("binance_futures")["network"]["rest_api"]["production"] == "http://x"


def test_an_interpolated_value_is_validated_too():
    with pytest.raises(ConfigError) as caught:
        load_config(REAL, environment="testing", environ={"BINANCE_FAPI_URL": "fapi.binance.com"})
    error = caught.value
    assert error.extra["path"] == f"{BF}.network.rest_api.production"
    assert "got 'fapi.binance.com'" in error.message


def test_environment_overrides_are_merged():
    production = load_config(REAL, environment="production", environ={})
    development = load_config(REAL, environment="development", environ={})
    testing = load_config(REAL, environment="testing", environ={})

    assert production.risk_defaults.max_total_exposure_percent == Decimal("0.3")
    assert development.risk_defaults.max_total_exposure_percent == Decimal("0.5")
    # deep merge: the sibling keys of an overridden value stay
    assert production.risk_defaults.max_exchange_exposure_percent == Decimal("0.3")
    assert production.risk_defaults.allowed_symbols == ["BTC/USDT", "ETH/USDT", "SOL/USDT"]

    leverage = development.venue("binance_futures").trading.leverage
    assert leverage.model_dump() == {"default": 1, "maximum": 5, "per_symbol": {"BTCUSDT": 10, "ETHUSDT": 15}}
    assert development.venue_block("binance_futures")["trading"]["leverage"] == leverage.model_dump()
    assert production.venue("binance_futures").trading.leverage.maximum == 20
    assert development.venue("binance_futures").auth.testnet is True
    assert production.venue("binance_futures").auth.testnet is False
    assert testing.venue("binance_futures").network.rest_api.timeout == 5000
    assert testing.venue("binance_futures").network.rest_api.retries == 3


def test_platform_config_helpers():
    config = load_config(REAL, environment="testing", environ={})
    assert config.symbol_map("hyperliquid")["BTC/USDT"] == "BTC"
    assert str(config.fee("hyperliquid", "maker")) == "-0.00005"
    with pytest.raises(ConfigError):
        config.venue("kraken")


@pytest.mark.parametrize("adapter", ADAPTER_NAMES)
def test_every_adapter_the_file_may_name_builds_a_trader_class(tmp_path, real_doc, adapter):
    """A venue the schema accepts must have an adapter: validate, then look its class up."""
    from exchanges.adapters.base import BaseTrader
    from exchanges.adapters.registry import adapter_class

    doc = copy.deepcopy(real_doc)
    doc["exchanges"]["hyperliquid"]["adapter"] = adapter
    if adapter == "ccxt":
        doc["exchanges"]["hyperliquid"]["ccxt_id"] = "binanceusdm"
    else:
        del doc["exchanges"]["hyperliquid"]["parameters"]["slippage_tolerance"]
    if adapter == "paper":
        doc["exchanges"]["hyperliquid"]["parameters"]["starting_balance"] = 1000
    config = load_config(_write(tmp_path, doc), environment="testing", environ={})
    assert config.venue("hyperliquid").adapter_name == adapter
    assert issubclass(adapter_class(config.venue_block("hyperliquid")), BaseTrader)


@pytest.mark.parametrize("auth_type", list(AUTH_FIELDS))
def test_the_credentials_a_venue_asks_for_are_the_ones_checked(auth_type):
    """Each auth_type the file may declare: its fields are exactly what credential checks read."""
    from exchanges.credentials import SHAPES

    assert set(SHAPES.get(auth_type, {})) == set(AUTH_FIELDS[auth_type])


# --------------------------------------------------------------------------- typed accessors
def test_money_and_fractions_read_as_decimals_and_exact():
    config = load_config(REAL, environment="testing", environ={})
    fee = config.fee("binance_futures", "maker")
    assert isinstance(fee, Decimal) and fee == Decimal("0.0002")  # not 0.0002 as a float
    assert config.venue("paper").trading.position_sizing.min_notional == Decimal("5.0")
    assert config.venue("paper").parameters.starting_balance == Decimal("10000")
    risk = config.risk_defaults
    assert risk.max_position_notional_usd == Decimal("10000")
    assert isinstance(risk.emergency_stop_loss_percent, Decimal)
    assert risk.max_open_positions == 5 and isinstance(risk.max_open_positions, int)


def test_absent_optional_keys_read_as_their_defaults(tmp_path, real_doc):
    doc = copy.deepcopy(real_doc)
    paper = doc["exchanges"]["paper"]
    for key in ("enabled", "capabilities", "circuit_breaker", "parameters"):
        paper.pop(key)
    for key in ("max_leverage", "allowed_symbols", "monthly_llm_budget_usd"):
        doc["global_settings"]["risk_management"].pop(key)
    doc["global_settings"].pop("order_types")
    config = load_config(_write(tmp_path, doc), environment="testing", environ={})
    venue = config.venue("paper")
    assert venue.enabled is True and "paper" in config.venues
    assert venue.capabilities == {} and config.capabilities("paper") == {}
    assert (venue.circuit_breaker.failure_threshold, venue.circuit_breaker.cooldown_seconds) == (5, 60.0)
    assert venue.parameters.hedge_mode is False and venue.parameters.market_data is None
    assert venue.network is None
    assert config.order_types == {}
    risk = config.risk_defaults
    assert risk.max_leverage is None and risk.allowed_symbols is None
    assert set(risk.given()) == set(real_doc["global_settings"]["risk_management"]) - {
        "max_leverage", "allowed_symbols", "monthly_llm_budget_usd"}


def test_a_disabled_venue_is_not_offered(tmp_path, real_doc):
    doc = copy.deepcopy(real_doc)
    doc["exchanges"]["hyperliquid"]["enabled"] = False
    config = load_config(_write(tmp_path, doc), environment="testing", environ={})
    assert config.venues == ["binance_futures", "paper"]
    assert config.venue("hyperliquid").display_name == "Hyperliquid"  # still readable by name


def test_every_fault_of_a_broken_file_is_named(tmp_path, real_doc):
    """Faults of different kinds in different places: each one, with its path and reason."""
    error = load_broken(tmp_path, real_doc, both(
        setin(f"{BF}.capabilities.foo", "yes"),
        setin(f"{BF}.trading.fees.maker", "cheap"),
        delin(f"{HL}.display_name"),
        setin(f"{HL}.rate_limits.orders.burst", 500),
        setin(f"{PAPER}.colour", "blue"),
        setin(f"{RISK}.max_total_exposure_percent", 2),
    ))
    lines = {p["path"]: p["message"] for p in error.extra["problems"]}
    assert lines == {
        f"{RISK}.max_total_exposure_percent":
            f"{RISK}.max_total_exposure_percent: expected a number between 0 and 1, got 2",
        f"{BF}.trading.fees.maker": f"{BF}.trading.fees.maker: expected a number between -1 and 1, got 'cheap'",
        f"{BF}.capabilities.foo": f"{BF}.capabilities.foo: expected true or false, got 'yes'",
        f"{HL}.display_name": f"{HL}.display_name: required key is missing",
        f"{HL}.rate_limits.orders.burst": f"{HL}.rate_limits.orders.burst: 500 exceeds per_minute (50)",
        f"{PAPER}.colour": f"{PAPER}.colour: unknown key; expected one of enabled, exchange_type, adapter, "
                           "ccxt_id, display_name, priority, symbol_mapping, auth, network, trading, parameters, "
                           "rate_limits, circuit_breaker, capabilities, markets_ttl_seconds, ccxt_options",
    }
    assert error.message.splitlines()[1] == "(5 more problem(s))"


# --------------------------------------------------------------------------- check_config
@pytest.mark.parametrize("environment", ENVIRONMENTS)
def test_check_config_accepts_the_real_file(environment, capsys):
    call_command("check_config", file=str(REAL), env=environment)
    out = capsys.readouterr().out
    assert f"exchanges.yaml is valid for ALPHA_ENV={environment}" in out
    assert "binance_futures, hyperliquid, paper" in out


def test_check_config_defaults_to_the_configured_file_and_env(capsys):
    call_command("check_config")
    assert f"ALPHA_ENV={settings.ALPHA_ENV}" in capsys.readouterr().out


def test_check_config_names_the_path_of_a_problem(tmp_path, real_doc):
    doc = copy.deepcopy(real_doc)
    setin(f"{BF}.rate_limits.orders.burst", 500)(doc)
    path = _write(tmp_path, doc)
    with pytest.raises(CommandError) as caught:
        call_command("check_config", file=str(path), env="production")
    assert str(caught.value) == f"{path}: {BF}.rate_limits.orders.burst: 500 exceeds per_minute (100)"


def test_check_config_names_every_fault(tmp_path, real_doc):
    doc = copy.deepcopy(real_doc)
    both(setin(f"{BF}.capabilities.foo", 1), setin(f"{PAPER}.trading.leverage.levrage", 2),
         setin(f"{PROD}.exchanges", {"hyperliquid": {"priority": 0}}))(doc)
    path = _write(tmp_path, doc)
    with pytest.raises(CommandError) as caught:
        call_command("check_config", file=str(path), env="testing")
    assert str(caught.value).splitlines() == [
        f"{path}: {BF}.capabilities.foo: expected true or false, got 1",
        "(1 more problem(s))",
        f"{PAPER}.trading.leverage.levrage: unknown key; expected one of default, maximum, per_symbol",
    ]
    # once the base is right, production's override is checked in its merged result
    doc = copy.deepcopy(real_doc)
    setin(f"{PROD}.exchanges", {"hyperliquid": {"priority": 0}})(doc)
    with pytest.raises(CommandError) as caught:
        call_command("check_config", file=str(_write(tmp_path, doc)), env="testing")
    assert str(caught.value).endswith(f"{PROD}.exchanges.hyperliquid.priority: expected a positive integer, got 0")


def test_check_config_reports_an_unreadable_file(tmp_path):
    with pytest.raises(CommandError, match="cannot read"):
        call_command("check_config", file=str(tmp_path / "missing.yaml"), env="testing")
