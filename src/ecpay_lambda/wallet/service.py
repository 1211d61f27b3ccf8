"""The wallet's use cases, composed: each reads, decides in a pure function, writes one atomic change.

Every state-changing use case has the same shape: ``store.run(reads, decide)`` reads what it needs and
applies ``decide``'s one ``AtomicWrite`` (compare-and-set + ledger) in one store transaction; the
decisions live in :mod:`.decisions` (operator and user actions) and :mod:`.outcomes` (what ECPay says),
and :func:`.retry.retry_on_conflict` runs a use case again when another writer came first.

Import discipline: the callbacks Lambda imports this module for the browser's clientReturn (its
notifications go through :mod:`.notifications` alone), so nothing here may import pydantic, SQLAlchemy
or the Powertools event handler at module level (``ecpay.checkout`` is imported inside ``checkout``
only).
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, NoReturn

from ..ecpay.errors import EcpayError, EcpayValidationError, RateLimitedError
from ..ecpay.limits import DEFAULT_AMOUNT_LIMITS, AmountLimits
from ..ecpay.merchant_trade_no import new_merchant_trade_no
from ..ecpay.timezone import format_ecpay_datetime
from . import errors
from .attempts import attempts_of, live_attempts
from .audit import run_audit
from .decisions import (
    WithdrawAction,
    check_method_amount,
    create_write,
    decide_cancel_deposit,
    decide_checkout,
    decide_refund,
    decide_withdraw_action,
    describe_attempt,
    idempotency_record,
    refundable,
)
from .idempotency import fingerprint, refund_fingerprint, validate_key
from .ids import new_notification_id, new_transaction_id, new_user_id
from .invoice_state import InvoiceState
from .invoice_state import requested as requested_invoice
from .models import (
    OPEN_STATUSES,
    IdempotencyRecord,
    LedgerEntry,
    NotificationRecord,
    Page,
    PaymentMethod,
    Plan,
    Transaction,
    TransactionStatus,
    TransactionType,
    User,
    UserStatus,
)
from .notifications import CallbackHandler, EcpayConfig
from .outcomes import PAID_FAMILY, Delivery, EcpayOutcome, apply_outcome
from .periodic import periodic_checkout_fields, periodic_fingerprint
from .port import (
    Decision,
    IdempotencyKeyReused,
    InsufficientFunds,
    InvalidCursor,
    Reads,
    Snapshot,
    UserExists,
    UserHasFunds,
    UserNotActive,
    VersionConflict,
    WalletStore,
)
from .reconcile import outcome_from_query, run_reconcile
from .recurring import RecurringPlans
from .refunds import CardRefunds
from .results import AuditReport, CallbackReply, ReconcileReport
from .retry import retry_on_conflict
from .statement import StatementReconciler, StatementReport

if TYPE_CHECKING:
    from ..ecpay.checkout import CheckoutForm

__all__ = [
    "AuditReport",
    "CallbackReply",
    "CheckoutUrls",
    "EcpayConfig",
    "ReconcileReport",
    "StatementReport",
    "TransactionDetail",
    "WalletService",
    "WithdrawAction",
    "describe_attempt",
]

MAX_AMOUNT = 100_000_000  # TWD; far above any ECPay single-payment limit, far below BIGINT
MAX_PAGE_SIZE = 100
OFFLINE_METHODS = frozenset({PaymentMethod.ATM, PaymentMethod.CVS, PaymentMethod.BARCODE})
# Methods whose code (or BNPL application) ECPay reports to PaymentInfoURL.
CODE_METHODS = OFFLINE_METHODS | {PaymentMethod.BNPL, PaymentMethod.ALL}
FAR_FUTURE = datetime(9999, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class CheckoutUrls:
    """Callback and browser URLs for one checkout (built by the API from its public base URL)."""

    return_url: str  # ReturnURL (server to server)
    payment_info_url: str  # PaymentInfoURL (ATM/CVS/BARCODE codes)
    client_back_url: str  # browser "back to shop" link / redirect target (clientReturn route)
    order_result_url: str | None = None  # browser POST of the result (clientReturn route)
    period_return_url: str | None = None  # PeriodReturnURL: charges #2..n of a recurring deposit


@dataclass(frozen=True)
class TransactionDetail:
    """A transaction with its ledger entries and notification records."""

    transaction: Transaction
    ledger: list[LedgerEntry]
    notifications: list[NotificationRecord]


def _utc_now() -> datetime:
    return datetime.now(UTC)


class WalletService:
    """Use cases of the points wallet."""

    def __init__(
        self,
        store: WalletStore,
        ecpay: EcpayConfig,
        *,
        clock: Callable[[], datetime] | None = None,
        reconcile_grace: timedelta = timedelta(minutes=15),
        amount_limits: AmountLimits = DEFAULT_AMOUNT_LIMITS,
        invoicing: bool = False,
    ) -> None:
        self.store = store
        self.ecpay = ecpay
        self.reconcile_grace = reconcile_grace
        self.amount_limits = amount_limits
        self.invoicing = invoicing  # new deposits request a B2C e-invoice (issue 13, wallet.invoices)
        self._clock = clock

    # -- helpers ------------------------------------------------------------------------------

    def now(self) -> datetime:
        """The injected clock's time as an aware UTC datetime."""
        moment = (self._clock or _utc_now)()
        if moment.tzinfo is None:
            raise ValueError("the wallet clock must return aware datetimes")
        return moment.astimezone(UTC)

    def _user(self, user_id: str) -> User:
        user = self.store.get_user(user_id)
        if user is None:
            raise errors.NotFound(f"user {user_id} not found")
        return user

    def _own_transaction(self, user_id: str, transaction_id: str) -> Transaction:
        txn = self.store.get_transaction(transaction_id)
        if txn is None or txn.user_id != user_id:
            # A transaction of another user is reported exactly like a missing one.
            raise errors.NotFound(f"transaction {transaction_id} not found")
        return txn

    def _apply(self, oc: EcpayOutcome, route: str, raw_body: str) -> Transaction:
        delivery = Delivery(new_notification_id(), route, raw_body, self.now())
        result = apply_outcome(
            self.store, oc, delivery, merchant_id=self.ecpay.credentials.merchant_id, clock=self.now
        )
        txn = result.transaction or self.store.get_transaction(oc.transaction_id)
        if txn is None:
            raise errors.NotFound(f"transaction {oc.transaction_id} not found")
        return txn

    @staticmethod
    def _validate_page(page: int, page_size: int) -> None:
        if page < 1:
            raise errors.InvalidRequest("page must be >= 1")
        if not 1 <= page_size <= MAX_PAGE_SIZE:
            raise errors.InvalidRequest(f"pageSize must be between 1 and {MAX_PAGE_SIZE}")

    @staticmethod
    def _validate_amount(amount: object) -> int:
        # bool is an int subclass; True is not an amount.
        if type(amount) is not int or amount <= 0:
            raise errors.InvalidRequest("amount must be a positive whole number of TWD")
        if amount > MAX_AMOUNT:
            raise errors.InvalidRequest(f"amount must not exceed {MAX_AMOUNT}")
        return amount

    def _check_method_amount(self, method: PaymentMethod | None, amount: int) -> None:
        """ECPay's single-order limits for the method (protocol page §13.2; ``AMOUNT_LIMITS``)."""
        check_method_amount(self.amount_limits, method, amount)

    # -- users --------------------------------------------------------------------------------

    def create_user(self, username: str, email: str, *, identity: str | None = None) -> User:
        """Create an active user with zero balance (bound to sign-in ``identity`` when given: the store
        raises ``IdentityBound`` when that identity has a user already)."""
        username = username.strip() if isinstance(username, str) else ""
        email = email.strip() if isinstance(email, str) else ""
        if not 1 <= len(username) <= 64:
            raise errors.InvalidRequest("username must be 1 to 64 characters")
        if not 3 <= len(email) <= 254 or "@" not in email[1:-1]:
            raise errors.InvalidRequest("email is not a valid address")
        now = self.now()
        user = User(
            user_id=new_user_id(),
            username=username,
            email=email,
            balance=0,
            held=0,
            status=UserStatus.ACTIVE,
            open_transactions=0,
            created_at=now,
            updated_at=now,
        )
        try:
            if identity is None:
                self.store.create_user(user)
            else:
                self.store.create_user(user, identity=identity)
        except UserExists:
            raise errors.Conflict(f"username {username!r} is taken") from None
        return user

    def get_user(self, user_id: str) -> User:
        """One user (``NotFound``)."""
        return self._user(user_id)

    def list_users(self, *, page: int = 1, page_size: int = 20, cursor: str | None = None) -> Page[User]:
        """Users, by page or cursor."""
        self._validate_page(page, page_size)
        return self.store.list_users(page=page, page_size=page_size, cursor=cursor)

    def close_user(self, user_id: str) -> User:
        """Close a user with no money and no open transaction (``UserNotEmpty`` otherwise)."""
        try:
            return self.store.close_user(user_id, self.now())
        except UserHasFunds:
            user = self._user(user_id)
            blocking = self._open_transactions(user_id)
            parts = []
            if user.balance or user.held:
                parts.append(f"balance {user.balance}, held {user.held}")
            if blocking:
                parts.append(
                    "open transactions "
                    + ", ".join(f"{t.transaction_id} ({t.transaction_type} {t.status})" for t in blocking)
                )
            raise errors.UserNotEmpty(
                f"user {user_id} cannot be closed: " + "; ".join(parts or ["it changed concurrently"]),
                details={
                    "balance": user.balance,
                    "held": user.held,
                    "transactions": [t.transaction_id for t in blocking],
                },
            ) from None
        except UserNotActive:
            self._user(user_id)  # NotFound when missing
            raise errors.UserClosed(f"user {user_id} is already closed") from None

    def _open_transactions(self, user_id: str) -> list[Transaction]:
        found: list[Transaction] = []
        cursor: str | None = None
        while True:
            page = self.store.list_transactions(user_id, page_size=MAX_PAGE_SIZE, cursor=cursor)
            found.extend(t for t in page.items if t.status in OPEN_STATUSES)
            cursor = page.next_cursor
            if cursor is None:
                return found

    def reopen_user(self, user_id: str) -> User:
        """Operator: a closed user becomes active again (to withdraw money that reached it after closing)."""
        user = self.store.reopen_user(user_id, self.now())
        if user is not None:
            return user
        self._user(user_id)  # NotFound when missing
        raise errors.InvalidState(f"user {user_id} is not closed")

    # -- transactions -------------------------------------------------------------------------

    def create_transaction(
        self,
        user_id: str,
        transaction_type: TransactionType,
        amount: int,
        *,
        payment_method: PaymentMethod | None = None,
        idempotency_key: str | None = None,
        recurring: Plan | None = None,
        invoice: Mapping[str, str] | None = None,
    ) -> tuple[Transaction, bool]:
        """Create a deposit (pending) or withdraw (hold). Returns (transaction, replayed_from_key).

        ``recurring``: a deposit paid by card every period (``recurring.plan_from_request`` builds it).
        ``invoice``: this deposit's e-invoice buyer settings over the user's (validated by the caller).
        """
        try:
            ttype = TransactionType(transaction_type)
            method = None if payment_method is None else PaymentMethod(payment_method)
        except ValueError:
            raise errors.InvalidRequest("unknown transaction_type or payment_method") from None
        if ttype is TransactionType.REFUND:
            raise errors.InvalidRequest("refunds are created through the refund action of a deposit")
        if ttype is TransactionType.WITHDRAW:
            method = None  # payouts happen outside ECPay
        if recurring is not None:
            if ttype is not TransactionType.DEPOSIT:
                raise errors.InvalidRequest("only a deposit can be recurring")
            method = PaymentMethod.CREDIT  # periodic orders are card only (§4.5)
        fp = fingerprint(ttype, amount, method)
        if recurring is not None:
            fp = periodic_fingerprint(fp, recurring)
        now = self.now()
        if idempotency_key is not None:
            validate_key(idempotency_key)
            replay = self._replay(user_id, idempotency_key, fp, now)
            if replay is not None:
                return replay, True
        self._validate_amount(amount)
        if ttype is TransactionType.DEPOSIT:
            self._check_method_amount(method, amount)
        txn = Transaction(
            transaction_id=new_transaction_id(),
            user_id=user_id,
            transaction_type=ttype,
            amount=amount,
            status=TransactionStatus.PENDING,
            version=1,
            created_at=now,
            updated_at=now,
            payment_method=method,
            plan=recurring,
            invoice=self._requested_invoice(ttype, invoice),
        )
        idem = idempotency_record(user_id, idempotency_key, fp, txn.transaction_id, now)
        try:
            # One conditional write, no read first: its conditions refuse a missing or closed user
            # and a withdrawal above the balance; only a refusal reads the user, to say which.
            self.store.commit(create_write(txn, idem))
        except InsufficientFunds:
            raise errors.InsufficientBalance(f"balance is below {amount}") from None
        except UserNotActive:
            self._user(user_id)  # NotFound when there is no such user
            raise errors.UserClosed(f"user {user_id} is closed") from None
        except IdempotencyKeyReused as exc:
            # A concurrent request with the same key won the race: answer as it did.
            assert idempotency_key is not None
            replay = self._replay(user_id, idempotency_key, fp, now, exc.existing)
            if replay is None:
                raise errors.Conflict("idempotency key is being used concurrently; retry") from None
            return replay, True
        return txn, False

    def _requested_invoice(
        self, ttype: TransactionType, buyer: Mapping[str, str] | None
    ) -> InvoiceState | None:
        # A deposit made while invoicing is on gets one e-invoice once paid (wallet/invoices.py).
        if ttype is not TransactionType.DEPOSIT:
            return None
        if not self.invoicing:
            if buyer:
                raise errors.InvalidRequest("invoicing is off: a deposit cannot carry invoice settings")
            return None
        return requested_invoice(buyer)

    def _replay(
        self,
        user_id: str,
        key: str,
        fp: str,
        now: datetime,
        known: IdempotencyRecord | None = None,
    ) -> Transaction | None:
        record = known or self.store.get_idempotency(user_id, key)
        if record is None or record.expires_at <= now:
            return None
        if record.request_fingerprint != fp:
            raise errors.IdempotencyMismatch("this Idempotency-Key was used with a different request body")
        txn = self.store.get_transaction(record.transaction_id)
        if txn is None:
            raise errors.Conflict("the transaction of this Idempotency-Key is missing")
        return txn

    def get_transaction(self, user_id: str, transaction_id: str) -> TransactionDetail:
        """A transaction of this user with its ledger and notifications."""
        records = self.store.get_transaction_records(transaction_id)
        if records is None or records.transaction.user_id != user_id:
            # A transaction of another user is reported exactly like a missing one.
            raise errors.NotFound(f"transaction {transaction_id} not found")
        return TransactionDetail(records.transaction, records.ledger, records.notifications)

    def list_transactions(
        self, user_id: str, *, page: int = 1, page_size: int = 20, cursor: str | None = None
    ) -> Page[Transaction]:
        """A user's transactions, newest first."""
        self._validate_page(page, page_size)
        try:
            found = self.store.list_transactions(user_id, page=page, page_size=page_size, cursor=cursor)
        except InvalidCursor:
            self._user(user_id)  # a missing user is NotFound, whatever the cursor
            raise
        if found.total == 0:
            # Only an empty listing can be a missing user's: a user with transactions exists (users
            # are never deleted), so the common case costs no read of the user.
            self._user(user_id)
        return found

    def update_withdraw(self, user_id: str, transaction_id: str, action: WithdrawAction) -> Transaction:
        """Complete or cancel a pending withdraw; a deposit cannot be completed (``InvalidState``)."""
        if action not in ("complete", "cancel"):
            raise errors.InvalidRequest("action must be 'complete' or 'cancel'")

        def step() -> Transaction | None:
            return self.store.run(
                Reads((transaction_id,)),
                lambda snap: decide_withdraw_action(
                    snap.transactions.get(transaction_id), user_id, transaction_id, action, self.now()
                ),
            )

        done = retry_on_conflict(step, self._kept_changing(transaction_id))
        if done is not None:
            return done
        deposit = self._own_transaction(user_id, transaction_id)
        if deposit.plan is not None and deposit.status in PAID_FAMILY:
            return self.plans().cancel(user_id, transaction_id)  # the plan, not the paid deposit
        return self.cancel_deposit(user_id, transaction_id)

    def cancel_deposit(self, user_id: str, transaction_id: str) -> Transaction:
        """Cancel an unpaid deposit, only when no checkout attempt can still be paid (``DepositPayable``)."""

        def step(asked_ecpay: bool) -> Transaction | None:
            return self.store.run(
                Reads((transaction_id,)),
                lambda snap: decide_cancel_deposit(
                    snap.transactions.get(transaction_id),
                    user_id,
                    transaction_id,
                    self.now(),
                    asked_ecpay=asked_ecpay,
                ),
            )

        cancelled = retry_on_conflict(lambda: step(False), self._kept_changing(transaction_id))
        if cancelled is not None:
            return cancelled
        # ECPay may already know the attempts ended (or were paid): ask before refusing.
        txn = self._own_transaction(user_id, transaction_id)
        with contextlib.suppress(errors.PaymentGatewayError):  # refused below, attempts named
            self._sync_attempts(txn)
        final = retry_on_conflict(lambda: step(True), self._kept_changing(transaction_id))
        assert final is not None  # asked_ecpay: decide_cancel_deposit cancels or raises
        return final

    @staticmethod
    def _kept_changing(transaction_id: str) -> Callable[[], NoReturn]:
        def give_up() -> NoReturn:
            raise errors.Conflict(f"transaction {transaction_id} keeps changing; retry")

        return give_up

    # -- ECPay --------------------------------------------------------------------------------

    def checkout(
        self,
        user_id: str,
        transaction_id: str,
        urls: CheckoutUrls,
        *,
        payment_method: PaymentMethod | None = None,
    ) -> CheckoutForm:
        """Start (or restart) ECPay checkout of an unpaid deposit with a fresh MerchantTradeNo."""
        try:
            wanted = None if payment_method is None else PaymentMethod(payment_method)
        except ValueError:
            raise errors.InvalidRequest("unknown payment_method") from None

        def step() -> CheckoutForm:
            now = self.now()
            try:
                return self.store.run(
                    Reads((transaction_id,)),
                    lambda snap: decide_checkout(
                        snap.transactions.get(transaction_id),
                        user_id,
                        transaction_id,
                        wanted=wanted,
                        merchant_trade_no=new_merchant_trade_no,
                        now=now,
                        next_check_at=now + self.reconcile_grace,
                        limits=self.amount_limits,
                        form=lambda attempted, method: self._checkout_form(attempted, method, urls, now),
                    ),
                )
            except UserNotActive:
                raise errors.UserClosed(f"user {user_id} is closed") from None

        return retry_on_conflict(step, self._kept_changing(transaction_id))

    def _checkout_form(
        self, attempt: Transaction, method: PaymentMethod, urls: CheckoutUrls, now: datetime
    ) -> CheckoutForm:
        # Lazy: the checkout models load pydantic, which the notification path must not pay for.
        from ..ecpay.checkout import CheckoutRequest, build_checkout_form  # noqa: PLC0415

        assert attempt.merchant_trade_no is not None
        offline = method in OFFLINE_METHODS
        try:
            request = CheckoutRequest(
                MerchantTradeNo=attempt.merchant_trade_no,
                MerchantTradeDate=format_ecpay_datetime(now),
                TotalAmount=attempt.amount,
                TradeDesc=self.ecpay.trade_desc,
                ItemName=self.ecpay.item_name,
                ReturnURL=urls.return_url,
                ChoosePayment=method.value,
                # The card authorisation serial (gwsr) comes with it: refunds need the trade's state.
                NeedExtraPaidInfo="Y",
                ClientBackURL=urls.client_back_url,
                # Offline methods report the issued code to PaymentInfoURL and send the browser to
                # ClientRedirectURL; ECPay refuses OrderResultURL for them.
                OrderResultURL=None if offline else urls.order_result_url,
                PaymentInfoURL=urls.payment_info_url if method in CODE_METHODS else None,
                ClientRedirectURL=urls.order_result_url if offline else None,
                **periodic_checkout_fields(attempt, urls.period_return_url),
            )
            return build_checkout_form(
                request, self.ecpay.credentials, self.ecpay.client.endpoints, amount_limits=self.amount_limits
            )
        except EcpayValidationError as exc:
            raise errors.InvalidRequest(f"checkout refused: {exc.field}: {exc.reason}") from None

    def callbacks(self) -> CallbackHandler:
        """The notification handler of this wallet (same store, ECPay client and clock)."""
        return CallbackHandler.for_config(self.store, self.ecpay, self.now)

    def handle_return(
        self,
        body: bytes,
        *,
        is_base64: bool = False,
        route_transaction_id: str | None = None,
        route_user_id: str | None = None,
    ) -> CallbackReply:
        """ReturnURL: record, verify, apply the payment result once (see ``CallbackHandler``)."""
        return self.callbacks().handle_return(
            body,
            is_base64=is_base64,
            route_transaction_id=route_transaction_id,
            route_user_id=route_user_id,
        )

    def handle_payment_info(
        self, body: bytes, *, is_base64: bool = False, route_transaction_id: str | None = None
    ) -> CallbackReply:
        """PaymentInfoURL: record, verify, store the ATM/CVS/BARCODE code."""
        return self.callbacks().handle_payment_info(
            body, is_base64=is_base64, route_transaction_id=route_transaction_id
        )

    def card_refunds(self) -> CardRefunds:
        """The refund planner/settler of this wallet."""
        return CardRefunds(
            self.store,
            self.ecpay.client,
            merchant_id=self.ecpay.credentials.merchant_id,
            credit_check_code=self.ecpay.credit_check_code,
            clock=self.now,
        )

    def refund(
        self,
        user_id: str,
        transaction_id: str,
        amount: int | None = None,
        *,
        idempotency_key: str | None = None,
    ) -> Transaction:
        """Refund a paid card deposit (whole or part) as ECPay's rules allow now; the refund transaction.

        With ``idempotency_key``, a repeat (a client retrying after a lost answer) gets the first
        refund as it stands now, and never a second one.
        """
        refunds = self.card_refunds()
        fp = refund_fingerprint(transaction_id, amount)
        if idempotency_key is not None:
            validate_key(idempotency_key)
            replay = self._replay(user_id, idempotency_key, fp, self.now())
            if replay is not None:
                return replay
        if amount is not None:
            self._validate_amount(amount)

        def step() -> tuple[Transaction, Transaction, tuple[str, ...]]:
            deposit = self.store.get_transaction(transaction_id)
            value = refundable(deposit, user_id, transaction_id, amount)
            assert deposit is not None
            refunds.check_window()
            ctx = refunds.context(deposit)  # asks ECPay; nothing is debited if it cannot answer
            plan = refunds.plan(deposit, value, ctx)
            now = self.now()
            idem = idempotency_record(user_id, idempotency_key, fp, refund_id, now)

            def decide(snap: Snapshot) -> Decision[Transaction]:
                current = snap.transactions.get(transaction_id)
                if current is None or current.version != deposit.version:
                    # Planned on an older deposit: plan again on the current one.
                    raise VersionConflict(transaction_id, current)
                return decide_refund(
                    current,
                    refund_id,
                    value,
                    plan,
                    str(ctx.state),
                    now=now,
                    next_check_at=now + self.reconcile_grace,
                    idempotency=idem,
                )

            try:
                return self.store.run(Reads((transaction_id,)), decide), deposit, plan.actions
            except InsufficientFunds:
                raise errors.InsufficientBalance(
                    f"the wallet no longer holds {value} points to give back"
                ) from None

        refund_id = new_transaction_id()
        try:
            refund, deposit, actions = retry_on_conflict(step, self._kept_changing(transaction_id))
        except IdempotencyKeyReused as exc:
            # A concurrent repeat won the race: answer what it made.
            assert idempotency_key is not None
            replay = self._replay(user_id, idempotency_key, fp, self.now(), exc.existing)
            if replay is None:
                raise errors.Conflict("idempotency key is being used concurrently; retry") from None
            return replay
        return refunds.send(refund, actions, deposit.amount)

    def settle_refund(self, refund: Transaction) -> Transaction:
        """Ask ECPay about a pending refund and settle it by its records (``sync`` on a refund)."""
        verdict = self.card_refunds().settle(refund)
        if verdict.startswith("error"):
            raise errors.PaymentGatewayError(f"ECPay did not answer ({verdict.removeprefix('error: ')})")
        current = self.store.get_transaction(refund.transaction_id)
        return current or refund

    def sync(self, user_id: str, transaction_id: str) -> Transaction:
        """Ask ECPay now about every attempt of a deposit that could still be paid (or a pending refund)."""
        txn = self._own_transaction(user_id, transaction_id)
        if txn.transaction_type is TransactionType.REFUND:
            return self.settle_refund(txn)
        if txn.transaction_type is not TransactionType.DEPOSIT:
            raise errors.InvalidState("only a deposit or a refund can be synchronised with ECPay")
        if txn.plan is not None and txn.status in PAID_FAMILY:
            return self.sync_plan(txn)
        if txn.status in PAID_FAMILY or not attempts_of(txn):
            return txn  # never checked out, or already final: nothing ECPay could change
        return self._sync_attempts(txn)

    def plans(self) -> RecurringPlans:
        """Recurring plans' use cases on this wallet (same store, ECPay client and clock)."""
        return RecurringPlans(
            self.store, self.ecpay.client, merchant_id=self.ecpay.credentials.merchant_id, clock=self.now
        )

    def sync_plan(self, txn: Transaction) -> Transaction:
        """Ask ECPay (QueryCreditCardPeriodInfo) about a plan's later charges; credit each once."""
        try:
            self.plans().reconcile(txn)
        except RateLimitedError:
            raise errors.PaymentGatewayError("ECPay is rate-limiting queries; try again later") from None
        except EcpayError as exc:
            raise errors.PaymentGatewayError(f"ECPay query failed: {type(exc).__name__}") from None
        return self.store.get_transaction(txn.transaction_id) or txn

    def _sync_attempts(self, txn: Transaction) -> Transaction:
        candidates = live_attempts(txn)
        if txn.status is TransactionStatus.FAILED and not candidates:
            candidates = attempts_of(txn)[-1:]  # a failure can be followed by a late payment report
        for attempt in candidates:
            try:
                answer = outcome_from_query(
                    self.ecpay.client,
                    txn,
                    attempt,
                    self.now(),
                    self.ecpay.credentials.merchant_id,
                    grace=self.reconcile_grace,
                )
            except RateLimitedError:
                raise errors.PaymentGatewayError("ECPay is rate-limiting queries; try again later") from None
            except EcpayError as exc:
                raise errors.PaymentGatewayError(f"ECPay query failed: {type(exc).__name__}") from None
            if answer is not None:
                oc, raw = answer
                txn = self._apply(oc, "sync", raw)
        return txn

    def reconcile(
        self, *, limit: int = 100, budget: timedelta | None = None, ignore_schedule: bool = False
    ) -> ReconcileReport:
        """Settle pending refunds, then ask ECPay about the most overdue awaiting deposits.

        ``budget``: stop starting ECPay queries after this long. ``ignore_schedule``: every awaiting
        deposit is due now (most overdue first), whatever its next-check time says.
        """
        refunds = self.card_refunds()
        now = self.now()
        return run_reconcile(
            self.store,
            self.ecpay.client,
            merchant_id=self.ecpay.credentials.merchant_id,
            clock=self.now,
            grace=self.reconcile_grace,
            limit=limit,
            deadline=None if budget is None else now + budget,
            settle_refund=refunds.settle,
            due_before=FAR_FUTURE if ignore_schedule else None,
        )

    def reconcile_statement(self, begin: date, end: date, *, apply: bool = True) -> StatementReport:
        """Match ECPay's trade file for payment dates [begin, end] with the wallet; credit what it missed."""
        reconciler = StatementReconciler(
            self.store, self.ecpay.client, merchant_id=self.ecpay.credentials.merchant_id, clock=self.now
        )
        return reconciler.run(begin, end, apply=apply)

    def audit(self, *, external: tuple[date, date] | None = None) -> AuditReport:
        """Check the wallet against itself and, with ``external`` days, against ECPay's trade file."""
        report = run_audit(self.store, now=self.now(), grace=self.reconcile_grace)
        if external is None:
            return report
        statement = self.reconcile_statement(*external, apply=False)
        return dataclasses.replace(report, external=statement.discrepancies)
