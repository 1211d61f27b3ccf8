"""The storage port: what the wallet needs from storage. Adapters in ``ecpay_lambda.store`` implement it.

Every state change goes through :meth:`WalletStore.commit`, one atomic write (all or nothing).
"""

# Annotations are evaluated, not postponed (no ``from __future__ import annotations``): typing.NamedTuple
# would otherwise compile each field's string annotation at import (cold start, see ``ecpay.records``).

from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import datetime
from typing import Generic, NamedTuple, Protocol, TypeVar

from .errors import InvalidRequest
from .models import (
    IdempotencyRecord,
    LedgerEntry,
    NotificationRecord,
    Page,
    Transaction,
    User,
)

# The write records are NamedTuples, not dataclasses: this module is on the notification Lambda's
# import path, where a dataclass costs ~1 ms to define (see ``ecpay.records``).


class TransactionPut(NamedTuple):
    """Write ``new`` in place of the stored version ``expected_version`` (0 = must not exist yet).

    ``new.version`` must be ``expected_version + 1``.
    """

    new: Transaction
    expected_version: int


class UserDelta(NamedTuple):
    """Add to a user's counters, only if the results stay >= 0 (and the user is active when asked)."""

    user_id: str
    delta_balance: int = 0
    delta_held: int = 0
    delta_open: int = 0
    require_active: bool = False


class AtomicWrite(NamedTuple):
    """Everything one state change writes, applied all-or-nothing by :meth:`WalletStore.commit`.

    On failure nothing is written and exactly one of the port errors below is raised:
    ``VersionConflict`` (a ``TransactionPut`` lost the compare-and-set), ``InsufficientFunds``
    (a ``UserDelta`` would go negative), ``UserNotActive``, ``DuplicateNotification`` (the
    ``notification.dedupe_key`` was recorded before), ``IdempotencyKeyReused`` (an unexpired
    record for the same user and key exists).
    """

    transactions: Sequence[TransactionPut] = ()
    user_delta: UserDelta | None = None
    ledger: Sequence[LedgerEntry] = ()
    notification: NotificationRecord | None = None
    idempotency: IdempotencyRecord | None = None


T = TypeVar("T")


class TransactionRecords(NamedTuple):
    """A transaction with its ledger entries and notification records, oldest first, read together."""

    transaction: Transaction
    ledger: list[LedgerEntry]
    notifications: list[NotificationRecord]


class Reads(NamedTuple):
    """What a use case reads before it decides (see :meth:`WalletStore.run`).

    ``related``: also the transaction each read one names in ``related_transaction_id`` (a refund's
    deposit, a deposit's refund being settled).
    """

    transaction_ids: tuple[str, ...] = ()
    user_id: str | None = None
    related: bool = False


class Snapshot(NamedTuple):
    """What :meth:`WalletStore.run` read: the transactions found (by id; missing ones are absent) and
    the user asked for (None when missing or not asked)."""

    transactions: Mapping[str, Transaction]
    user: User | None = None


class Decision(NamedTuple, Generic[T]):
    """A use case's pure decision: its ``result``, and the one atomic write that makes it true
    (None: nothing changes)."""

    result: T
    write: AtomicWrite | None = None


# A use case's decision step: pure (no I/O), so a store may call it again on fresh reads.
Decide = Callable[[Snapshot], Decision[T]]


class CreditGuess(NamedTuple):
    """The write :func:`.outcomes.decide` makes of a verified paid notification when the deposit is in its
    common state, built from the notification alone (the callback URL's user and transaction ids, ECPay's
    form): a store may apply it speculatively, in one conditional write, instead of reading first.

    The common state (a store applies the guess only when ALL of it holds, atomically with the write):
    the transaction ``transaction_id`` exists, is a deposit of ``user_id`` for ``amount``, in status
    ``awaiting_payment`` or ``awaiting_offline_payment``, without an e-invoice; its attempt
    ``merchant_trade_no`` exists and is live (awaiting), and no attempt is paid; that attempt's
    ``payment_info`` equals the deposit's, its ``payment_method`` is absent or the deposit's, its
    ``expires_at`` is the deposit's (so the deposit's ECPay fields already mirror it); the user exists, is
    active and has an open transaction to close; no notification with ``notification.dedupe_key`` was
    recorded.

    The write then is exactly decide()'s: the deposit becomes ``paid`` (version + 1, ``updated_at=now``,
    ``paid_at``, schedule cleared), the attempt ``paid`` with ``trade_no`` and ``payment_info`` added to
    its own (and the deposit's, which mirrors it); the deposit's ``merchant_trade_no`` / ``trade_no`` are
    the attempt's; the user gains ``amount`` and one open transaction less; ``ledger`` and
    ``notification`` (outcome ``applied``, with its dedupe key) are appended.
    """

    transaction_id: str
    user_id: str
    merchant_trade_no: str
    amount: int
    trade_no: str  # ECPay's TradeNo (never empty: decide() keeps the attempt's own otherwise)
    payment_info: Mapping[str, str]  # what the paid attempt's payment_info gains (card fields, payment_type)
    paid_at: datetime
    now: datetime
    ledger: LedgerEntry
    notification: NotificationRecord


