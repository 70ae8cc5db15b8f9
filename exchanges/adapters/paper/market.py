"""Market data for the paper venue. Django-free.

``SimulatedMarket`` is a geometric Brownian motion per symbol that is a *pure function of
wall-clock time*: every process computes the same price for the same moment without
sharing any state. The Brownian path is built by Lévy's midpoint construction (a tree of
Brownian bridges): the value at the two ends of a 2**32-second interval anchored at the
epoch is drawn first, then each midpoint given its two ends, level after level, down to
one second, and linearly within the second. The normal draw for each tree node comes from
a hash of (seed, symbol, level, node index), so evaluating one moment costs 32 hashed
draws (the upper levels are cached) and the path has exactly the configured volatility at
every time scale from a second to years.

``CcxtPublicMarket`` reads a real venue's public market data (no keys) through ccxt, for
``market_data.source: ccxt``. It is built lazily and never touched by the tests.
"""

from __future__ import annotations

import hashlib
import math
import struct
import threading
import time
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from decimal import ROUND_CEILING, ROUND_FLOOR, ROUND_HALF_EVEN, Decimal
from functools import lru_cache
from typing import Any, Protocol, runtime_checkable

from alpha_platform.common.money import ZERO, to_decimal
from exchanges.adapters.base import Candle, Ticker, utcnow
from exchanges.adapters.errors import (
    ExchangeError,
    ExchangeUnavailable,
    NetworkError,
    OperationalError,
    RateLimited,
    UnknownSymbol,
)

TIMEFRAMES: dict[str, int] = {"1m": 60, "5m": 300, "15m": 900, "1h": 3600, "4h": 14400, "1d": 86400}
SECONDS_PER_YEAR = 365.25 * 86400  # crypto trades around the clock
DEFAULT_EPOCH = datetime(2025, 1, 1, tzinfo=UTC)
LEVELS = 32  # 2**32 s (~136 years) either side of the epoch, finest node one second
_SPAN = float(1 << LEVELS)
_HALF_STD = [0.5 * math.sqrt(float(1 << (LEVELS - level))) for level in range(LEVELS)]
_ROOT_STD = math.sqrt(_SPAN)
_TWO_PI = 2.0 * math.pi
_U53 = 2.0 ** -53
_PACK = struct.Struct(">BQ")


@runtime_checkable
class PriceSource(Protocol):
    """What the engine needs from market data."""

    def price(self, symbol: str, at: datetime) -> Decimal: ...
    def path_extremes(self, symbol: str, start: datetime, end: datetime) -> tuple[Decimal, Decimal]: ...


@lru_cache(maxsize=1 << 15)
def _normal(key: bytes, level: int, index: int) -> float:
    """A standard normal draw, fixed by (key, level, index): Box-Muller on a 128-bit hash."""
    digest = hashlib.blake2b(_PACK.pack(level, index), key=key, digest_size=16).digest()
    a = int.from_bytes(digest[:8], "big")
    b = int.from_bytes(digest[8:], "big")
    u1 = ((a >> 11) + 1) * _U53  # (0, 1]: log() is safe
    u2 = (b >> 11) * _U53
    return math.sqrt(-2.0 * math.log(u1)) * math.cos(_TWO_PI * u2)


_BLOCK_LEVEL = 20  # W at the ends of 2**12-second blocks is cached: the top 20 levels are
_BLOCK_SHIFT = LEVELS - _BLOCK_LEVEL  # walked once per block, not once per evaluation


@lru_cache(maxsize=1 << 13)
def _block(key: bytes, block: int) -> tuple[float, float]:
    """W at the two ends of block ``block`` (seconds [block, block + 1) * 2**_BLOCK_SHIFT)."""
    target = block << _BLOCK_SHIFT
    a, b = 0, 1 << LEVELS
    wa, wb = 0.0, _ROOT_STD * _normal(key, 255, 0)
    shift = LEVELS
    for level in range(_BLOCK_LEVEL):
        mid = (a + b) >> 1
        wm = 0.5 * (wa + wb) + _HALF_STD[level] * _normal(key, level, a >> shift)
        shift -= 1
        if target < mid:
            b, wb = mid, wm
        else:
            a, wa = mid, wm
    return wa, wb


