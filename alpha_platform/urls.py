from django.contrib import admin
from django.urls import include, path

from alpha_platform.web.health import healthz

urlpatterns = [
    path("healthz", healthz, name="healthz"),
    path("admin/", admin.site.urls),
    path("api/", include("alpha_platform.web.api.urls")),
    path("", include("alpha_platform.web.portal.urls")),
]
