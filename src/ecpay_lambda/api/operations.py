"""The hot management routes' logic: plain values in, domain records out.

Shared by the Powertools routes (api/routes/, which validate with pydantic and render with the
schemas) and the lean request path (api/fast/, which validates and renders the common requests
without them): each route's access check, service call and answer status are decided here once.
Standard library and the wallet only.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import NamedTuple

from ..wallet.errors import InvalidRequest
from ..wallet.models import Page, PaymentMethod, Transaction, TransactionStatus, TransactionType, User
from ..wallet.port import IdentityBound
from ..wallet.recurring import plan_from_request
from ..wallet.service import TransactionDetail, WalletService, WithdrawAction
from .access import caller, operator_only, own_wallet
from .composition import get_service
from .errors import ApiError
from .events import Event
from .logs import get_logger

logger = get_logger("ecpay_lambda.api.routes.meta")


class UserAnswer(NamedTuple):
    """A user and the status to answer it with (201 created, 200 an end user's existing wallet)."""

    status: int
    user: User


class TransactionAnswer(NamedTuple):
    """A transaction and whether it is an Idempotency-Key repeat (200 + ``Idempotent-Replayed``)."""

    transaction: Transaction
    replayed: bool


def create_user(event: Event, username: str, email: str) -> UserAnswer:
    """POST /users: operators create any user; an end user creates (or finds) the wallet of their identity."""
    who = caller(event)
    service = get_service()
    if who.operator:
        return UserAnswer(201, service.create_user(username, email))
    if who.identity is None:
        raise ApiError(404, "route_not_found", "no such route")  # a token naming nobody
    existing = service.store.get_user_by_identity(who.identity)
    if existing is None:
        try:
            return UserAnswer(201, service.create_user(username, email, identity=who.identity))
        except IdentityBound:
            existing = service.store.get_user_by_identity(who.identity)  # a concurrent create won
            if existing is None:
                raise
    return UserAnswer(200, existing)


def list_users(
    event: Event, page: int, page_size: int, cursor: str | None, include_closed: bool
) -> Page[User]:
    """GET /users: one page; closed users only with ``include_closed`` (operators only: 404 otherwise)."""
    operator_only(event)
    service = get_service()
    if include_closed:
        return service.list_users(page=page, page_size=page_size, cursor=cursor)
    try:
        return service.store.list_active_users(page=page, page_size=page_size, cursor=cursor)
    except (ValueError, InvalidRequest):
        raise ApiError(400, "invalid_request", "invalid cursor") from None


def get_user(event: Event, user_id: str) -> User:
    """GET /users/{userId} (an end user: only their own)."""
    own_wallet(event, user_id)
    return get_service().get_user(user_id)


def create_transaction(
    event: Event,
    user_id: str,
    transaction_type: TransactionType,
    amount: int,
    *,
    payment_method: PaymentMethod | None = None,
    idempotency_key: str | None = None,
    recurring: Mapping[str, object] | None = None,
    invoice: Mapping[str, object] | None = None,
) -> TransactionAnswer:
    """POST /users/{userId}/transactions; ``recurring`` and ``invoice`` are the request's plain fields."""
    own_wallet(event, user_id)
    plan = None
    if recurring is not None:
        plan = plan_from_request(dict(recurring), payment_method)
    service = get_service()
    transaction, replayed = service.create_transaction(
        user_id,
        transaction_type,
        amount,
        payment_method=payment_method,
        idempotency_key=idempotency_key,
        recurring=plan,
        invoice=_invoice_override(service, user_id, transaction_type, invoice),
    )
    return TransactionAnswer(transaction, replayed)


def _invoice_override(
    service: WalletService,
    user_id: str,
    transaction_type: TransactionType,
    invoice: Mapping[str, object] | None,
) -> dict[str, str] | None:
    """A deposit's own e-invoice buyer settings, validated as the user's are (None: use the user's)."""
    if invoice is None:
        return None
    # Imported here: the e-invoice library loads only when a request carries invoice settings.
    from ..wallet.invoices import InvoiceSettingsInvalid, checked_settings  # noqa: PLC0415
    from .invoicing import get_invoice_client  # noqa: PLC0415

    if transaction_type is not TransactionType.DEPOSIT:
        raise InvoiceSettingsInvalid("deposits_only", "only a deposit is invoiced: 'invoice' is for deposits")
    if not service.invoicing:
        raise InvoiceSettingsInvalid(
            "invoicing_off", "invoicing is off: a deposit cannot carry invoice settings"
        )
    return checked_settings(service.store, user_id, invoice, get_invoice_client())


def list_transactions(
    event: Event, user_id: str, page: int, page_size: int, cursor: str | None
) -> Page[Transaction]:
    """GET /users/{userId}/transactions: one page, newest first (an end user: only their own)."""
    own_wallet(event, user_id)
    return get_service().list_transactions(user_id, page=page, page_size=page_size, cursor=cursor)


def get_transaction(event: Event, user_id: str, transaction_id: str) -> TransactionDetail:
    """GET /users/{userId}/transactions/{transactionId}: with its ledger and notifications."""
    own_wallet(event, user_id)
    return get_service().get_transaction(user_id, transaction_id)


def withdraw_action(action: str | None, status: TransactionStatus | None) -> WithdrawAction:
    """What a PATCH asks: ``action`` or the seed's ``status`` (if both, they must agree); else complete."""
    from_status: WithdrawAction | None = None
    if status == TransactionStatus.COMPLETED:
        from_status = "complete"
    elif status == TransactionStatus.CANCELLED:
        from_status = "cancel"
    if action is not None and from_status is not None and action != from_status:
        raise ApiError(422, "validation_error", "action and status disagree")
    if action == "cancel":
        return "cancel"
    if action == "complete":
        return "complete"
    return from_status or "complete"


def update_transaction(
    event: Event, user_id: str, transaction_id: str, action: str | None, status: TransactionStatus | None
) -> Transaction:
    """PATCH /users/{userId}/transactions/{transactionId}: complete (default) or cancel (operators)."""
    operator_only(event)
    service = get_service()
    return service.update_withdraw(user_id, transaction_id, withdraw_action(action, status))


def store_writable() -> bool:
    """GET /healthz's probe: True when the store accepts a write (one health record is overwritten)."""
    try:
        # A write, not a read: a full disk or a read-only replica still answers SELECT 1.
        get_service().store.probe_write()
    except Exception:
        # The answer here, not a fault of the route: a failing probe means "the store cannot write".
        logger.warning("store write probe failed", exc_info=True)
        return False
    return True
