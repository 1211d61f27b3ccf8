"""Request and response bodies of the management API (pydantic v2), with the seed's field names.

Only the management function imports this module (never the ECPay callback function).
"""

# Annotations evaluated, not postponed: pydantic reads each model's field types when the class is
# created, and strings would have to be compiled and evaluated first (the cold-start rule).

import re
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    WithJsonSchema,
)
from pydantic.config import JsonDict

from ..wallet.attempts import attempts_of
from ..wallet.invoice_state import public_invoice
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
from ..wallet.recurring import plan_view
from ..wallet.service import MAX_AMOUNT, TransactionDetail
from .patterns import (
    AMOUNT_PATTERN,
    EMAIL_MAX,
    EMAIL_PATTERN,
    USERNAME_MAX,
    USERNAME_PATTERN,
    strip_white_space,
)

_AMOUNT_RE = re.compile(AMOUNT_PATTERN)


def _amount(value: object) -> object:
    # The seed's front end posts the amount straight from an <input>, i.e. as a string of digits:
    # accept that and integers. JSON Schema counts 500.0 as an integer, so a float with no fraction is
    # one too; refuse other floats, booleans and anything else. Range checks follow (Field below).
    if isinstance(value, str):
        if not _AMOUNT_RE.fullmatch(value):
            raise ValueError(
                f"must be a whole number of TWD from 1 to {MAX_AMOUNT} (digits, no leading zero)"
            )
        return int(value)
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if not isinstance(value, int) or isinstance(value, bool):
        raise ValueError("must be a whole number of TWD (an integer, or a string of digits)")
    return value


Amount = Annotated[
    int,
    BeforeValidator(_amount),
    Field(ge=1, le=MAX_AMOUNT),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "integer", "minimum": 1, "maximum": MAX_AMOUNT},
                {"type": "string", "pattern": AMOUNT_PATTERN},
            ],
            "description": f"whole TWD from 1 to {MAX_AMOUNT}, as an integer or a string of digits "
            "(each ECPay payment method has a narrower range, checked when it is known)",
        }
    ),
]

Username = Annotated[
    str,
    StringConstraints(max_length=USERNAME_MAX, pattern=USERNAME_PATTERN),
    AfterValidator(strip_white_space),
    Field(description="1 to 64 characters, no control characters; surrounding white space is dropped"),
]
Email = Annotated[
    str,
    StringConstraints(max_length=EMAIL_MAX, pattern=EMAIL_PATTERN),
    AfterValidator(strip_white_space),
    Field(description="an address with one @; surrounding white space is dropped"),
]


class _Model(BaseModel):
    """Every body's base: its validator and serializer are built when first used, not at import (a
    function builds only the models of the routes it serves; the cold-start rule, docs/performance.md)."""

    model_config = ConfigDict(defer_build=True)


class ErrorDetail(_Model):
    """The inside of every error answer."""

    code: str = Field(examples=["insufficient_balance"])
    message: str
    details: list[dict[str, Any]] | dict[str, Any] | None = Field(
        default=None,
        description="422: one entry per invalid field (loc, type, msg); 409: what blocks the action, "
        'e.g. {"transactions": [...]}',
    )


class ErrorResponse(_Model):
    """Every 4xx/5xx answer of the management API."""

    error: ErrorDetail


class UserCreate(_Model):
    """POST /users."""

    model_config = ConfigDict(extra="ignore")

    username: Username
    email: Email


_SETTING = Annotated[str | None, Field(max_length=200)]


class InvoiceSettingsIn(_Model):
    """A buyer's e-invoice settings (PUT /users/{userId}/invoice-settings, or a deposit's ``invoice``).

    Each rule ECPay applies is checked by the wallet, which answers 400 with ``invoice_<rule>`` and a
    message explaining it (tax ID checksum, carrier formats, donation vs tax ID, print...).
    """

    model_config = ConfigDict(extra="allow")  # unknown fields are refused by the wallet, by name

    kind: _SETTING = Field(
        default=None,
        description="email (default: ECPay member carrier, e-mail notice) | mobile_barcode (手機條碼, "
        "carrier_num '/' + 7 characters, checked with ECPay's CheckBarcode) | citizen_certificate "
        "(自然人憑證, carrier_num 2 capital letters + 14 digits) | ecpay_member | donation (love_code, "
        "checked with CheckLoveCode) | company (tax_id 統一編號 8 digits with its checksum, name, address; "
        "printed)",
    )
    email: _SETTING = Field(default=None, description="where ECPay sends the notice (default: the user's)")
    carrier_num: _SETTING = None
    love_code: _SETTING = None
    tax_id: _SETTING = None
    name: _SETTING = None
    address: _SETTING = None

    def as_mapping(self) -> dict[str, object]:
        """Every given field (extras too, so the wallet can name an unknown one)."""
        return {k: v for k, v in self.model_dump().items() if v is not None}


