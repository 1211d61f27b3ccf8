"""Result records of the callback, reconciliation and audit use cases (re-exported by ``service``).

``CallbackReply`` lives in :mod:`.notifications`, the notification Lambda's module (which need not define
the reports below); it is re-exported here.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .notifications import CallbackReply

__all__ = ["AuditReport", "CallbackReply", "ReconcileReport"]


@dataclass(frozen=True)
class ReconcileReport:
    """What one reconciliation run did."""

    checked: int = 0  # deposits asked about
    queries: int = 0  # QueryTradeInfo calls (one per attempt that could still be paid)
    paid: int = 0  # credited from ECPay's answer: their notifications were lost
    failed: int = 0
    expired: int = 0
    unchanged: int = 0
    errors: list[str] = field(default_factory=list)
    refunds_checked: int = 0
    refunds_settled: int = 0  # pending refunds ECPay confirmed: completed
    refunds_reversed: int = 0  # pending refunds ECPay never made: points given back
    review: list[str] = field(default_factory=list)  # what an operator should check by hand
    skipped: int = 0  # deposits due but not reached in this run (see ``stopped``)
    refunds_skipped: int = 0
    stopped: str | None = None  # why the run ended early: deadline, rate_limited, ecpay_unreachable
    next_due: str | None = None  # nothing was due: when the next awaiting deposit will be (ISO-8601)


@dataclass(frozen=True)
class AuditReport:
    """Ledger-vs-balance mismatches and deposits stuck awaiting payment."""

    users_checked: int
    mismatches: list[str]
    stuck: list[str]
    # Transactions an operator must look at: a second paid attempt to refund, an unconfirmed refund.
    flagged: list[str] = field(default_factory=list)
    # Per-transaction invariants broken, closed users holding money.
    problems: list[str] = field(default_factory=list)
    # Differences from ECPay's trade file (``audit --external``), when it was compared.
    external: list[str] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        """No ledger mismatch, no broken invariant, no difference from ECPay's records."""
        return not (self.mismatches or self.problems or self.external)
