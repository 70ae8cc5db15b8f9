"""Credentials at rest: ciphertext only, round-trip, rotation, wrong keys, shapes, masking."""

import logging

import pytest
from cryptography.fernet import Fernet
from django.core.exceptions import ValidationError
from django.core.management import CommandError, call_command
from django.db import connection
from django.test import override_settings

from alpha_platform.common.errors import CredentialsError
from alpha_platform.common.logging import RedactSecretsFilter, redact
from exchanges.models import ExchangeAccount
from tests.factories import BINANCE_CREDS, HL_CREDS, make_account

pytestmark = pytest.mark.django_db


def raw_column(account_id: int) -> str:
    with connection.cursor() as cur:
        cur.execute("SELECT credentials_encrypted FROM exchanges_exchangeaccount WHERE id = %s", [account_id])
        return cur.fetchone()[0]


def test_database_holds_only_ciphertext_and_round_trips(user):
    account = make_account(user, venue="binance_futures")
    stored = raw_column(account.pk)
    for secret in BINANCE_CREDS.values():
        assert secret not in stored
    assert stored.startswith("gAAAAA")  # a Fernet token
    creds = ExchangeAccount.objects.get(pk=account.pk).credentials()
    assert creds.reveal_all() == BINANCE_CREDS


def test_rotation_reencrypts_and_old_key_can_be_dropped(user, capsys):
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    with override_settings(CREDENTIALS_ENCRYPTION_KEYS=[old]):
        a = make_account(user, venue="binance_futures", name="a")
        b = make_account(user, venue="hyperliquid", name="b")
        make_account(user, venue="paper", name="p")
    before = {a.pk: raw_column(a.pk), b.pk: raw_column(b.pk)}
    with override_settings(CREDENTIALS_ENCRYPTION_KEYS=[new, old]):
        call_command("rotate_credentials_key")
    out = capsys.readouterr().out
    assert "Re-encrypted 3 secret(s)" in out  # two real credential sets + the paper account's empty set
    assert raw_column(a.pk) != before[a.pk]
    with override_settings(CREDENTIALS_ENCRYPTION_KEYS=[new]):  # the old key is gone
        assert ExchangeAccount.objects.get(pk=a.pk).credentials().reveal_all() == BINANCE_CREDS
        assert ExchangeAccount.objects.get(pk=b.pk).credentials().reveal_all() == HL_CREDS


def test_wrong_key_gives_clear_error_and_rotation_changes_nothing(user):
    account = make_account(user, venue="binance_futures")
    before = raw_column(account.pk)
    with override_settings(CREDENTIALS_ENCRYPTION_KEYS=[Fernet.generate_key().decode()]):
        with pytest.raises(CredentialsError, match="cannot be decrypted"):
            ExchangeAccount.objects.get(pk=account.pk).credentials()
        with pytest.raises(CommandError, match="Nothing was changed"):
            call_command("rotate_credentials_key")
    assert raw_column(account.pk) == before


@pytest.mark.parametrize(
    "venue, creds, field",
    [
        ("binance_futures", {"api_key": BINANCE_CREDS["api_key"]}, "api_secret"),
        ("binance_futures", {"api_key": "short", "api_secret": BINANCE_CREDS["api_secret"]}, "api_key"),
        ("hyperliquid", {**HL_CREDS, "private_key": "0x1234"}, "private_key"),
        ("hyperliquid", {**HL_CREDS, "private_key": HL_CREDS["private_key"][2:]}, "private_key"),
        ("hyperliquid", {**HL_CREDS, "account_address": "0xZZ" + "0" * 38}, "account_address"),
        ("paper", {"api_key": "x"}, "credentials"),
    ],
)
def test_credential_shapes_are_validated_and_nothing_is_written(user, venue, creds, field):
    with pytest.raises(ValidationError) as info:
        make_account(user, venue=venue, credentials=creds)
    assert field in info.value.message_dict
    text = str(info.value.message_dict)
    for value in creds.values():
        if len(value) > 8:
            assert value not in text
    assert ExchangeAccount.objects.count() == 0


