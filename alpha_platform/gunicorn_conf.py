"""The production HTTP server: gunicorn, one worker process per core, each serving the WSGI
app from a few threads (gthread).

    gunicorn -c python:alpha_platform.gunicorn_conf -b 0.0.0.0:8000 alpha_platform.wsgi:application

HTTP goes to WSGI, not to the ASGI app: Django's ASGI handler runs every sync view in a
thread made for that request (asgiref's ThreadSensitiveContext), so a bare request costs
about 4 ms of CPU there against under 1 ms here, and per-thread database connections could
never be reused (docs/benchmarks.md, "Issue 17: web tier"). Websockets are served by the
ASGI server of ``alpha_platform.gunicorn_ws_conf``; the proxy sends /ws/ there.

Workers: WEB_CONCURRENCY (gunicorn's own variable), by default one per core this process
may run on; threads per worker: WEB_THREADS (4: a request waiting on the database or Redis
leaves the core to another). Gunicorn restarts a worker that dies or stops answering its
heartbeat (``timeout``), and stops them gracefully on SIGTERM (``graceful_timeout``,
within the compose file's stop_grace_period and the unit's TimeoutStopSec).
"""

from __future__ import annotations

import os

from alpha_platform.gunicorn_common import *  # noqa: F403  (timeouts, logs, no preloading)


def _default_workers() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # not Linux
        return max(1, os.cpu_count() or 1)


# Each worker thread keeps its database connection between requests (CONN_MAX_AGE, checked
# before reuse): the threads live as long as the worker. Read by the workers' settings.
os.environ.setdefault("DB_CONN_MAX_AGE", "60")

worker_class = "gthread"
workers = int(os.environ.get("WEB_CONCURRENCY") or _default_workers())
threads = int(os.environ.get("WEB_THREADS", "4"))
