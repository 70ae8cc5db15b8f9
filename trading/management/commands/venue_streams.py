"""``manage.py venue_streams``: hold the venues' user-data streams for every active
account (trading.services.streams.VenueStreamSupervisor).

One per deployment: the process takes a Redis lock first, and a second copy waits for it
(so a rolling restart or a second ``make run`` never doubles the streams). The lock is
renewed while the streams run; a process that loses it stops. SIGTERM/SIGINT stop it
cleanly. Reconciliation (Celery beat) stays the safety net whether this runs or not.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket

import redis
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from redis.exceptions import LockError

from trading.services.streams import VenueStreamSupervisor

logger = logging.getLogger(__name__)
LOCK_KEY = "venue_streams:leader"


class Command(BaseCommand):
    help = "Run the venues' user-data streams (one process per deployment, Redis-locked)."

    def add_arguments(self, parser):
        parser.add_argument("--refresh", type=float, default=None,
                            help="seconds between looks for new or disabled accounts")
        parser.add_argument("--account", type=int, action="append", dest="accounts",
                            help="only this account (repeatable)")

    def handle(self, *args, refresh=None, accounts=None, **options):
        ttl = settings.VENUE_STREAMS_LOCK_TTL_SECONDS
        client = redis.Redis.from_url(settings.REDIS_URL, socket_timeout=5, socket_connect_timeout=5)
        lock = client.lock(LOCK_KEY, timeout=ttl, thread_local=False)
        owner = f"{socket.gethostname()}:{os.getpid()}"
        waited = False
        while not lock.acquire(blocking=True, blocking_timeout=max(ttl / 3, 1.0)):
            if not waited:
                self.stdout.write(f"venue_streams: another copy is running; {owner} waits for the lock")
                waited = True
        self.stdout.write(f"venue_streams: {owner} holds the lock; starting")
        supervisor = VenueStreamSupervisor(refresh_seconds=refresh, account_ids=accounts)
        try:
            lost = asyncio.run(self._run(supervisor, lock, ttl))
        finally:
            try:
                lock.release()
            except LockError:
                pass
        if lost:
            raise CommandError("venue_streams: lost the deployment lock; stopped")

    async def _run(self, supervisor: VenueStreamSupervisor, lock, ttl: float) -> bool:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                loop.add_signal_handler(sig, supervisor.stop)
            except (NotImplementedError, RuntimeError):  # not the main thread (tests)
                pass
        lost = False

        async def renew() -> None:
            nonlocal lost
            while True:
                await asyncio.sleep(ttl / 3)
                try:
                    await asyncio.to_thread(lock.reacquire)
                except LockError:
                    lost = True
                    logger.error("venue_streams lost its lock: stopping")
                    supervisor.stop()
                    return
                except redis.RedisError:
                    logger.warning("venue_streams could not renew its lock (Redis); retrying", exc_info=True)

        renewer = asyncio.create_task(renew())
        try:
            await supervisor.run()
        finally:
            renewer.cancel()
        return lost
