"""URLconf for bench/web_tier.py only: the platform's URLs as they are, plus one bare Django
view (a plain HttpResponse: no DRF, no authentication, no database) to measure them against."""

from django.http import HttpResponse
from django.urls import include, path


def bare(request):
    return HttpResponse(b"ok", content_type="text/plain")


urlpatterns = [
    path("bench/bare/", bare),
    path("", include("alpha_platform.urls")),
]
