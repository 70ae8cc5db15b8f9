"""The platform's ASGI application with static files served (CSS, JS, the chart library),
for the end-to-end runs: daphne on its own serves none, whatever DEBUG says.

Chart.js is installed by npm into node_modules/ (package.json); settings serve it under
static/vendor/chart.js/ once STATICFILES_DIRS names that folder. Until then this module
adds the same entry, so the browser test sees the page as `make run` will.
"""

from pathlib import Path

from django.conf import settings

from alpha_platform.asgi import application as platform_application  # sets up Django

_CHART_DIST = Path(settings.BASE_DIR) / "node_modules" / "chart.js" / "dist"
if _CHART_DIST.exists() and not any(isinstance(d, (tuple, list)) and d[0] == "vendor/chart.js"
                                    for d in settings.STATICFILES_DIRS):
    settings.STATICFILES_DIRS = [*settings.STATICFILES_DIRS, ("vendor/chart.js", _CHART_DIST)]

from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler  # noqa: E402

application = ASGIStaticFilesHandler(platform_application)