class InvoiceSettingsOut(_Model):
    """The stored buyer settings (``kind`` always set)."""

    kind: str
    email: str | None = None
    carrier_num: str | None = None
    love_code: str | None = None
    tax_id: str | None = None
    name: str | None = None
    address: str | None = None


class InvoiceAllowanceOut(_Model):
    """One allowance (折讓) against the invoice."""

    allowance_no: str
    amount: int
    date: datetime | None


class InvoiceOut(_Model):
    """A deposit's B2C e-invoice."""

    number: str | None = Field(description="ECPay's InvoiceNo: two letters and 8 digits, once issued")
    date: datetime | None
    random_number: str | None
    status: Literal["requested", "pending", "issued", "voided", "allowance", "failed"] = Field(
        description="requested (not paid yet), pending (to be issued by the invoice job), issued, voided "
        "(a full refund in the filing period), allowance (refunds credited by allowances), failed "
        "(ECPay refused: see error)"
    )
    allowances: list[InvoiceAllowanceOut] = Field(default_factory=list)
    error: str | None = None
    next_attempt_at: datetime | None = None


class UserOut(_Model):
    """A user as the API shows it."""

    user_id: str
    username: str
    email: str
    balance: int
    held: int
    status: UserStatus
    created_at: datetime
    invoice_settings: InvoiceSettingsOut | None = None

    @classmethod
    def of(cls, user: User) -> "UserOut":
        """From the domain record."""
        return cls(
            user_id=user.user_id,
            username=user.username,
            email=user.email,
            balance=user.balance,
            held=user.held,
            status=user.status,
            created_at=user.created_at,
            invoice_settings=InvoiceSettingsOut(**user.invoice_settings) if user.invoice_settings else None,
        )


class UserList(_Model):
    """GET /users: one page, the seed's ``{users, total}`` plus paging details."""

    model_config = ConfigDict(populate_by_name=True)

    users: list[UserOut]
    total: int
    page: int
    page_size: int = Field(alias="pageSize")
    next_cursor: str | None = None


def _whole(value: object) -> object:
    # JSON Schema counts 12.0 as an integer: a float with no fraction is one; booleans and strings are not.
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if not isinstance(value, int) or isinstance(value, bool):
        raise ValueError("must be a whole number")
    return value


WholeNumber = Annotated[int, BeforeValidator(_whole)]


class RecurringPlanIn(_Model):
    """A recurring top-up's schedule (the ranges are checked by the wallet: 400 invalid_recurring_plan)."""

    model_config = ConfigDict(extra="forbid")

    # The bounds are documented here and checked by the wallet, so that every refusal is the same
    # 400 invalid_recurring_plan (the limits depend on period_type: protocol page §13.3).
    period_type: str = Field(
        description="D (day), M (month) or Y (year)",
        examples=["M"],
        json_schema_extra={"enum": ["D", "M", "Y"]},
    )
    frequency: WholeNumber = Field(
        description="charge every this many periods: D 1-365, M 1-12, Y 1",
        examples=[1],
        json_schema_extra={"minimum": 1, "maximum": 365},
    )
    exec_times: WholeNumber = Field(
        description="charges in all, the first included: D and M 2-999, Y 2-99",
        examples=[12],
        json_schema_extra={"minimum": 2, "maximum": 999},
    )


class FailedChargeOut(_Model):
    """A declined charge of a recurring plan."""

    period: int
    rtn_code: str
    rtn_msg: str
    at: datetime


class RecurringPlanOut(_Model):
    """A recurring deposit's plan: its state and charges (each later charge is a deposit of its own)."""

    period_type: str
    frequency: int
    exec_times: int
    state: Literal["active", "cancelled", "finished"]
    charges_done: int
    charges_planned: int
    charge_transaction_ids: list[str] = Field(description="the deposits of charges #2..n, in order")
    failed_charges: list[FailedChargeOut]
    cancelled_at: datetime | None = None


class RecurringAction(_Model):
    """POST .../recurring: cancel the plan (its owner or an operator) or ask ECPay to ReAuth (operators)."""

    model_config = ConfigDict(extra="ignore")

    action: Literal["cancel", "reauth"]


class TransactionCreate(_Model):
    """POST /users/{userId}/transactions (refunds have their own route)."""

    model_config = ConfigDict(extra="ignore")

    transaction_type: Literal[TransactionType.DEPOSIT, TransactionType.WITHDRAW]
    amount: Amount
    # The seed's front end sends status "pending"; the server decides every status.
    status: Literal[TransactionStatus.PENDING] | None = None
    payment_method: PaymentMethod | None = None
    recurring: RecurringPlanIn | None = Field(
        default=None,
        description=(
            "Deposits paid by card only: an ECPay periodic (定期定額) order charging `amount` every "
            "`frequency` days (D), months (M) or years (Y), `exec_times` times in all. ECPay's limits: "
            "D frequency 1-365, exec_times 2-999; M 1-12, 2-999; Y 1, 2-99 (else 400 invalid_recurring_plan)."
        ),
    )
    invoice: InvoiceSettingsIn | None = Field(
        default=None, description="deposits: this deposit's e-invoice buyer settings over the user's"
    )


