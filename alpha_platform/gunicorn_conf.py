"""The production web server: gunicorn supervising uvicorn workers, each one process with
its own event loop serving the ASGI app (HTTP through Django, websockets through Channels).

    gunicorn -c python:alpha_platform.gunicorn_conf -b 0.0.0.0:8000 alpha_platform.asgi:application

Workers: WEB_CONCURRENCY (gunicorn's own variable), by default one per core this process
may run on. Each worker is a separate interpreter, so one CPU-bound request no longer holds
up every other: the sync Django views run in each worker's own thread. Websocket clients
are spread over the workers by the kernel; the Channels layer (Redis) joins them, so a push
reaches a browser whichever worker holds its socket.

Gunicorn restarts a worker that dies or stops answering its heartbeat (``timeout``), and
stops them gracefully on SIGTERM (``graceful_timeout``, within the compose file's
stop_grace_period and the unit's TimeoutStopSec).
"""

from __future__ import annotations

import os

from uvicorn_worker import UvicornWorker


def _default_workers() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # not Linux
        return max(1, os.cpu_count() or 1)


class Worker(UvicornWorker):
    """uvicorn's gunicorn worker with the settings this platform needs:

    * no proxy headers: uvicorn would rewrite the client address from X-Forwarded-For and
      the scheme from X-Forwarded-Proto; Django reads both itself (TRUSTED_PROXY_COUNT,
      SECURE_PROXY_SSL_HEADER), so the address the sign-in throttle counts is the same
      under any server;
    * no lifespan protocol: Channels' router has none (uvicorn would log a warning);
    * uvloop and httptools when installed (they are: requirements.txt), websockets through
      the ``websockets`` library.
    """

    CONFIG_KWARGS = {"loop": "auto", "http": "auto", "ws": "auto", "lifespan": "off",
                     "proxy_headers": False, "server_header": False}


# PostgreSQL through a connection pool per worker, not per-thread persistent connections
# (alpha_platform/settings.py, DB_POOL): read by the workers, which import the settings.
os.environ.setdefault("DB_POOL", "true")

worker_class = "alpha_platform.gunicorn_conf.Worker"
workers = int(os.environ.get("WEB_CONCURRENCY") or _default_workers())
# A worker that has not reported for this long is restarted (uvicorn reports from its loop,
# which sync views never block: they run in a thread).
timeout = int(os.environ.get("WEB_TIMEOUT", "60"))
graceful_timeout = int(os.environ.get("WEB_GRACEFUL_TIMEOUT", "25"))
keepalive = int(os.environ.get("WEB_KEEPALIVE", "75"))  # nginx keeps upstream connections open
# Access lines go nowhere by default: nginx logs every request; WEB_ACCESS_LOG=- to stdout.
accesslog = os.environ.get("WEB_ACCESS_LOG") or None
errorlog = "-"
loglevel = os.environ.get("WEB_LOG_LEVEL", "info")
# The app is imported in each worker, after the fork: nothing (database connections, Redis
# pools, the Channels layer) is shared between workers by accident.
preload_app = False
