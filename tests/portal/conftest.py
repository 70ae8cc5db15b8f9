import pytest
from django.test import Client

from tests.factories import make_account, make_agent


@pytest.fixture
def client_a(user):
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def account_a(user):
    return make_account(user, name="Paper A")


@pytest.fixture
def agent_a(user, account_a):
    return make_agent(user, account_a, name="Trend A")


@pytest.fixture
def account_b(other_user):
    return make_account(other_user, name="Paper B")


@pytest.fixture
def agent_b(other_user, account_b):
    return make_agent(other_user, account_b, name="Trend B")
