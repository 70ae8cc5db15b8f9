"""Outbound HTTP to servers a user names (their own OpenAI-compatible base URL): the
SSRF guard, a bounded response body and a wall-clock bound per call. Django-free.

The rule (``OutboundPolicy``):
- a host in the operator's allow-list (``host`` or ``host:port`` entries; the platform's own
  ``OPENAI_BASE_URL`` is added by the caller) is reached as configured, http or https;
- any other host must be https, and every address it resolves to must be public: loopback,
  private, link-local (169.254.0.0/16, the cloud metadata service), multicast, reserved,
  unspecified, shared (100.64.0.0/10) and other non-global ranges are refused, IPv4 and IPv6,
  including IPv4 addresses embedded in IPv6 (``::ffff:127.0.0.1``, 6to4, NAT64);
- redirects are never followed (``guarded_http_client`` sets ``follow_redirects=False``).

``check_url`` applies the rule to a URL (when a user saves one, and before a client is built).
Every lookup is bounded: ``getaddrinfo`` runs in a small shared thread pool and is waited for
at most ``timeout`` seconds (``check_url``; 5 s by default) or the time left before the
``deadline(...)`` (connect time); past it, ``ResolutionTimeout``. A name whose nameserver
never answers thus cannot hold a caller past its bound (the lookup itself runs on in the
pool until the resolver gives up).
``GuardedTransport`` applies it again at connect time: its network backend resolves the host
itself, checks every address and connects to a checked address (TLS still verifies the
certificate against the host name), so a DNS answer that changes between the check and the
connection (rebinding) cannot reach a refused address. The same transport asks for an
uncompressed body and refuses one over ``max_response_bytes`` without reading it whole, and
clamps every connect/read/write to the deadline of ``deadline(...)`` when one is set.

Errors are ``OutboundError`` subclasses, deliberately not ``httpx2`` errors: the openai SDK
re-raises them as they are instead of retrying (nothing was sent for a refusal; an oversized
reply would only come again). The one exception is ``ResolutionTimeout``, which is also an
``httpcore2.ConnectTimeout``: at connect time httpx2 turns it into its ``ConnectTimeout``,
which the model client treats as any connect timeout (a temporary error, retried only while
the call's bound leaves time).
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import ipaddress
import socket
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any
from urllib.parse import urlsplit

import httpcore2
import httpx2

DEFAULT_MAX_RESPONSE_BYTES = 256 * 1024
DEFAULT_RESOLVE_SECONDS = 5.0  # a lookup's bound when the caller gives none
RESOLVER_THREADS = 8
_NAT64 = ipaddress.ip_network("64:ff9b::/96")


class OutboundError(Exception):
    """An outbound call was not made, or its answer not accepted."""


class OutboundRefused(OutboundError):
    """The URL or the address it resolves to is not allowed."""


class ResponseTooLarge(OutboundError):
    """The server's answer is larger than the bound."""


class ResolutionTimeout(OutboundRefused, httpcore2.ConnectTimeout):
    """The host name did not resolve within the time allowed. Refused by ``check_url`` like a
    name that does not resolve; at connect time a connect timeout (see the module docstring)."""


# --------------------------------------------------------------------------- bounded lookups

_pool: concurrent.futures.ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()


def _resolver_pool() -> concurrent.futures.ThreadPoolExecutor:
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = concurrent.futures.ThreadPoolExecutor(max_workers=RESOLVER_THREADS,
                                                          thread_name_prefix="outbound-resolve")
        return _pool


def resolve_within(host: str, port: int, timeout: float, *,
                   resolver: Callable[..., Any] | None = None) -> Any:
    """``resolver(host, port, type=SOCK_STREAM)`` (default ``socket.getaddrinfo``, looked up
    at call time), waited for at most ``timeout`` seconds, the wait for a free pool thread
    included; ResolutionTimeout past it. The resolver's own errors are raised as they are."""
    resolver = resolver or socket.getaddrinfo
    if not timeout > 0:  # also NaN
        raise ResolutionTimeout(f"no time left to resolve the host {host}")
    future = _resolver_pool().submit(resolver, host, port, type=socket.SOCK_STREAM)
    done, _ = concurrent.futures.wait((future,), timeout=timeout)
    if not done:
        future.cancel()  # still queued: never run; running: left to the resolver's own timeouts
        raise ResolutionTimeout(f"the host {host} did not resolve within {timeout:g}s")
    return future.result()


