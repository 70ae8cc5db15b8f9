"""Root conftest: the suite runs with ALPHA_ENV=testing and its own encryption keys,
set before pytest-django loads the settings."""

import os

from cryptography.fernet import Fernet

os.environ.setdefault("ALPHA_ENV", "testing")
os.environ.setdefault("CREDENTIALS_ENCRYPTION_KEYS", Fernet.generate_key().decode())
os.environ.setdefault("ALPHA_VAR_DIR", os.path.join(os.path.dirname(__file__), "var", "test"))
# Nothing in the suite may reach the internet: venues and models are local fakes.
os.environ.setdefault("NO_PROXY", "127.0.0.1,localhost")

# A real Redis for the suite (cache, rate limits, locks, channel layer), unless one is given.
if "REDIS_URL" not in os.environ:
    import atexit
    import sys

    sys.path.insert(0, os.path.join(os.path.dirname(__file__), "scripts"))
    import embedded_redis

    _port = embedded_redis.free_port()
    _redis = embedded_redis.start(_port)
    atexit.register(_redis.terminate)
    os.environ["REDIS_URL"] = f"redis://127.0.0.1:{_port}/0"
