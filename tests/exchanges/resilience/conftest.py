"""Fixtures of the resilience tests: the fake clock and a Redis key prefix cleaned up after."""

from __future__ import annotations

import uuid

import pytest

from tests.exchanges.resilience.support import FakeClock, redis_client


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def redis_prefix():
    prefix = f"test:{uuid.uuid4().hex}:"
    yield prefix
    client = redis_client()
    keys = list(client.scan_iter(match=prefix + "*"))
    if keys:
        client.delete(*keys)
    client.close()