def test_unknown_venue_is_rejected(user):
    with pytest.raises(ValidationError, match="Unknown venue"):
        make_account(user, venue="kraken", credentials={})
    assert ExchangeAccount.objects.count() == 0


def test_repr_and_str_never_show_secrets(user):
    account = make_account(user, venue="hyperliquid")
    creds = account.credentials()
    for text in (repr(account), str(account), repr(creds), str(creds), f"{creds['private_key']}",
                 repr(creds["private_key"]), str(dict(creds))):
        assert HL_CREDS["private_key"] not in text
        assert HL_CREDS["private_key"][2:] not in text


def test_logs_never_show_secrets(user, caplog):
    account = make_account(user, venue="binance_futures")
    creds = account.credentials()
    logger = logging.getLogger("alpha.test")
    logger.addFilter(RedactSecretsFilter())
    with caplog.at_level(logging.INFO, logger="alpha.test"):
        logger.info("credentials %s for %r", creds, account)
        logger.info("accidental: api_secret=%s", creds.reveal("api_secret"))
        logger.info("hl key %s", HL_CREDS["private_key"])
        try:
            raise RuntimeError(f"signature={creds.reveal('api_secret')}")
        except RuntimeError:
            logger.exception("failure")
    text = caplog.text + "".join(r.exc_text or "" for r in caplog.records)
    assert BINANCE_CREDS["api_secret"] not in text
    assert HL_CREDS["private_key"] not in text
    assert "********" in text


def test_redact_patterns():
    assert redact("X-MBX-APIKEY: abcdef123") == "X-MBX-APIKEY: ********"
    assert redact('{"api_key": "abc"}') == '{"api_key": "********"}'
    assert redact("Authorization: Bearer sk-123.abc") == "Authorization: ********"
    assert "0x" + "a" * 64 not in redact("key 0x" + "a" * 64)
    assert redact("price=65000 qty=0.1") == "price=65000 qty=0.1"


def test_admin_never_shows_secrets(client, staff_user, user):
    account = make_account(user, venue="binance_futures")
    client.force_login(staff_user)
    for url in ("/admin/exchanges/exchangeaccount/", f"/admin/exchanges/exchangeaccount/{account.pk}/change/"):
        html = client.get(url).content.decode()
        assert BINANCE_CREDS["api_secret"] not in html
        assert BINANCE_CREDS["api_key"] not in html
        assert raw_column(account.pk) not in html  # not even the ciphertext
    assert "api_key …" in client.get("/admin/exchanges/exchangeaccount/").content.decode()


def test_admin_replaces_credentials_without_reading_them(client, staff_user, user):
    account = make_account(user, venue="binance_futures")
    client.force_login(staff_user)
    url = f"/admin/exchanges/exchangeaccount/{account.pk}/change/"
    new_secret = "N" * 64
    response = client.post(url, {"name": "renamed", "testnet": "on", "api_key": "A" * 64, "api_secret": new_secret})
    assert response.status_code == 302, response.content.decode()[:2000]
    account.refresh_from_db()
    assert account.name == "renamed" and account.testnet
    assert account.credentials().reveal("api_secret") == new_secret
    # An empty credentials form keeps the stored ones.
    client.post(url, {"name": "renamed2"})
    account.refresh_from_db()
    assert account.credentials().reveal("api_secret") == new_secret
    # A malformed key is refused next to its field and nothing changes.
    response = client.post(url, {"name": "renamed3", "api_key": "bad", "api_secret": "S" * 64})
    assert response.status_code == 200 and "letters and digits" in response.content.decode()
    account.refresh_from_db()
    assert account.name == "renamed2" and account.credentials().reveal("api_secret") == new_secret


def test_admin_creates_account_through_service(client, staff_user, user):
    client.force_login(staff_user)
    response = client.post("/admin/exchanges/exchangeaccount/add/", {
        "owner": user.pk, "name": "HL", "venue": "hyperliquid", **HL_CREDS})
    assert response.status_code == 302, response.content.decode()[:3000]
    account = ExchangeAccount.objects.get(name="HL")
    assert HL_CREDS["private_key"] not in raw_column(account.pk)
    assert account.credentials().reveal_all() == HL_CREDS
    assert account.credentials_hint.startswith("account_address 0x90F8")
