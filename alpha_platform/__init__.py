"""Project wiring: settings, URLs, ASGI/WSGI entry points and the Celery app.

Deliberately empty: importing ``alpha_platform.common`` (the ground under every app) must
not load Django or Celery. The Celery app is loaded by ``alpha_platform.web``'s AppConfig.
"""