# --------------------------------------------------------------------------- addresses


def address_kind(address: str | ipaddress.IPv4Address | ipaddress.IPv6Address) -> str | None:
    """What kind of non-public address ``address`` is ("loopback", "private", ...), or None
    if it is a public one."""
    ip = ipaddress.ip_address(address) if isinstance(address, str) else address
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = ip.ipv4_mapped or ip.sixtofour
        if embedded is None and ip in _NAT64:
            embedded = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
        if embedded is not None:
            inner = address_kind(embedded)
            if inner:
                return f"{inner} (embedded {embedded})"
    for attribute, label in (("is_unspecified", "unspecified"), ("is_loopback", "loopback"),
                             ("is_link_local", "link-local"), ("is_multicast", "multicast"),
                             ("is_reserved", "reserved"), ("is_private", "private")):
        if getattr(ip, attribute):
            return label
    if not ip.is_global:
        return "non-public"
    return None


def address_refusal(address: str | ipaddress.IPv4Address | ipaddress.IPv6Address) -> str | None:
    """Why ``address`` must not be contacted ("127.0.0.1 is a loopback address"), or None."""
    kind = address_kind(address)
    return None if kind is None else f"{address} is {_a(kind)} address"


def _a(word: str) -> str:
    return f"{'an' if word[:1] in 'aeiou' else 'a'} {word}"


def _norm_host(host: str) -> str:
    host = (host or "").strip().lower().rstrip(".")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return host


def parse_allowed(entries: Iterable[str]) -> frozenset[tuple[str, int | None]]:
    """``host``, ``host:port``, ``[v6]``, ``[v6]:port`` or a bare IPv6 address, as (host, port|None)."""
    allowed: set[tuple[str, int | None]] = set()
    for raw in entries or ():
        entry = (raw or "").strip().lower()
        if not entry:
            continue
        port: int | None = None
        if entry.startswith("["):
            host, _, rest = entry[1:].partition("]")
            if rest.startswith(":") and rest[1:].isdigit():
                port = int(rest[1:])
        elif entry.count(":") == 1:
            host, _, text = entry.partition(":")
            port = int(text) if text.isdigit() else None
        else:
            host = entry
        allowed.add((_norm_host(host), port))
    return frozenset(allowed)


def url_host_port(url: str) -> tuple[str, str, int]:
    """(scheme, host, port) of an http(s) URL; OutboundRefused if it is not one."""
    try:
        parts = urlsplit((url or "").strip())
        port = parts.port
    except ValueError as exc:
        raise OutboundRefused(f"the URL is not valid ({exc})") from None
    scheme = (parts.scheme or "").lower()
    if scheme not in ("http", "https"):
        raise OutboundRefused("only http and https URLs are allowed")
    host = _norm_host(parts.hostname or "")
    if not host:
        raise OutboundRefused("the URL has no host")
    return scheme, host, port or (443 if scheme == "https" else 80)


def allowed_hosts(entries: Iterable[str], *operator_urls: str) -> list[str]:
    """The allow-list plus the host:port of each of the operator's own base URLs."""
    result = [e for e in entries or () if (e or "").strip()]
    for url in operator_urls:
        if url:
            try:
                _, host, port = url_host_port(url)
            except OutboundRefused:
                continue
            result.append(f"[{host}]:{port}" if ":" in host else f"{host}:{port}")
    return result