def _brownian(key: bytes, u: float) -> float:
    """Standard Brownian motion W(u), u in seconds from 0, W(0) = 0: Lévy's construction,
    each midpoint drawn given its interval's ends, down to one second."""
    if u <= 0.0:
        return 0.0
    if u >= _SPAN:
        u = _SPAN - 1e-6
    block = int(u) >> _BLOCK_SHIFT
    wa, wb = _block(key, block)
    a = block << _BLOCK_SHIFT
    b = a + (1 << _BLOCK_SHIFT)
    shift = _BLOCK_SHIFT
    for level in range(_BLOCK_LEVEL, LEVELS):
        mid = (a + b) >> 1
        wm = 0.5 * (wa + wb) + _HALF_STD[level] * _normal(key, level, a >> shift)
        shift -= 1
        if u < mid:
            b, wb = mid, wm
        else:
            a, wa = mid, wm
    return wa + (wb - wa) * (u - a)


def _as_utc(at: datetime) -> datetime:
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at


def _unit(value: Any) -> float:
    return float(value)


class SimulatedMarket:
    """Deterministic seeded prices for the configured symbols.

    ``symbols_config`` maps a venue symbol to ``{start_price, annual_volatility}``;
    ``start_price`` is the price at ``epoch``.
    """

    samples_per_candle = 12
    max_path_samples = 240  # path_extremes: one sample a second up to this many
    max_sync_segments = 24  # the engine may split a long sync into this many windows

    def __init__(self, seed: int | str, symbols_config: Mapping[str, Mapping[str, Any]], *,
                 price_tick: Decimal = Decimal("0.01"), quantity_step: Decimal = Decimal("0.000001"),
                 epoch: datetime = DEFAULT_EPOCH, clock: Any = utcnow) -> None:
        self.seed = seed
        self.price_tick = Decimal(price_tick)
        self.quantity_step = Decimal(quantity_step)
        self.epoch = _as_utc(epoch)
        self._clock = clock
        self._tick_f = float(self.price_tick)
        self._symbols: dict[str, tuple[float, float, bytes, bytes]] = {}
        for symbol, cfg in symbols_config.items():
            start = _unit(cfg.get("start_price"))
            vol = _unit(cfg.get("annual_volatility", 0.6))
            if start <= 0 or vol < 0:
                raise ValueError(f"{symbol}: start_price must be positive and annual_volatility >= 0")
            base = hashlib.blake2b(f"{seed}|{symbol}".encode(), digest_size=32).digest()
            self._symbols[symbol] = (
                math.log(start),
                vol / math.sqrt(SECONDS_PER_YEAR),
                hashlib.blake2b(base + b"+", digest_size=32).digest(),
                hashlib.blake2b(base + b"-", digest_size=32).digest(),
            )

    @property
    def symbols(self) -> list[str]:
        return list(self._symbols)

    def _params(self, symbol: str) -> tuple[float, float, bytes, bytes]:
        try:
            return self._symbols[symbol]
        except KeyError:
            raise UnknownSymbol(f"{symbol} is not simulated by the paper venue", venue="paper") from None

    # -- prices ---------------------------------------------------------------------------
    def _price_at_seconds(self, params: tuple[float, float, bytes, bytes], t: float) -> float:
        log0, sigma, key_fwd, key_back = params
        w = _brownian(key_fwd, t) if t >= 0 else _brownian(key_back, -t)
        return math.exp(log0 + sigma * w)

    def _round(self, value: float) -> Decimal:
        ticks = max(1, round(value / self._tick_f))
        return (Decimal(ticks) * self.price_tick).quantize(self.price_tick)

    def _seconds(self, at: datetime) -> float:
        return (_as_utc(at) - self.epoch).total_seconds()

    def price_float(self, symbol: str, at: datetime) -> float:
        return self._price_at_seconds(self._params(symbol), self._seconds(at))

    def price(self, symbol: str, at: datetime | None = None) -> Decimal:
        at = self._clock() if at is None else at
        return self._round(self.price_float(symbol, at))

    def _sample_extremes(self, params: tuple[float, float, bytes, bytes], t0: float, t1: float,
                         max_samples: int) -> tuple[float, float]:
        lo = hi = self._price_at_seconds(params, t0)
        end = self._price_at_seconds(params, t1)
        lo, hi = min(lo, end), max(hi, end)
        span = t1 - t0
        if span <= 0:
            return lo, hi
        if span <= max_samples:
            # Linear within each second: the integer seconds are the only interior extremes.
            points = range(math.floor(t0) + 1, math.ceil(t1))
            times = (float(p) for p in points)
        else:
            step = span / (max_samples + 1)
            times = (t0 + step * k for k in range(1, max_samples + 1))
        for t in times:
            p = self._price_at_seconds(params, t)
            if p < lo:
                lo = p
            elif p > hi:
                hi = p
        return lo, hi

    def path_extremes(self, symbol: str, start: datetime, end: datetime) -> tuple[Decimal, Decimal]:
        """The lowest and highest price between ``start`` and ``end`` (both included):
        exact for windows up to ``max_path_samples`` seconds, sampled beyond."""
        params = self._params(symbol)
        t0, t1 = self._seconds(start), self._seconds(end)
        if t1 < t0:
            t0, t1 = t1, t0
        lo, hi = self._sample_extremes(params, t0, t1, self.max_path_samples)
        return self._round(lo), self._round(hi)

    funding_premium_scale = 0.05  # the simulated premium: this share of last's lead over the interval's mean

    def funding_premium(self, symbol: str, start: datetime, end: datetime) -> Decimal:
        """The interval's premium index, simulated: one price, so no order book to take
        impact prices from; last's lead over the interval's average price (a lagging
        index), scaled to the size of a real premium (a 1% lead: 0.05%)."""
        params = self._params(symbol)
        t0, t1 = self._seconds(start), self._seconds(end)
        samples = [self._price_at_seconds(params, t0 + (t1 - t0) * k / 8) for k in range(9)]
        index = sum(samples) / len(samples)
        premium = self.funding_premium_scale * (samples[-1] / index - 1.0)
        return Decimal(repr(premium)).quantize(Decimal("0.00000001"), rounding=ROUND_HALF_EVEN)

    # -- candles and ticker ---------------------------------------------------------------
    def _volume(self, params: tuple[float, float, bytes, bytes], bucket_start: int, seconds: int,
                log_return: float) -> Decimal:
        log0, sigma, key_fwd, _ = params
        u = (_normal(key_fwd, 254, bucket_start & 0xFFFFFFFFFFFFFFFF) + 4.0) / 8.0  # roughly 0..1
        expected_move = sigma * math.sqrt(seconds) or 1e-12
        units_per_minute = 2_000_000.0 / math.exp(log0)  # about 2M USDT a minute
        units = units_per_minute * (seconds / 60.0) * (0.5 + max(0.0, u)) * (
            1.0 + 0.5 * abs(log_return) / expected_move)
        return Decimal(repr(units)).quantize(self.quantity_step, rounding=ROUND_HALF_EVEN)

    def candles(self, symbol: str, timeframe: str = "1m", limit: int = 100,
                end: datetime | None = None) -> list[Candle]:
        """``limit`` candles, oldest first; the last is the one forming at ``end``.

        open and close are the prices at the bucket's edges (close is the price at ``end``
        for the forming candle); high and low also sample the inside of the bucket.
        """
        try:
            seconds = TIMEFRAMES[timeframe]
        except KeyError:
            raise ExchangeError(f"Unsupported timeframe {timeframe!r}; use one of {', '.join(TIMEFRAMES)}",
                                venue="paper") from None
        params = self._params(symbol)
        end = _as_utc(self._clock() if end is None else end)
        end_unix = end.timestamp()
        epoch_unix = self.epoch.timestamp()
        last_start = int(end_unix // seconds) * seconds
        limit = max(1, min(int(limit), 1500))
        result: list[Candle] = []
        for i in range(limit - 1, -1, -1):
            b0 = last_start - i * seconds
            b1 = min(b0 + seconds, end_unix)
            t0, t1 = b0 - epoch_unix, b1 - epoch_unix
            p_open = self._price_at_seconds(params, t0)
            p_close = self._price_at_seconds(params, t1)
            lo, hi = min(p_open, p_close), max(p_open, p_close)
            n = self.samples_per_candle
            for k in range(1, n + 1):
                p = self._price_at_seconds(params, t0 + (t1 - t0) * k / (n + 1))
                lo, hi = min(lo, p), max(hi, p)
            o, c = self._round(p_open), self._round(p_close)
            result.append(Candle(
                timestamp=datetime.fromtimestamp(b0, tz=UTC),
                open=o, high=max(self._round(hi), o, c), low=min(self._round(lo), o, c), close=c,
                volume=self._volume(params, b0, int(b1 - b0) or 1, math.log(p_close / p_open)),
            ))
        return result

    def ticker(self, symbol: str, at: datetime | None = None, *, exchange: str = "paper",
               half_spread_bps: Decimal = ZERO) -> Ticker:
        at = _as_utc(self._clock() if at is None else at)
        last = self.price(symbol, at)
        before = self.price(symbol, at - timedelta(hours=24))
        change = ((last / before - 1) * 100).quantize(Decimal("0.01"), rounding=ROUND_HALF_EVEN)
        # Rounded against the taker, as the engine fills a market order.
        half = last * Decimal(half_spread_bps) / Decimal(10000)
        bid = (last - half).quantize(self.price_tick, rounding=ROUND_FLOOR)
        ask = (last + half).quantize(self.price_tick, rounding=ROUND_CEILING)
        return Ticker(symbol=symbol, last=last, mark=last, bid=bid, ask=ask,
                      change_24h_percent=change, funding_rate=None, timestamp=at, exchange=exchange)


# --------------------------------------------------------------------------- real data
class CcxtPublicMarket:
    """Public market data of a real venue through ccxt (no API keys).

    The ccxt client is created on first use; prices are cached for a couple of seconds
    (in ``cache`` when given, shared by every process using it, else in memory).
    """

    max_sync_segments = 1  # every path look-up costs a request: one window per sync
    ticker_ttl = 2.0

    def __init__(self, ccxt_id: str, *, cache: Any = None, timeout_ms: int = 10000,
                 price_tick: Decimal | None = None, clock: Any = utcnow,
                 options: Mapping[str, Any] | None = None) -> None:
        self.ccxt_id = ccxt_id
        self.cache = cache
        self.timeout_ms = timeout_ms
        self.price_tick = price_tick
        self._clock = clock
        self._options = dict(options or {})
        self._client: Any = None
        self._client_lock = threading.Lock()
        self._local: dict[str, tuple[float, Any]] = {}

    # -- plumbing -------------------------------------------------------------------------
    @property
    def client(self) -> Any:
        if self._client is None:
            with self._client_lock:
                if self._client is None:
                    import ccxt  # heavy: only when this source is really used

                    try:
                        cls = getattr(ccxt, self.ccxt_id)
                    except AttributeError:
                        raise OperationalError(f"ccxt has no exchange {self.ccxt_id!r}") from None
                    # Public market data for the simulation, outside the Guard (no
                    # account key, no shared limiter): ccxt's throttle is its one limiter.
                    self._client = cls({"enableRateLimit": True, "timeout": self.timeout_ms,
                                        "options": {"defaultType": "swap", **self._options}})
        return self._client

    def market_symbol(self, symbol: str) -> str:
        """Internal "BTC/USDT" -> ccxt's linear perpetual "BTC/USDT:USDT"."""
        if ":" in symbol or "/" not in symbol:
            return symbol
        return f"{symbol}:{symbol.split('/')[1]}"

    def _call(self, fn_name: str, *args: Any, **kwargs: Any) -> Any:
        import ccxt

        try:
            return getattr(self.client, fn_name)(*args, **kwargs)
        except ccxt.RateLimitExceeded as exc:
            raise RateLimited(f"{self.ccxt_id}: rate limited ({type(exc).__name__})", venue="paper") from None
        except ccxt.BadSymbol as exc:
            raise UnknownSymbol(f"{self.ccxt_id}: unknown symbol ({exc})"[:300], venue="paper") from None
        except (ccxt.RequestTimeout, ccxt.NetworkError) as exc:
            if isinstance(exc, ccxt.ExchangeNotAvailable):
                raise ExchangeUnavailable(f"{self.ccxt_id}: unavailable", venue="paper") from None
            raise NetworkError(f"{self.ccxt_id}: network error ({type(exc).__name__})", venue="paper") from None
        except ccxt.ExchangeError as exc:
            raise ExchangeUnavailable(f"{self.ccxt_id}: {type(exc).__name__}", venue="paper") from None

    def _cached(self, key: str, ttl: float, produce: Any) -> Any:
        full = f"paper:md:{self.ccxt_id}:{key}"
        if self.cache is not None:
            try:
                hit = self.cache.get(full)
            except Exception:  # a cache outage must not stop trading
                hit = None
            if hit is not None:
                return hit
        else:
            item = self._local.get(full)
            if item is not None and item[0] > time.monotonic():
                return item[1]
        value = produce()
        if self.cache is not None:
            try:
                self.cache.set(full, value, ttl)
            except Exception:
                pass
        else:
            self._local[full] = (time.monotonic() + ttl, value)
        return value

    def _q(self, value: Any) -> Decimal:
        d = to_decimal(value)
        return d.quantize(self.price_tick, rounding=ROUND_HALF_EVEN) if self.price_tick else d

    def _raw_ticker(self, symbol: str) -> dict[str, Any]:
        def produce() -> dict[str, Any]:
            t = self._call("fetch_ticker", self.market_symbol(symbol))
            info = t.get("info") or {}
            return {
                "last": t.get("last") or t.get("close"),
                "bid": t.get("bid"), "ask": t.get("ask"),
                "percentage": t.get("percentage"),
                "mark": t.get("markPrice") or info.get("markPrice"),
                "timestamp": t.get("timestamp"),
            }

        return self._cached(f"ticker:{symbol}", self.ticker_ttl, produce)

    def _ohlcv(self, symbol: str, timeframe: str, since_ms: int | None, limit: int) -> list[list[Any]]:
        return self._call("fetch_ohlcv", self.market_symbol(symbol), timeframe, since_ms, limit) or []

    # -- the PriceSource interface ----------------------------------------------------------
    def price(self, symbol: str, at: datetime | None = None) -> Decimal:
        now = self._clock()
        at = now if at is None else _as_utc(at)
        if abs((now - at).total_seconds()) <= 5:
            raw = self._raw_ticker(symbol)
            value = raw.get("mark") or raw.get("last")
            if value is None:
                raise ExchangeUnavailable(f"{self.ccxt_id}: no price for {symbol}", venue="paper")
            return self._q(value)
        minute_ms = int(at.timestamp() // 60 * 60 * 1000)
        closed = minute_ms + 60_000 <= now.timestamp() * 1000
        fetch = lambda: self._ohlcv(symbol, "1m", minute_ms, 1)  # noqa: E731
        # A closed minute never changes: share it for a while (every sync asks for its start).
        rows = self._cached(f"1m:{symbol}:{minute_ms}", 300.0, fetch) if closed else fetch()
        if not rows:
            raise ExchangeUnavailable(f"{self.ccxt_id}: no candle for {symbol} at {at.isoformat()}",
                                      venue="paper")
        return self._q(rows[0][1])

    def path_extremes(self, symbol: str, start: datetime, end: datetime) -> tuple[Decimal, Decimal]:
        """From one-minute candles (so a whole first minute counts) and the current price."""
        start, end = _as_utc(start), _as_utc(end)
        minutes = int((end - start).total_seconds() // 60) + 2
        rows = self._ohlcv(symbol, "1m", int(start.timestamp() // 60 * 60 * 1000), min(minutes, 1000))
        now_price = self.price(symbol, end)
        lows = [to_decimal(r[3]) for r in rows if r[3] is not None] + [now_price]
        highs = [to_decimal(r[2]) for r in rows if r[2] is not None] + [now_price]
        return self._q(min(lows)), self._q(max(highs))

    def candles(self, symbol: str, timeframe: str = "1m", limit: int = 100,
                end: datetime | None = None) -> list[Candle]:
        if timeframe not in TIMEFRAMES:
            raise ExchangeError(f"Unsupported timeframe {timeframe!r}", venue="paper")
        since = None
        if end is not None:
            since = int((_as_utc(end).timestamp() - TIMEFRAMES[timeframe] * limit) * 1000)
        rows = self._ohlcv(symbol, timeframe, since, limit)
        return [Candle(timestamp=datetime.fromtimestamp(r[0] / 1000, tz=UTC), open=self._q(r[1]),
                       high=self._q(r[2]), low=self._q(r[3]), close=self._q(r[4]),
                       volume=to_decimal(r[5], default=ZERO))
                for r in rows[-limit:]]

    def ticker(self, symbol: str, at: datetime | None = None, *, exchange: str = "paper",
               half_spread_bps: Decimal = ZERO) -> Ticker:
        raw = self._raw_ticker(symbol)
        last = self._q(raw["last"])
        return Ticker(
            symbol=symbol, last=last,
            mark=self._q(raw["mark"]) if raw.get("mark") is not None else last,
            bid=self._q(raw["bid"]) if raw.get("bid") is not None else None,
            ask=self._q(raw["ask"]) if raw.get("ask") is not None else None,
            change_24h_percent=to_decimal(raw.get("percentage"), default=None),
            funding_rate=None, timestamp=self._clock(), exchange=exchange,
        )
