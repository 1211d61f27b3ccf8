"""The wallet's domain records. Money is an ``int`` of New Taiwan dollars, never a float.

The records are immutable ``NamedTuple``s (change one with ``record._replace(field=value)``), not
dataclasses: every Lambda function imports this module (the cold-start rule, docs/performance.md).
"""

# Annotations evaluated, not postponed: the cold-start rule (docs/performance.md).

from collections.abc import Mapping
from datetime import datetime
from enum import StrEnum
from types import MappingProxyType
from typing import Generic, NamedTuple, TypeVar

from .invoice_state import NO_BUYER, InvoiceState


class UserStatus(StrEnum):
    """A user is active until closed; closing keeps every record."""

    ACTIVE = "active"
    CLOSED = "closed"


class TransactionType(StrEnum):
    """What a transaction does to the wallet."""

    DEPOSIT = "deposit"
    WITHDRAW = "withdraw"
    REFUND = "refund"


class TransactionStatus(StrEnum):
    """Every status of every transaction type (design §2 lifecycles)."""

    PENDING = "pending"
    AWAITING_PAYMENT = "awaiting_payment"
    AWAITING_OFFLINE_PAYMENT = "awaiting_offline_payment"
    PAID = "paid"
    FAILED = "failed"
    EXPIRED = "expired"
    REFUNDED = "refunded"
    PARTIALLY_REFUNDED = "partially_refunded"
    COMPLETED = "completed"
    CANCELLED = "cancelled"


# Statuses in which a transaction is "open": a user with one cannot be closed.
OPEN_STATUSES: frozenset[TransactionStatus] = frozenset(
    {
        TransactionStatus.PENDING,
        TransactionStatus.AWAITING_PAYMENT,
        TransactionStatus.AWAITING_OFFLINE_PAYMENT,
    }
)
AWAITING_STATUSES: frozenset[TransactionStatus] = frozenset(
    {TransactionStatus.AWAITING_PAYMENT, TransactionStatus.AWAITING_OFFLINE_PAYMENT}
)


class PaymentMethod(StrEnum):
    """ECPay ChoosePayment values a deposit may use."""

    CREDIT = "Credit"
    ATM = "ATM"
    CVS = "CVS"
    BARCODE = "BARCODE"
    WEBATM = "WebATM"
    TWQR = "TWQR"
    APPLEPAY = "ApplePay"
    BNPL = "BNPL"
    ALL = "ALL"


# The default payment_info of a transaction: immutable, so one shared empty mapping serves all.
NO_PAYMENT_INFO: Mapping[str, str] = MappingProxyType({})


class AttemptState(StrEnum):
    """What ECPay knows of one checkout attempt (one MerchantTradeNo) of a deposit."""

    AWAITING_PAYMENT = "awaiting_payment"  # sent to ECPay's page; the shopper may still pay
    AWAITING_OFFLINE_PAYMENT = "awaiting_offline_payment"  # ATM/CVS/BARCODE code issued, payable until expiry
    PAID = "paid"
    FAILED = "failed"
    EXPIRED = "expired"


# Attempts that ECPay may still report as paid: each must be asked about until it ends.
LIVE_ATTEMPT_STATES: frozenset[AttemptState] = frozenset(
    {AttemptState.AWAITING_PAYMENT, AttemptState.AWAITING_OFFLINE_PAYMENT}
)


class Attempt(NamedTuple):
    """One ECPay checkout of a deposit. Every attempt is kept: an earlier code stays payable at the bank."""

    merchant_trade_no: str
    payment_method: PaymentMethod | None
    state: AttemptState
    created_at: datetime
    trade_no: str | None = None
    payment_info: Mapping[str, str] = NO_PAYMENT_INFO  # bank code, vAccount, codes, payment_type...
    expires_at: datetime | None = None  # offline payment deadline (UTC)

    @property
    def live(self) -> bool:
        """True while ECPay may still report this attempt paid."""
        return self.state in LIVE_ATTEMPT_STATES


class PlanState(StrEnum):
    """A recurring (periodic, 定期定額) plan's state: cancelled and finished are final."""

    ACTIVE = "active"
    CANCELLED = "cancelled"
    FINISHED = "finished"


class PeriodFailure(NamedTuple):
    """One declined charge of a plan (PeriodReturnURL or QueryCreditCardPeriodInfo RtnCode != 1)."""

    merchant_trade_no: str
    period: int  # the charge number that was attempted (successful charges so far + 1)
    rtn_code: str
    rtn_msg: str
    at: datetime  # ECPay's ProcessDate (UTC), else when it was received


