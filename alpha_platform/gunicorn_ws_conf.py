"""The production websocket server: gunicorn supervising uvicorn workers, each one process
with its own event loop serving the ASGI app (websockets through Channels; it answers HTTP
too, which the embedded ``make run`` uses: one process for both).

    gunicorn -c python:alpha_platform.gunicorn_ws_conf -b 0.0.0.0:8001 alpha_platform.asgi:application

Workers: WS_CONCURRENCY, 1 by default (a socket mostly waits; one event loop holds many).
Sockets are spread over the workers by the kernel; the Channels layer (Redis) joins them, so
a push reaches a browser whichever worker holds its socket. Timeouts and logs as the HTTP
server's (alpha_platform/gunicorn_conf.py).
"""

from __future__ import annotations

import os

from uvicorn_worker import UvicornWorker

from alpha_platform.gunicorn_common import *  # noqa: F403  (timeouts, logs, no preloading)


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


# PostgreSQL through a connection pool per worker: under ASGI each request's sync code runs
# in a thread of its own, so per-thread persistent connections would pile up
# (alpha_platform/settings.py, DB_POOL). Read by the workers, which import the settings.
os.environ.setdefault("DB_POOL", "true")
# ...and no connection kept after a request: its thread is gone, nothing could reuse it.
os.environ["DB_CONN_MAX_AGE"] = "0"

worker_class = "alpha_platform.gunicorn_ws_conf.Worker"
workers = int(os.environ.get("WS_CONCURRENCY") or 1)