class Guess(NamedTuple, Generic[T]):
    """A speculative write and the ``result`` the use case returns when the store applied it."""

    credit: CreditGuess
    result: T


class SpeculativeStore(Protocol):
    """A store that can apply a :class:`Guess` in one call (DynamoDB); see :func:`run_with_guess`."""

    def run_guessed(self, reads: Reads, decide: "Decide[T]", guess: Guess[T]) -> T:
        """Apply ``guess`` if the stored state is its common state; else :meth:`WalletStore.run`,
        deciding on what the failed write returned (its old items) instead of reading when it suffices.

        Same contract as ``run`` otherwise: raises what ``decide`` raises or one ``StoreConflict``.
        """
        ...


class StoreConflict(Exception):
    """Base class of the expected, non-fault outcomes of :meth:`WalletStore.commit`."""


class VersionConflict(StoreConflict):
    """A transaction was not at the expected version. ``current`` is the stored one when known."""

    def __init__(self, transaction_id: str, current: Transaction | None = None) -> None:
        super().__init__(f"transaction {transaction_id} changed concurrently")
        self.transaction_id = transaction_id
        self.current = current


class InsufficientFunds(StoreConflict):
    """A user delta would make ``balance`` or ``held`` negative."""

    def __init__(self, user_id: str) -> None:
        super().__init__(f"user {user_id} has insufficient funds")
        self.user_id = user_id


class UserNotActive(StoreConflict):
    """A user delta required an active user (or the user does not exist)."""

    def __init__(self, user_id: str) -> None:
        super().__init__(f"user {user_id} is not active")
        self.user_id = user_id


class DuplicateNotification(StoreConflict):
    """A notification with this ``dedupe_key`` was already recorded."""

    def __init__(self, dedupe_key: str) -> None:
        super().__init__(f"notification {dedupe_key} already applied")
        self.dedupe_key = dedupe_key


class IdempotencyKeyReused(StoreConflict):
    """An unexpired idempotency record exists for this user and key. ``existing`` when known."""

    def __init__(self, key: str, existing: IdempotencyRecord | None = None) -> None:
        super().__init__("idempotency key already used")
        self.key = key
        self.existing = existing


class UserHasFunds(StoreConflict):
    """``close_user`` found a non-zero balance, held amount or open transaction."""


class UserExists(StoreConflict):
    """``create_user`` found the username already taken."""


class IdentityBound(StoreConflict):
    """``create_user`` found the sign-in identity already bound to a user (one wallet per identity)."""


class InvalidCursor(InvalidRequest):
    """A listing's ``cursor`` is malformed, or was made by another listing (another user's, another
    kind of listing, another store). Every adapter raises exactly this; the API answers 400 as for any
    ``InvalidRequest``.
    """

    def __init__(self, message: str = "invalid cursor") -> None:
        super().__init__(message)


