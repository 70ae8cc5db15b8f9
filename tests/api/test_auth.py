"""API tokens: obtained with a password, stored hashed, listed without the key, revocable;
session authentication for the portal's own calls; one error style for auth failures."""

import hashlib
import threading
import time

import pytest
from django.test import override_settings
from rest_framework.test import APIClient

from alpha_platform.web.models import ApiToken
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


def test_token_endpoint_rate_ignores_a_forged_forwarded_for(anon, user, settings):
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK,
                               "DEFAULT_THROTTLE_RATES": {**settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"],
                                                          "auth": "3/min"}}
    codes = [anon.post("/api/auth/token/", {"username": f"u{n}", "password": "guess"}, format="json",
                       HTTP_X_FORWARDED_FOR=f"198.51.100.{n}").status_code for n in range(4)]
    assert codes == [400, 400, 400, 429]  # one client address, whatever the header says


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


# --------------------------------------------------------------------------- the sign-in throttle
# One throttle for the three doors (alpha_platform/web/login_throttle.py): the attacker's side.
# DRF's per-address rate on the token endpoint is raised here so that only the lockout answers.
OPEN_RATES = override_settings(REST_FRAMEWORK={
    **__import__("django.conf", fromlist=["settings"]).settings.REST_FRAMEWORK,
    "DEFAULT_THROTTLE_RATES": {"user": "100000/min", "auth": "100000/min", "orders": "100000/min"}})
PASSWORD = "pw-123456-long"


def obtain_from(username, password, address="10.0.0.1", forwarded=None):
    extra = {"REMOTE_ADDR": address}
    if forwarded:
        extra["HTTP_X_FORWARDED_FOR"] = forwarded
    return APIClient().post("/api/auth/token/", {"username": username, "password": password}, format="json", **extra)


def portal_sign_in(username, password, address="10.0.0.1"):
    from django.test import Client

    return Client().post("/login/", {"username": username, "password": password}, REMOTE_ADDR=address)


def admin_sign_in(username, password, address="10.0.0.1"):
    from django.test import Client

    return Client().post("/admin/login/", {"username": username, "password": password}, REMOTE_ADDR=address)


def assert_locked_out(response):
    assert response.status_code == 429, (response.status_code, response.data)
    assert set(response.data) == {"message", "extra"}
    assert "Too many failed sign-in attempts" in response.data["message"]
    assert response.data["extra"]["code"] == "throttled" and response.data["extra"]["wait_seconds"] >= 1
    assert 1 <= int(response.headers["Retry-After"]) <= 15 * 60


@OPEN_RATES
def test_guessing_with_a_forged_forwarded_for_per_try_is_locked_out(user):
    answers = [obtain_from("alice", f"guess-{n}", forwarded=f"198.51.100.{n}").status_code for n in range(5)]
    assert answers == [400, 400, 400, 400, 429]  # the failure that reaches the limit says so
    # Locked: the right password is refused too, whatever the forwarded header says.
    assert_locked_out(obtain_from("alice", PASSWORD, forwarded="198.51.100.77"))
    assert_locked_out(obtain_from("alice", PASSWORD))
    assert not ApiToken.objects.exists()
    # Only this username from this address: alice elsewhere, or bob here, are not locked.
    assert obtain_from("alice", PASSWORD, address="10.0.0.2").status_code == 201


@OPEN_RATES
@override_settings(TRUSTED_PROXY_COUNT=1)
def test_behind_one_proxy_the_forwarded_client_is_what_is_counted(user):
    proxy = "10.0.0.254"
    for n in range(5):  # the client forges a left-most entry; the proxy appends the real one
        obtain_from("alice", "wrong", address=proxy, forwarded=f"198.51.100.{n}, 203.0.113.7")
    assert_locked_out(obtain_from("alice", PASSWORD, address=proxy, forwarded="203.0.113.7"))
    # Another client behind the same proxy (same REMOTE_ADDR) is not locked out...
    assert obtain_from("alice", PASSWORD, address=proxy, forwarded="203.0.113.8").status_code == 201
    # ...and the forged part of the header cannot pick the counted address.
    assert_locked_out(obtain_from("alice", PASSWORD, address=proxy, forwarded="203.0.113.8, 203.0.113.7"))


@OPEN_RATES
def test_a_lockout_earned_on_the_portal_refuses_the_api_and_the_admin(staff_user):
    for _ in range(5):
        portal_sign_in("operator", "wrong")
    assert_locked_out(obtain_from("operator", "op-pw-123456"))
    response = admin_sign_in("operator", "op-pw-123456")
    assert response.status_code == 200 and b"Too many failed sign-in attempts" in response.content
    assert not ApiToken.objects.exists()


@OPEN_RATES
def test_a_lockout_earned_on_the_api_refuses_the_portal_and_the_admin(staff_user):
    for _ in range(5):
        obtain_from("operator", "wrong")
    portal = portal_sign_in("operator", "op-pw-123456")
    assert portal.status_code == 200 and b"Too many failed sign-in attempts" in portal.content
    admin = admin_sign_in("operator", "op-pw-123456")
    assert admin.status_code == 200 and b"Too many failed sign-in attempts" in admin.content


