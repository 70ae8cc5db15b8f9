"""``manage.py paper_outage --seconds N``: make the paper venue fail for N seconds.

Every process that shares the platform's Redis sees it (workers, web, beat): each
PaperTrader call raises ExchangeUnavailable("simulated outage") inside the adapter's
Guard, so the accounts' circuit breakers open after ``circuit_breaker.failure_threshold``
failures and close again, after ``cooldown_seconds``, on the first call that succeeds
once the outage is over. ``--off`` ends it early; ``--status`` shows it.
"""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from exchanges.adapters.paper.trader import OUTAGE_KEY
from exchanges.services import adapter_runtime


class Command(BaseCommand):
    help = "Simulate an outage of the paper venue for a number of seconds (shared through Redis)."

    def add_arguments(self, parser):
        group = parser.add_mutually_exclusive_group(required=True)
        group.add_argument("--seconds", type=float, help="how long the venue fails")
        group.add_argument("--off", action="store_true", help="end the outage now")
        group.add_argument("--status", action="store_true", help="is an outage on?")
        parser.add_argument("--reason", default="simulated outage", help="the text the errors carry")

    def handle(self, *args, seconds=None, off=False, status=False, reason="simulated outage", **options):
        store = adapter_runtime().store
        if status:
            current = store.get(OUTAGE_KEY)
            self.stdout.write(f"paper outage: {current}" if current else "paper outage: off")
            return
        if off:
            store.delete(OUTAGE_KEY)
            self.stdout.write("paper outage: off")
            return
        if seconds is None or seconds <= 0:
            raise CommandError("--seconds must be greater than zero")
        store.set(OUTAGE_KEY, reason.strip() or "simulated outage", ttl=seconds)
        self.stdout.write(f"paper outage: on for {seconds:g}s ({reason})")
