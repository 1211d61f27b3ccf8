"""The audit: the wallet agrees with itself, per user and per transaction; nobody closed holds money.

Per user: ledger entries sum to balance and held; nothing negative; the open-transaction counter and the
held amount agree with the transactions. Per transaction: a paid deposit has exactly one credit of its
amount and an unpaid one none; refunds never exceed what was paid and each moved the points it says; every
completed refund carries ECPay's confirmation. A closed user holding money is a problem until an operator
refunds it or reopens the user. Deposits stuck awaiting ECPay and flagged transactions are listed.
Comparing with ECPay's own records (the trade file) is :mod:`.statement`'s job (``audit --external``).
"""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime, timedelta

from .invoice_state import invoice_problems, overdue_invoice
from .models import (
    OPEN_STATUSES,
    LedgerEntry,
    Transaction,
    TransactionStatus,
    TransactionType,
    User,
    UserStatus,
)
from .outcomes import FLAG_REFUND_UNCONFIRMED, PAID_FAMILY
from .port import WalletStore
from .results import AuditReport

STUCK_LIMIT = 1000
EVERYTHING = datetime(9999, 1, 1, tzinfo=UTC)  # a due time past every schedule: list them all
CONFIRMED_BY = "confirmed_by"  # refund evidence key: "DoAction" or "QueryTrade"


def _user_transactions(store: WalletStore, user_id: str) -> list[Transaction]:
    found: list[Transaction] = []
    cursor: str | None = None
    while True:
        page = store.list_transactions(user_id, page_size=100, cursor=cursor)
        found.extend(page.items)
        cursor = page.next_cursor
        if cursor is None:
            return found


def _check_deposit(txn: Transaction, entries: list[LedgerEntry], refunds: list[Transaction]) -> list[str]:
    problems: list[str] = []
    credits = [e for e in entries if e.kind == "deposit_paid"]
    where = f"deposit {txn.transaction_id} of user {txn.user_id}"
    if txn.status in PAID_FAMILY:
        if len(credits) != 1 or credits[0].delta_balance != txn.amount:
            problems.append(
                f"{where}: paid, but credited {len(credits)} time(s) for "
                f"{sum(e.delta_balance for e in credits)} (expected once for {txn.amount})"
            )
    elif credits:
        problems.append(f"{where}: {txn.status}, but credited {len(credits)} time(s)")
    if not 0 <= txn.refunded_amount <= txn.amount:
        problems.append(f"{where}: refunded {txn.refunded_amount} of {txn.amount}")
    active = sum(r.amount for r in refunds if r.status is not TransactionStatus.FAILED)
    if active != txn.refunded_amount:
        problems.append(
            f"{where}: its refunds total {active}, the deposit records {txn.refunded_amount} refunded"
        )
    if refunds and txn.status not in PAID_FAMILY:
        problems.append(f"{where}: refunded although it is {txn.status}")
    problems.extend(invoice_problems(txn))  # e-invoices (issue 13): refused, never queued, wrong amount
    return problems


def _check_refund(txn: Transaction, entries: list[LedgerEntry]) -> list[str]:
    problems: list[str] = []
    where = f"refund {txn.transaction_id} of deposit {txn.related_transaction_id}"
    moved = sum(e.delta_balance for e in entries)
    expected = 0 if txn.status is TransactionStatus.FAILED else -txn.amount
    if moved != expected:
        problems.append(f"{where}: its ledger moved {moved}, expected {expected} ({txn.status})")
    if txn.status is TransactionStatus.COMPLETED and (
        CONFIRMED_BY not in txn.payment_info or FLAG_REFUND_UNCONFIRMED in txn.flags
    ):
        problems.append(f"{where}: completed without ECPay's confirmation")
    return problems


