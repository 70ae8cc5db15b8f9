"""Signing in and out, sign-up behind its setting, password change, and sign-in throttling
(the throttle shared with the admin and the API: tests/api/test_auth.py)."""

import time

import pytest
from django.contrib.auth import get_user_model
from django.test import Client, override_settings
from django.urls import reverse

from alpha_platform.web import login_throttle

pytestmark = pytest.mark.django_db

PASSWORD = "pw-123456-long"  # tests/factories.UserFactory


def sign_in(client, username, password, address="10.0.0.1"):
    return client.post(reverse("portal:login"), {"username": username, "password": password},
                       REMOTE_ADDR=address)


PAGES = ["dashboard", "accounts", "risk", "agents", "agent_create", "decisions", "orders", "kill_switch",
         "password_change"]


@pytest.mark.parametrize("name", PAGES)
def test_pages_require_sign_in(client, name):
    response = client.get(reverse(f"portal:{name}"))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("portal:login") + "?next=")


def test_sign_in_and_out(client, user):
    page = client.get(reverse("portal:login"))
    assert page.status_code == 200 and b'name="username"' in page.content and b"csrfmiddlewaretoken" in page.content
    response = sign_in(client, "alice", PASSWORD)
    assert response.status_code == 302 and response["Location"] == reverse("portal:dashboard")
    assert client.get(reverse("portal:dashboard")).status_code == 200
    # Signed in: the login page goes straight to the dashboard.
    assert client.get(reverse("portal:login"))["Location"] == reverse("portal:dashboard")
    response = client.post(reverse("portal:logout"))
    assert response.status_code == 302 and response["Location"] == reverse("portal:login")
    assert client.get(reverse("portal:dashboard")).status_code == 302


def test_wrong_password_shows_the_error_on_the_form(client, user):
    response = sign_in(client, "alice", "wrong")
    assert response.status_code == 200
    assert b"Please enter a correct username and password" in response.content
    assert b'class="errorlist nonfield"' in response.content


@override_settings(LOGIN_THROTTLE_FAILURES=5, LOGIN_THROTTLE_LOCKOUT_SECONDS=900)
def test_five_failures_lock_the_username_from_that_address(client, user):
    for _ in range(4):
        assert b"Please enter a correct" in sign_in(client, "alice", "wrong").content
    fifth = sign_in(client, "alice", "wrong")
    assert b"Too many failed sign-in attempts" in fifth.content and b"15 minutes" in fifth.content
    # Locked: even the right password is refused, with the same clear message.
    locked = sign_in(client, "alice", PASSWORD)
    assert locked.status_code == 200 and b"Too many failed sign-in attempts" in locked.content
    assert "_auth_user_id" not in client.session
    # Another address is not locked out for this username, nor this address for another user.
    other = Client()
    assert sign_in(other, "alice", PASSWORD, address="10.0.0.2").status_code == 302
    get_user_model().objects.create_user("carol", password=PASSWORD)
    assert sign_in(Client(), "carol", PASSWORD).status_code == 302


@override_settings(LOGIN_THROTTLE_FAILURES=3)
def test_a_good_sign_in_clears_the_count(client, user):
    sign_in(client, "alice", "wrong")
    sign_in(client, "alice", "wrong")
    assert sign_in(client, "alice", PASSWORD).status_code == 302
    client.post(reverse("portal:logout"))
    sign_in(client, "alice", "wrong")
    sign_in(client, "alice", "wrong")
    assert sign_in(client, "alice", PASSWORD).status_code == 302


@override_settings(LOGIN_THROTTLE_FAILURES=100, LOGIN_THROTTLE_ADDRESS_FAILURES=4)
def test_many_usernames_from_one_address_lock_the_address(client, user):
    for name in ("u1", "u2", "u3", "u4"):
        sign_in(client, name, "wrong")
    response = sign_in(client, "alice", PASSWORD)
    assert b"Too many failed sign-in attempts" in response.content


def test_usernames_are_counted_stripped_and_case_folded(client, user):
    with override_settings(LOGIN_THROTTLE_FAILURES=2):
        sign_in(client, "ALICE ", "wrong")
        response = sign_in(client, " alice", "wrong")
        assert b"Too many failed sign-in attempts" in response.content
        assert b"Too many failed sign-in attempts" in sign_in(client, "alice", PASSWORD).content


def test_lockout_message_wording():
    assert "1 minute;" in login_throttle.message(30)
    assert "15 minutes" in login_throttle.message(900)


@override_settings(LOGIN_THROTTLE_FAILURES=2, LOGIN_THROTTLE_LOCKOUT_SECONDS=1)
def test_lockout_expires_after_the_cool_off(client, user):
    sign_in(client, "alice", "wrong")
    locked = sign_in(client, "alice", "wrong")
    assert b"blocked for 1 minute" in locked.content
    assert b"Too many failed" in sign_in(client, "alice", PASSWORD).content
    time.sleep(1.5)  # the cool-off is a Redis expiry: the real clock, one second here
    assert sign_in(client, "alice", PASSWORD).status_code == 302


