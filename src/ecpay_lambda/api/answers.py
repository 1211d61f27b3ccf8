"""What a management route's exception is answered with, for the Powertools app and the lean path alike.

Standard library only. A route raises an :class:`~.errors.ApiError`, a domain error or a fault; this
module decides the status, the JSON error document and the headers once, and writes the fault's log
line and metric, so the two request paths (api/app.py, api/fast/) cannot answer one error two ways.
"""

from __future__ import annotations

import json
from typing import Any, NamedTuple

from ..wallet.errors import WalletError
from . import logs, metrics
from .errors import RETRY_AFTER_SECONDS, STORE_UNAVAILABLE, ApiError, to_http_error
from .events import error_body

logger = logs.get_logger("ecpay_lambda.api.app")


class ErrorAnswer(NamedTuple):
    """An error response's parts: status, JSON body, extra headers (besides its content type)."""

    status: int
    body: str
    headers: dict[str, str] | None


def error_answer(
    status: int,
    code: str,
    message: str,
    details: list[dict[str, Any]] | dict[str, object] | None = None,
    headers: dict[str, str] | None = None,
) -> ErrorAnswer:
    """``{"error": {"code", "message"[, "details"]}}`` with its status and headers."""
    body = error_body(code, message)
    if details is not None:
        body = json.dumps(
            {"error": {"code": code, "message": message, "details": details}}, ensure_ascii=False
        )
    return ErrorAnswer(status, body, headers)


def answer_exception(exc: Exception) -> ErrorAnswer:
    """The answer to an exception a route raised: its own (ApiError), the domain's mapping, or a fault."""
    if isinstance(exc, ApiError):
        return error_answer(exc.status, exc.code, exc.message)
    if isinstance(exc, WalletError):
        mapped = to_http_error(exc)
        return error_answer(mapped.status, mapped.code, mapped.message, exc.details)
    mapped = to_http_error(exc)
    if mapped is STORE_UNAVAILABLE:
        # An outage, not a bug: one line without the trace, and the client is told when to retry.
        logger.warning("store unavailable", extra={"error_code": mapped.code, "error": type(exc).__name__})
        metrics.fault(metrics.STORE_ERRORS)
        return error_answer(
            mapped.status, mapped.code, mapped.message, headers={"Retry-After": str(RETRY_AFTER_SECONDS)}
        )
    # The trace goes to the log (with the correlation id); the client gets the code alone.
    logger.exception("unhandled error", extra={"error_code": mapped.code})
    metrics.fault(metrics.CONFIG_ERRORS if mapped.status == 503 else metrics.STORE_ERRORS)
    return error_answer(mapped.status, mapped.code, mapped.message)
