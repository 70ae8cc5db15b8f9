"""A fake Binance USD-M futures REST server that ccxt's ``binanceusdm`` really talks to.

Stdlib only: a ``ThreadingHTTPServer`` on 127.0.0.1, port chosen by the OS. It serves the
endpoints the ccxt adapter uses (market data, account, orders, algo (conditional) orders,
leverage and margin type), checks API keys and HMAC signatures the way Binance does, keeps
a small one-way-mode book (orders, positions, wallet, fees), and lets tests script faults:

    with FakeBinanceFutures() as fake:
        fake.inject("POST /fapi/v1/order", "accept_then_drop")   # order placed, answer lost
        fake.inject("/fapi/v1/premiumIndex", "503", times=2)
        fake.set_mark_price("BTCUSDT", "66000")                     # triggers resting stops
        fake.count("POST", "/fapi/v1/order")                        # requests that reached it

Faults: ``timeout`` (sleep past the client timeout, request not processed), ``drop``
(connection closed, not processed), ``500`` / ``502`` / ``503``, ``429`` (with Retry-After),
``malformed_json`` (HTTP 200 with a truncated body), and the lost-answer faults, which DO
process the request: ``accept_then_drop``, ``accept_then_500`` (5xx after executing),
``accept_then_timeout`` (processed at once, answered after ``delay``), and ``accept_late``
(held for ``delay`` seconds, past the client's read timeout, THEN processed: the client sees
a timeout and its look-ups find nothing, yet the order exists afterwards, as a venue's
overloaded matching engine does).

Misbehaviour as real venues show it, beside the faults:

- ``visibility_delay`` (seconds, constructor or attribute): a new order is in the book at
  once (it fills, moves the position) but order queries (``GET /fapi/v1/order``,
  ``openOrders``, ``allOrders``, ``userTrades``) see it only after the delay, as Binance's
  query services lag its matching engine under load;
- ``set_liquidity(symbol, qty)``: what a taker can fill at the mark per order. A MARKET
  order fills that much and the rest EXPIRES (Binance: status EXPIRED, executedQty
  partial); a marketable LIMIT fills that much and rests PARTIALLY_FILLED (GTC) or expires
  (IOC). ``None`` (the default) is unlimited.

Simplifications (documented, deliberate): one-way mode only; last price == mark price;
market orders fill completely at the mark; a marketable LIMIT fills at the mark as taker;
resting LIMIT orders fill at their price (maker) when the mark crosses them; triggered
conditional orders become reduce-only MARKET orders; a client order id may be used once per
symbol for the server's lifetime (Binance rejects duplicates with -4116).

Layout: ``spec`` (symbols, faults, records), ``venue`` (state, lifecycle, test helpers,
routes), ``auth`` (signatures), ``market_data``, ``account``, ``orders`` (book and matching),
``conditional`` (algo orders and triggers), ``handler`` (the request handler and faults).
"""

from tests.fakes.binance_server.spec import (
    D0,
    FAULTS,
    INTERVAL_MS,
    MAINT_MARGIN_RATE,
    PUBLIC_PATHS,
    SYMBOLS,
    ApiError,
    Fault,
    PositionState,
    RecordedRequest,
    _fmt,
    _now_ms,
)
from tests.fakes.binance_server.venue import FakeBinanceFutures

__all__ = [
    "D0",
    "SYMBOLS",
    "PUBLIC_PATHS",
    "MAINT_MARGIN_RATE",
    "INTERVAL_MS",
    "FAULTS",
    "_now_ms",
    "_fmt",
    "ApiError",
    "Fault",
    "RecordedRequest",
    "PositionState",
    "FakeBinanceFutures",
]
