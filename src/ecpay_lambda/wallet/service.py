"""The wallet's use cases. Every state change is one ``WalletStore.commit`` (compare-and-set + ledger).

Import discipline: the notification Lambda imports this module, so nothing here may import pydantic,
SQLAlchemy or the Powertools event handler at module level (``ecpay.checkout`` is imported inside
``checkout`` only).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Literal

from ..ecpay.client import EcpayClient
from ..ecpay.credentials import MerchantCredentials
from .models import LedgerEntry, NotificationRecord, Page, PaymentMethod, Transaction, TransactionType, User
from .port import WalletStore

if TYPE_CHECKING:
    from ..ecpay.checkout import CheckoutForm


@dataclass(frozen=True)
class EcpayConfig:
    """What the wallet needs to know about ECPay."""

    credentials: MerchantCredentials
    client: EcpayClient  # query / refund; its transport is injected by the composition root
    cross_check_paid: bool  # confirm paid notifications with QueryTradeInfo before crediting
    item_name: str = "Wallet points"
    trade_desc: str = "Wallet deposit"


@dataclass(frozen=True)
class CheckoutUrls:
    """Callback and browser URLs for one checkout (built by the API from its public base URL)."""

    return_url: str  # ReturnURL (server to server)
    payment_info_url: str  # PaymentInfoURL (ATM/CVS/BARCODE codes)
    client_back_url: str  # browser "back to shop" link / redirect target (clientReturn route)
    order_result_url: str | None = None  # browser POST of the result (clientReturn route)


@dataclass(frozen=True)
class CallbackReply:
    """What an ECPay callback route answers: exactly ``1|OK`` when accepted (also for duplicates)."""

    accepted: bool
    body: str  # "1|OK" or "0|<short reason>" (never secrets); ECPay retries on anything but 1|OK
    outcome: str  # as recorded in the NotificationRecord
    transaction_id: str | None = None


@dataclass(frozen=True)
class TransactionDetail:
    """A transaction with its ledger entries and notification records."""

    transaction: Transaction
    ledger: list[LedgerEntry]
    notifications: list[NotificationRecord]


@dataclass(frozen=True)
class ReconcileReport:
    """What one reconciliation run did."""

    checked: int = 0
    paid: int = 0
    failed: int = 0
    expired: int = 0
    unchanged: int = 0
    errors: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class AuditReport:
    """Ledger-vs-balance mismatches and deposits stuck awaiting payment."""

    users_checked: int
    mismatches: list[str]
    stuck: list[str]

    @property
    def clean(self) -> bool:
        """No ledger mismatch."""
        return not self.mismatches


WithdrawAction = Literal["complete", "cancel"]


class WalletService:
    """Use cases of the points wallet."""

    def __init__(
        self,
        store: WalletStore,
        ecpay: EcpayConfig,
        *,
        clock: Callable[[], datetime] | None = None,
        reconcile_grace: timedelta = timedelta(minutes=15),
    ) -> None:
        self.store = store
        self.ecpay = ecpay
        self.reconcile_grace = reconcile_grace
        self._clock = clock

    def create_user(self, username: str, email: str) -> User:
        """Create an active user with zero balance."""
        raise NotImplementedError

    def get_user(self, user_id: str) -> User:
        """One user (``NotFound``)."""
        raise NotImplementedError

    def list_users(self, *, page: int = 1, page_size: int = 20, cursor: str | None = None) -> Page[User]:
        """Users, by page or cursor."""
        raise NotImplementedError

    def close_user(self, user_id: str) -> User:
        """Close a user with no money and no open transaction (``UserNotEmpty`` otherwise)."""
        raise NotImplementedError

    def create_transaction(
        self,
        user_id: str,
        transaction_type: TransactionType,
        amount: int,
        *,
        payment_method: PaymentMethod | None = None,
        idempotency_key: str | None = None,
    ) -> tuple[Transaction, bool]:
        """Create a deposit (pending) or withdraw (hold). Returns (transaction, replayed_from_key)."""
        raise NotImplementedError

    def get_transaction(self, user_id: str, transaction_id: str) -> TransactionDetail:
        """A transaction of this user with its ledger and notifications."""
        raise NotImplementedError

    def list_transactions(
        self, user_id: str, *, page: int = 1, page_size: int = 20, cursor: str | None = None
    ) -> Page[Transaction]:
        """A user's transactions, newest first."""
        raise NotImplementedError

    def update_withdraw(self, user_id: str, transaction_id: str, action: WithdrawAction) -> Transaction:
        """Complete or cancel a pending withdraw; a deposit cannot be completed (``InvalidState``)."""
        raise NotImplementedError

    def checkout(
        self,
        user_id: str,
        transaction_id: str,
        urls: CheckoutUrls,
        *,
        payment_method: PaymentMethod | None = None,
    ) -> CheckoutForm:
        """Start (or restart) ECPay checkout of an unpaid deposit with a fresh MerchantTradeNo."""
        raise NotImplementedError

    def handle_return(
        self, body: bytes, *, is_base64: bool = False, route_transaction_id: str | None = None
    ) -> CallbackReply:
        """ReturnURL: record, verify, apply the payment result once."""
        raise NotImplementedError

    def handle_payment_info(
        self, body: bytes, *, is_base64: bool = False, route_transaction_id: str | None = None
    ) -> CallbackReply:
        """PaymentInfoURL: record, verify, store the ATM/CVS/BARCODE code."""
        raise NotImplementedError

    def refund(self, user_id: str, transaction_id: str, amount: int | None = None) -> Transaction:
        """Refund a paid credit-card deposit (whole or part); returns the refund transaction."""
        raise NotImplementedError

    def sync(self, user_id: str, transaction_id: str) -> Transaction:
        """Ask ECPay (QueryTradeInfo) about one deposit now and apply the answer."""
        raise NotImplementedError

    def reconcile(self, *, limit: int = 100) -> ReconcileReport:
        """Query deposits awaiting payment past the grace period; expire offline ones past deadline."""
        raise NotImplementedError

    def audit(self) -> AuditReport:
        """Check ledger sums against every user's balance and held."""
        raise NotImplementedError
