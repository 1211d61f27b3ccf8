"""The audit: every user's ledger sums to its balance and held; what is stuck awaiting ECPay."""

from __future__ import annotations

from datetime import datetime, timedelta

from .models import OPEN_STATUSES, TransactionStatus, TransactionType, User
from .port import WalletStore
from .results import AuditReport

STUCK_LIMIT = 1000


def _check_user(store: WalletStore, user: User, flagged: list[str]) -> list[str]:
    problems: list[str] = []
    entries = store.list_ledger(user_id=user.user_id)
    balance = sum(e.delta_balance for e in entries)
    held = sum(e.delta_held for e in entries)
    if (balance, held) != (user.balance, user.held):
        problems.append(
            f"user {user.user_id}: ledger sums to balance {balance} / held {held}, "
            f"user record says {user.balance} / {user.held}"
        )
    if user.balance < 0 or user.held < 0:
        problems.append(f"user {user.user_id}: negative balance or held")
    open_count = 0
    pending_withdrawals = 0
    cursor: str | None = None
    while True:
        page = store.list_transactions(user.user_id, page_size=100, cursor=cursor)
        for txn in page.items:
            open_count += txn.status in OPEN_STATUSES
            if txn.flags:
                flagged.append(
                    f"{txn.transaction_type} {txn.transaction_id} of user {user.user_id}: "
                    + ", ".join(sorted(txn.flags))
                )
            if txn.transaction_type is TransactionType.WITHDRAW and txn.status is TransactionStatus.PENDING:
                pending_withdrawals += txn.amount
        cursor = page.next_cursor
        if cursor is None:
            break
    if open_count != user.open_transactions:
        problems.append(
            f"user {user.user_id}: {open_count} open transactions, user record says {user.open_transactions}"
        )
    if pending_withdrawals != user.held:
        problems.append(
            f"user {user.user_id}: pending withdrawals total {pending_withdrawals}, held is {user.held}"
        )
    return problems


def run_audit(store: WalletStore, *, now: datetime, grace: timedelta) -> AuditReport:
    """Check every user; list flagged transactions and what is pending past ``grace``."""
    mismatches: list[str] = []
    flagged: list[str] = []
    users = 0
    for user in store.iter_users():
        users += 1
        mismatches.extend(_check_user(store, user, flagged))
    cutoff = now - grace
    stuck = [
        f"deposit {t.transaction_id} of user {t.user_id}: {t.status} since {t.updated_at.isoformat()}"
        for t in store.list_awaiting_payment(due_before=cutoff, limit=STUCK_LIMIT)
    ]
    stuck += [
        f"refund {t.transaction_id} of user {t.user_id}: pending since {t.updated_at.isoformat()}"
        for t in store.list_pending_refunds(due_before=cutoff, limit=STUCK_LIMIT)
    ]
    return AuditReport(users_checked=users, mismatches=mismatches, stuck=stuck, flagged=flagged)
