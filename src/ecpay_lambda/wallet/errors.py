"""Domain errors. Each has a machine-readable ``code`` and an HTTP-ish ``status`` the API maps once."""

from __future__ import annotations


class WalletError(Exception):
    """Base class of every business-rule failure; ``code`` is stable, ``message`` is for humans."""

    code = "wallet_error"
    status = 400

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidRequest(WalletError):
    """Input fails a business rule (amount <= 0, unknown method...)."""

    code = "invalid_request"
    status = 400


class NotFound(WalletError):
    """Unknown user or transaction (or a transaction of another user)."""

    code = "not_found"
    status = 404


class UserClosed(WalletError):
    """The user is closed: no new transactions."""

    code = "user_closed"
    status = 409


class InsufficientBalance(WalletError):
    """Not enough available balance (withdraw, refund of spent points)."""

    code = "insufficient_balance"
    status = 409


class InvalidState(WalletError):
    """The transaction's status does not allow this action."""

    code = "invalid_state"
    status = 409


class UserNotEmpty(WalletError):
    """A user with money or open transactions cannot be closed."""

    code = "user_not_empty"
    status = 409


class Conflict(WalletError):
    """Username taken, or a concurrent change won; retry may help."""

    code = "conflict"
    status = 409


class IdempotencyMismatch(WalletError):
    """The Idempotency-Key was used with a different request body."""

    code = "idempotency_key_mismatch"
    status = 422


class PaymentGatewayError(WalletError):
    """ECPay could not be reached or refused the request."""

    code = "payment_gateway_error"
    status = 502
