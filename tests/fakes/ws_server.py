"""What the fake venues' websocket sides share: a ``websockets`` server on 127.0.0.1 (the
port chosen by the OS) running its own event loop in a thread, and the ways real streams
misbehave, on demand:

- ``drop_next(count, kind)``: the next messages (of that kind) are lost;
- ``duplicate_next(count)``: the next messages are delivered twice;
- ``disconnect_all()``: every client's socket is closed under it (close code 1001).

A subclass serves ``_handler(ws)`` (registering each client in ``_clients`` with what it
subscribed to) and publishes with ``_publish(message, kinds, wants)``.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Callable
from typing import Any

from websockets.asyncio.server import serve


class LoopbackWebsocketServer:
    thread_name = "fake-ws"

    def __init__(self) -> None:
        self.delivered: list[dict[str, Any]] = []
        self.dropped: list[dict[str, Any]] = []
        self.connections = 0
        self._drop: list[str | None] = []
        self._duplicate = 0
        self._clients: dict[Any, dict[str, str]] = {}  # socket -> its subscriptions (channel -> user)
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: Any = None
        self._port = 0

    # ------------------------------------------------------------------ lifecycle
    def start(self):
        ready = threading.Event()

        def run() -> None:
            loop = asyncio.new_event_loop()
            asyncio.set_event_loop(loop)
            self._loop = loop

            async def boot() -> None:
                self._server = await serve(self._handler, "127.0.0.1", 0, ping_interval=None)
                self._port = self._server.sockets[0].getsockname()[1]

            loop.run_until_complete(boot())
            ready.set()
            loop.run_forever()
            loop.close()

        self._thread = threading.Thread(target=run, name=self.thread_name, daemon=True)
        self._thread.start()
        ready.wait(5)
        return self

    def stop(self) -> None:
        if self._loop is None:
            return

        async def shutdown() -> None:
            self._server.close()
            for ws in list(self._clients):  # no closing handshake to wait for: the fake is going away
                ws.transport.abort()
            try:
                await asyncio.wait_for(self._server.wait_closed(), 3)
            except TimeoutError:
                pass

        asyncio.run_coroutine_threadsafe(shutdown(), self._loop).result(5)
        self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread is not None:
            self._thread.join(5)
        self._loop = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    async def _handler(self, ws: Any) -> None:
        raise NotImplementedError

    # ------------------------------------------------------------------ misbehaviour
    def drop_next(self, count: int = 1, kind: str | None = None) -> None:
        """Lose the next ``count`` messages (of ``kind``: what the subclass names its kinds)."""
        with self._lock:
            self._drop.extend([kind] * count)

    def duplicate_next(self, count: int = 1) -> None:
        with self._lock:
            self._duplicate += count

    def disconnect_all(self) -> None:
        async def close() -> None:
            # The close frame goes out at once; a client slow to answer it (the SDK's
            # thread) must not hold the caller, so the handshake finishes in the background.
            for ws in list(self._clients):
                asyncio.ensure_future(ws.close(1001, "going away"))

        asyncio.run_coroutine_threadsafe(close(), self._loop).result(5)

    def client_count(self) -> int:
        return len(self._clients)

    def wait_for_clients(self, count: int = 1, timeout: float = 10.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if len(self._clients) >= count:
                return True
            time.sleep(0.02)
        return False

    # ------------------------------------------------------------------ publishing
    def _publish(self, message: dict[str, Any], kinds: tuple[str, ...],
                 wants: Callable[[dict[str, str]], bool] = lambda subscriptions: True) -> None:
        """Deliver ``message`` to every client whose subscriptions ``wants`` it, unless a
        drop of one of its ``kinds`` is due (then it is lost), twice if a duplicate is due."""
        with self._lock:
            if self._drop and self._drop[0] in (None, *kinds):
                self._drop.pop(0)
                self.dropped.append(message)
                return
            copies = 1
            if self._duplicate:
                self._duplicate -= 1
                copies = 2
            self.delivered.extend([message] * copies)
        if self._loop is None:
            return
        text = json.dumps(message)
        for _ in range(copies):
            self._loop.call_soon_threadsafe(self._broadcast, text, wants)

    def _broadcast(self, text: str, wants: Callable[[dict[str, str]], bool]) -> None:
        for ws, subscriptions in list(self._clients.items()):
            if wants(subscriptions):
                asyncio.ensure_future(self._send(ws, text))

    @staticmethod
    async def _send(ws: Any, text: str) -> None:
        try:
            await ws.send(text)
        except Exception:  # the client went away meanwhile
            pass
