"""The operator and user use cases' decisions: pure functions from what was read to one atomic write.

Each ``decide_*`` takes the records a use case read (None when missing) and its inputs, and returns a
:class:`~.port.Decision` (its result and the ``AtomicWrite`` that makes it true) or raises the domain
error that refuses it. No I/O, no clock, no store: ``WalletService`` reads through
``WalletStore.run`` (one store transaction), and the unit tests call these directly
(tests/unit/wallet/test_decisions.py). ECPay's notification outcomes have theirs in :mod:`.outcomes`.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Literal, TypeVar

from ..ecpay.errors import EcpayValidationError
from ..ecpay.limits import AmountLimits
from . import errors
from .attempts import MAX_ATTEMPTS, attempts_of, live_attempts, with_attempts
from .ledger import ledger_entry
from .models import (
    OPEN_STATUSES,
    Attempt,
    AttemptState,
    IdempotencyRecord,
    LedgerEntry,
    PaymentMethod,
    Transaction,
    TransactionStatus,
    TransactionType,
    User,
    UserStatus,
)
from .outcomes import CREDITABLE, PAID_FAMILY
from .port import AtomicWrite, Decision, TransactionPut, UserDelta

if TYPE_CHECKING:
    from ..ecpay.card_refunds import RefundPlan

T = TypeVar("T")

IDEMPOTENCY_TTL = timedelta(hours=24)
# Statuses from which a deposit may start a (new) ECPay checkout attempt.
CHECKOUT_FROM = CREDITABLE - {TransactionStatus.CANCELLED}

WithdrawAction = Literal["complete", "cancel"]


def describe_attempt(attempt: Attempt) -> str:
    """One line naming an attempt that can still be paid, for error messages."""
    method = attempt.payment_method or "ECPay"
    if attempt.state is AttemptState.AWAITING_OFFLINE_PAYMENT:
        until = f" until {attempt.expires_at.isoformat()}" if attempt.expires_at else ""
        return f"{attempt.merchant_trade_no} ({method} code payable{until})"
    return f"{attempt.merchant_trade_no} ({method} checkout ECPay may still complete)"


def idempotency_record(
    user_id: str, key: str | None, fp: str, transaction_id: str, now: datetime
) -> IdempotencyRecord | None:
    """The record a keyed request writes with its transaction (None without a key)."""
    if key is None:
        return None
    return IdempotencyRecord(
        user_id=user_id,
        key=key,
        request_fingerprint=fp,
        transaction_id=transaction_id,
        created_at=now,
        expires_at=now + IDEMPOTENCY_TTL,
    )


def check_method_amount(limits: AmountLimits, method: PaymentMethod | None, amount: int) -> None:
    """ECPay's single-order limits for the method (protocol page §13.2; ``AmountOutOfRange``)."""
    if method is None:
        return
    try:
        limits.check(method.value, amount)
    except EcpayValidationError as exc:
        raise errors.AmountOutOfRange(f"amount {amount} TWD: {exc.reason}") from None


def own(txn: Transaction | None, user_id: str, transaction_id: str) -> Transaction:
    """``txn`` when it is ``user_id``'s; ``NotFound`` otherwise (another user's is reported as missing)."""
    if txn is None or txn.user_id != user_id:
        raise errors.NotFound(f"transaction {transaction_id} not found")
    return txn


def _open_delta(old: Transaction, new: Transaction) -> int:
    return int(new.status in OPEN_STATUSES) - int(old.status in OPEN_STATUSES)


def _next(txn: Transaction, now: datetime, status: TransactionStatus) -> Transaction:
    return txn._replace(status=status, version=txn.version + 1, updated_at=now)


# -- create ---------------------------------------------------------------------------------------


def decide_create(
    user: User | None,
    txn: Transaction,
    idempotency: IdempotencyRecord | None,
) -> Decision[Transaction]:
    """A new deposit (pending, counted open) or withdraw (amount moved from balance to held).

    ``txn`` is the new transaction (version 1). The store refuses the write when the balance is too
    low (``InsufficientFunds``) or the user closed meanwhile (``UserNotActive``).
    """
    if user is None:
        raise errors.NotFound(f"user {txn.user_id} not found")
    if user.status is UserStatus.CLOSED:
        raise errors.UserClosed(f"user {txn.user_id} is closed")
    return Decision(txn, create_write(txn, idempotency))


