"""Reconciliation: ask ECPay about every checkout attempt that could still be paid, fairly and on time.

A lost ReturnURL notification therefore never loses a payment. Answers go through the same
:func:`~ecpay_lambda.wallet.outcomes.apply_outcome` as notifications, so the dedupe keys are shared: a
payment applied here makes a later ReturnURL a duplicate, and the other way round.

Fairness: each awaiting deposit has a next-check time; a run takes the most overdue first and moves each
deposit it checked forward with a backoff, so abandoned checkouts never starve a paid one. Pending refunds
are settled first (by asking ECPay, never by assumption: ``settle_refund`` is given by the service). A run
stops at its deadline (before a query that might not finish in time), after ECPay's rate limit (HTTP 403),
or when ECPay stops answering, and reports what it checked, what it skipped and why.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from ..ecpay.client import EcpayClient
from ..ecpay.errors import EcpayError, RateLimitedError, RejectedError, TransportError
from .attempts import live_attempts
from .ids import new_notification_id
from .models import Attempt, AttemptState, Transaction, TransactionStatus, TransactionType
from .outcomes import (
    FLAG_DUPLICATE_PAYMENT,
    Delivery,
    EcpayOutcome,
    OutcomeKind,
    apply_outcome,
    card_payment_info,
)
from .port import AtomicWrite, TransactionPut, VersionConflict, WalletStore
from .results import ReconcileReport

# TradeStatus values that mean "this attempt will never be paid": never paid / not found / BNPL
# application failed (protocol page §6).
NEVER_PAID = frozenset({"10200095", "10200047", "10200163"})
MAX_BACKOFF = timedelta(hours=6)
# The first wait after a check that changed nothing; it doubles after each. Not the grace period: a
# run told to ignore it (``--grace-minutes 0``) must still put what it asked behind what it has not.
BACKOFF_BASE = timedelta(minutes=15)
FAR_FUTURE = datetime(9999, 1, 1, tzinfo=UTC)
MIN_BACKOFF = timedelta(minutes=1)
# A query is not started unless this much more than the client's timeout is left before the deadline.
DEADLINE_MARGIN = timedelta(seconds=1)
# After this many queries in a row without an answer, ECPay is taken as down for this run.
MAX_CONSECUTIVE_FAILURES = 3

# What the service does with one pending refund: "completed", "failed", "unchanged" or "review: <why>".
RefundSettler = Callable[[Transaction], str]


def outcome_from_query(
    client: EcpayClient,
    txn: Transaction,
    attempt: Attempt,
    now: datetime,
    merchant_id: str,
    *,
    grace: timedelta = timedelta(0),
) -> tuple[EcpayOutcome, str] | None:
    """QueryTradeInfo for one attempt of ``txn``: (outcome to apply, raw answer), or None."""
    mtn = attempt.merchant_trade_no
    settled_long_ago = attempt.created_at <= now - grace
    base = EcpayOutcome(
        kind=OutcomeKind.FAILED,
        transaction_id=txn.transaction_id,
        merchant_trade_no=mtn,
        merchant_id=merchant_id,
        amount=txn.amount,
    )
    try:
        info = client.query_trade_info(mtn)
    except RejectedError as exc:
        # Unsigned error answers are never trusted as a payment; "not found" only ends an attempt,
        # and only once the shopper had the grace period to submit the checkout form.
        if exc.code in NEVER_PAID:
            if not settled_long_ago:
                return None  # ECPay does not know it yet: the shopper may still submit the form
            raw = urllib.parse.urlencode({"TradeStatus": exc.code, "RtnMsg": exc.rtn_msg})
            return base, raw
        raise
    raw = urllib.parse.urlencode(dict(info.fields))
    if info.merchant_trade_no != mtn:
        raise RejectedError("mismatch", "answer is about another MerchantTradeNo", "QueryTradeInfo")
    if info.is_paid:
        oc = EcpayOutcome(
            kind=OutcomeKind.PAID,
            transaction_id=txn.transaction_id,
            merchant_trade_no=mtn,
            merchant_id=merchant_id,
            amount=info.trade_amt,
            trade_no=info.trade_no,
            simulate_paid=info.simulate_paid,
            payment_type=info.payment_type,
            payment_info=card_payment_info(info.extra),
            paid_at=info.payment_date,
        )
        return oc, raw
    if info.trade_status in NEVER_PAID and settled_long_ago:
        return base._replace(trade_no=info.trade_no), raw
    if (
        attempt.state is AttemptState.AWAITING_OFFLINE_PAYMENT
        and attempt.expires_at is not None
        and attempt.expires_at < now
    ):
        # ECPay sends nothing when a code expires unpaid; its query still says unpaid.
        return base._replace(kind=OutcomeKind.EXPIRED, trade_no=info.trade_no), raw
    return None


def next_check(txn: Transaction, now: datetime, grace: timedelta) -> tuple[datetime, int]:
    """When to ask about ``txn`` again, and its new check count: exponential backoff, capped.

    The first wait is the longer of the grace period and ``BACKOFF_BASE``; an offline code is checked
    soon after it expires, whatever the backoff says.
    """
    count = txn.check_count + 1
    delay = min(max(grace, BACKOFF_BASE) * (2 ** min(count - 1, 12)), MAX_BACKOFF)
    due = now + delay
    for attempt in live_attempts(txn):
        if attempt.expires_at is not None and now < attempt.expires_at < due:
            due = attempt.expires_at + MIN_BACKOFF
    return due, count


class _Run:
    """One reconciliation pass: counters, the stop reason and the deadline check."""

    def __init__(self, client: EcpayClient, clock: Callable[[], datetime], deadline: datetime | None) -> None:
        self.client = client
        self.clock = clock
        self.deadline = deadline
        self.counts = {
            "checked": 0,
            "queries": 0,
            "paid": 0,
            "failed": 0,
            "expired": 0,
            "unchanged": 0,
            "refunds_checked": 0,
            "refunds_settled": 0,
            "refunds_reversed": 0,
        }
        self.errors: list[str] = []
        self.review: list[str] = []
        self.stopped: str | None = None
        self.failures_in_a_row = 0

    def time_left(self) -> bool:
        """False (and the run stops) when a query could outlive the deadline."""
        if self.deadline is None:
            return True
        needed = timedelta(seconds=self.client.timeout) + DEADLINE_MARGIN
        if self.clock() + needed > self.deadline:
            self.stopped = self.stopped or "deadline"
            return False
        return True

    def query_failed(self, what: str, exc: EcpayError) -> None:
        self.errors.append(f"{what}: query failed ({type(exc).__name__})")
        if isinstance(exc, TransportError):
            self.failures_in_a_row += 1
            if self.failures_in_a_row >= MAX_CONSECUTIVE_FAILURES:
                self.stopped = "ecpay_unreachable"


def _reschedule(store: WalletStore, txn: Transaction, now: datetime, grace: timedelta) -> None:
    """Move the next check of an awaiting deposit or a pending refund forward (compare-and-set).

    A concurrent change wins: what changed it (a notification, a settlement) decides for itself.
    """
    for _ in range(3):
        current = store.get_transaction(txn.transaction_id)
        if current is None:
            return
        still_open = (
            current.status is TransactionStatus.PENDING
            if current.transaction_type is TransactionType.REFUND
            else bool(live_attempts(current))
        )
        if not still_open:
            return
        due, count = next_check(current, now, grace)
        new = current._replace(version=current.version + 1, next_check_at=due, check_count=count)
        try:
            store.commit(AtomicWrite(transactions=(TransactionPut(new, current.version),)))
        except VersionConflict:
            continue
        return


def _check_deposit(
    run: _Run, store: WalletStore, txn: Transaction, merchant_id: str, grace: timedelta
) -> None:
    now = run.clock()
    run.counts["checked"] += 1
    changed = False
    for attempt in live_attempts(txn):
        if run.stopped or not run.time_left():
            break
        run.counts["queries"] += 1
        try:
            answer = outcome_from_query(run.client, txn, attempt, now, merchant_id, grace=grace)
        except RateLimitedError:
            run.errors.append("ECPay rate-limited the queries (HTTP 403); stopped this run")
            run.stopped = "rate_limited"
            break
        except EcpayError as exc:
            run.query_failed(f"{txn.transaction_id} attempt {attempt.merchant_trade_no}", exc)
            continue
        run.failures_in_a_row = 0
        if answer is None:
            continue
        oc, raw = answer
        delivery = Delivery(new_notification_id(), "reconcile", raw, run.clock())
        result = apply_outcome(store, oc, delivery, merchant_id=merchant_id, clock=run.clock)
        # A second paid attempt is flagged, not credited: it is counted for review, not as paid.
        duplicate = FLAG_DUPLICATE_PAYMENT in result.outcome
        if (
            result.status in ("applied", "flagged")
            and not duplicate
            and oc.kind
            in (
                OutcomeKind.PAID,
                OutcomeKind.FAILED,
                OutcomeKind.EXPIRED,
            )
        ):
            run.counts[str(oc.kind)] += 1
        if result.status in ("applied", "flagged"):
            changed = True
        if result.status == "rejected":
            run.errors.append(f"{txn.transaction_id}: {result.outcome}")
        elif result.status == "flagged":
            run.review.append(f"deposit {txn.transaction_id}: {result.outcome}")
        if result.transaction is not None:
            txn = result.transaction
    if not changed:
        run.counts["unchanged"] += 1
    _reschedule(store, txn, run.clock(), grace)


def run_reconcile(
    store: WalletStore,
    client: EcpayClient,
    *,
    merchant_id: str,
    clock: Callable[[], datetime],
    grace: timedelta,
    limit: int = 100,
    deadline: datetime | None = None,
    settle_refund: RefundSettler | None = None,
    due_before: datetime | None = None,
) -> ReconcileReport:
    """One pass: pending refunds first, then the most overdue awaiting deposits, until ``deadline``.

    ``due_before`` (default: now) picks what is due; when nothing is, the report says when the next
    deposit will be (``next_due``).
    """
    run = _Run(client, clock, deadline)
    now = clock()
    due = due_before or now
    refunds = store.list_pending_refunds(due_before=due, limit=limit)
    for refund in refunds:
        if settle_refund is None or run.stopped or not run.time_left():
            break
        run.counts["refunds_checked"] += 1
        verdict = settle_refund(refund)
        if verdict == "completed":
            run.counts["refunds_settled"] += 1
        elif verdict == "failed":
            run.counts["refunds_reversed"] += 1
        else:
            # Not settled: ask again later (backoff), so it never heads every run.
            _reschedule(store, refund, run.clock(), grace)
            if verdict.startswith("review"):
                run.review.append(
                    f"refund {refund.transaction_id} of deposit {refund.related_transaction_id}: {verdict}"
                )
            elif verdict.startswith("error"):
                run.errors.append(f"refund {refund.transaction_id}: {verdict}")
                if verdict == "error: rate_limited":
                    run.stopped = "rate_limited"
                elif verdict == "error: TransportError":
                    run.failures_in_a_row += 1
                    if run.failures_in_a_row >= MAX_CONSECUTIVE_FAILURES:
                        run.stopped = "ecpay_unreachable"
                continue
        run.failures_in_a_row = 0
    refunds_skipped = len(refunds) - run.counts["refunds_checked"]
    deposits = store.list_awaiting_payment(due_before=due, limit=limit)
    next_due = None
    if not deposits and not refunds:
        upcoming = [
            t.next_check_at or t.updated_at
            for t in (
                *store.list_awaiting_payment(due_before=FAR_FUTURE, limit=1),
                *store.list_pending_refunds(due_before=FAR_FUTURE, limit=1),
            )
        ]
        if upcoming:
            next_due = min(upcoming).isoformat()
    checked = 0
    for txn in deposits:
        if run.stopped or not run.time_left():
            break
        _check_deposit(run, store, txn, merchant_id, grace)
        checked += 1
    return ReconcileReport(
        errors=run.errors,
        review=run.review,
        skipped=len(deposits) - checked,
        refunds_skipped=refunds_skipped,
        stopped=run.stopped,
        next_due=next_due,
        **run.counts,
    )
