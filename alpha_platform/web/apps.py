from django.apps import AppConfig


class WebConfig(AppConfig):
    """The web layer: portal, REST API, websocket consumer, health, operator commands.

    The label stays "alpha_platform" (the app's name before the web layer had a package of
    its own), so the ApiToken table and the migration history keep their names.
    """

    name = "alpha_platform.web"
    label = "alpha_platform"
    verbose_name = "AlphaTransformer platform"

    def ready(self) -> None:
        # The Celery app is made current here rather than in alpha_platform/__init__.py, so
        # that importing the Django-free core (adapters, decision graph) loads neither
        # Django nor Celery; every Django process (web, workers, beat, manage.py, tests)
        # passes through here before it sends a task.
        from alpha_platform.celery import app  # noqa: F401