class WalletStore(Protocol):
    """The storage port. Every method is atomic; reads are strongly consistent.

    Listings: ``cursor`` is opaque and adapter-specific; a malformed or foreign one raises
    :class:`InvalidCursor`, a ``page`` or ``page_size`` below 1 the domain's ``InvalidRequest``.
    ``Page.next_cursor`` is None on the last page. A listing of a missing user is an empty page.
    """

    def ensure_schema(self) -> None:
        """Create or migrate the schema/table (idempotent; safe to call on every cold start)."""
        ...

    def ping(self) -> bool:
        """True when the store is reachable (for /healthz)."""
        ...

    def create_user(self, user: User, identity: str | None = None) -> None:
        """Insert a new user; raise ``UserExists`` if the username is taken.

        ``identity`` (an end user's sign-in subject, e.g. a JWT ``sub``) is stored with the user, at
        most one user per identity: ``IdentityBound`` if another user has it already.
        """
        ...

    def get_user_by_identity(self, identity: str) -> User | None:
        """The user bound to sign-in ``identity``, or None."""
        ...

    def get_user(self, user_id: str) -> User | None:
        """One user, or None."""
        ...

    def list_users(self, *, page: int = 1, page_size: int = 20, cursor: str | None = None) -> Page[User]:
        """Users by creation order; ``cursor`` (from a previous page) takes precedence over ``page``."""
        ...

    def iter_users(self) -> Iterator[User]:
        """Every user (for the audit)."""
        ...

    def close_user(self, user_id: str, now: datetime) -> User:
        """Active -> closed, only if balance, held and open_transactions are 0.

        Raise ``UserNotActive`` if missing or already closed, ``UserHasFunds`` if money or open
        transactions remain (checked in the same atomic conditional write).
        """
        ...

    def commit(self, write: AtomicWrite) -> None:
        """Apply ``write`` atomically or raise one ``StoreConflict`` subclass (see ``AtomicWrite``)."""
        ...

    def run(self, reads: Reads, decide: "Decide[T]") -> T:
        """One use case in one store transaction: read ``reads``, ``decide`` on them, apply the write.

        SQL: the reads lock their rows (``SELECT ... FOR UPDATE``; SQLite's ``BEGIN IMMEDIATE``) in the
        write's database transaction, so the decision cannot go stale before it is written.
        DynamoDB: strongly consistent reads, then one ``TransactWriteItems`` whose conditions are the
        decision's (``VersionConflict`` when another writer came first: decide again on fresh reads).
        Raises what ``decide`` raises (nothing written), or one ``StoreConflict`` of the write (see
        ``AtomicWrite``). ``decide`` may be called more than once (a store retries a deadlock).
        """
        ...

    def get_transaction(self, transaction_id: str) -> Transaction | None:
        """One transaction, or None."""
        ...

    def get_transaction_records(self, transaction_id: str) -> TransactionRecords | None:
        """A transaction with its ledger and notifications in one read (None when missing): one read
        transaction (SQL), one ``Query`` of the transaction's partition (DynamoDB)."""
        ...

    def list_transactions(
        self, user_id: str, *, page: int = 1, page_size: int = 20, cursor: str | None = None
    ) -> Page[Transaction]:
        """A user's transactions, newest first."""
        ...

    def get_idempotency(self, user_id: str, key: str) -> IdempotencyRecord | None:
        """The stored idempotency record (expired ones may be returned; the caller checks)."""
        ...

    def list_ledger(
        self, *, transaction_id: str | None = None, user_id: str | None = None
    ) -> list[LedgerEntry]:
        """Ledger entries of one transaction or one user (or both: the user's in that transaction),
        oldest first; ``ValueError`` with neither."""
        ...

    def record_notification(self, record: NotificationRecord) -> None:
        """Append a notification record on its own (unverified, duplicate, ignored...)."""
        ...

    def list_notifications(self, transaction_id: str) -> list[NotificationRecord]:
        """Notification records of one transaction, oldest first."""
        ...

    def reopen_user(self, user_id: str, now: datetime) -> User | None:
        """Closed -> active (an operator's decision); None when the user is missing or not closed."""
        ...

    def list_awaiting_payment(self, *, due_before: datetime, limit: int = 100) -> list[Transaction]:
        """Deposits in an awaiting_* status due for a check (reconciliation), most overdue first.

        A transaction's due time is ``next_check_at``, or ``updated_at`` when it has none.
        """
        ...

    def list_pending_refunds(self, *, due_before: datetime, limit: int = 100) -> list[Transaction]:
        """Refunds still ``pending`` due for a check (as above), most overdue first."""
        ...

    def iter_paid_deposits(self, *, paid_from: datetime, paid_to: datetime) -> Iterator[Transaction]:
        """Deposits (paid, partially refunded or refunded) whose ``paid_at`` is in [paid_from, paid_to)."""
        ...

    def probe_write(self) -> None:
        """Write (overwrite) one health record; raise when the store cannot write (full disk, read-only)."""
        ...

    def list_active_users(
        self, *, page: int = 1, page_size: int = 20, cursor: str | None = None
    ) -> Page[User]:
        """Like :meth:`list_users` without closed users (``total`` counts active users only)."""
        ...

    # -- e-invoices (issue 13) ----------------------------------------------------------------

    def set_invoice_settings(self, user_id: str, settings: Mapping[str, str], now: datetime) -> User | None:
        """Replace a user's e-invoice buyer settings (empty mapping: none); the updated user, or None
        when the user does not exist. Touches nothing else of the user (not a balance write)."""
        ...

    def list_invoices_due(self, *, due_before: datetime, limit: int = 100) -> list[Transaction]:
        """Deposits whose e-invoice has work due by ``due_before`` (``invoice_state.invoice_due``), most
        overdue first: an invoice to issue, or a confirmed refund to void or allow."""
        ...


def run_with_guess(store: WalletStore, reads: Reads, decide: "Decide[T]", guess: Guess[T]) -> T:
    """``store.run(reads, decide)``, trying ``guess`` first on a store that can (``run_guessed``).

    Equivalent by contract: when the guess applies, ``decide`` on the stored state would have made
    exactly its write and returned ``guess.result`` (tests/unit/store/test_dynamodb_guess.py checks it
    over many prior states). A store without ``run_guessed`` (SQL: its read and write are already one
    database transaction) simply runs the use case.
    """
    run_guessed = getattr(store, "run_guessed", None)  # SpeculativeStore.run_guessed
    if run_guessed is None:
        return store.run(reads, decide)
    result: T = run_guessed(reads, decide, guess)
    return result
