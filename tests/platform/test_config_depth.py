"""The paper venue's depth and symbol filters in config/exchanges.yaml (issue 13): a
malformed entry is an error that names its path."""

from __future__ import annotations

import copy

import pytest
from django.core.management import CommandError, call_command

from tests.platform.test_config import PAPER, _write, load_broken, real_doc, setin  # noqa: F401


@pytest.mark.parametrize(("dotted", "value", "where"), [
    (f"{PAPER}.parameters.depth.BTC/USDT", {"levels": 0, "spacing_bps": 1, "quantity": 2}, "levels"),
    (f"{PAPER}.parameters.depth.BTC/USDT", {"levels": 3, "spacing_bps": 1}, "quantity"),
    (f"{PAPER}.parameters.depth.BTC/USDT", {"levels": 3, "spacing_bps": 1, "quantity": 1, "notional": 9}, "quantity"),
    (f"{PAPER}.parameters.default_depth", {"levels": 3, "spacing": 1, "quantity": 2}, "spacing"),
    (f"{PAPER}.parameters.symbol_filters.BTC/USDT", {"tick_size": 0, "step_size": 0.001}, "tick_size"),
    (f"{PAPER}.parameters.symbol_filters.BTC/USDT", {"tick": 0.1}, "tick"),
])
def test_a_malformed_depth_or_filter_entry_names_its_path(tmp_path, real_doc, dotted, value, where):  # noqa: F811
    error = load_broken(tmp_path, real_doc, setin(dotted, value), environment="production")
    assert f"{dotted}.{where}" in str(error)


def test_depth_and_filters_apply_only_to_a_paper_venue(tmp_path, real_doc):  # noqa: F811
    error = load_broken(tmp_path, real_doc, setin("exchanges.binance_futures.parameters.depth", {}),
                        environment="production")
    assert "exchanges.binance_futures.parameters.depth: applies only to a paper venue" in str(error)


def test_check_config_names_the_path_of_a_bad_depth(tmp_path, real_doc):  # noqa: F811
    doc = copy.deepcopy(real_doc)
    setin(f"{PAPER}.parameters.depth.ETH/USDT", {"levels": 2, "spacing_bps": -1, "quantity": 3})(doc)
    path = _write(tmp_path, doc)
    with pytest.raises(CommandError) as caught:
        call_command("check_config", file=str(path), env="production")
    assert f"{PAPER}.parameters.depth.ETH/USDT.spacing_bps" in str(caught.value)