# ``action`` and the seed's ``status`` may both be given only when they mean the same thing.
_DISAGREEING_UPDATE: JsonDict = {
    "anyOf": [
        {
            "required": ["action", "status"],
            "properties": {"action": {"const": action}, "status": {"const": status}},
        }
        for action, status in (("complete", "cancelled"), ("cancel", "completed"))
    ]
}


class WithdrawUpdate(_Model):
    """PATCH /users/{userId}/transactions/{transactionId}: complete (default, as the seed) or cancel."""

    model_config = ConfigDict(extra="ignore", json_schema_extra={"not": _DISAGREEING_UPDATE})

    action: Literal["complete", "cancel"] | None = None
    status: Literal[TransactionStatus.COMPLETED, TransactionStatus.CANCELLED] | None = None


class RefundRequest(_Model):
    """POST .../refund: the whole remaining amount unless ``amount`` is given."""

    model_config = ConfigDict(extra="ignore")

    amount: Amount | None = None


class CheckoutRequest(_Model):
    """Optional JSON/form body of POST .../requestPayment."""

    model_config = ConfigDict(extra="ignore")

    payment_method: PaymentMethod | None = None


class CheckoutFormOut(_Model):
    """requestPayment when the client asks for JSON: the form to POST to ECPay."""

    action: str
    fields: dict[str, str]


class AttemptOut(_Model):
    """One ECPay checkout attempt of a deposit (every MerchantTradeNo it ever had)."""

    merchant_trade_no: str
    payment_method: PaymentMethod | None
    state: AttemptState
    trade_no: str | None
    payment_info: dict[str, str]
    expires_at: datetime | None
    created_at: datetime

    @classmethod
    def of(cls, attempt: Attempt) -> "AttemptOut":
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


class TransactionOut(_Model):
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
    recurring: RecurringPlanOut | None = Field(
        default=None, description="A recurring deposit's plan (charges #2..n are deposits of their own)"
    )
    invoice: InvoiceOut | None = Field(default=None, description="deposits made while invoicing is on")

    @classmethod
    def of(cls, tx: Transaction) -> "TransactionOut":
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
            recurring=None if tx.plan is None else RecurringPlanOut.model_validate(plan_view(tx)),
            invoice=None if tx.invoice is None else InvoiceOut.model_validate(public_invoice(tx.invoice)),
        )


class TransactionList(_Model):
    """GET /users/{userId}/transactions: the seed's ``{transactions, total}`` plus paging details."""

    model_config = ConfigDict(populate_by_name=True)

    transactions: list[TransactionOut]
    total: int
    page: int
    page_size: int = Field(alias="pageSize")
    next_cursor: str | None = None


class LedgerEntryOut(_Model):
    """One ledger entry."""

    entry_id: str
    kind: str
    delta_balance: int
    delta_held: int
    created_at: datetime

    @classmethod
    def of(cls, entry: LedgerEntry) -> "LedgerEntryOut":
        """From the domain record."""
        return cls(
            entry_id=entry.entry_id,
            kind=entry.kind,
            delta_balance=entry.delta_balance,
            delta_held=entry.delta_held,
            created_at=entry.created_at,
        )


class NotificationOut(_Model):
    """One recorded ECPay notification (its raw body stays in the store)."""

    notification_id: str
    received_at: datetime
    route: str
    outcome: str
    merchant_trade_no: str | None

    @classmethod
    def of(cls, record: NotificationRecord) -> "NotificationOut":
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
    def of_detail(cls, detail: TransactionDetail) -> "TransactionDetailOut":
        """From the wallet's detail view."""
        return cls(
            **TransactionOut.of(detail.transaction).model_dump(),
            ledger=[LedgerEntryOut.of(e) for e in detail.ledger],
            notifications=[NotificationOut.of(n) for n in detail.notifications],
        )


class WalletEventOut(_Model):
    """One wallet event (docs/events.md; the JSON Schema docs/wallet-event.schema.json)."""

    name: str = Field(description="e.g. deposit.paid, withdrawal.requested, refund.completed, invoice.issued")
    transaction_id: str
    user_id: str
    transaction_type: str
    status: str
    previous_status: str | None = None
    amount: int
    refunded_amount: int
    related_transaction_id: str | None = None
    version: int
    occurred_at: str
    invoice_number: str | None = Field(default=None, description="invoice.issued: ECPay's InvoiceNo")


class EventList(_Model):
    """GET /events: local mode's outbox, oldest first (the last ``limit``)."""

    events: list[WalletEventOut]
    total: int


class Health(_Model):
    """GET /healthz."""

    status: Literal["ok", "degraded"]
    store: bool