class Plan(NamedTuple):
    """A deposit's recurring plan: ECPay charges the card every ``frequency`` ``period_type`` units,
    ``exec_times`` times in all. Charge #1 is the deposit itself; each later charge is its own paid
    deposit (see ``wallet.periodic``), recorded here as ``(MerchantTradeNo, period)`` once credited."""

    period_type: str  # "D", "M" or "Y"
    frequency: int
    exec_times: int
    cancelled_at: datetime | None = None  # the plan was cancelled (by us or by ECPay)
    charged: tuple[tuple[str, int], ...] = ()  # later charges credited: (MerchantTradeNo, period >= 2)
    failures: tuple[PeriodFailure, ...] = ()  # declined charges, oldest first (the latest few)


class User(NamedTuple):
    """A wallet owner. ``balance`` is available money, ``held`` is reserved by open withdrawals."""

    user_id: str
    username: str
    email: str
    balance: int
    held: int
    status: UserStatus
    open_transactions: int  # maintained by the store from each write's ``delta_open``
    created_at: datetime
    updated_at: datetime
    # The buyer's e-invoice settings (issue 13): kind, email, carrier_num, love_code, tax_id, name.
    invoice_settings: Mapping[str, str] = NO_BUYER


class Transaction(NamedTuple):
    """One deposit, withdrawal or refund. ``version`` is the compare-and-set token."""

    transaction_id: str  # 12 characters [0-9a-z]: it prefixes the ECPay MerchantTradeNo
    user_id: str
    transaction_type: TransactionType
    amount: int
    status: TransactionStatus
    version: int
    created_at: datetime
    updated_at: datetime
    payment_method: PaymentMethod | None = None
    merchant_trade_no: str | None = None  # the current ECPay attempt
    trade_no: str | None = None  # ECPay's trade number
    payment_info: Mapping[str, str] = NO_PAYMENT_INFO  # bank code, vAccount, codes...
    expires_at: datetime | None = None  # offline payment deadline (UTC)
    refunded_amount: int = 0  # deposits: how much was refunded so far
    related_transaction_id: str | None = None  # refund -> its deposit; deposit -> its refund being settled
    flags: frozenset[str] = frozenset()  # e.g. "duplicate_payment" (a second paid attempt to refund)
    attempts: tuple[Attempt, ...] = ()  # deposits: every ECPay checkout attempt, oldest first
    next_check_at: datetime | None = None  # when reconciliation should ask ECPay next (awaiting / pending)
    check_count: int = 0  # reconciliation checks so far without a change (drives the backoff)
    paid_at: datetime | None = None  # deposits: when ECPay says it was paid (UTC)
    plan: Plan | None = None  # deposits checked out as a recurring (periodic) card order
    invoice: InvoiceState | None = None  # deposits: the B2C e-invoice (issue 13), None when not invoiced


class LedgerEntry(NamedTuple):
    """One append-only change of a user's ``balance``/``held``, written with the change itself."""

    entry_id: str
    user_id: str
    transaction_id: str
    kind: str  # e.g. "deposit_paid", "withdraw_hold", "withdraw_complete", "withdraw_cancel", "refund"
    delta_balance: int
    delta_held: int
    created_at: datetime


class NotificationRecord(NamedTuple):
    """Every request that reached an ECPay callback route, verified or not (append-only).

    ``dedupe_key`` is set only on the record of a verified notification that changes state:
    ``f"{merchant_trade_no}:{kind}:{period}"``; the store refuses a second record with the same key.
    """

    notification_id: str
    received_at: datetime
    route: str  # "return", "paymentInfo", "periodReturn", "reconcile"
    raw_body: str  # as received (base64 decoded to text with errors="replace" when not UTF-8)
    outcome: str  # "applied", "duplicate", "rejected:<check>", "ignored:<reason>", "flagged:<flag>"
    transaction_id: str | None = None
    merchant_trade_no: str | None = None
    dedupe_key: str | None = None


class IdempotencyRecord(NamedTuple):
    """Stripe-style idempotency key for creating a transaction, scoped to one user."""

    user_id: str
    key: str
    request_fingerprint: str  # hash of the normalized request body
    transaction_id: str
    created_at: datetime
    expires_at: datetime  # at least 24 hours after created_at


T = TypeVar("T")


class Page(NamedTuple, Generic[T]):
    """One page of a listing: ``total`` counts all items; ``next_cursor`` continues a cursor listing."""

    items: list[T]
    total: int
    next_cursor: str | None = None
