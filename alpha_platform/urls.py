from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/", include("alpha_platform.api_urls")),
    path("", include("alpha_platform.portal.urls")),
]
