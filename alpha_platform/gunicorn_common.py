"""What the HTTP server (gunicorn_conf) and the websocket server (gunicorn_ws_conf) share:
timeouts, logs, and workers that import the app after the fork. No side effects: gunicorn
reads these names from either config module."""

import os

# A worker that has not reported for this long is restarted.
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
