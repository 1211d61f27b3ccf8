"""The reconciliation schedule's entry point (EventBridge): ask ECPay about deposits still awaiting payment.

Lean like the callbacks. A run that cannot start (store or configuration down) raises, so the
asynchronous invocation is retried and finally lands in the dead-letter queue; per-deposit errors
are reported and left to the next run. A run stops starting ECPay queries at its deadline: the
function's remaining time minus a margin, and never later than ``RECONCILE_DEADLINE_SECONDS``.

The daily rule sends ``{"action": "statement"}``: the run then compares ECPay's trade file for the day
before (Asia/Taipei) with the wallet, credits what ECPay confirms and reports the rest.

E-invoices (issue 13): with ``INVOICING`` on, every reconciliation run ends with a run of the invoice
job (issue pending invoices, void or allow after confirmed refunds), and the short invoice rule sends
``{"action": "invoices"}`` for that job alone. The e-invoice library is imported only then.
"""

from __future__ import annotations

import os
from dataclasses import asdict
from datetime import datetime, timedelta
from typing import Any

from ..config import load_settings
from ..ecpay.timezone import TAIPEI
from . import logs, metrics
from .composition import get_service

# Left of the function's remaining time when the run stops starting queries (logging, the report).
MARGIN = timedelta(seconds=20)

logger = logs.get_logger("ecpay_lambda.api.scheduled")


def _limit() -> int:
    try:
        return max(1, int(os.environ.get("RECONCILE_LIMIT", "100")))
    except ValueError:
        return 100


def budget(context: Any) -> timedelta:
    """How long this run may start ECPay queries: the setting, or less when the function would time out."""
    allowed = timedelta(seconds=load_settings().reconcile_deadline)
    remaining_ms = getattr(context, "get_remaining_time_in_millis", None)
    if callable(remaining_ms):
        allowed = min(allowed, timedelta(milliseconds=int(remaining_ms())) - MARGIN)
    return max(allowed, timedelta(0))


def _statement(service: Any) -> dict[str, Any]:
    yesterday = datetime.now(TAIPEI).date() - timedelta(days=1)
    report = service.reconcile_statement(yesterday, yesterday, apply=True)
    summary = asdict(report)
    summary["begin"] = summary["end"] = yesterday.isoformat()
    metrics.emit(
        {
            metrics.STATEMENT_DISCREPANCIES: len(report.discrepancies),
            metrics.RECONCILE_CREDITED: len(report.credited),
        }
    )
    if report.discrepancies:
        logger.error("statement reconciliation found discrepancies", extra={"report": summary})
    else:
        logger.info("statement reconciliation clean", extra={"report": summary})
    return summary


def run_invoices(deadline: timedelta) -> dict[str, Any] | None:
    """One run of the invoice job within ``deadline`` (None when invoicing is off)."""
    if load_settings().invoicing is None:
        return None
    # Imported here: the e-invoice library (and cryptography) only when invoicing is on.
    import time  # noqa: PLC0415

    from .invoicing import get_invoice_service  # noqa: PLC0415

    job = get_invoice_service()
    if job is None:
        return None
    report = job.run(limit=_limit(), deadline=time.monotonic() + max(deadline.total_seconds(), 0.0))
    metrics.emit(metrics.invoice_metrics(report))
    summary = report.to_dict()
    if report.failed:
        logger.error("invoice job: ECPay refused some invoices", extra={"invoices": summary})
    else:
        logger.info("invoice job finished", extra={"invoices": summary})
    return summary


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Lambda entry point: one reconciliation run (or the daily statement run); returns its report."""
    logs.start_invocation(str(event.get("id") or "") or None, context)
    try:
        service = get_service()
        if event.get("action") == "statement":
            return _statement(service)
        if event.get("action") == "invoices":
            return {"invoices": run_invoices(budget(context))}
        report = service.reconcile(limit=_limit(), budget=budget(context))
        summary = asdict(report)
        # Reconcile also retries the invoice work (it may have credited lost payments just now).
        try:
            invoices = run_invoices(budget(context) / 4)
        except Exception:  # the reconciliation stands; the invoice rule's own run will retry
            logger.exception("invoice job after reconciliation failed")
            invoices = {"error": "failed"}
        if invoices is not None:
            summary["invoices"] = invoices
        metrics.emit(metrics.reconcile_metrics(report))
        if report.errors:
            logger.warning("reconciliation finished with errors", extra={"report": summary})
        else:
            logger.info("reconciliation finished", extra={"report": summary})
        return summary
    except Exception:
        logger.exception("reconciliation failed")
        raise
    finally:
        logs.end_invocation()
