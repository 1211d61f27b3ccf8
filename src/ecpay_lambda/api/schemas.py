"""Request and response bodies of the management API (pydantic v2), with the seed's field names.

Only the management function imports this module (never the ECPay callback function).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StringConstraints, WithJsonSchema

from ..wallet.attempts import attempts_of
from ..wallet.models import (
    Attempt,
    AttemptState,
    LedgerEntry,
    NotificationRecord,
    PaymentMethod,
    Transaction,
    TransactionStatus,
    TransactionType,
    User,
    UserStatus,
)
from ..wallet.service import TransactionDetail

MAX_AMOUNT = 2_147_483_647  # far above any ECPay TotalAmount; keeps absurd numbers out of the store


def _amount(value: object) -> int:
    # The seed's front end posts the amount straight from an <input>, i.e. as a string of digits:
    # accept that and integers; refuse floats, booleans and anything else.
    if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 10:
        value = int(value)
    if not isinstance(value, int) or isinstance(value, bool):
        raise ValueError("must be a whole number of TWD (an integer, or a string of digits)")
    return value


Amount = Annotated[
    int,
    BeforeValidator(_amount),
    Field(gt=0, le=MAX_AMOUNT),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "integer", "minimum": 1, "maximum": MAX_AMOUNT},
                {"type": "string", "pattern": "^[0-9]{1,10}$"},
            ],
            "description": "whole TWD, at least 1",
        }
    ),
]
Username = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64, pattern=r"^[^\x00-\x1f\x7f]+$")
]
Email = Annotated[
    str,
    StringConstraints(strip_whitespace=True, max_length=254, pattern=r"^[^@\s\x00-\x1f]+@[^@\s\x00-\x1f]+$"),
]


class ErrorDetail(BaseModel):
    """The inside of every error answer."""

    code: str = Field(examples=["insufficient_balance"])
    message: str
    details: list[dict[str, object]] | None = None


class ErrorResponse(BaseModel):
    """Every 4xx/5xx answer of the management API."""

    error: ErrorDetail


class UserCreate(BaseModel):
    """POST /users."""

    model_config = ConfigDict(extra="ignore")

    username: Username
    email: Email


class UserOut(BaseModel):
    """A user as the API shows it."""

    user_id: str
    username: str
    email: str
    balance: int
    held: int
    status: UserStatus
    created_at: datetime

    @classmethod
    def of(cls, user: User) -> UserOut:
        """From the domain record."""
        return cls(
            user_id=user.user_id,
            username=user.username,
            email=user.email,
            balance=user.balance,
            held=user.held,
            status=user.status,
            created_at=user.created_at,
        )


class UserList(BaseModel):
    """GET /users: one page, the seed's ``{users, total}`` plus paging details."""

    model_config = ConfigDict(populate_by_name=True)

    users: list[UserOut]
    total: int
    page: int
    page_size: int = Field(alias="pageSize")
    next_cursor: str | None = None


class TransactionCreate(BaseModel):
    """POST /users/{userId}/transactions (refunds have their own route)."""

    model_config = ConfigDict(extra="ignore")

    transaction_type: Literal[TransactionType.DEPOSIT, TransactionType.WITHDRAW]
    amount: Amount
    # The seed's front end sends status "pending"; the server decides every status.
    status: Literal[TransactionStatus.PENDING] | None = None
    payment_method: PaymentMethod | None = None


class WithdrawUpdate(BaseModel):
    """PATCH /users/{userId}/transactions/{transactionId}: complete (default, as the seed) or cancel."""

    model_config = ConfigDict(extra="ignore")

    action: Literal["complete", "cancel"] | None = None
    status: Literal[TransactionStatus.COMPLETED, TransactionStatus.CANCELLED] | None = None


class RefundRequest(BaseModel):
    """POST .../refund: the whole remaining amount unless ``amount`` is given."""

    model_config = ConfigDict(extra="ignore")

    amount: Amount | None = None


class CheckoutRequest(BaseModel):
    """Optional JSON/form body of POST .../requestPayment."""

    model_config = ConfigDict(extra="ignore")

    payment_method: PaymentMethod | None = None


class CheckoutFormOut(BaseModel):
    """requestPayment when the client asks for JSON: the form to POST to ECPay."""

    action: str
    fields: dict[str, str]


