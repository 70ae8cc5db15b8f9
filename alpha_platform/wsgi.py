"""WSGI entry point: HTTP in production (alpha_platform/gunicorn_conf.py; websockets are the
ASGI server's, alpha_platform/asgi.py)."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "alpha_platform.settings")
application = get_wsgi_application()

from django.conf import settings  # noqa: E402

if settings.SERVE_STATIC:
    from django.contrib.staticfiles.handlers import StaticFilesHandler

    application = StaticFilesHandler(application)
