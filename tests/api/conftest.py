"""Clients for the API tests: each authenticates with a real API token (the header the
API documents), so every test also exercises token authentication."""

import pytest
from rest_framework.test import APIClient


def token_client(user) -> APIClient:
    from alpha_platform.web.api.auth import api_token_create

    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {api_token_create(user=user, name='tests').key}")
    return client


@pytest.fixture
def api(user):
    """Alice's client."""
    return token_client(user)


@pytest.fixture
def other_api(other_user):
    """Bob's client."""
    return token_client(other_user)


@pytest.fixture
def anon():
    return APIClient()
