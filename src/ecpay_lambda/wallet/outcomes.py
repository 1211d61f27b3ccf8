"""Apply one ECPay outcome (paid, failed, code issued, expired, refunded) to the wallet.

This is the only code path that turns what ECPay says into a state change: ReturnURL and
PaymentInfoURL notifications, QueryTradeInfo answers (sync, reconciliation) and DoAction refund
results all come through :func:`apply_outcome`. It enforces the rules of design §2: MerchantID and
amount must match, SimulatePaid never credits, ``paid`` is final, a duplicate (same dedupe key)
changes nothing, and a second paid attempt of one transaction is recorded and flagged, never
credited twice.
"""

# Annotations are evaluated, not postponed (no ``from __future__ import annotations``): typing.NamedTuple
# would otherwise compile each field's string annotation at import (cold start, see ``ecpay.records``).

from collections.abc import Callable, Mapping
from datetime import datetime
from enum import StrEnum
from types import MappingProxyType
from typing import Literal, NamedTuple

from ..ecpay.notifications import ExtraPaidInfo
from .attempts import attempts_of, find_attempt, replace_attempt, with_attempts
from .invoice_state import on_paid as invoice_on_paid
from .ledger import entry_of, ledger_entry
from .models import (
    OPEN_STATUSES,
    Attempt,
    AttemptState,
    LedgerEntry,
    NotificationRecord,
    Transaction,
    TransactionStatus,
    TransactionType,
)
from .port import (
    AtomicWrite,
    CreditGuess,
    Decision,
    DuplicateNotification,
    Guess,
    Reads,
    Snapshot,
    TransactionPut,
    UserDelta,
    UserNotActive,
    WalletStore,
    run_with_guess,
)
from .retry import retry_on_conflict

# A verified paid deposit is in one of these; "paid is final" covers them all.
PAID_FAMILY: frozenset[TransactionStatus] = frozenset(
    {TransactionStatus.PAID, TransactionStatus.REFUNDED, TransactionStatus.PARTIALLY_REFUNDED}
)
# Unpaid deposit statuses a verified payment may still land on: ECPay can report a payment after we
# saw the attempt fail or expire (clock skew, a late ATM transfer); the money is real, so it counts.
CREDITABLE: frozenset[TransactionStatus] = frozenset(
    {
        TransactionStatus.PENDING,
        TransactionStatus.AWAITING_PAYMENT,
        TransactionStatus.AWAITING_OFFLINE_PAYMENT,
        TransactionStatus.FAILED,
        TransactionStatus.EXPIRED,
        TransactionStatus.CANCELLED,  # credited and flagged: ECPay has the money
    }
)
FLAG_DUPLICATE_PAYMENT = "duplicate_payment"
FLAG_REFUND_UNCONFIRMED = "refund_unconfirmed"
# Money that reached a user after it was closed, or a deposit after it was cancelled: credited (ECPay
# holds the money) and reported by the audit until an operator refunds it or reopens the user.
FLAG_CLOSED_USER_CREDIT = "closed_user_credit"
FLAG_PAID_AFTER_CANCEL = "paid_after_cancel"
# Compare-and-set retries before giving up (ECPay then retries the notification later).
MAX_ATTEMPTS = 20


class OutcomeKind(StrEnum):
    """What ECPay says happened."""

    PAID = "paid"
    FAILED = "failed"
    CODE_ISSUED = "code_issued"
    EXPIRED = "expired"
    REFUNDED = "refunded"
    REFUND_FAILED = "refund_failed"


REFUND_KINDS = frozenset({OutcomeKind.REFUNDED, OutcomeKind.REFUND_FAILED})
# The records below are NamedTuples, not dataclasses: this module is on the notification Lambda's
# import path, where a dataclass costs ~1 ms to define (see ``ecpay.records``).
_NO_PAYMENT_INFO: Mapping[str, str] = MappingProxyType({})  # immutable, so one shared default


