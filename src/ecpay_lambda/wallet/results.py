"""Result records of the callback, reconciliation and audit use cases (re-exported by ``service``).

``CallbackReply`` lives in :mod:`.callbacks`, the notification Lambda's module, so that function's
cold start does not also define the reports below; it is re-exported here.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .callbacks import CallbackReply

__all__ = ["AuditReport", "CallbackReply", "ReconcileReport"]


@dataclass(frozen=True)
class ReconcileReport:
    """What one reconciliation run did."""

    checked: int = 0
    paid: int = 0
    failed: int = 0
    expired: int = 0
    unchanged: int = 0
    errors: list[str] = field(default_factory=list)
    refunds_settled: int = 0  # refunds left pending past the grace period, settled as completed
    review: list[str] = field(default_factory=list)  # what an operator should check by hand


@dataclass(frozen=True)
class AuditReport:
    """Ledger-vs-balance mismatches and deposits stuck awaiting payment."""

    users_checked: int
    mismatches: list[str]
    stuck: list[str]
    # Transactions an operator must look at: a second paid attempt to refund, an unconfirmed refund.
    flagged: list[str] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        """No ledger mismatch."""
        return not self.mismatches
