"""The per-agent lock: a short-TTL Redis lock renewed while the decision runs."""

from __future__ import annotations

import logging
import threading
import time

from django.conf import settings
from django.core.cache import cache
from redis.exceptions import LockError

logger = logging.getLogger(__name__)


# --------------------------------------------------------------------------- the per-agent lock
def agent_lock_key(agent_id: int) -> str:
    return f"lock:agent:{agent_id}"


class AgentLock:
    """The per-agent lock: a Redis lock (redis-py's ``Lock`` through django-redis) with a
    short TTL, renewed by a background thread while the decision runs. A dead worker's lock
    expires within one TTL; a decision whose lock could not be renewed (``held()`` False)
    stops before its next model call or order, so it never runs beside the next tick."""

    def __init__(self, agent_id: int, *, ttl: float | None = None) -> None:
        self.ttl = float(ttl if ttl is not None else settings.AGENT_LOCK_TTL_SECONDS)
        self._lock = cache.lock(agent_lock_key(agent_id), timeout=self.ttl, blocking=False, thread_local=False)
        self._lost = threading.Event()
        self._stop = threading.Event()
        self._renewed = 0.0
        self._thread: threading.Thread | None = None

    def acquire(self) -> bool:
        if not self._lock.acquire(blocking=False):
            return False
        self._renewed = time.monotonic()
        self._thread = threading.Thread(target=self._renew, name=f"lock-{self._lock.name}", daemon=True)
        self._thread.start()
        return True

    def _renew(self) -> None:
        interval = max(self.ttl / 3.0, 0.05)
        while not self._stop.wait(interval):
            try:
                self._lock.extend(self.ttl, replace_ttl=True)
                self._renewed = time.monotonic()
            except LockError:  # expired and maybe taken by another tick: never run beside it
                logger.error("lost the lock %s", self._lock.name)
                self._lost.set()
                return
            except Exception:  # Redis unreachable: held() turns False once the TTL has run out
                logger.warning("could not renew the lock %s", self._lock.name, exc_info=True)

    def held(self) -> bool:
        return not self._lost.is_set() and time.monotonic() - self._renewed < self.ttl

    def release(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(self.ttl)
        try:
            self._lock.release()
        except LockError:
            pass
        except Exception:
            logger.warning("could not release the lock %s", self._lock.name, exc_info=True)

    @staticmethod
    def locked(agent_id: int) -> bool:
        return bool(cache.lock(agent_lock_key(agent_id)).locked())
