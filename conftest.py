"""Root conftest. The test environment itself is prepared in tests/settings.py, which
pytest-django imports before any conftest."""
