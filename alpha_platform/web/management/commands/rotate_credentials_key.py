"""Re-encrypt every stored secret under the newest key of CREDENTIALS_ENCRYPTION_KEYS.

Finds every EncryptedTextField in every installed model, so secrets added later are
covered without changing this command."""

from django.apps import apps
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from alpha_platform.common import crypto
from alpha_platform.common.errors import CredentialsError
from alpha_platform.common.models import EncryptedTextField


class Command(BaseCommand):
    help = "Re-encrypt every stored secret under the newest CREDENTIALS_ENCRYPTION_KEYS key."

    def handle(self, *args, **options):
        total = 0
        per_model: list[str] = []
        try:
            with transaction.atomic():
                for model in apps.get_models():
                    fields = [f for f in model._meta.get_fields() if isinstance(f, EncryptedTextField)]
                    if not fields:
                        continue
                    count = 0
                    for obj in model._default_manager.select_for_update().only("pk", *[f.name for f in fields]):
                        changed = []
                        for f in fields:
                            token = getattr(obj, f.attname)
                            if token:
                                setattr(obj, f.attname, crypto.rotate_token(token))
                                changed.append(f.attname)
                                count += 1
                        if changed:
                            obj.save(update_fields=changed)
                    per_model.append(f"{model._meta.label}: {count}")
                    total += count
        except CredentialsError as exc:
            raise CommandError(f"{exc.message}. Nothing was changed.") from None
        for line in per_model:
            self.stdout.write(f"  {line}")
        self.stdout.write(self.style.SUCCESS(f"Re-encrypted {total} secret(s) under the newest key."))
