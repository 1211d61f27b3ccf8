"""Domain errors. Each has a machine-readable ``code``; the API maps each class to its HTTP status."""

from __future__ import annotations


class WalletError(Exception):
    """Base class of every business-rule failure; ``code`` is stable, ``message`` is for humans."""

    code = "wallet_error"

    def __init__(self, message: str, *, details: dict[str, object] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details  # machine-readable context, e.g. the transactions that block an action


class InvalidRequest(WalletError):
    """Input fails a business rule (amount <= 0, unknown method...)."""

    code = "invalid_request"


class NotFound(WalletError):
    """Unknown user or transaction (or a transaction of another user)."""

    code = "not_found"


class UserClosed(WalletError):
    """The user is closed: no new transactions."""

    code = "user_closed"


class InsufficientBalance(WalletError):
    """Not enough available balance (withdraw, refund of spent points)."""

    code = "insufficient_balance"


class InvalidState(WalletError):
    """The transaction's status does not allow this action."""

    code = "invalid_state"


class UserNotEmpty(WalletError):
    """A user with money or open transactions cannot be closed."""

    code = "user_not_empty"


class DepositPayable(WalletError):
    """A deposit with an attempt ECPay may still report paid cannot be cancelled (nor its user closed)."""

    code = "deposit_payable"


class AmountOutOfRange(InvalidRequest):
    """The amount does not fit ECPay's limits for the payment method."""

    code = "amount_out_of_range"


class RefundNotPossible(WalletError):
    """ECPay's rules refuse this refund now; ``code`` says why (one of ``CODES``, set per instance)."""

    code = "refund_not_possible"
    CODES = frozenset(
        {
            "refund_partial_before_close",
            "refund_rest_after_close",
            "refund_close_window",
            "refund_full_only",
            "refund_pending",
            "refund_not_configured",
            "refund_unknown_trade",
            "refund_already_cancelled",
            "refund_unknown_state",
            "refund_exceeds_remaining",
            "refund_invalid_amount",
        }
    )

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        if code not in self.CODES:
            raise ValueError(f"unknown refund refusal code {code!r}")  # every code is translated
        self.code = code


class Conflict(WalletError):
    """Username taken, or a concurrent change won; retry may help."""

    code = "conflict"


class IdempotencyMismatch(WalletError):
    """The Idempotency-Key was used with a different request body."""

    code = "idempotency_key_mismatch"


class PaymentGatewayError(WalletError):
    """ECPay could not be reached or refused the request."""

    code = "payment_gateway_error"


class InvalidPlan(InvalidRequest):
    """A recurring plan ECPay would refuse (§13.3 limits), or on a method other than card."""

    code = "invalid_recurring_plan"


class PeriodActionRefused(WalletError):
    """ECPay refused a CreditCardPeriodAction (e.g. ReAuth without a declined charge); see ``details``."""

    code = "period_action_refused"
