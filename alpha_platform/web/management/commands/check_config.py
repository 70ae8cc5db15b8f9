"""Validate config/exchanges.yaml for the current ALPHA_ENV (or --env)."""

from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from alpha_platform.common.config import load_config
from alpha_platform.common.errors import ConfigError


class Command(BaseCommand):
    help = "Validate config/exchanges.yaml; report any problem with its path in the file."

    def add_arguments(self, parser):
        parser.add_argument("--env", default=None, help="ALPHA_ENV to check (default: the current one)")
        parser.add_argument("--file", default=None, help="Path of the YAML file to check")

    def handle(self, *args, env=None, file=None, **options):
        path = Path(file) if file else Path(settings.ALPHA_CONFIG_DIR) / "exchanges.yaml"
        environment = env or settings.ALPHA_ENV
        try:
            config = load_config(path, environment=environment)
        except ConfigError as exc:
            raise CommandError(f"{path}: {exc.message}") from None
        self.stdout.write(self.style.SUCCESS(
            f"{path.name} is valid for ALPHA_ENV={environment}: venues {', '.join(config.venues)}"))
