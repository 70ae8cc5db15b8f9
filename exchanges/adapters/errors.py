"""The exchange layer's own error hierarchy. Adapters map ccxt and SDK errors onto it.

- TemporaryExchangeError: may succeed later (network, 5xx, rate limited). Reads are
  retried with backoff; an order is never blindly re-sent (it is looked up first).
- InvalidOrderError: the venue refused this order (funds, precision, symbol). No retry.
- OperationalError: needs a person (bad credentials, permissions, account disabled).

Messages never contain credentials or signatures.
"""

from __future__ import annotations


class ExchangeError(Exception):
    retryable = False

    def __init__(self, message: str, *, venue: str = "", code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.venue = venue
        self.code = code

    def __str__(self) -> str:
        return self.message


class TemporaryExchangeError(ExchangeError):
    retryable = True


class ExchangeUnavailable(TemporaryExchangeError):
    """5xx, maintenance, or a malformed response."""


class NotProcessed(ExchangeUnavailable):
    """The venue answered that it did not process the request at all (the paper venue's
    simulated outage; a venue's explicit "not processed" maintenance answer): nothing was
    placed. Unlike a bare 5xx, which may come after the venue executed the order."""


class NetworkError(TemporaryExchangeError):
    """Timeout, connection refused or reset."""


class RateLimited(TemporaryExchangeError):
    def __init__(self, message: str, *, venue: str = "", code: str | None = None,
                 retry_after: float | None = None) -> None:
        super().__init__(message, venue=venue, code=code)
        self.retry_after = retry_after


class CircuitOpenError(TemporaryExchangeError):
    """The account's circuit breaker is open: calls are refused until the cool-down ends."""

    def __init__(self, message: str, *, venue: str = "", reopens_in: float = 0.0) -> None:
        super().__init__(message, venue=venue)
        self.reopens_in = reopens_in


class OrderStatusUnknown(TemporaryExchangeError):
    """An order was sent, the answer was lost, and a look-up could not settle its fate.

    The order may exist at the venue: the caller must keep it as unknown for
    reconciliation and must not send it again under a new client order id.
    """


class GuardUnavailable(ExchangeError):
    """The platform's own guard state (the shared breaker and rate-limit counters, kept in
    Redis) could not be read before sending: the order was certainly NOT sent. Not
    retryable here: the caller refuses the order clearly ("not sent") and may try later."""


class InvalidOrderError(ExchangeError):
    pass


class InsufficientFunds(InvalidOrderError):
    pass


class UnknownSymbol(InvalidOrderError):
    pass


class BadPrecision(InvalidOrderError):
    pass


class OrderNotFound(ExchangeError):
    """The venue answered that it does not know this order."""


class OperationalError(ExchangeError):
    pass


class AuthenticationError(OperationalError):
    pass


class PermissionDenied(OperationalError):
    pass
