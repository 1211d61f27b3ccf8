"""A deposit's ECPay checkout attempts: the pure rules that derive the deposit from them, and their codec.

Every MerchantTradeNo a deposit ever had is kept as an :class:`~.models.Attempt`. An ATM/CVS code of an
earlier attempt stays payable at the bank or the store after the shopper started another attempt, so the
deposit is open (``awaiting_*``) while any attempt is live, and the transaction's own ECPay fields mirror
its *focus* attempt: the paid one, else the newest live one, else the newest.
"""

# Annotations evaluated, not postponed: the cold-start rule (docs/performance.md).

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any

from .models import (
    NO_PAYMENT_INFO,
    Attempt,
    AttemptState,
    PaymentMethod,
    Transaction,
    TransactionStatus,
)

# A deposit may be checked out this many times; beyond it the shopper cancels and starts a new deposit.
MAX_ATTEMPTS = 20

_STATUS_OF: Mapping[AttemptState, TransactionStatus] = MappingProxyType(
    {
        AttemptState.AWAITING_PAYMENT: TransactionStatus.AWAITING_PAYMENT,
        AttemptState.AWAITING_OFFLINE_PAYMENT: TransactionStatus.AWAITING_OFFLINE_PAYMENT,
        AttemptState.PAID: TransactionStatus.PAID,
        AttemptState.FAILED: TransactionStatus.FAILED,
        AttemptState.EXPIRED: TransactionStatus.EXPIRED,
    }
)


def attempts_of(txn: Transaction) -> tuple[Attempt, ...]:
    """The deposit's attempts; a record written before attempts were kept yields its one current attempt."""
    if txn.attempts or txn.merchant_trade_no is None:
        return txn.attempts
    state = {
        TransactionStatus.AWAITING_OFFLINE_PAYMENT: AttemptState.AWAITING_OFFLINE_PAYMENT,
        TransactionStatus.FAILED: AttemptState.FAILED,
        TransactionStatus.EXPIRED: AttemptState.EXPIRED,
        TransactionStatus.PAID: AttemptState.PAID,
        TransactionStatus.PARTIALLY_REFUNDED: AttemptState.PAID,
        TransactionStatus.REFUNDED: AttemptState.PAID,
    }.get(txn.status, AttemptState.AWAITING_PAYMENT)
    return (
        Attempt(
            merchant_trade_no=txn.merchant_trade_no,
            payment_method=txn.payment_method,
            state=state,
            created_at=txn.created_at,
            trade_no=txn.trade_no,
            payment_info=txn.payment_info,
            expires_at=txn.expires_at,
        ),
    )


def find_attempt(attempts: Sequence[Attempt], merchant_trade_no: str) -> int | None:
    """The index of the attempt with this MerchantTradeNo, or None."""
    for index, attempt in enumerate(attempts):
        if attempt.merchant_trade_no == merchant_trade_no:
            return index
    return None


def live_attempts(txn: Transaction) -> tuple[Attempt, ...]:
    """Attempts ECPay may still report as paid, oldest first."""
    return tuple(a for a in attempts_of(txn) if a.live)


def focus(attempts: Sequence[Attempt]) -> Attempt | None:
    """The attempt a deposit shows: the first paid one, else the newest live one, else the newest."""
    if not attempts:
        return None
    for attempt in attempts:
        if attempt.state is AttemptState.PAID:
            return attempt
    for attempt in reversed(attempts):
        if attempt.live:
            return attempt
    return attempts[-1]


def with_attempts(txn: Transaction, attempts: tuple[Attempt, ...]) -> Transaction:
    """``txn`` with ``attempts`` and its status and ECPay fields derived from the focus attempt.

    A paid, refunded or cancelled deposit keeps its status (paid is final; a cancelled deposit has no live
    attempt by construction, and a late payment is applied by the outcome rules, not here).
    """
    chosen = focus(attempts)
    if chosen is None:
        return txn._replace(attempts=attempts)
    keep_status = txn.status in (
        TransactionStatus.PAID,
        TransactionStatus.PARTIALLY_REFUNDED,
        TransactionStatus.REFUNDED,
        TransactionStatus.CANCELLED,
    )
    return txn._replace(
        attempts=attempts,
        status=txn.status if keep_status else _STATUS_OF[chosen.state],
        merchant_trade_no=chosen.merchant_trade_no,
        trade_no=chosen.trade_no,
        payment_method=chosen.payment_method or txn.payment_method,
        payment_info=chosen.payment_info,
        expires_at=chosen.expires_at,
    )


def replace_attempt(attempts: tuple[Attempt, ...], index: int, attempt: Attempt) -> tuple[Attempt, ...]:
    """A copy of ``attempts`` with the one at ``index`` replaced."""
    return (*attempts[:index], attempt, *attempts[index + 1 :])


# --- codec (shared by the store adapters and the API) ---------------------------------------------


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.astimezone(UTC).isoformat(timespec="microseconds")


def _parse(text: object) -> datetime | None:
    if text is None:
        return None
    if not isinstance(text, str):
        raise ValueError("attempt time is not a string")
    return datetime.fromisoformat(text).astimezone(UTC)


def attempt_to_json(attempt: Attempt) -> dict[str, Any]:
    """A JSON-ready object for one attempt (times ISO-8601 UTC)."""
    return {
        "merchant_trade_no": attempt.merchant_trade_no,
        "payment_method": None if attempt.payment_method is None else str(attempt.payment_method),
        "state": str(attempt.state),
        "created_at": _iso(attempt.created_at),
        "trade_no": attempt.trade_no,
        "payment_info": dict(attempt.payment_info),
        "expires_at": _iso(attempt.expires_at),
    }


def attempt_from_json(data: Mapping[str, Any]) -> Attempt:
    """Inverse of :func:`attempt_to_json`; raises ValueError on a malformed object."""
    try:
        method = data.get("payment_method")
        info = data.get("payment_info") or {}
        if not isinstance(info, Mapping) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in info.items()
        ):
            raise ValueError("attempt payment_info must map strings to strings")
        created = _parse(data["created_at"])
        if created is None:
            raise ValueError("attempt created_at is missing")
        return Attempt(
            merchant_trade_no=str(data["merchant_trade_no"]),
            payment_method=None if method is None else PaymentMethod(method),
            state=AttemptState(data["state"]),
            created_at=created,
            trade_no=data.get("trade_no"),
            payment_info=MappingProxyType(dict(info)) if info else NO_PAYMENT_INFO,
            expires_at=_parse(data.get("expires_at")),
        )
    except (KeyError, TypeError) as exc:
        raise ValueError(f"malformed attempt: {exc}") from exc


def attempts_to_json(attempts: Sequence[Attempt]) -> list[dict[str, Any]]:
    """JSON-ready list of attempts."""
    return [attempt_to_json(a) for a in attempts]


def attempts_from_json(data: object) -> tuple[Attempt, ...]:
    """Inverse of :func:`attempts_to_json`."""
    if not isinstance(data, list):
        raise ValueError("attempts must be a list")
    return tuple(attempt_from_json(item) for item in data)
