"""API tokens: obtained with a password, stored hashed, listed without the key, revocable;
session authentication for the portal's own calls; one error style for auth failures."""

import hashlib

import pytest
from django.test import override_settings
from rest_framework.test import APIClient

from alpha_platform.models import ApiToken
from tests.api.conftest import token_client

pytestmark = pytest.mark.django_db


def obtain(client, username="alice", password="pw-123456-long", **extra):
    return client.post("/api/auth/token/", {"username": username, "password": password, **extra}, format="json")


def test_token_obtained_with_password_is_stored_hashed(anon, user):
    response = obtain(anon, name="my script")
    assert response.status_code == 201, response.data
    key = response.data["key"]
    assert response.data["name"] == "my script" and response.data["key_prefix"] == key[:8]
    token = ApiToken.objects.get(pk=response.data["id"])
    assert token.user == user
    assert token.key_hash == hashlib.sha256(key.encode()).hexdigest()
    assert key not in {token.key_hash, token.key_prefix, token.name}

    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    assert client.get("/api/ping/").data == {"ok": True}
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    assert client.get("/api/ping/").status_code == 200
    token.refresh_from_db()
    assert token.last_used_at is not None


@pytest.mark.parametrize("body, field", [({"username": "alice"}, "password"), ({"password": "x"}, "username")])
def test_token_obtain_validation_errors_are_field_errors(anon, user, body, field):
    response = anon.post("/api/auth/token/", body, format="json")
    assert response.status_code == 400
    assert field in response.data and isinstance(response.data[field], list)


def test_wrong_password_is_a_message_error(anon, user):
    response = obtain(anon, password="wrong-password")
    assert response.status_code == 400
    assert set(response.data) == {"message", "extra"}
    assert "Unable to log in" in response.data["message"]
    assert not ApiToken.objects.exists()


def test_inactive_user_gets_no_token_and_loses_access(anon, user):
    client = token_client(user)
    user.is_active = False
    user.save()
    assert obtain(anon).status_code == 400
    assert client.get("/api/ping/").status_code == 401


def test_token_endpoint_is_throttled(anon, user, settings):
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK,
                               "DEFAULT_THROTTLE_RATES": {**settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"],
                                                          "auth": "3/min"}}
    codes = [obtain(anon, password="guess").status_code for _ in range(4)]
    assert codes == [400, 400, 400, 429]
    response = obtain(anon)
    assert response.status_code == 429
    assert "throttled" in response.data["message"].lower() and response.data["extra"]["wait_seconds"] >= 1
    assert "Retry-After" in response.headers


def test_tokens_are_listed_without_keys_and_revocable(api, user):
    issued = obtain(APIClient(), name="second").data
    response = api.get("/api/auth/tokens/")
    assert response.status_code == 200
    assert response.data["count"] == 2
    assert all("key" not in row and "key_hash" not in row for row in response.data["results"])
    assert issued["key"] not in response.content.decode()

    assert api.delete(f"/api/auth/tokens/{issued['id']}/").status_code == 204
    revoked = APIClient()
    revoked.credentials(HTTP_AUTHORIZATION=f"Token {issued['key']}")
    response = revoked.get("/api/ping/")
    assert response.status_code == 401
    assert response.data == {"message": "Invalid or revoked token.", "extra": {"code": "authentication_failed"}}
    assert response.headers["WWW-Authenticate"] == "Token"
    row = next(r for r in api.get("/api/auth/tokens/").data["results"] if r["id"] == issued["id"])
    assert row["active"] is False and row["revoked_at"]


def test_another_users_token_cannot_be_seen_or_revoked(api, other_api, other_user):
    theirs = ApiToken.objects.filter(user=other_user).get()
    assert api.delete(f"/api/auth/tokens/{theirs.pk}/").status_code == 404
    assert all(r["id"] != theirs.pk for r in api.get("/api/auth/tokens/").data["results"])
    theirs.refresh_from_db()
    assert theirs.revoked_at is None and other_api.get("/api/ping/").status_code == 200


@pytest.mark.parametrize("header", ["Token", "Token a b", "Token not-a-real-key", "Bearer ", "Token " + "x" * 300])
def test_bad_token_headers_are_401(header):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=header)
    response = client.get("/api/ping/")
    assert response.status_code == 401
    assert set(response.data) == {"message", "extra"}


def test_unauthenticated_is_401_in_the_error_style(anon):
    response = anon.get("/api/positions/")
    assert response.status_code == 401
    assert response.data["extra"] == {"code": "not_authenticated"}


def test_session_authentication_for_the_portal(user):
    client = APIClient(enforce_csrf_checks=True)
    client.force_login(user)
    assert client.get("/api/ping/").status_code == 200
    # Unsafe methods need the CSRF token, as any session-authenticated form does.
    response = client.post("/api/kill-switch/trip/", {"reason": "x"}, format="json")
    assert response.status_code == 403 and "CSRF" in response.data["message"]


@override_settings(REST_FRAMEWORK={
    **__import__("django.conf", fromlist=["settings"]).settings.REST_FRAMEWORK,
    "DEFAULT_THROTTLE_RATES": {"user": "2/min", "auth": "10/min", "orders": "60/min"}})
def test_requests_are_throttled_per_user(api, other_api):
    assert [api.get("/api/ping/").status_code for _ in range(3)] == [200, 200, 429]
    assert other_api.get("/api/ping/").status_code == 200  # per user, not global
