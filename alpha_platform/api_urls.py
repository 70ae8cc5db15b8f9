"""The REST API under /api/ (views live in each app's api.py)."""

urlpatterns: list = []