class EcpayOutcome(NamedTuple):
    """One verified statement from ECPay about one transaction.

    ``transaction_id`` is the deposit (or, for refund kinds, the refund transaction). ``period`` is
    the periodic charge count (PeriodReturnURL TotalSuccessTimes), 0 otherwise.
    """

    kind: OutcomeKind
    transaction_id: str
    merchant_trade_no: str
    merchant_id: str
    amount: int
    trade_no: str = ""
    simulate_paid: bool = False
    period: int = 0
    payment_type: str = ""
    payment_info: Mapping[str, str] = _NO_PAYMENT_INFO
    expires_at: datetime | None = None
    flags: frozenset[str] = frozenset()
    paid_at: datetime | None = None  # ECPay's PaymentDate (UTC), when it said

    @property
    def dedupe_key(self) -> str:
        """Meaning-based dedupe key: (MerchantTradeNo, kind, period); refunds key on the refund id."""
        if self.kind in REFUND_KINDS:
            # One deposit (one MerchantTradeNo) may have several refunds: each settles once.
            return f"{self.transaction_id}:{self.kind}:0"
        return f"{self.merchant_trade_no}:{self.kind}:{self.period}"


def card_payment_info(extra: ExtraPaidInfo) -> dict[str, str]:
    """What a refund needs to know of a card payment (NeedExtraPaidInfo=Y fields), blanks left out.

    ``gwsr`` addresses the trade in CreditDetail/QueryTrade/V2; installments (``stage``) and bonus points
    (``red_de_amt``) make a trade refundable in full only.
    """
    info = {"gwsr": extra.gwsr.strip(), "card4no": extra.card4no.strip()}
    if extra.stage.strip() not in ("", "0"):
        info["installments"] = extra.stage.strip()
    if extra.red_de_amt.strip() not in ("", "0"):
        info["redeem_amount"] = extra.red_de_amt.strip()
    return {key: value for key, value in info.items() if value}


class Delivery(NamedTuple):
    """Where an outcome came from: becomes the append-only NotificationRecord."""

    notification_id: str
    route: str  # "return", "paymentInfo", "reconcile", "sync", "refund"
    raw_body: str
    received_at: datetime

    def record(
        self,
        outcome: str,
        *,
        transaction_id: str | None = None,
        merchant_trade_no: str | None = None,
        dedupe_key: str | None = None,
    ) -> NotificationRecord:
        """The NotificationRecord of this delivery with its outcome."""
        return NotificationRecord(
            notification_id=self.notification_id,
            received_at=self.received_at,
            route=self.route,
            raw_body=self.raw_body,
            outcome=outcome,
            transaction_id=transaction_id,
            merchant_trade_no=merchant_trade_no,
            dedupe_key=dedupe_key,
        )


ResultStatus = Literal["applied", "flagged", "duplicate", "ignored", "rejected", "retry"]


class OutcomeResult(NamedTuple):
    """What :func:`apply_outcome` did; ``outcome`` is the label recorded in the NotificationRecord."""

    status: ResultStatus
    outcome: str
    transaction: Transaction | None = None

    @property
    def accepted(self) -> bool:
        """True when ECPay should stop resending (``1|OK``); rejected and retry ask for a resend."""
        return self.status not in ("rejected", "retry")


class Skip(NamedTuple):
    """A decision that changes nothing: only the delivery is recorded, under ``label``."""

    status: ResultStatus
    label: str


class Change(NamedTuple):
    """A decision that changes state: one atomic write (``puts`` + delta + ledger)."""

    status: ResultStatus  # applied or flagged
    label: str
    puts: tuple[TransactionPut, ...]
    user_delta: UserDelta | None = None
    ledger: tuple[LedgerEntry, ...] = ()
    credits_money: bool = False


# Called before a credit is committed (the QueryTradeInfo cross-check); returns None to go on, or
# the label of the rejection (e.g. "rejected:cross_check") to stop without crediting.
Confirm = Callable[[Transaction, EcpayOutcome], str | None]


def _open_delta(old: TransactionStatus, new: TransactionStatus) -> int:
    return int(new in OPEN_STATUSES) - int(old in OPEN_STATUSES)


def _next(txn: Transaction, now: datetime, **changes: object) -> Transaction:
    return txn._replace(version=txn.version + 1, updated_at=now, **changes)  # type: ignore[arg-type]


