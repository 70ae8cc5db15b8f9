import pytest


@pytest.fixture
def venues(monkeypatch):
    """The fake Binance USD-M and Hyperliquid servers that ccxt and the SDK really talk to,
    with the configured venue URLs pointed at them; pooled traders bound to them are shut
    down with them."""
    from alpha_platform.common.config import clear_config_cache
    from exchanges.adapters.ccxt import CcxtTrader
    from exchanges.services import trader_pool
    from tests.fakes.binance_server import FakeBinanceFutures
    from tests.fakes.hyperliquid_server import HyperliquidFakeServer

    with FakeBinanceFutures(api_key="A1" * 32, api_secret="S2" * 32) as binance, HyperliquidFakeServer() as hl:
        for name in ("BINANCE_FAPI_URL", "BINANCE_FAPI_TESTNET_URL"):
            monkeypatch.setenv(name, binance.url)
        for name in ("HYPERLIQUID_API_URL", "HYPERLIQUID_TESTNET_API_URL"):
            monkeypatch.setenv(name, hl.url)
        clear_config_cache()
        CcxtTrader.clear_market_cache()
        yield binance, hl
        trader_pool().close_all()
    clear_config_cache()
    CcxtTrader.clear_market_cache()
