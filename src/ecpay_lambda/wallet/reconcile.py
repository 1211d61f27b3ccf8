"""Reconciliation: ask ECPay about deposits still awaiting payment and apply the answers.

A lost ReturnURL notification therefore never loses a payment. Answers go through the same
:func:`~ecpay_lambda.wallet.outcomes.apply_outcome` as notifications, so the dedupe keys are
shared: a payment applied here makes a later ReturnURL a duplicate, and the other way round.

Refunds left ``pending`` (a crash or timeout between the wallet debit and ECPay's DoAction answer)
are settled as *completed* and flagged ``refund_unconfirmed`` for an operator. That is the safe
side: the points were already taken out of the wallet, so nobody can spend them twice; giving them
back on a guess could pay the same money out twice (points and card refund), and repeating
DoAction could refund the card twice. The operator checks the ECPay back office and, if ECPay never
refunded, refunds again by hand.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Callable
from datetime import datetime, timedelta

from ..ecpay.client import EcpayClient
from ..ecpay.errors import EcpayError, RateLimitedError, RejectedError
from .ids import new_notification_id
from .models import Transaction, TransactionStatus
from .outcomes import FLAG_REFUND_UNCONFIRMED, Delivery, EcpayOutcome, OutcomeKind, apply_outcome
from .port import WalletStore
from .results import ReconcileReport

# TradeStatus values that mean "this attempt will never be paid": never paid / not found / BNPL
# application failed (protocol page §6).
NEVER_PAID = frozenset({"10200095", "10200047", "10200163"})


def outcome_from_query(
    client: EcpayClient,
    txn: Transaction,
    now: datetime,
    merchant_id: str,
    *,
    grace: timedelta = timedelta(0),
) -> tuple[EcpayOutcome, str] | None:
    """QueryTradeInfo for ``txn``'s current attempt: (outcome to apply, raw answer), or None."""
    mtn = txn.merchant_trade_no
    if mtn is None:
        return None
    settled_long_ago = txn.updated_at <= now - grace
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
        if exc.code in NEVER_PAID and settled_long_ago:
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
        )
        return oc, raw
    if info.trade_status in NEVER_PAID and settled_long_ago:
        return base, raw
    if (
        txn.status is TransactionStatus.AWAITING_OFFLINE_PAYMENT
        and txn.expires_at is not None
        and txn.expires_at < now
    ):
        # ECPay sends nothing when a code expires unpaid; its query still says unpaid.
        return EcpayOutcome(
            kind=OutcomeKind.EXPIRED,
            transaction_id=txn.transaction_id,
            merchant_trade_no=mtn,
            merchant_id=merchant_id,
            amount=txn.amount,
        ), raw
    return None


def run_reconcile(
    store: WalletStore,
    client: EcpayClient,
    *,
    merchant_id: str,
    clock: Callable[[], datetime],
    grace: timedelta,
    limit: int = 100,
) -> ReconcileReport:
    """One reconciliation pass over deposits awaiting payment and refunds left pending."""
    now = clock()
    cutoff = now - grace
    counts = {"checked": 0, "paid": 0, "failed": 0, "expired": 0, "unchanged": 0, "refunds_settled": 0}
    problems: list[str] = []
    review: list[str] = []
    for txn in store.list_awaiting_payment(due_before=cutoff, limit=limit):
        counts["checked"] += 1
        try:
            answer = outcome_from_query(client, txn, now, merchant_id, grace=grace)
        except RateLimitedError:
            problems.append("ECPay rate-limited the queries (HTTP 403); stopped this run")
            break
        except EcpayError as exc:
            problems.append(f"{txn.transaction_id}: query failed ({type(exc).__name__})")
            continue
        if answer is None:
            counts["unchanged"] += 1
            continue
        oc, raw = answer
        delivery = Delivery(new_notification_id(), "reconcile", raw, clock())
        result = apply_outcome(store, oc, delivery, merchant_id=merchant_id, clock=clock)
        if result.status == "applied":
            counts[str(oc.kind)] += 1
        elif result.status == "rejected":
            problems.append(f"{txn.transaction_id}: {result.outcome}")
        else:
            counts["unchanged"] += 1
            if result.status == "flagged":
                review.append(f"{txn.transaction_id}: {result.outcome}")
    for refund in store.list_pending_refunds(due_before=cutoff, limit=limit):
        oc = EcpayOutcome(
            kind=OutcomeKind.REFUNDED,
            transaction_id=refund.transaction_id,
            merchant_trade_no=refund.merchant_trade_no or "",
            merchant_id=merchant_id,
            amount=refund.amount,
            trade_no=refund.trade_no or "",
            flags=frozenset({FLAG_REFUND_UNCONFIRMED}),
        )
        delivery = Delivery(new_notification_id(), "reconcile", "settled=refund_unconfirmed", clock())
        result = apply_outcome(store, oc, delivery, merchant_id=merchant_id, clock=clock)
        if result.status == "applied":
            counts["refunds_settled"] += 1
            review.append(
                f"refund {refund.transaction_id} of deposit {refund.related_transaction_id}: "
                "settled without ECPay's answer; confirm it in the ECPay back office"
            )
    return ReconcileReport(errors=problems, review=review, **counts)
