"""A per-process pool of long-lived traders. Django-free.

Building a trader per call refetched the venue's metadata (ccxt's ``load_markets``,
Hyperliquid's meta / spotMeta / userRole), resent leverage and margin mode before every
opening order, and gave every instance its own nonce lock. A pooled trader keeps all of
that for as long as its key holds: the account, a version of its credentials, testnet or
not, and a version of the venue's config. A different key for the same account (the
credentials were replaced, the config changed) retires the old trader.

Callers keep calling ``trader.close()`` in ``finally`` blocks: for a pooled trader that
is a release, not a close. A retired trader is shut down once no caller holds it (or at
once when nobody does); idle traders are shut down after ``idle_ttl`` seconds, and all of
them at process exit. After a fork the child starts with an empty pool (sessions and
locks are not shared across processes).
"""

from __future__ import annotations

import atexit
import hashlib
import json
import logging
import os
import threading
import time
import weakref
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass
from typing import Any

logger = logging.getLogger(__name__)


def config_version(config: Mapping[str, Any], symbol_map: Mapping[str, str]) -> str:
    """A short, stable digest of a venue's merged config and symbol map."""
    text = json.dumps({"config": config, "symbols": symbol_map}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def secret_version(ciphertext: str | bytes) -> str:
    """A version of credentials from their ciphertext: changes whenever they are replaced
    (Fernet tokens differ on every encryption); reveals nothing of them."""
    data = ciphertext.encode() if isinstance(ciphertext, str) else bytes(ciphertext)
    return hashlib.sha256(data).hexdigest()[:16]


@dataclass
class _Entry:
    version: Hashable
    trader: Any
    last_used: float
    holders: int = 0
    retired: bool = False


class TraderPool:
    def __init__(self, *, idle_ttl: float = 900.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.idle_ttl = idle_ttl
        self._clock = clock
        self._lock = threading.Lock()
        self._entries: dict[Hashable, _Entry] = {}
        self._by_trader: dict[int, _Entry] = {}
        self._build_locks: dict[Hashable, threading.Lock] = {}
        self._pid = os.getpid()
        self.builds = 0  # how many traders this pool has built (for tests and benchmarks)
        _pools.add(self)

    # ------------------------------------------------------------------ use
    def get(self, account: Hashable, version: Hashable, build: Callable[[], Any]) -> Any:
        """The pooled trader for ``account`` at ``version``, built with ``build()`` if
        there is none (one build at a time per account, however many threads ask)."""
        retired: list[_Entry] = []
        try:
            with self._lock:
                self._check_fork()
                self._sweep(retired)
                entry = self._entries.get(account)
                if entry is not None and entry.version == version:
                    return self._hold(entry)
                build_lock = self._build_locks.setdefault(account, threading.Lock())
            with build_lock:
                with self._lock:
                    entry = self._entries.get(account)
                    if entry is not None and entry.version == version:
                        return self._hold(entry)
                trader = build()  # outside the pool's lock: it may call the venue
                with self._lock:
                    old = self._entries.get(account)
                    if old is not None:
                        self._retire(account, old, retired)
                    entry = _Entry(version=version, trader=trader, last_used=self._clock())
                    self._entries[account] = entry
                    self._by_trader[id(trader)] = entry
                    self.builds += 1
                    trader.pooled = True
                    trader._pool_release = self._release
                    return self._hold(entry)
        finally:
            self._shutdown(retired)

    def evict(self, account: Hashable) -> None:
        """Retire the account's trader (credentials replaced, account deleted or disabled)."""
        retired: list[_Entry] = []
        with self._lock:
            entry = self._entries.get(account)
            if entry is not None:
                self._retire(account, entry, retired)
        self._shutdown(retired)

    def close_all(self) -> None:
        with self._lock:
            entries = list(self._entries.values())
            self._entries.clear()
            self._by_trader.clear()
            for entry in entries:
                entry.retired = True
        self._shutdown(entries)

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)

    # ------------------------------------------------------------------ internals
    def _hold(self, entry: _Entry) -> Any:
        entry.holders += 1
        entry.last_used = self._clock()
        return entry.trader

    def _release(self, trader: Any) -> None:
        shut: list[_Entry] = []
        with self._lock:
            entry = self._by_trader.get(id(trader))
            if entry is None or entry.trader is not trader:
                return
            entry.holders = max(0, entry.holders - 1)
            entry.last_used = self._clock()
            if entry.retired and entry.holders == 0:
                self._by_trader.pop(id(trader), None)
                shut.append(entry)
        self._shutdown(shut)

    def _retire(self, account: Hashable, entry: _Entry, out: list[_Entry]) -> None:
        """Under the lock: take it out of the pool; shut it down now if nobody holds it."""
        if self._entries.get(account) is entry:
            del self._entries[account]
        entry.retired = True
        if entry.holders == 0:
            self._by_trader.pop(id(entry.trader), None)
            out.append(entry)

    def _sweep(self, out: list[_Entry]) -> None:
        cutoff = self._clock() - self.idle_ttl
        for account, entry in list(self._entries.items()):
            if entry.last_used < cutoff:
                # Idle that long: whoever still holds it has forgotten to release it.
                entry.holders = 0
                self._retire(account, entry, out)

    def _check_fork(self) -> None:
        if os.getpid() != self._pid:  # the parent's sessions are not ours to use or close
            self._entries.clear()
            self._by_trader.clear()
            self._build_locks.clear()
            self._pid = os.getpid()

    @staticmethod
    def _shutdown(entries: list[_Entry]) -> None:
        for entry in entries:
            try:
                entry.trader.shutdown()
            except Exception:  # closing sessions must never fail a caller
                logger.debug("shutting a pooled trader down failed", exc_info=True)


_pools: weakref.WeakSet[TraderPool] = weakref.WeakSet()


@atexit.register
def _close_pools_at_exit() -> None:
    for pool in list(_pools):
        if pool._pid == os.getpid():
            pool.close_all()
