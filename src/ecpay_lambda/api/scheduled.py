"""The reconciliation schedule's entry point (EventBridge): ask ECPay about deposits still awaiting payment.

Lean like the callbacks. A run that cannot start (store or configuration down) raises, so the
asynchronous invocation is retried and finally lands in the dead-letter queue; per-deposit errors
are reported and left to the next run.
"""

from __future__ import annotations

import os
from dataclasses import asdict
from typing import Any

from . import logs, metrics
from .composition import get_service

logger = logs.get_logger("ecpay_lambda.api.scheduled")


def _limit() -> int:
    try:
        return max(1, int(os.environ.get("RECONCILE_LIMIT", "100")))
    except ValueError:
        return 100


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Lambda entry point: one reconciliation run; returns its report."""
    logs.start_invocation(str(event.get("id") or "") or None, context)
    try:
        report = get_service().reconcile(limit=_limit())
        summary = asdict(report)
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