def _put(old: Transaction, new: Transaction) -> TransactionPut:
    return TransactionPut(new=new, expected_version=old.version)


def _paid_attempt(attempt: Attempt, oc: EcpayOutcome) -> Attempt:
    info = dict(attempt.payment_info)
    info.update(oc.payment_info)
    if oc.payment_type:
        info["payment_type"] = oc.payment_type
    return attempt._replace(
        state=AttemptState.PAID, trade_no=oc.trade_no or attempt.trade_no, payment_info=info
    )


def _decide_paid(
    txn: Transaction,
    attempts: tuple[Attempt, ...],
    index: int,
    oc: EcpayOutcome,
    now: datetime,
    *,
    user_closed: bool,
) -> Skip | Change:
    attempt = attempts[index]
    if oc.simulate_paid:
        return Skip("ignored", "ignored:simulate_paid")
    if txn.status in PAID_FAMILY:
        if attempt.state is AttemptState.PAID:
            return Skip("duplicate", "duplicate")
        # Two attempts were both paid: keep the record, flag it for a refund, credit nothing.
        flagged = _next(
            txn,
            now,
            attempts=replace_attempt(attempts, index, _paid_attempt(attempt, oc)),
            flags=txn.flags | {FLAG_DUPLICATE_PAYMENT},
        )
        return Change("flagged", f"flagged:{FLAG_DUPLICATE_PAYMENT}", (_put(txn, flagged),))
    flags = set(txn.flags)
    if txn.status is TransactionStatus.CANCELLED:
        flags.add(FLAG_PAID_AFTER_CANCEL)
    if user_closed:
        flags.add(FLAG_CLOSED_USER_CREDIT)
    paid = with_attempts(
        txn._replace(status=TransactionStatus.PAID),
        replace_attempt(attempts, index, _paid_attempt(attempt, oc)),
    )
    paid = _next(
        paid,
        now,
        paid_at=oc.paid_at or now,
        next_check_at=None,
        check_count=0,
        flags=frozenset(flags),
        # A requested e-invoice becomes pending in the credit's own write: a crash before it is issued
        # leaves this marker for the invoice job (issue 13), never an invoice-less paid deposit.
        invoice=invoice_on_paid(txn.invoice),
    )
    delta = UserDelta(
        txn.user_id,
        delta_balance=txn.amount,
        delta_open=_open_delta(txn.status, paid.status),
        # A closed user's credit is refused by the store, then decided again with the flag (apply_outcome).
        require_active=not user_closed,
    )
    label = "applied" if not flags - txn.flags else "flagged:" + ",".join(sorted(flags - txn.flags))
    return Change(
        "applied" if label == "applied" else "flagged",
        label,
        (_put(txn, paid),),
        delta,
        (ledger_entry(txn, "deposit_paid", txn.amount, 0, now),),
        credits_money=True,
    )


# What each non-payment outcome does to a live attempt: (states it applies to, state it sets).
_ATTEMPT_STEPS: Mapping[OutcomeKind, tuple[frozenset[AttemptState], AttemptState]] = MappingProxyType(
    {
        OutcomeKind.FAILED: (
            frozenset({AttemptState.AWAITING_PAYMENT, AttemptState.AWAITING_OFFLINE_PAYMENT}),
            AttemptState.FAILED,
        ),
        OutcomeKind.CODE_ISSUED: (
            frozenset({AttemptState.AWAITING_PAYMENT}),
            AttemptState.AWAITING_OFFLINE_PAYMENT,
        ),
        OutcomeKind.EXPIRED: (frozenset({AttemptState.AWAITING_OFFLINE_PAYMENT}), AttemptState.EXPIRED),
    }
)