def _check_user(store: WalletStore, user: User, flagged: list[str]) -> tuple[list[str], list[str]]:
    """(ledger mismatches, per-transaction problems) of one user."""
    mismatches: list[str] = []
    problems: list[str] = []
    entries = store.list_ledger(user_id=user.user_id)
    balance = sum(e.delta_balance for e in entries)
    held = sum(e.delta_held for e in entries)
    if (balance, held) != (user.balance, user.held):
        mismatches.append(
            f"user {user.user_id}: ledger sums to balance {balance} / held {held}, "
            f"user record says {user.balance} / {user.held}"
        )
    if user.balance < 0 or user.held < 0:
        mismatches.append(f"user {user.user_id}: negative balance or held")
    by_txn: dict[str, list[LedgerEntry]] = defaultdict(list)
    for entry in entries:
        by_txn[entry.transaction_id].append(entry)
    txns = _user_transactions(store, user.user_id)
    refunds_of: dict[str, list[Transaction]] = defaultdict(list)
    for txn in txns:
        if txn.transaction_type is TransactionType.REFUND and txn.related_transaction_id:
            refunds_of[txn.related_transaction_id].append(txn)
    open_count = 0
    pending_withdrawals = 0
    for txn in txns:
        open_count += txn.status in OPEN_STATUSES
        if txn.flags:
            flagged.append(
                f"{txn.transaction_type} {txn.transaction_id} of user {user.user_id}: "
                + ", ".join(sorted(txn.flags))
            )
        if txn.transaction_type is TransactionType.WITHDRAW and txn.status is TransactionStatus.PENDING:
            pending_withdrawals += txn.amount
        if txn.transaction_type is TransactionType.DEPOSIT:
            problems.extend(
                _check_deposit(
                    txn, by_txn.get(txn.transaction_id, []), refunds_of.get(txn.transaction_id, [])
                )
            )
        elif txn.transaction_type is TransactionType.REFUND:
            problems.extend(_check_refund(txn, by_txn.get(txn.transaction_id, [])))
    if open_count != user.open_transactions:
        mismatches.append(
            f"user {user.user_id}: {open_count} open transactions, user record says {user.open_transactions}"
        )
    if pending_withdrawals != user.held:
        mismatches.append(
            f"user {user.user_id}: pending withdrawals total {pending_withdrawals}, held is {user.held}"
        )
    if user.status is UserStatus.CLOSED and (user.balance or user.held):
        problems.append(
            f"user {user.user_id} is closed but holds balance {user.balance} / held {user.held}: "
            "refund the deposits that reached it, or reopen the user (POST /users/{id}/reopen)"
        )
    return mismatches, problems


def run_audit(store: WalletStore, *, now: datetime, grace: timedelta) -> AuditReport:
    """Check every user and transaction; list flagged transactions and what is pending past ``grace``."""
    mismatches: list[str] = []
    problems: list[str] = []
    flagged: list[str] = []
    users = 0
    for user in store.iter_users():
        users += 1
        user_mismatches, user_problems = _check_user(store, user, flagged)
        mismatches.extend(user_mismatches)
        problems.extend(user_problems)
    cutoff = now - grace
    stuck = [
        f"deposit {t.transaction_id} of user {t.user_id}: {t.status} since {t.updated_at.isoformat()}"
        for t in store.list_awaiting_payment(due_before=EVERYTHING, limit=STUCK_LIMIT)
        if t.updated_at <= cutoff
    ]
    stuck += [
        f"refund {t.transaction_id} of user {t.user_id}: pending since {t.updated_at.isoformat()}"
        for t in store.list_pending_refunds(due_before=EVERYTHING, limit=STUCK_LIMIT)
        if t.updated_at <= cutoff
    ]
    # E-invoices (issue 13): a paid deposit without an issued invoice, or a confirmed refund not voided
    # or allowed, past the grace period.
    for txn in store.list_invoices_due(due_before=EVERYTHING, limit=STUCK_LIMIT):
        overdue = overdue_invoice(txn, cutoff)
        if overdue is not None:
            problems.append(overdue)
    return AuditReport(
        users_checked=users, mismatches=mismatches, stuck=stuck, flagged=flagged, problems=problems
    )
