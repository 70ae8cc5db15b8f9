import pytest

from tests.factories import UserFactory


@pytest.fixture
def user(db):
    return UserFactory(username="alice")


@pytest.fixture
def other_user(db):
    return UserFactory(username="bob")


@pytest.fixture
def staff_user(db):
    from django.contrib.auth import get_user_model

    return get_user_model().objects.create_superuser("operator", "op@example.invalid", "op-pw-123456")


@pytest.fixture(autouse=True)
def _clean_shared_state(request):
    """Redis holds breaker, rate-limit, lock and cache state keyed by row ids, which the
    test database reuses: start every test from an empty Redis and a fresh runtime."""
    import os

    import redis

    redis.Redis.from_url(os.environ["REDIS_URL"]).flushdb()
    if "django_db_setup" in request.fixturenames or any(m.name == "django_db" for m in request.node.iter_markers()):
        from exchanges.services import reset_adapter_runtime

        reset_adapter_runtime()
    yield


@pytest.fixture
def market(db):
    """Fixed paper-venue prices (BTC 50,000, ETH 3,000, SOL 100) for every trader the
    services build in this process."""
    from exchanges.services import adapter_runtime
    from tests.fakes.markets import FixedMarket

    fixed = FixedMarket({"BTC/USDT": "50000", "ETH/USDT": "3000", "SOL/USDT": "100"})
    runtime = adapter_runtime()
    runtime.extra["market"] = fixed
    yield fixed
    runtime.extra.pop("market", None)


@pytest.fixture
def llm(settings):
    """A fake OpenAI-compatible server that the real openai client talks to, set as the
    platform's model server (``OPENAI_BASE_URL``, which the outbound check allows as the
    operator's own), with no retries and a short timeout."""
    from tests.fakes.openai_server import USER_KEY, FakeOpenAIServer

    with FakeOpenAIServer(api_key=USER_KEY) as server:
        settings.OPENAI_BASE_URL = server.url + "/v1"
        settings.OPENAI_API_KEY = USER_KEY
        settings.LLM_MAX_RETRIES = 0
        settings.LLM_TIMEOUT_SECONDS = 5
        yield server


@pytest.fixture
def binance(monkeypatch):
    """The fake Binance USD-M server (tests/fakes/binance_server/) that ccxt really talks
    to, with the configured venue URLs pointed at it; accounts use its ``api_key`` and
    ``api_secret``."""
    from alpha_platform.common.config import clear_config_cache
    from exchanges.adapters.ccxt import CcxtTrader
    from tests.fakes.binance_server import FakeBinanceFutures

    with FakeBinanceFutures(api_key="A1" * 32, api_secret="S2" * 32) as fake:
        for name in ("BINANCE_FAPI_URL", "BINANCE_FAPI_TESTNET_URL"):
            monkeypatch.setenv(name, fake.url)
        clear_config_cache()
        CcxtTrader.clear_market_cache()
        yield fake
    clear_config_cache()
    CcxtTrader.clear_market_cache()
