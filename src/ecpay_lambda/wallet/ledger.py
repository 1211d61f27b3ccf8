"""The one way a ledger entry is made: every change of a user's ``balance`` or ``held`` writes one."""

from datetime import datetime

from .ids import new_entry_id
from .models import LedgerEntry, Transaction


def ledger_entry(
    txn: Transaction, kind: str, delta_balance: int, delta_held: int, at: datetime
) -> LedgerEntry:
    """The entry of ``txn`` moving ``delta_balance`` / ``delta_held`` of its user, at ``at``."""
    return entry_of(
        txn.user_id, txn.transaction_id, kind, delta_balance=delta_balance, delta_held=delta_held, at=at
    )


def entry_of(
    user_id: str, transaction_id: str, kind: str, *, delta_balance: int, delta_held: int, at: datetime
) -> LedgerEntry:
    """The same entry from the ids alone (a speculative credit knows no more of its transaction)."""
    return LedgerEntry(
        entry_id=new_entry_id(),
        user_id=user_id,
        transaction_id=transaction_id,
        kind=kind,
        delta_balance=delta_balance,
        delta_held=delta_held,
        created_at=at,
    )
