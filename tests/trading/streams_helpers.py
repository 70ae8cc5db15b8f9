"""Running the real stream supervisor (trading.services.streams) in a background thread
with its own event loop, as ``manage.py venue_streams`` runs it, and waiting for the
database to show what the stream applied (never a timed assertion: a bounded wait)."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from typing import Any

from trading.services.streams import VenueStreamSupervisor


class RunningStreams:
    def __init__(self, account_ids: list[int], **kwargs: Any) -> None:
        kwargs.setdefault("refresh_seconds", 0.2)
        kwargs.setdefault("backoff_initial", 0.3)
        self.supervisor = VenueStreamSupervisor(account_ids=account_ids, **kwargs)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self.error: BaseException | None = None

    def __enter__(self) -> RunningStreams:
        ready = threading.Event()

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            ready.set()
            try:
                loop.run_until_complete(self.supervisor.run())
            except BaseException as exc:  # surfaced by the test through .error
                self.error = exc
            finally:
                loop.close()

        self._thread = threading.Thread(target=run, name="venue-streams", daemon=True)
        self._thread.start()
        ready.wait(5)
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._loop is not None
        self._loop.call_soon_threadsafe(self.supervisor.stop)
        assert self._thread is not None
        self._thread.join(20)

    def stat(self, name: str, account_id: int) -> int:
        return self.supervisor.stats[name][account_id]

    def wait_connected(self, account_id: int, count: int = 1, timeout: float = 20.0) -> None:
        """Until the stream has connected ``count`` times and caught up after it."""
        wait_until(lambda: self.stat("connects", account_id) >= count
                   and self.stat("catchups", account_id) >= count + self.stat("gaps", account_id)
                   and self.supervisor.connected.get(account_id) is not None
                   and self.supervisor.connected[account_id].is_set(), timeout=timeout,
                   what=f"stream of account {account_id} connected {count}x")


def wait_until(predicate: Callable[[], Any], *, timeout: float = 15.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")
