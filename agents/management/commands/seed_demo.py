"""Create the demo logins, a paper account and a running agent, once.

Passwords are generated on the first run into var/demo_logins.txt (mode 600) and
printed on every run; a second run changes nothing."""

import secrets
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from django.db import transaction

from agents.models import AgentConfig
from agents.services import agent_create
from exchanges.models import ExchangeAccount
from exchanges.services import exchange_account_create


def _logins_file() -> Path:
    return Path(settings.VAR_DIR) / "demo_logins.txt"


def _load_or_make_passwords() -> dict[str, str]:
    path = _logins_file()
    if path.exists():
        pairs = [line.split(":", 1) for line in path.read_text().splitlines() if ":" in line]
        return {k.strip(): v.strip() for k, v in pairs}
    passwords = {"admin": secrets.token_urlsafe(12), "demo": secrets.token_urlsafe(12)}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"{k}: {v}\n" for k, v in passwords.items()))
    path.chmod(0o600)
    return passwords


class Command(BaseCommand):
    help = "Create the demo user, paper account and agent (idempotent), and print the logins."

    def add_arguments(self, parser):
        parser.add_argument("--url", default="http://127.0.0.1:8000")

    def handle(self, *args, url, **options):
        User = get_user_model()
        passwords = _load_or_make_passwords()
        created = []
        with transaction.atomic():
            if not User.objects.filter(username="admin").exists():
                User.objects.create_superuser("admin", "admin@example.invalid", passwords["admin"])
                created.append("admin")
            demo = User.objects.filter(username="demo").first()
            if demo is None:
                demo = User.objects.create_user("demo", "demo@example.invalid", passwords["demo"])
                created.append("demo")
            account = ExchangeAccount.objects.filter(owner=demo, venue="paper").first()
            if account is None:
                account = exchange_account_create(owner=demo, name="Paper", venue="paper", credentials={})
                created.append("paper account")
            if not AgentConfig.objects.filter(owner=demo).exists():
                agent_create(owner=demo, account=account, name="Trend follower",
                             symbols=["BTC/USDT", "ETH/USDT"], interval_seconds=30,
                             model_name="builtin:trend",
                             instructions="Follow the trend on BTC and ETH with small positions.")
                created.append("agent")
        self.stdout.write(f"Demo data: {'created ' + ', '.join(created) if created else 'already present'}")
        self.stdout.write(self.style.SUCCESS(
            "\n  AlphaTransformer is starting at " + url + "/\n"
            f"  Admin:  {url}/admin/   login admin / {passwords['admin']}\n"
            f"  Portal user:           login demo  / {passwords['demo']}\n"
            f"  (logins kept in {_logins_file()})\n"))