def _decide_deposit(
    txn: Transaction, oc: EcpayOutcome, now: datetime, user_closed: bool = False
) -> Skip | Change:
    attempts = attempts_of(txn)
    index = find_attempt(attempts, oc.merchant_trade_no)
    if index is None:
        if oc.kind is not OutcomeKind.PAID:
            return Skip("ignored", "ignored:unknown_attempt")
        # Signed by ECPay for our merchant, so it is an attempt we made even if it was never recorded
        # (a record from before attempts were kept): the money is real, keep the attempt and credit it.
        attempts = (
            *attempts,
            Attempt(oc.merchant_trade_no, txn.payment_method, AttemptState.AWAITING_PAYMENT, now),
        )
        index = len(attempts) - 1
    if oc.kind is OutcomeKind.PAID:
        return _decide_paid(txn, attempts, index, oc, now, user_closed=user_closed)
    attempt = attempts[index]
    if attempt.state is AttemptState.PAID:
        return Skip("ignored", "ignored:already_paid")
    # A paid or cancelled deposit keeps its status; its other attempts' states are still recorded.
    applies_to, new_state = _ATTEMPT_STEPS[oc.kind]
    if attempt.state is new_state:
        return Skip("duplicate", "duplicate")
    if attempt.state not in applies_to:
        return Skip("ignored", f"ignored:attempt_{attempt.state}")
    changed = attempt._replace(state=new_state, trade_no=oc.trade_no or attempt.trade_no)
    if oc.kind is OutcomeKind.CODE_ISSUED:
        info = dict(oc.payment_info)
        if oc.payment_type:
            info["payment_type"] = oc.payment_type
        changed = changed._replace(payment_info=info, expires_at=oc.expires_at)
    new = _next(with_attempts(txn, replace_attempt(attempts, index, changed)), now)
    if new.status not in OPEN_STATUSES:
        new = new._replace(next_check_at=None, check_count=0)
    delta = UserDelta(txn.user_id, delta_open=_open_delta(txn.status, new.status))
    return Change("applied", "applied", (_put(txn, new),), delta if delta.delta_open else None)


def _decide_refund(
    refund: Transaction, deposit: Transaction | None, oc: EcpayOutcome, now: datetime
) -> Skip | Change:
    if deposit is None:
        return Skip("ignored", "ignored:unknown_deposit")
    done = {
        OutcomeKind.REFUNDED: TransactionStatus.COMPLETED,
        OutcomeKind.REFUND_FAILED: TransactionStatus.FAILED,
    }[oc.kind]
    if refund.status is done:
        return Skip("duplicate", "duplicate")
    if refund.status is not TransactionStatus.PENDING:
        return Skip("ignored", f"ignored:status_{refund.status}")
    evidence = {**refund.payment_info, **oc.payment_info}  # e.g. confirmed_by: DoAction / QueryTrade
    settled = _next(
        refund, now, status=done, flags=refund.flags | oc.flags, payment_info=evidence, next_check_at=None
    )
    # The deposit no longer has a refund being settled.
    settling = (
        None if deposit.related_transaction_id == refund.transaction_id else deposit.related_transaction_id
    )
    if oc.kind is OutcomeKind.REFUNDED:
        dep_status = (
            TransactionStatus.REFUNDED
            if deposit.refunded_amount >= deposit.amount
            else TransactionStatus.PARTIALLY_REFUNDED
        )
        dep = _next(deposit, now, status=dep_status, related_transaction_id=settling)
        delta = UserDelta(refund.user_id, delta_open=_open_delta(refund.status, done))
        return Change("applied", "applied", (_put(refund, settled), _put(deposit, dep)), delta)
    # ECPay refused: the refund never happened, so the points come back.
    remaining = max(deposit.refunded_amount - refund.amount, 0)
    if remaining == 0:
        dep_status = TransactionStatus.PAID
    elif deposit.status is TransactionStatus.REFUNDED:
        dep_status = TransactionStatus.PARTIALLY_REFUNDED
    else:
        dep_status = deposit.status  # other refunds of this deposit are still pending or done
    dep = _next(deposit, now, status=dep_status, refunded_amount=remaining, related_transaction_id=settling)
    delta = UserDelta(
        refund.user_id, delta_balance=refund.amount, delta_open=_open_delta(refund.status, done)
    )
    entry = ledger_entry(refund, "refund_reversed", refund.amount, 0, now)
    return Change("applied", "applied", (_put(refund, settled), _put(deposit, dep)), delta, (entry,))


