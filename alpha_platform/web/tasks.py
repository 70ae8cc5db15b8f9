"""Platform heartbeats for /healthz.

Beat sends ``alpha_platform.heartbeat`` to every queue every HEALTH_HEARTBEAT_SECONDS
(settings.CELERY_BEAT_SCHEDULE). Two timestamps are kept in Redis:

- ``alpha:health:beat:<queue>`` when beat publishes it (the ``before_task_publish``
  signal, which fires in the beat process: nothing else sends this task; the time also
  travels in the message's ``alpha_sent_at`` header), so a stopped beat shows as an old
  beat heartbeat;
- ``alpha:health:worker:<queue>`` when a worker *ran* it, with the worker's name and
  the queue lag (ran - published), so a queue nobody consumes, or one backed up, shows
  as an old worker heartbeat for that queue.
"""

from __future__ import annotations

import json
import logging
import socket
import threading
import time
from typing import Any

from celery import shared_task
from celery.signals import before_task_publish
from django.conf import settings

logger = logging.getLogger(__name__)

HEARTBEAT_TASK = "alpha_platform.heartbeat"
KEY_PREFIX = "alpha:health:"
KEY_TTL = 24 * 3600
_clients: dict[str, Any] = {}
_clients_lock = threading.Lock()


def redis_client(url: str | None = None) -> Any:
    """A client with short timeouts (a health probe must not hang), one per URL."""
    import redis

    url = url or settings.REDIS_URL
    with _clients_lock:
        client = _clients.get(url)
        if client is None:
            timeout = float(getattr(settings, "HEALTH_CHECK_TIMEOUT_SECONDS", 1.0))
            client = redis.Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout,
                                          health_check_interval=30)
            _clients[url] = client
        return client


def beat_key(queue: str) -> str:
    return f"{KEY_PREFIX}beat:{queue}"


def worker_key(queue: str) -> str:
    return f"{KEY_PREFIX}worker:{queue}"


def _queue_of(body: Any, routing_key: str | None) -> str:
    if routing_key:
        return routing_key
    try:  # protocol 2: (args, kwargs, embed)
        return str(body[0][0])
    except (IndexError, KeyError, TypeError):
        return "celery"


@before_task_publish.connect
def _record_beat_heartbeat(sender: str | None = None, body: Any = None, routing_key: str | None = None,
                           headers: dict | None = None, **kwargs: Any) -> None:
    if sender != HEARTBEAT_TASK:
        return
    queue = _queue_of(body, routing_key)
    now = time.time()
    if headers is not None:
        headers["alpha_sent_at"] = now  # the worker measures the queue lag from it
    try:
        # Before the message exists, so a fast worker can never read an older beat time.
        redis_client().set(beat_key(queue), json.dumps({"at": now, "host": socket.gethostname()}), ex=KEY_TTL)
    except Exception as exc:  # the heartbeat is advisory: never break publishing
        logger.warning("could not record the beat heartbeat for %s: %s", queue, type(exc).__name__)


@shared_task(name=HEARTBEAT_TASK, bind=True, ignore_result=True)
def heartbeat_task(self, queue: str = "celery") -> float | None:
    """Record that a worker consuming ``queue`` is alive, and how late the beat's last
    heartbeat to that queue arrived."""
    now = time.time()
    client = redis_client()
    lag = None
    sent = getattr(self.request, "alpha_sent_at", None)
    if sent is None:
        raw = client.get(beat_key(queue))
        try:
            sent = float(json.loads(raw)["at"]) if raw else None
        except (ValueError, KeyError, TypeError):
            sent = None
    if sent is not None:
        lag = max(0.0, now - float(sent))
    client.set(worker_key(queue), json.dumps({"at": now, "worker": self.request.hostname or "",
                                              "lag_seconds": None if lag is None else round(lag, 3)}), ex=KEY_TTL)
    return lag