class OutboundPolicy:
    """``allowed``: the allow-list entries, or a callable returning them (read on every check,
    so a change of settings applies to a long-lived client)."""

    def __init__(self, allowed: Iterable[str] | Callable[[], Iterable[str]] = (), *,
                 resolver: Callable[..., Any] | None = None) -> None:
        self._allowed = allowed
        self._resolve = resolver

    def allowed(self) -> frozenset[tuple[str, int | None]]:
        entries = self._allowed() if callable(self._allowed) else self._allowed
        return parse_allowed(entries)

    def is_allowed(self, host: str, port: int) -> bool:
        host = _norm_host(host)
        allowed = self.allowed()
        return (host, None) in allowed or (host, int(port)) in allowed

    def check_scheme(self, scheme: str, host: str, port: int) -> None:
        if scheme != "https" and not self.is_allowed(host, port):
            shown = f"[{host}]" if ":" in host else host
            raise OutboundRefused(f"{scheme}://{shown}:{port} is refused: a model server must use https "
                                  f"unless the operator allows its host (LLM_ALLOWED_HOSTS)")

    def public_addresses(self, host: str, port: int, *, timeout: float | None = None) -> list[str]:
        """The addresses to connect to: every one ``host`` resolves to, all of them public.
        The lookup ends within ``timeout`` seconds (None: ``DEFAULT_RESOLVE_SECONDS``) and
        within the ``deadline(...)`` if one is set, else ResolutionTimeout."""
        host = _norm_host(host)
        limit = _clamp(DEFAULT_RESOLVE_SECONDS if timeout is None else timeout, ResolutionTimeout)
        try:
            infos = resolve_within(host, port, limit, resolver=self._resolve)
        except (OSError, UnicodeError) as exc:
            raise OutboundRefused(f"the host {host} does not resolve ({exc})") from None
        addresses = list(dict.fromkeys(info[4][0] for info in infos))
        if not addresses:
            raise OutboundRefused(f"the host {host} does not resolve")
        for address in addresses:
            kind = address_kind(address.split("%", 1)[0])
            if kind:
                what = (f"{address} is {_a(kind)} address" if address == host
                        else f"{host} resolves to {address}, {_a(kind)} address")
                raise OutboundRefused(f"refused: {what}; model servers must be on public addresses "
                                      f"unless the operator allows the host (LLM_ALLOWED_HOSTS)")
        return addresses

    def check_url(self, url: str, *, timeout: float | None = None) -> None:
        """Raise OutboundRefused, naming why, unless ``url`` may be contacted. The host's lookup
        ends within ``timeout`` seconds (None: ``DEFAULT_RESOLVE_SECONDS``), else
        ResolutionTimeout (an OutboundRefused)."""
        scheme, host, port = url_host_port(url)
        if self.is_allowed(host, port):
            return
        self.check_scheme(scheme, host, port)
        self.public_addresses(host, port, timeout=timeout)


def check_url(url: str, *, allowed: Iterable[str] = (), timeout: float | None = None) -> None:
    OutboundPolicy(list(allowed)).check_url(url, timeout=timeout)


# --------------------------------------------------------------------------- the deadline

_local = threading.local()


@contextlib.contextmanager
def deadline(at: float | None) -> Iterator[None]:
    """Within the block, every connect/read/write of a ``GuardedTransport`` in this thread
    ends by ``at`` (a ``time.monotonic()`` value); None: no bound."""
    previous = getattr(_local, "deadline", None)
    _local.deadline = at if previous is None or at is None else min(at, previous)
    try:
        yield
    finally:
        _local.deadline = previous


def _clamp(timeout: float | None, error: type[Exception]) -> float | None:
    at = getattr(_local, "deadline", None)
    if at is None:
        return timeout
    remaining = at - time.monotonic()
    if remaining <= 0:
        raise error("the call's time bound has passed")
    return remaining if timeout is None else min(timeout, remaining)