def decide(
    txn: Transaction,
    oc: EcpayOutcome,
    now: datetime,
    *,
    merchant_id: str,
    related: Transaction | None = None,
    user_closed: bool = False,
) -> Skip | Change:
    """The pure state-machine step: what ``oc`` does to ``txn`` (and, for refunds, its deposit).

    ``user_closed``: the owner is closed, so a credit is still applied (ECPay has the money) but flagged.
    """
    if oc.merchant_id != merchant_id:
        return Skip("rejected", "rejected:merchant_id")
    if oc.kind in REFUND_KINDS:
        if txn.transaction_type is not TransactionType.REFUND:
            return Skip("ignored", "ignored:not_a_refund")
        if oc.amount != txn.amount:
            return Skip("rejected", "rejected:amount")
        return _decide_refund(txn, related, oc, now)
    if txn.transaction_type is not TransactionType.DEPOSIT:
        return Skip("ignored", "ignored:not_a_deposit")
    if oc.amount != txn.amount:
        return Skip("rejected", "rejected:amount")
    return _decide_deposit(txn, oc, now, user_closed)


# One notification's decision on the transaction it names: (transaction, snapshot, now, user_closed).
DecideStep = Callable[[Transaction, Snapshot, datetime, bool], "Skip | Change"]


def credit_guess(
    oc: EcpayOutcome, delivery: Delivery, *, merchant_id: str, user_id: str, now: datetime
) -> CreditGuess | None:
    """What :func:`decide` would write of ``oc`` if its deposit (owned by ``user_id``, the callback URL's
    user) is in the common state (``port.CreditGuess``), or None when the notification alone already
    says decide() would do something else (not a payment, a simulated one, another merchant's, no
    TradeNo) or a store could not address it (no user id).

    Applied, its result is ``applied`` without the transaction (the store wrote it unread).
    """
    if (
        oc.kind is not OutcomeKind.PAID
        or oc.simulate_paid
        or oc.merchant_id != merchant_id
        or not oc.trade_no
        or not user_id
        or len(user_id) > 64  # from the URL: an id, never a document
    ):
        return None
    info = dict(oc.payment_info)
    if oc.payment_type:
        info["payment_type"] = oc.payment_type  # as _paid_attempt adds it
    tid = oc.transaction_id
    return CreditGuess(
        transaction_id=tid,
        user_id=user_id,
        merchant_trade_no=oc.merchant_trade_no,
        amount=oc.amount,
        trade_no=oc.trade_no,
        payment_info=info,
        paid_at=oc.paid_at or now,
        now=now,
        ledger=entry_of(user_id, tid, "deposit_paid", delta_balance=oc.amount, delta_held=0, at=now),
        notification=delivery.record(
            "applied", transaction_id=tid, merchant_trade_no=oc.merchant_trade_no, dedupe_key=oc.dedupe_key
        ),
    )


def apply_outcome(
    store: WalletStore,
    oc: EcpayOutcome,
    delivery: Delivery,
    *,
    merchant_id: str,
    confirm: Confirm | None = None,
    clock: Callable[[], datetime],
    user_id: str | None = None,
) -> OutcomeResult:
    r"""Apply ``oc`` once: one store transaction that reads the transaction, :func:`decide`\ s and
    writes the change with ``delivery``'s record (or the record alone when nothing changes).

    ``confirm`` (the cross-check with ECPay) runs outside the store transaction, before a credit.
    ``user_id`` (the callback URL's, untrusted: the store's conditions check it) lets a store that can
    apply a paid notification speculatively (:func:`credit_guess`, ``port.run_with_guess``) do so in one
    call; the result is the same either way, except that ``transaction`` is None when the guess applied.
    """

    def step(txn: Transaction, snap: Snapshot, now: datetime, user_closed: bool) -> Skip | Change:
        related = snap.transactions.get(txn.related_transaction_id or "") if oc.kind in REFUND_KINDS else None
        return decide(txn, oc, now, merchant_id=merchant_id, related=related, user_closed=user_closed)

    def guess(user: str) -> Callable[[], CreditGuess | None]:
        return lambda: credit_guess(oc, delivery, merchant_id=merchant_id, user_id=user, now=clock())

    return apply_change(
        store,
        Reads((oc.transaction_id,), related=oc.kind in REFUND_KINDS),
        step,
        delivery,
        transaction_id=oc.transaction_id,
        merchant_trade_no=oc.merchant_trade_no or None,
        dedupe_key=oc.dedupe_key,
        confirm=None if confirm is None else (lambda txn: confirm(txn, oc)),
        clock=clock,
        guess=None if user_id is None else guess(user_id),
    )


