from django.apps import AppConfig


class AlphaPlatformConfig(AppConfig):
    name = "alpha_platform"
    verbose_name = "AlphaTransformer platform"