class AttemptOut(BaseModel):
    """One ECPay checkout attempt of a deposit (every MerchantTradeNo it ever had)."""

    merchant_trade_no: str
    payment_method: PaymentMethod | None
    state: AttemptState
    trade_no: str | None
    payment_info: dict[str, str]
    expires_at: datetime | None
    created_at: datetime

    @classmethod
    def of(cls, attempt: Attempt) -> AttemptOut:
        """From the domain record."""
        return cls(
            merchant_trade_no=attempt.merchant_trade_no,
            payment_method=attempt.payment_method,
            state=attempt.state,
            trade_no=attempt.trade_no,
            payment_info=dict(attempt.payment_info),
            expires_at=attempt.expires_at,
            created_at=attempt.created_at,
        )


class TransactionOut(BaseModel):
    """A transaction as the API shows it."""

    transaction_id: str
    user_id: str
    transaction_type: TransactionType
    amount: int
    status: TransactionStatus
    payment_method: PaymentMethod | None
    merchant_trade_no: str | None
    trade_no: str | None
    payment_info: dict[str, str]
    expires_at: datetime | None
    refunded_amount: int
    related_transaction_id: str | None
    flags: list[str]
    created_at: datetime
    updated_at: datetime
    attempts: list[AttemptOut] = Field(
        default_factory=list,
        description="Deposits: every ECPay checkout attempt, oldest first; any live one can still be paid.",
    )
    paid_at: datetime | None = None

    @classmethod
    def of(cls, tx: Transaction) -> TransactionOut:
        """From the domain record."""
        return cls(
            transaction_id=tx.transaction_id,
            user_id=tx.user_id,
            transaction_type=tx.transaction_type,
            amount=tx.amount,
            status=tx.status,
            payment_method=tx.payment_method,
            merchant_trade_no=tx.merchant_trade_no,
            trade_no=tx.trade_no,
            payment_info=dict(tx.payment_info),
            expires_at=tx.expires_at,
            refunded_amount=tx.refunded_amount,
            related_transaction_id=tx.related_transaction_id,
            flags=sorted(tx.flags),
            created_at=tx.created_at,
            updated_at=tx.updated_at,
            attempts=[AttemptOut.of(a) for a in attempts_of(tx)],
            paid_at=tx.paid_at,
        )


class TransactionList(BaseModel):
    """GET /users/{userId}/transactions: the seed's ``{transactions, total}`` plus paging details."""

    model_config = ConfigDict(populate_by_name=True)

    transactions: list[TransactionOut]
    total: int
    page: int
    page_size: int = Field(alias="pageSize")
    next_cursor: str | None = None


class LedgerEntryOut(BaseModel):
    """One ledger entry."""

    entry_id: str
    kind: str
    delta_balance: int
    delta_held: int
    created_at: datetime

    @classmethod
    def of(cls, entry: LedgerEntry) -> LedgerEntryOut:
        """From the domain record."""
        return cls(
            entry_id=entry.entry_id,
            kind=entry.kind,
            delta_balance=entry.delta_balance,
            delta_held=entry.delta_held,
            created_at=entry.created_at,
        )


class NotificationOut(BaseModel):
    """One recorded ECPay notification (its raw body stays in the store)."""

    notification_id: str
    received_at: datetime
    route: str
    outcome: str
    merchant_trade_no: str | None

    @classmethod
    def of(cls, record: NotificationRecord) -> NotificationOut:
        """From the domain record."""
        return cls(
            notification_id=record.notification_id,
            received_at=record.received_at,
            route=record.route,
            outcome=record.outcome,
            merchant_trade_no=record.merchant_trade_no,
        )


class TransactionDetailOut(TransactionOut):
    """GET one transaction: with its ledger entries and notification records."""

    ledger: list[LedgerEntryOut]
    notifications: list[NotificationOut]

    @classmethod
    def of_detail(cls, detail: TransactionDetail) -> TransactionDetailOut:
        """From the wallet's detail view."""
        return cls(
            **TransactionOut.of(detail.transaction).model_dump(),
            ledger=[LedgerEntryOut.of(e) for e in detail.ledger],
            notifications=[NotificationOut.of(n) for n in detail.notifications],
        )


class Health(BaseModel):
    """GET /healthz."""

    status: Literal["ok", "degraded"]
    store: bool