@override_settings(LOGIN_THROTTLE_FAILURES=3)
def test_forged_forwarded_for_is_ignored_by_default(client, user):
    for n in range(3):
        client.post(reverse("portal:login"), {"username": "alice", "password": "wrong"},
                    REMOTE_ADDR="10.0.0.1", HTTP_X_FORWARDED_FOR=f"198.51.100.{n}")
    response = client.post(reverse("portal:login"), {"username": "alice", "password": PASSWORD},
                           REMOTE_ADDR="10.0.0.1", HTTP_X_FORWARDED_FOR="198.51.100.99")
    assert b"Too many failed sign-in attempts" in response.content


@override_settings(LOGIN_THROTTLE_FAILURES=3, TRUSTED_PROXY_COUNT=1)
def test_behind_one_proxy_the_forwarded_client_is_counted(user):
    proxy = "10.0.0.254"

    def via_proxy(client_address, password, forged="198.51.100.1"):
        # nginx appends the address it saw to whatever the client sent.
        return Client().post(reverse("portal:login"), {"username": "alice", "password": password},
                             REMOTE_ADDR=proxy, HTTP_X_FORWARDED_FOR=f"{forged}, {client_address}")

    for n in range(3):
        via_proxy("203.0.113.7", "wrong", forged=f"198.51.100.{n}")  # a new forged entry each time
    assert b"Too many failed" in via_proxy("203.0.113.7", PASSWORD, forged="198.51.100.200").content
    # Another client behind the same proxy is its own pair.
    assert via_proxy("203.0.113.8", PASSWORD).status_code == 302


def test_admin_form_is_throttled_too(rf, staff_user):
    from alpha_platform.web.portal.forms import ThrottledAdminAuthenticationForm

    request = rf.post("/admin/login/", REMOTE_ADDR="10.9.9.9")
    with override_settings(LOGIN_THROTTLE_FAILURES=1):
        form = ThrottledAdminAuthenticationForm(request, data={"username": "operator", "password": "bad"})
        assert not form.is_valid()
        form = ThrottledAdminAuthenticationForm(request, data={"username": "operator", "password": "op-pw-123456"})
        assert not form.is_valid() and "Too many failed" in str(form.errors)


def test_sign_up_is_closed_by_default(client):
    assert client.get(reverse("portal:signup")).status_code == 404
    assert client.post(reverse("portal:signup"), {"username": "new"}).status_code == 404
    assert b"Sign up" not in client.get(reverse("portal:login")).content


@override_settings(PORTAL_SIGNUP_ENABLED=True)
def test_sign_up_when_enabled(client):
    assert b"Sign up" in client.get(reverse("portal:login")).content
    assert client.get(reverse("portal:signup")).status_code == 200
    bad = client.post(reverse("portal:signup"), {"username": "newbie", "password1": "x", "password2": "y"})
    assert bad.status_code == 200 and b'id="field-password2"' in bad.content and b"errorlist" in bad.content
    response = client.post(reverse("portal:signup"), {"username": "newbie", "email": "",
                                                      "password1": "a-Long-pass-9876", "password2": "a-Long-pass-9876"})
    assert response.status_code == 302
    user = get_user_model().objects.get(username="newbie")
    assert user.risk_profile is not None  # every user gets a risk profile
    assert client.get(reverse("portal:dashboard")).status_code == 200


def test_password_change(client_a, user):
    page = client_a.get(reverse("portal:password_change"))
    assert page.status_code == 200 and b"old_password" in page.content
    wrong = client_a.post(reverse("portal:password_change"), {"old_password": "nope", "new_password1": "Another-pass-77",
                                                             "new_password2": "Another-pass-77"})
    assert wrong.status_code == 200 and b'id="field-old_password"' in wrong.content
    assert b"Your old password was entered incorrectly" in wrong.content
    response = client_a.post(reverse("portal:password_change"), {
        "old_password": PASSWORD, "new_password1": "Another-pass-77", "new_password2": "Another-pass-77"})
    assert response["Location"] == reverse("portal:password_change_done")
    assert client_a.get(reverse("portal:password_change_done")).status_code == 200
    user.refresh_from_db()
    assert user.check_password("Another-pass-77")


def test_admin_password_change_keeps_the_admin_template(staff_user):
    client = Client()
    client.force_login(staff_user)
    response = client.get(reverse("admin:password_change"))
    assert response.status_code == 200
    assert b'id="site-name"' in response.content and b"portal/portal.css" not in response.content


@override_settings(LOGIN_THROTTLE_FAILURES=2)
def test_admin_sign_in_page_is_throttled(client, staff_user):
    for _ in range(2):
        client.post("/admin/login/", {"username": "operator", "password": "bad"}, REMOTE_ADDR="10.1.1.1")
    response = client.post("/admin/login/", {"username": "operator", "password": "op-pw-123456"},
                           REMOTE_ADDR="10.1.1.1")
    assert response.status_code == 200 and b"Too many failed sign-in attempts" in response.content
