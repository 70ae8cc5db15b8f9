"""The web portal (pages in templates/portal/)."""

urlpatterns: list = []
