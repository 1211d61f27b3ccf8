"""Domain error -> HTTP, decided once for every entry point. Standard library only."""

from __future__ import annotations

from dataclasses import dataclass

from ..config import ConfigError
from ..wallet import errors
from ..wallet.errors import WalletError


@dataclass(frozen=True)
class HttpError:
    """What to answer for an exception: status, stable code, a message safe to show."""

    status: int
    code: str
    message: str


# The HTTP status of each domain error, found along the error's class hierarchy: a subclass without
# an entry answers as its parent (AmountOutOfRange as InvalidRequest), and WalletError's is the default.
STATUS_OF: dict[type[WalletError], int] = {
    WalletError: 400,
    errors.InvalidRequest: 400,
    errors.NotFound: 404,
    errors.UserClosed: 409,
    errors.InsufficientBalance: 409,
    errors.InvalidState: 409,
    errors.UserNotEmpty: 409,
    errors.DepositPayable: 409,
    errors.RefundNotPossible: 409,
    errors.Conflict: 409,
    errors.PeriodActionRefused: 409,
    errors.IdempotencyMismatch: 422,
    errors.PaymentGatewayError: 502,
}


def wallet_status(exc: WalletError) -> int:
    """The HTTP status a domain error is answered with."""
    return next(STATUS_OF[cls] for cls in type(exc).__mro__ if cls in STATUS_OF)


class ApiError(Exception):
    """An HTTP error raised by a route (beyond the wallet's domain errors)."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


INTERNAL = HttpError(500, "internal_error", "internal error")
MISCONFIGURED = HttpError(503, "service_unavailable", "the service is not configured correctly")
STORE_UNAVAILABLE = HttpError(503, "store_unavailable", "the store is unavailable; retry shortly")
# Seconds a client (or ECPay, for callbacks) is asked to wait after a store outage: long enough for a
# database fail-over or a throttled DynamoDB partition to recover, short enough for a person to retry.
RETRY_AFTER_SECONDS = 5

# Exception classes that mean "the store is down or overloaded", not "this code is wrong", by
# (module, class name) anywhere in the exception's MRO. Matched by name so this module stays on the
# standard library (the callback function never imports SQLAlchemy; a laptop never imports botocore).
_OUTAGE_CLASSES = frozenset(
    {
        # SQLAlchemy: connection refused or lost, server gone, lock/busy timeouts, disk I/O and
        # "database or disk is full" (SQLite reports those as OperationalError), pool exhausted.
        ("sqlalchemy.exc", "OperationalError"),
        ("sqlalchemy.exc", "InterfaceError"),
        ("sqlalchemy.exc", "DisconnectionError"),
        ("sqlalchemy.exc", "TimeoutError"),
        # The drivers' own, in case one escapes unwrapped.
        ("sqlite3", "OperationalError"),
        ("pymysql.err", "OperationalError"),
        ("psycopg", "OperationalError"),
        # botocore: no connection, timeouts, a connection dropped mid-answer.
        ("botocore.exceptions", "EndpointConnectionError"),
        ("botocore.exceptions", "ConnectTimeoutError"),
        ("botocore.exceptions", "ReadTimeoutError"),
        ("botocore.exceptions", "ConnectionClosedError"),
        ("botocore.exceptions", "HTTPClientError"),
        # The DynamoDB adapter's own fault: contention or throttling that outlived its retries.
        ("ecpay_lambda.store.dynamodb_errors", "DynamoDBStoreError"),
    }
)
# DynamoDB error codes that say "overloaded or failing, try again later".
_OUTAGE_CODES = frozenset(
    {
        "ProvisionedThroughputExceededException",
        "RequestLimitExceeded",
        "ThrottlingException",
        "Throttling",
        "InternalServerError",
        "InternalFailure",
        "ServiceUnavailable",
        "ServiceUnavailableException",
        "LimitExceededException",
    }
)


def _is_outage_itself(exc: BaseException) -> bool:
    for cls in type(exc).__mro__:
        if (cls.__module__, cls.__name__) in _OUTAGE_CLASSES:
            return True
    if any(
        cls.__module__ == "botocore.exceptions" and cls.__name__ == "ClientError" for cls in type(exc).__mro__
    ):
        response = getattr(exc, "response", None) or {}
        error = response.get("Error") or {}
        status = (response.get("ResponseMetadata") or {}).get("HTTPStatusCode") or 0
        return str(error.get("Code", "")) in _OUTAGE_CODES or int(status) >= 500
    return False


def is_store_outage(exc: BaseException) -> bool:
    """True when ``exc`` (or an exception it was raised from) means the store is unreachable or overloaded.

    A SQLAlchemy error that invalidated its connection counts too (the server went away mid-query).
    """
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if _is_outage_itself(current) or getattr(current, "connection_invalidated", False):
            return True
        current = current.__cause__ or current.__context__
    return False


def to_http_error(exc: BaseException) -> HttpError:
    """Map a domain error to its 4xx (or 502); a store outage to 503; anything else is a fault."""
    if isinstance(exc, WalletError):
        return HttpError(wallet_status(exc), exc.code, exc.message)
    if isinstance(exc, ConfigError):
        return MISCONFIGURED
    if is_store_outage(exc):
        return STORE_UNAVAILABLE
    return INTERNAL