def create_write(txn: Transaction, idempotency: IdempotencyRecord | None) -> AtomicWrite:
    """What creating ``txn`` writes, its checks on the user carried by the write's own conditions.

    The ``UserDelta`` requires an active user and counters that stay >= 0, so the write alone refuses
    a missing or closed user (``UserNotActive``) and a withdrawal above the balance
    (``InsufficientFunds``): the service needs no read of the user first (:func:`decide_create` is
    the same write after a read).
    """
    if txn.transaction_type is TransactionType.WITHDRAW:
        delta = UserDelta(txn.user_id, -txn.amount, txn.amount, 1, require_active=True)
        ledger: tuple[LedgerEntry, ...] = (
            ledger_entry(txn, "withdraw_hold", -txn.amount, txn.amount, txn.updated_at),
        )
    else:
        delta = UserDelta(txn.user_id, delta_open=1, require_active=True)
        ledger = ()
    return AtomicWrite(
        transactions=(TransactionPut(txn, 0),), user_delta=delta, ledger=ledger, idempotency=idempotency
    )


# -- withdraw: complete or cancel ----------------------------------------------------------------


def decide_withdraw_action(
    txn: Transaction | None, user_id: str, transaction_id: str, action: WithdrawAction, now: datetime
) -> Decision[Transaction | None]:
    """Complete (held paid out) or cancel (held back to balance) a pending withdraw.

    Result None: ``txn`` is a deposit and ``action`` is cancel, which is :func:`decide_cancel_deposit`'s
    job (the caller runs that use case instead).
    """
    txn = own(txn, user_id, transaction_id)
    if txn.transaction_type is TransactionType.DEPOSIT and action == "cancel":
        return Decision(None)
    if txn.transaction_type is not TransactionType.WITHDRAW:
        raise errors.InvalidState(
            f"a {txn.transaction_type} cannot be {action}d by an operator; deposits are settled by ECPay only"
        )
    if txn.status is not TransactionStatus.PENDING:
        raise errors.InvalidState(f"withdraw {transaction_id} is already {txn.status}")
    if action == "complete":
        new = _next(txn, now, TransactionStatus.COMPLETED)
        delta = UserDelta(user_id, 0, -txn.amount, -1)
        entry = ledger_entry(new, "withdraw_complete", 0, -txn.amount, now)
    else:
        new = _next(txn, now, TransactionStatus.CANCELLED)
        delta = UserDelta(user_id, txn.amount, -txn.amount, -1)
        entry = ledger_entry(new, "withdraw_cancel", txn.amount, -txn.amount, now)
    write = AtomicWrite(transactions=(TransactionPut(new, txn.version),), user_delta=delta, ledger=(entry,))
    return Decision(new, write)


# -- cancel an unpaid deposit ---------------------------------------------------------------------


def decide_cancel_deposit(
    txn: Transaction | None, user_id: str, transaction_id: str, now: datetime, *, asked_ecpay: bool
) -> Decision[Transaction | None]:
    """Cancel an unpaid deposit, only when no checkout attempt can still be paid.

    Result None: attempts may still be payable and ECPay was not asked yet (``asked_ecpay``): the
    caller asks ECPay about them, then decides again. Asked already: ``DepositPayable`` names them.
    """
    txn = own(txn, user_id, transaction_id)
    if txn.transaction_type is not TransactionType.DEPOSIT:
        raise errors.InvalidState("only a deposit can be cancelled this way")
    if txn.status is TransactionStatus.CANCELLED:
        raise errors.InvalidState(f"deposit {transaction_id} is already cancelled")
    if txn.status in PAID_FAMILY:
        raise errors.InvalidState(f"deposit {transaction_id} is {txn.status}; refund it instead")
    live = live_attempts(txn)
    if live and not asked_ecpay:
        return Decision(None)
    if live:
        raise errors.DepositPayable(
            f"deposit {transaction_id} can still be paid: "
            + "; ".join(describe_attempt(a) for a in live)
            + ". It can be cancelled once ECPay reports these attempts failed or expired.",
            details={"attempts": [a.merchant_trade_no for a in live]},
        )
    new = txn._replace(
        status=TransactionStatus.CANCELLED,
        version=txn.version + 1,
        updated_at=now,
        next_check_at=None,
        check_count=0,
    )
    opened = _open_delta(txn, new)
    delta = UserDelta(user_id, delta_open=opened) if opened else None
    return Decision(new, AtomicWrite(transactions=(TransactionPut(new, txn.version),), user_delta=delta))


# -- checkout -------------------------------------------------------------------------------------