def apply_change(
    store: WalletStore,
    reads: Reads,
    decide_step: DecideStep,
    delivery: Delivery,
    *,
    transaction_id: str,
    merchant_trade_no: str | None,
    dedupe_key: str,
    confirm: Callable[[Transaction], str | None] | None,
    clock: Callable[[], datetime],
    guess: Callable[[], CreditGuess | None] | None = None,
) -> OutcomeResult:
    """The one apply loop of every notification kind: read, ``decide_step``, write with the record.

    A credit is confirmed with ``confirm`` (outside the store transaction) before it is decided again
    and written; a closed owner is decided again as such (credited and flagged); a duplicate dedupe
    key records the delivery alone. ``guess`` (a speculative credit, see :func:`credit_guess`) is tried
    once: on the first run, or after the confirmation when a credit is confirmed (never before it);
    the retries after a conflict read and decide.
    """
    confirmed = False
    user_closed = False
    guessing = guess is not None and confirm is None

    def record(label: str, key: str | None = None) -> NotificationRecord:
        return delivery.record(
            label, transaction_id=transaction_id, merchant_trade_no=merchant_trade_no, dedupe_key=key
        )

    def record_only(status: ResultStatus, label: str, txn: Transaction | None) -> OutcomeResult:
        store.record_notification(record(label))
        return OutcomeResult(status, label, txn)

    def step(snap: Snapshot) -> Decision[OutcomeResult | Transaction]:
        # A Transaction result: confirm this credit with ECPay first, then decide again.
        txn = snap.transactions.get(transaction_id)
        if txn is None:
            label = "ignored:unknown_transaction"
            return Decision(OutcomeResult("ignored", label), AtomicWrite(notification=record(label)))
        decided = decide_step(txn, snap, clock(), user_closed)
        if isinstance(decided, Skip):
            result = OutcomeResult(decided.status, decided.label, txn)
            return Decision(result, AtomicWrite(notification=record(decided.label)))
        if decided.credits_money and confirm is not None and not confirmed:
            return Decision(txn)
        write = AtomicWrite(
            transactions=decided.puts,
            user_delta=decided.user_delta,
            ledger=decided.ledger,
            notification=record(decided.label, dedupe_key),
        )
        return Decision(OutcomeResult(decided.status, decided.label, decided.puts[0].new), write)

    def run() -> OutcomeResult | Transaction:
        nonlocal guessing
        credit = guess() if guess is not None and guessing else None
        guessing = False
        if credit is None:
            return store.run(reads, step)
        applied: OutcomeResult | Transaction = OutcomeResult("applied", "applied")
        return run_with_guess(store, reads, step, Guess(credit, applied))

    def attempt() -> OutcomeResult | Transaction:
        nonlocal user_closed
        try:
            try:
                return run()
            except UserNotActive:
                if user_closed:
                    raise
                user_closed = True  # decide again: credit the closed user and flag it for an operator
                return store.run(reads, step)
        except DuplicateNotification:
            return record_only("duplicate", "duplicate", store.get_transaction(transaction_id))

    def contention() -> OutcomeResult:
        return record_only("retry", "retry:contention", None)

    result = retry_on_conflict(attempt, contention, attempts=MAX_ATTEMPTS)
    if isinstance(result, OutcomeResult):
        return result
    assert confirm is not None
    refusal = confirm(result)
    if refusal is not None:
        return record_only("rejected", refusal, result)
    confirmed = True
    guessing = guess is not None
    final = retry_on_conflict(attempt, contention, attempts=MAX_ATTEMPTS)
    assert isinstance(final, OutcomeResult)  # confirmed: no second confirmation is asked
    return final
