"""The fake Hyperliquid venue itself: its state (assets, marks, accounts, agents, orders,
nonces, faults, recorded requests), the server's lifecycle and the helpers tests script it with;
the endpoints and the matching live in the mixins beside this module."""

from __future__ import annotations

import threading
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from tests.fakes.hyperliquid_server.exchange import ExchangeMixin
from tests.fakes.hyperliquid_server.info import InfoMixin
from tests.fakes.hyperliquid_server.matching import MatchingMixin
from tests.fakes.hyperliquid_server.state import (
    DEFAULT_ASSETS,
    FAULTS,
    FakeAccount,
    FakeOrder,
)
from tests.fakes.hyperliquid_server.transport import TransportMixin


class HyperliquidFakeServer(TransportMixin, InfoMixin, ExchangeMixin, MatchingMixin):
    taker_fee = Decimal("0.00045")

    maker_fee = Decimal("0.00015")

    def __init__(self, *, assets: tuple[dict[str, Any], ...] = DEFAULT_ASSETS,
                 is_mainnet: bool = False, visibility_delay: float = 0.0) -> None:
        self.is_mainnet = is_mainnet
        self.visibility_delay = visibility_delay
        self.liquidity: dict[str, Decimal | None] = {}  # which phantom-agent source signatures are checked against
        self.assets = [dict(a) for a in assets]
        self.asset_index = {a["name"]: i for i, a in enumerate(self.assets)}
        self.marks = {a["name"]: Decimal(a["mark"]) for a in self.assets}
        self.mids: dict[str, Decimal] = {}  # set to differ from the mark
        self.accounts: dict[str, FakeAccount] = {}
        self.agents: dict[str, str] = {}  # agent address -> main account
        self.orders: dict[int, FakeOrder] = {}
        self.cloids: dict[tuple[str, str], FakeOrder] = {}
        self.nonces: dict[str, set[int]] = {}
        self.requests: list[dict[str, Any]] = []
        self.faults: list[dict[str, Any]] = []
        self._next_oid = 1000
        self._next_tid = 1
        self._lock = threading.RLock()
        # Websocket hook (tests/fakes/hyperliquid_ws.py): listeners get ("order", order) on
        # each status change and ("fill", user, fill), under the state lock.
        self._listeners: list[Any] = []
        self._stopping = threading.Event()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> HyperliquidFakeServer:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:  # quiet
                return None

            def do_POST(self) -> None:  # noqa: N802
                fake._handle(self)

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.02},
                                        daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    def __enter__(self) -> HyperliquidFakeServer:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    @property
    def url(self) -> str:
        assert self._httpd is not None, "server not started"
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    # ------------------------------------------------------------------ test controls
    def fund(self, address: str, amount: Decimal | str) -> FakeAccount:
        with self._lock:
            account = self._account(address)
            account.balance += Decimal(str(amount))
            return account

    def approve_agent(self, main: str, agent: str) -> None:
        with self._lock:
            self._account(main)
            self.agents[agent.lower()] = main.lower()

    def revoke_agent(self, agent: str) -> None:
        with self._lock:
            self.agents.pop(agent.lower(), None)

    def inject(self, *, kind: str, fault: str, times: int = 1, delay: float = 2.0) -> None:
        if fault not in FAULTS:
            raise ValueError(f"unknown fault {fault!r}; one of {FAULTS}")
        with self._lock:
            self.faults.append({"kind": kind, "fault": fault, "remaining": times, "delay": delay})

    def clear_faults(self) -> None:
        with self._lock:
            self.faults.clear()

    def set_mark(self, coin: str, price: Decimal | str, *, mid: Decimal | str | None = None) -> None:
        """Move the mark (and mid): resting limits and triggers that it crosses fill."""
        with self._lock:
            self.marks[coin] = Decimal(str(price))
            if mid is not None:
                self.mids[coin] = Decimal(str(mid))
            else:
                self.mids.pop(coin, None)
            self._sweep(coin)

    def set_liquidity(self, coin: str, size: Decimal | str | None) -> None:
        """What one taker order can fill at the mark (None: unlimited; otherwise > 0)."""
        if size is not None and Decimal(str(size)) <= 0:
            raise ValueError("liquidity must be positive (or None for unlimited)")
        with self._lock:
            self.liquidity[coin] = None if size is None else Decimal(str(size))

    def mid(self, coin: str) -> Decimal:
        return self.mids.get(coin, self.marks[coin])

    def account(self, address: str) -> FakeAccount:
        return self.accounts[address.lower()]

    def position(self, address: str, coin: str) -> dict[str, Decimal] | None:
        return self.account(address).positions.get(coin)

    def order_by_cloid(self, address: str, cloid: str) -> FakeOrder | None:
        return self.cloids.get((address.lower(), cloid.lower()))

    def exchange_requests(self, action_type: str | None = None) -> list[dict[str, Any]]:
        return [r for r in self.requests if r["path"] == "/exchange"
                and (action_type is None or r["kind"] == action_type)]

    def info_requests(self, info_type: str | None = None) -> list[dict[str, Any]]:
        return [r for r in self.requests if r["path"] == "/info"
                and (info_type is None or r["kind"] == info_type)]

    def placed_orders(self, address: str | None = None) -> list[FakeOrder]:
        """Every order the venue holds (each distinct oid), any status."""
        return [o for o in self.orders.values() if address is None or o.user == address.lower()]

    def clearinghouse(self, address: str) -> dict[str, Any]:
        with self._lock:
            return self._clearinghouse(address.lower())
