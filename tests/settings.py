"""Settings for the test suite: ALPHA_ENV=testing, fresh encryption keys, and a real,
embedded Redis server (one per test process) unless REDIS_URL is given.

pytest-django imports this before any conftest runs, so this is where the environment
must be prepared.
"""

import atexit
import os
import sys
from pathlib import Path

from cryptography.fernet import Fernet

ROOT = Path(__file__).resolve().parent.parent
os.environ["ALPHA_ENV"] = "testing"
os.environ.setdefault("CREDENTIALS_ENCRYPTION_KEYS", Fernet.generate_key().decode())
os.environ.setdefault("ALPHA_VAR_DIR", str(ROOT / "var" / "test"))
os.environ.setdefault("NO_PROXY", "127.0.0.1,localhost")  # everything the suite talks to is local

# Every test process (each xdist worker too) flushes Redis between tests, so each needs
# its own: a URL inherited from a parent test process is not reused.
if "REDIS_URL" not in os.environ or os.environ.get("ALPHA_TEST_REDIS_PID", str(os.getpid())) != str(os.getpid()):
    sys.path.insert(0, str(ROOT / "scripts"))
    import embedded_redis

    _port = embedded_redis.free_port()
    _redis = embedded_redis.start(_port)
    atexit.register(_redis.terminate)
    os.environ["REDIS_URL"] = f"redis://127.0.0.1:{_port}/0"
    os.environ["ALPHA_TEST_REDIS_PID"] = str(os.getpid())
elif os.environ.get("PYTEST_XDIST_WORKER", "").startswith("gw"):
    # A Redis given from outside is shared: one database per worker.
    _db = 1 + int(os.environ["PYTEST_XDIST_WORKER"][2:])
    os.environ["REDIS_URL"] = os.environ["REDIS_URL"].rsplit("/", 1)[0] + f"/{_db}"

from alpha_platform.settings import *  # noqa: E402,F401,F403