def decide_checkout(
    txn: Transaction | None,
    user_id: str,
    transaction_id: str,
    *,
    wanted: PaymentMethod | None,
    merchant_trade_no: Callable[[str], str],
    now: datetime,
    next_check_at: datetime,
    limits: AmountLimits,
    form: Callable[[Transaction, PaymentMethod], T],
) -> Decision[T]:
    """A new checkout attempt of an unpaid deposit (earlier attempts kept: an issued code stays payable).

    ``merchant_trade_no(transaction_id)`` names the new attempt (asked only once the deposit is known
    to be checkable). ``form(attempted, method)`` builds the signed checkout form before anything is
    stored (a request ECPay would refuse changes nothing); it is the decision's result.
    """
    txn = own(txn, user_id, transaction_id)
    if txn.transaction_type is not TransactionType.DEPOSIT:
        raise errors.InvalidState("only a deposit can be paid through ECPay")
    if txn.status not in CHECKOUT_FROM:
        raise errors.InvalidState(f"deposit {transaction_id} is {txn.status}")
    method = wanted or txn.payment_method or PaymentMethod.ALL
    if txn.plan is not None and method is not PaymentMethod.CREDIT:
        raise errors.InvalidRequest("a recurring deposit is paid by card (Credit) only")
    check_method_amount(limits, method, txn.amount)
    previous = attempts_of(txn)
    if len(previous) >= MAX_ATTEMPTS:
        raise errors.InvalidState(
            f"deposit {transaction_id} was checked out {MAX_ATTEMPTS} times; "
            "cancel it and create a new deposit"
        )
    started = Attempt(
        merchant_trade_no=merchant_trade_no(txn.transaction_id),
        payment_method=method,
        state=AttemptState.AWAITING_PAYMENT,
        created_at=now,
    )
    attempted = with_attempts(txn, (*previous, started))._replace(
        version=txn.version + 1,
        updated_at=now,
        payment_method=method,
        next_check_at=next_check_at,
        check_count=0,
    )
    result = form(attempted, method)
    delta = UserDelta(user_id, delta_open=_open_delta(txn, attempted), require_active=True)
    write = AtomicWrite(transactions=(TransactionPut(attempted, txn.version),), user_delta=delta)
    return Decision(result, write)


# -- refund ---------------------------------------------------------------------------------------


def refundable(deposit: Transaction | None, user_id: str, transaction_id: str, amount: int | None) -> int:
    """The amount a refund of ``deposit`` would give back now (``amount``, or all that remains), or the
    domain error refusing any refund of it."""
    deposit = own(deposit, user_id, transaction_id)
    if deposit.transaction_type is not TransactionType.DEPOSIT:
        raise errors.InvalidState("only a deposit can be refunded")
    if deposit.status not in PAID_FAMILY:
        raise errors.InvalidState(f"deposit {transaction_id} is {deposit.status}, not paid")
    paid_by = deposit.payment_info.get("payment_type", "")
    is_card = paid_by.startswith("Credit") or (not paid_by and deposit.payment_method is PaymentMethod.CREDIT)
    if not is_card or not deposit.trade_no or not deposit.merchant_trade_no:
        raise errors.InvalidState(
            "only a credit-card deposit can be refunded through ECPay "
            "(ATM and convenience-store payments are refunded outside ECPay's API)"
        )
    if deposit.related_transaction_id is not None:
        raise errors.RefundNotPossible(
            "refund_pending",
            f"refund {deposit.related_transaction_id} of this deposit is still being settled with ECPay",
        )
    remaining = deposit.amount - deposit.refunded_amount
    value = remaining if amount is None else amount
    if remaining <= 0:
        raise errors.InvalidState(f"deposit {transaction_id} is fully refunded")
    if value > remaining:
        raise errors.InvalidRequest(f"at most {remaining} can still be refunded")
    return value


def decide_refund(
    deposit: Transaction,
    refund_id: str,
    value: int,
    plan: RefundPlan,
    trade_state: str,
    *,
    now: datetime,
    next_check_at: datetime,
    idempotency: IdempotencyRecord | None,
) -> Decision[Transaction]:
    """The pending refund of ``value`` from a paid card deposit, and the points leaving the wallet.

    ``deposit`` is the one the plan was made for (:func:`refundable` passed on it); the write's
    compare-and-set on its version refuses the refund if it changed since.
    """
    refund = Transaction(
        transaction_id=refund_id,
        user_id=deposit.user_id,
        transaction_type=TransactionType.REFUND,
        amount=value,
        status=TransactionStatus.PENDING,
        version=1,
        created_at=now,
        updated_at=now,
        payment_method=deposit.payment_method,
        merchant_trade_no=deposit.merchant_trade_no,
        trade_no=deposit.trade_no,
        related_transaction_id=deposit.transaction_id,
        payment_info={"plan": ",".join(plan.actions), "trade_state": trade_state},
        next_check_at=next_check_at,
    )
    dep = deposit._replace(
        version=deposit.version + 1,
        updated_at=now,
        refunded_amount=deposit.refunded_amount + value,
        related_transaction_id=refund.transaction_id,
    )
    write = AtomicWrite(
        transactions=(TransactionPut(refund, 0), TransactionPut(dep, deposit.version)),
        # The points leave the wallet before the money leaves ECPay: never both kept.
        user_delta=UserDelta(deposit.user_id, delta_balance=-value, delta_open=1),
        ledger=(ledger_entry(refund, "refund", -value, 0, now),),
        idempotency=idempotency,
    )
    return Decision(refund, write)
