"""Signing in and out, sign-up behind its setting, password change, and sign-in throttling."""

import pytest
from django.contrib.auth import get_user_model
from django.test import Client, override_settings
from django.urls import reverse

from alpha_platform.portal import throttle

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


def test_throttle_unit_lockout_expires():
    with override_settings(LOGIN_THROTTLE_FAILURES=2, LOGIN_THROTTLE_LOCKOUT_SECONDS=1):
        throttle.record_failure("zed", "1.2.3.4")
        assert throttle.blocked_for("zed", "1.2.3.4") == 0
        throttle.record_failure("ZED ", "1.2.3.4")  # usernames compare case- and space-insensitively
        assert 0 < throttle.blocked_for("zed", "1.2.3.4") <= 1
        assert throttle.blocked_for("zed", "5.6.7.8") == 0
    assert "1 minute;" in throttle.message(30)
    assert "15 minutes" in throttle.message(900)


def test_admin_form_is_throttled_too(rf, staff_user):
    from alpha_platform.portal.forms import ThrottledAdminAuthenticationForm

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
