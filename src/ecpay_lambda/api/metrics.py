"""Money metrics as CloudWatch Embedded Metric Format (EMF) lines on stdout, with the standard library.

Lambda sends stdout to CloudWatch Logs, which turns each EMF line into metric data points: no API
call, no extra permission, no latency on the ``1|OK`` path. The lines are exactly what Powertools'
``Metrics`` prints (``tests/unit/api/test_metrics.py`` compares the two), but importing Powertools
Metrics would cost the notification function about 0.28x of a bare ``import boto3`` (the cold-start
rule, docs/performance.md), so every entry point uses this module.

Metric names (namespace ``POWERTOOLS_METRICS_NAMESPACE``, default ``EcpayWallet``; every metric has
the ``service`` dimension, the stack name on AWS; the ones that carry a reason are published under
``[service]`` and ``[service, reason]``, so alarms watch the first and people slice by the second):

=============================  =================================================================
``Notifications<Family>``      one per ECPay notification, by outcome family: ``Applied``,
                               ``Duplicate``, ``Flagged``, ``Ignored``, ``Rejected``, ``Retry``
                               (reason: the label's check, e.g. ``check_mac_value``)
``CrossCheckFailures``         a paid notification QueryTradeInfo did not confirm (reason
                               ``cross_check`` or ``cross_check_unavailable``)
``RefundFailures``             DoAction did not refund (reason ``refused``, ``invalid`` or
                               ``unknown``: no answer, the refund waits for reconciliation)
``StoreErrors``                a request answered 5xx because of a fault (the store on this path)
``ConfigErrors``               a request refused 503 because the function is misconfigured
``Reconcile*`` and the rest    one line per reconciliation run, see :func:`reconcile_metrics`
``Invoices*``                  one line per invoice job run (issue 13), see :func:`invoice_metrics`:
                               ``InvoicesIssued``, ``InvoicesVoided``, ``InvoiceAllowances``,
                               ``InvoiceRetries`` (transport failures, retried with backoff) and
                               ``InvoiceFailures`` (ECPay refused: flagged on the deposit for an operator)
=============================  =================================================================
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING

from .logs import SERVICE

if TYPE_CHECKING:
    from ..wallet.invoices import InvoiceRunReport
    from ..wallet.results import ReconcileReport

NAMESPACE = "EcpayWallet"  # the default; POWERTOOLS_METRICS_NAMESPACE overrides it
UNIT = "Count"

# Names other code (template.yaml's alarms, the deploy guide, dashboards) relies on: change them
# together.
NOTIFICATION_FAMILIES = {
    "applied": "NotificationsApplied",
    "duplicate": "NotificationsDuplicate",
    "flagged": "NotificationsFlagged",
    "ignored": "NotificationsIgnored",
    "rejected": "NotificationsRejected",
    "retry": "NotificationsRetry",
}
NOTIFICATIONS_OTHER = "NotificationsOther"  # a label family this module does not know yet
CROSS_CHECK_FAILURES = "CrossCheckFailures"
REFUND_FAILURES = "RefundFailures"
STORE_ERRORS = "StoreErrors"
CONFIG_ERRORS = "ConfigErrors"
RECONCILE_CHECKED = "ReconcileChecked"
RECONCILE_CREDITED = "ReconcileCredited"  # a payment credited by reconciliation: a lost notification
RECONCILE_FAILED = "ReconcileFailed"
RECONCILE_EXPIRED = "ReconcileExpired"
RECONCILE_ERRORS = "ReconcileErrors"
RECONCILE_REFUNDS_SETTLED = "ReconcileRefundsSettled"
REFUNDS_NEEDING_REVIEW = "RefundsNeedingReview"
# Reserved for the reconciliation work in progress (template.yaml already alarms on them):
RECONCILE_REFUNDS_REVERSED = "ReconcileRefundsReversed"  # pending refunds ECPay never made: points back
RECONCILE_SKIPPED = "ReconcileSkipped"  # due deposits a run did not reach (deadline, 403, ECPay down)
RECONCILE_STOPPED_EARLY = "ReconcileStoppedEarly"
STATEMENT_DISCREPANCIES = "StatementDiscrepancies"  # the daily trade-file run (TradeNoAio)
CLOSED_USER_CREDITS = "ClosedUserCredits"  # money credited to a closed user
INVOICES_ISSUED = "InvoicesIssued"
INVOICES_VOIDED = "InvoicesVoided"
INVOICE_ALLOWANCES = "InvoiceAllowances"
INVOICE_RETRIES = "InvoiceRetries"
INVOICE_FAILURES = "InvoiceFailures"

# A reason is a dimension value: it must stay a small, known set (every distinct value is a billed
# metric). Labels come from the wallet's code, never from a request, but are checked anyway.
_REASON_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789_")
MAX_REASON_CHARS = 40


def _namespace() -> str:
    return os.environ.get("POWERTOOLS_METRICS_NAMESPACE") or NAMESPACE


def _service() -> str:
    # Read for each line, not once at import: on Lambda it is the same (one function per process),
    # and a process hosting several functions (local mode, tests) labels each with its own.
    return os.environ.get("POWERTOOLS_SERVICE_NAME") or SERVICE


def _disabled() -> bool:
    return (os.environ.get("POWERTOOLS_METRICS_DISABLED") or "").strip().lower() in ("1", "true")


def _reason(value: str) -> str:
    value = value.lower()
    if not value or len(value) > MAX_REASON_CHARS or not set(value) <= _REASON_CHARS:
        return "other"
    return value


def emf_line(
    metrics: Mapping[str, float],
    *,
    reason: str | None = None,
    namespace: str | None = None,
    service: str | None = None,
    timestamp_ms: int | None = None,
) -> str:
    """One EMF line: ``metrics`` (name -> count) under ``[service]`` (and ``[service, reason]``)."""
    service = service or _service()
    dimensions: dict[str, str] = {"service": service}
    dimension_sets = [["service"]]
    if reason is not None:
        dimensions["reason"] = _reason(reason)
        dimension_sets.append(["service", "reason"])
    document: dict[str, object] = {
        "_aws": {
            "Timestamp": int(time.time() * 1000) if timestamp_ms is None else timestamp_ms,
            "CloudWatchMetrics": [
                {
                    "Namespace": namespace or _namespace(),
                    "Dimensions": dimension_sets,
                    "Metrics": [{"Name": name, "Unit": UNIT} for name in metrics],
                }
            ],
        },
        **dimensions,
        **{name: [float(value)] for name, value in metrics.items()},
    }
    return json.dumps(document, separators=(",", ":"))


def emit(metrics: Mapping[str, float], *, reason: str | None = None) -> None:
    """Write ``metrics`` as one EMF line to stdout (nothing when empty or disabled)."""
    if not metrics or _disabled():
        return
    try:
        sys.stdout.write(emf_line(metrics, reason=reason) + "\n")
        sys.stdout.flush()
    except (OSError, ValueError):
        # A metric must never turn a processed notification into an error (ECPay would resend).
        pass


def notification_metrics(outcome: str) -> tuple[dict[str, float], str | None]:
    """The metrics of one notification outcome label (``applied``, ``rejected:cross_check``...)."""
    family, _, detail = outcome.partition(":")
    name = NOTIFICATION_FAMILIES.get(family)
    if name is None:
        return {NOTIFICATIONS_OTHER: 1}, family or "empty"
    metrics: dict[str, float] = {name: 1}
    if family == "rejected" and detail.startswith("cross_check"):
        metrics[CROSS_CHECK_FAILURES] = 1
    if family == "flagged" and "closed_user_credit" in detail:
        metrics[CLOSED_USER_CREDITS] = 1
    return metrics, (detail or None)


def notification(outcome: str) -> None:
    """Count one ECPay notification by its outcome label (as recorded in its NotificationRecord)."""
    metrics, reason = notification_metrics(outcome)
    emit(metrics, reason=reason)


def reconcile_metrics(report: ReconcileReport) -> dict[str, float]:
    """The one mapping from a reconciliation report to its metrics (extend it with the report).

    Every name is always present (zeros too), so an alarm on it sees data after each run.
    """
    return {
        RECONCILE_CHECKED: report.checked,
        RECONCILE_CREDITED: report.paid,
        RECONCILE_FAILED: report.failed,
        RECONCILE_EXPIRED: report.expired,
        RECONCILE_REFUNDS_SETTLED: report.refunds_settled,
        RECONCILE_ERRORS: len(report.errors),
        # Everything an operator must check by hand: refunds ECPay's records cannot explain and
        # second payments of one deposit waiting to be refunded.
        REFUNDS_NEEDING_REVIEW: len(report.review),
        RECONCILE_REFUNDS_REVERSED: report.refunds_reversed,
        RECONCILE_SKIPPED: report.skipped,
        RECONCILE_STOPPED_EARLY: int(report.stopped is not None),
    }


def invoice_metrics(report: InvoiceRunReport) -> dict[str, float]:
    """The metrics of one invoice job run (every name, zeros included, so alarms see data)."""
    return {
        INVOICES_ISSUED: report.issued,
        INVOICES_VOIDED: report.voided,
        INVOICE_ALLOWANCES: report.allowances,
        INVOICE_RETRIES: report.retry,
        INVOICE_FAILURES: report.failed,
    }


def fault(name: str = STORE_ERRORS) -> None:
    """Count one request answered 5xx (``STORE_ERRORS``) or 503 misconfigured (``CONFIG_ERRORS``)."""
    emit({name: 1})
