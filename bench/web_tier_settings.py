"""Settings for bench/web_tier.py only (never the product's): the platform's settings as
they are, with the bench's URLconf (bench/web_tier_urls.py: the platform's URLs plus one bare
view). Imported with bench/ on the path (DJANGO_SETTINGS_MODULE=web_tier_settings)."""

from alpha_platform.settings import *  # noqa: F403

ROOT_URLCONF = "web_tier_urls"