@OPEN_RATES
def test_a_lockout_earned_on_the_admin_refuses_the_api(staff_user):
    for _ in range(5):
        admin_sign_in("operator", "wrong")
    assert_locked_out(obtain_from("operator", "op-pw-123456"))


@OPEN_RATES
def test_an_address_spraying_many_usernames_is_blocked(user):
    # 50 failures from one address, one per username (the default address limit), forged
    # forwarded headers included: then even alice's right password is refused from there.
    for n in range(50):
        obtain_from(f"user{n}", "Winter2026!", forwarded=f"198.51.100.{n}")
    assert_locked_out(obtain_from("alice", PASSWORD))
    assert obtain_from("alice", PASSWORD, address="10.0.0.2").status_code == 201


@OPEN_RATES
@override_settings(LOGIN_THROTTLE_USERNAME_FAILURES=6)
def test_guessing_one_username_from_many_addresses_is_blocked(user):
    answers = [obtain_from("alice", "wrong", address=address).status_code
               for address in ("10.1.0.1", "10.1.0.2", "10.1.0.3") for _ in range(2)]
    assert answers == [400] * 5 + [429]
    assert_locked_out(obtain_from("alice", PASSWORD, address="10.1.0.4"))


@OPEN_RATES
def test_a_success_resets_the_pairs_count(user):
    for _ in range(2):
        for _ in range(4):
            assert obtain_from("alice", "wrong").status_code == 400
        assert obtain_from("alice", PASSWORD).status_code == 201
    # Counted from zero since the last success: the fifth failure from here locks, not the first.
    assert [obtain_from("alice", "wrong").status_code for _ in range(5)] == [400, 400, 400, 400, 429]
    assert_locked_out(obtain_from("alice", PASSWORD))


@OPEN_RATES
def test_the_answers_do_not_tell_whether_the_username_exists(user):
    wrong = [obtain_from(name, "wrong", address=addr) for name, addr in (("alice", "10.2.0.1"), ("nobody", "10.2.0.2"))]
    assert wrong[0].status_code == wrong[1].status_code == 400 and wrong[0].data == wrong[1].data
    for name, addr in (("alice", "10.2.0.1"), ("nobody", "10.2.0.2")):
        for _ in range(4):
            obtain_from(name, "wrong", address=addr)
    locked = [obtain_from(name, "wrong", address=addr) for name, addr in (("alice", "10.2.0.1"), ("nobody", "10.2.0.2"))]
    assert locked[0].status_code == locked[1].status_code == 429
    assert locked[0].data["message"] == locked[1].data["message"]


@OPEN_RATES
@override_settings(LOGIN_THROTTLE_LOCKOUT_SECONDS=1)
def test_the_lockout_expires_after_the_cool_off(user):
    for _ in range(5):
        obtain_from("alice", "wrong")
    assert_locked_out(obtain_from("alice", PASSWORD))
    time.sleep(1.5)  # the cool-off is a Redis expiry: the real clock, set to one second here
    assert obtain_from("alice", PASSWORD).status_code == 201


@OPEN_RATES
@pytest.mark.django_db(transaction=True)
def test_a_burst_of_parallel_guesses_gets_no_more_than_the_limit_checked(user, monkeypatch):
    """Attempts are counted before the password check: of 16 guesses sent at once, at most
    5 (the limit) reach the password check."""
    from django.contrib.auth.backends import ModelBackend
    from django.db import connection

    checked, lock = [], threading.Lock()
    real_authenticate = ModelBackend.authenticate

    def counting_authenticate(self, request, username=None, password=None, **kwargs):
        with lock:
            checked.append(password)
        return real_authenticate(self, request, username=username, password=password, **kwargs)

    monkeypatch.setattr(ModelBackend, "authenticate", counting_authenticate)
    threads, barrier, codes = 16, threading.Barrier(16), []

    def guess(n):
        try:
            barrier.wait(timeout=30)
            codes.append(obtain_from("alice", f"guess-{n}").status_code)
        finally:
            connection.close()

    workers = [threading.Thread(target=guess, args=(n,)) for n in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=60)
    assert len(codes) == threads and set(codes) <= {400, 429}, codes
    assert len(checked) <= 5, f"{len(checked)} passwords checked"
    assert_locked_out(obtain_from("alice", PASSWORD))
    assert len(checked) <= 5


@OPEN_RATES
def test_a_user_who_is_not_staff_trying_the_admin_with_the_right_password_is_not_locked_out(user):
    for _ in range(6):
        refused = admin_sign_in("alice", PASSWORD)
        assert refused.status_code == 200 and b"Too many failed sign-in attempts" not in refused.content
    assert obtain_from("alice", PASSWORD).status_code == 201
