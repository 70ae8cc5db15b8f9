"""``manage.py venue_streams`` runs once per deployment: a second copy waits for the
Redis lock, takes over when it is free, and stops when it loses it."""

import io
import os
import threading

import pytest
import redis
from django.core.management import call_command
from django.core.management.base import CommandError

from tests.trading.streams_helpers import wait_until
from trading.management.commands.venue_streams import LOCK_KEY

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_second_copy_waits_for_the_lock_and_a_copy_that_loses_it_stops(settings):
    settings.VENUE_STREAMS_LOCK_TTL_SECONDS = 0.6
    client = redis.Redis.from_url(os.environ["REDIS_URL"])
    first = client.lock(LOCK_KEY, timeout=30)  # another copy already runs
    assert first.acquire(blocking=False)
    out = io.StringIO()
    outcome = {}

    def run():
        try:
            call_command("venue_streams", "--refresh", "0.1", "--account", "0", stdout=out)
            outcome["result"] = "returned"
        except CommandError as exc:
            outcome["result"] = str(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    wait_until(lambda: "waits" in out.getvalue(), what="the second copy waiting")
    assert "holds the lock" not in out.getvalue() and first.owned()
    first.release()
    wait_until(lambda: "holds the lock" in out.getvalue(), what="the second copy taking over")
    client.delete(LOCK_KEY)  # lost (expired, taken over): it must stop streaming
    thread.join(15)
    assert not thread.is_alive()
    assert outcome["result"] == "venue_streams: lost the deployment lock; stopped"
