"""Live updates: events go to Channels groups only after the transaction commits.

Sending from synchronous code: ``async_to_sync`` outside an event loop (a Celery worker
thread, a management command) starts a new event loop, a helper thread and a new Redis
connection for every call, which cost more CPU than the order it announces. Instead each
process runs one background event loop in a daemon thread, created on first use (and
again in a forked child), where channels_redis keeps its connections; a send hands the
coroutine to that loop and waits for it (bounded), so one thread's events still arrive
in the order it sent them.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import threading
from typing import Any

from channels.layers import get_channel_layer
from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import transaction

logger = logging.getLogger(__name__)

STAFF_GROUP = "staff"
SEND_TIMEOUT_SECONDS = 5.0


def user_group(user_id: int) -> str:
    return f"user.{user_id}"


class _LoopThread:
    """One asyncio loop in a daemon thread, per process."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._pid = 0

    def loop(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None or self._pid != os.getpid() or self._loop.is_closed():
                loop = asyncio.new_event_loop()
                ready = threading.Event()

                def run() -> None:
                    asyncio.set_event_loop(loop)
                    loop.call_soon(ready.set)
                    loop.run_forever()

                threading.Thread(target=run, name="realtime-sender", daemon=True).start()
                ready.wait(5)
                self._loop, self._pid = loop, os.getpid()
            return self._loop

    def run(self, coro: Any, timeout: float) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop()).result(timeout)


_sender = _LoopThread()


async def _group_send_all(layer: Any, groups: list[str], message: dict[str, Any]) -> list[str]:
    failed = []
    for group in groups:
        try:
            await layer.group_send(group, message)
        except Exception as exc:  # a push is best effort; the write already committed
            logger.warning("realtime push to %s failed: %s", group, exc.__class__.__name__)
            failed.append(group)
    return failed


def _send(groups: list[str], event: dict[str, Any]) -> None:
    if not getattr(settings, "REALTIME_ENABLED", True):
        return
    layer = get_channel_layer()
    if layer is None:
        return
    # Round-trip through JSON so Decimals and datetimes travel as strings.
    payload = json.loads(json.dumps(event, cls=DjangoJSONEncoder))
    message = {"type": "platform.event", "event": payload}
    try:
        _sender.run(_group_send_all(layer, groups, message), SEND_TIMEOUT_SECONDS)
    except Exception as exc:  # timeout, or the loop is gone at interpreter exit
        logger.warning("realtime push to %s failed: %s", ", ".join(groups), exc.__class__.__name__)


def send_to_user_on_commit(user_id: int, event: dict[str, Any], *, staff: bool = True) -> None:
    """Queue ``event`` (with a ``type`` key) for the user's sockets, and staff's, on commit."""
    groups = [user_group(user_id)] + ([STAFF_GROUP] if staff else [])
    transaction.on_commit(lambda: _send(groups, event))