class _GuardedStream(httpcore2.NetworkStream):
    def __init__(self, stream: httpcore2.NetworkStream) -> None:
        self._stream = stream

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._stream.read(max_bytes, _clamp(timeout, httpcore2.ReadTimeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._stream.write(buffer, _clamp(timeout, httpcore2.WriteTimeout))

    def close(self) -> None:
        self._stream.close()

    def start_tls(self, ssl_context: Any, server_hostname: str | None = None,
                  timeout: float | None = None) -> httpcore2.NetworkStream:
        return _GuardedStream(self._stream.start_tls(ssl_context, server_hostname,
                                                     _clamp(timeout, httpcore2.ConnectTimeout)))

    def get_extra_info(self, info: str) -> Any:
        return self._stream.get_extra_info(info)


class GuardedBackend(httpcore2.SyncBackend):
    """Resolves, checks and connects to a checked address (no second lookup to rebind)."""

    def __init__(self, policy: OutboundPolicy | None) -> None:
        self.policy = policy

    def connect_tcp(self, host: str, port: int, timeout: float | None = None, local_address: str | None = None,
                    socket_options: Any = None) -> httpcore2.NetworkStream:
        bound = _clamp(timeout, httpcore2.ConnectTimeout)
        if self.policy is None or self.policy.is_allowed(host, port):
            targets = [host]
        else:  # the lookup gets the connect timeout, cut at the deadline
            targets = self.policy.public_addresses(host, port, timeout=bound)
        failure: Exception | None = None
        for target in targets:
            try:  # the time the lookup (and any earlier address) took is no longer left
                stream = super().connect_tcp(target, port, _clamp(timeout, httpcore2.ConnectTimeout),
                                             local_address, socket_options)
            except (httpcore2.ConnectError, httpcore2.ConnectTimeout) as exc:
                failure = exc
                continue
            return _GuardedStream(stream)
        assert failure is not None
        raise failure

    def connect_unix_socket(self, *args: Any, **kwargs: Any) -> httpcore2.NetworkStream:
        raise OutboundRefused("unix sockets are not used for outbound calls")


class _BoundedBody(httpx2.SyncByteStream):
    def __init__(self, stream: Any, limit: int) -> None:
        self._stream, self._limit = stream, limit

    def __iter__(self) -> Iterator[bytes]:
        total = 0
        for chunk in self._stream:
            total += len(chunk)
            if total > self._limit:
                raise ResponseTooLarge(f"the server's reply is larger than {self._limit} bytes")
            yield chunk

    def close(self) -> None:
        close = getattr(self._stream, "close", None)
        if callable(close):
            close()


class GuardedTransport(httpx2.HTTPTransport):
    """httpx2 transport: the policy at request and connect time, a bounded body, the deadline.
    No proxy (an environment proxy would make the address check moot)."""

    def __init__(self, policy: OutboundPolicy | None, *, max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
                 limits: httpx2.Limits | None = None, verify: Any = True) -> None:
        limits = limits or httpx2.Limits(max_connections=1000, max_keepalive_connections=100)
        self.policy = policy
        self.max_response_bytes = int(max_response_bytes)
        self._pool = httpcore2.ConnectionPool(
            ssl_context=httpx2.create_ssl_context(verify=verify),
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=GuardedBackend(policy),
        )

    def handle_request(self, request: httpx2.Request) -> httpx2.Response:
        url = request.url
        if self.policy is not None:
            port = url.port or (443 if url.scheme == "https" else 80)
            if url.scheme not in ("http", "https"):
                raise OutboundRefused("only http and https URLs are allowed")
            self.policy.check_scheme(url.scheme, url.host, port)
        # A compressed body could inflate far past the bound after it was counted.
        request.headers["Accept-Encoding"] = "identity"
        response = super().handle_request(request)
        encoding = (response.headers.get("content-encoding") or "identity").strip().lower()
        length = response.headers.get("content-length") or ""
        problem = None
        if encoding not in ("", "identity"):
            problem = ResponseTooLarge(f"the server compressed its reply ({encoding}) though none was asked for")
        elif length.strip().isdigit() and int(length) > self.max_response_bytes:
            problem = ResponseTooLarge(f"the server's reply is larger than {self.max_response_bytes} bytes "
                                       f"(Content-Length {int(length)})")
        if problem is not None:
            response.close()
            raise problem
        return httpx2.Response(status_code=response.status_code, headers=response.headers,
                               stream=_BoundedBody(response.stream, self.max_response_bytes),
                               extensions=response.extensions)


def guarded_http_client(policy: OutboundPolicy | None = None, *,
                        max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES) -> httpx2.Client:
    """An httpx2 client for the openai SDK: the guarded transport and no redirects followed."""
    return httpx2.Client(transport=GuardedTransport(policy, max_response_bytes=max_response_bytes),
                         follow_redirects=False, timeout=httpx2.Timeout(600.0, connect=5.0))

