from django.apps import AppConfig


class RiskConfig(AppConfig):
    name = "risk"
    verbose_name = "Risk"

    def ready(self) -> None:
        from risk import signals  # noqa: F401  (a risk profile is created with each user)
