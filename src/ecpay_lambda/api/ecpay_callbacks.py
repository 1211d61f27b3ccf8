"""ECPay callback entry points: ReturnURL, PaymentInfoURL, PeriodReturnURL and the browser's clientReturn.

Lean (the cold-start rule, docs/performance.md): notifications go to the wallet's
``CallbackHandler`` without loading the wallet's other use cases (``wallet.service`` is imported by
clientReturn only). The wallet records,
verifies and applies each notification and says what to answer; this module only moves bytes in and
the ``1|OK`` line out.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from ..config import ConfigError, load_settings
from ..wallet.errors import NotFound
from . import logs, metrics
from .composition import get_callbacks, get_service
from .events import (
    MAX_BODY_BYTES,
    Event,
    LambdaResponse,
    http_method,
    path_parameter,
    request_id,
    route_path,
    text_response,
)

logger = logs.get_logger("ecpay_lambda.api.ecpay_callbacks")

# ECPay wants exactly the four characters 1|OK as plain text; no charset parameter to trip on.
PLAIN = "text/plain"

NOTIFICATION_ROUTES = frozenset({"return", "paymentInfo", "periodReturn"})


# Every request that reaches a callback route is recorded (design §2), but an oversized one is
# stored cut to this many characters: enough to see what it was, small enough for any store item.
OVERSIZE_RECORD_CHARS = MAX_BODY_BYTES * 2


def _raw_body(event: Event) -> tuple[bytes, bool]:
    """The body as bytes, and whether it was too large (then cut, to be recorded and refused)."""
    body = event.get("body")
    if body is None:
        return b"", False
    if not isinstance(body, str):
        return b"", False  # API Gateway always sends a string; anything else is treated as empty
    oversized = len(body) > OVERSIZE_RECORD_CHARS
    if oversized:
        body = body[:OVERSIZE_RECORD_CHARS]
    return body.encode("utf-8", errors="surrogatepass"), oversized


def _notification(event: Event, route: str) -> LambdaResponse:
    """ReturnURL / PaymentInfoURL: hand the raw body to the wallet and answer its reply line."""
    if http_method(event) not in ("POST", ""):
        return text_response(405, "0|MethodNotAllowed", PLAIN, Allow="POST")
    body, oversized = _raw_body(event)
    try:
        settings = load_settings()
        if not settings.ecpay_enabled:
            logger.error("callback reached a function without ECPay credentials", extra={"route": route})
            metrics.fault(metrics.CONFIG_ERRORS)
            return text_response(503, "0|Unavailable", PLAIN)
        callbacks = get_callbacks()
        transaction_id = path_parameter(event, "transactionId")
        # A cut body is kept as the text that arrived (still over the parser's limit): the wallet
        # records it and refuses it as too large; ECPay's notifications are a few hundred bytes.
        is_base64 = bool(event.get("isBase64Encoded")) and not oversized
        if route == "return":
            reply = callbacks.handle_return(
                body,
                is_base64=is_base64,
                route_transaction_id=transaction_id,
                route_user_id=path_parameter(event, "userId"),
            )
        elif route == "periodReturn":
            reply = callbacks.handle_period_return(
                body, is_base64=is_base64, route_transaction_id=transaction_id
            )
        else:
            reply = callbacks.handle_payment_info(
                body, is_base64=is_base64, route_transaction_id=transaction_id
            )
    except ConfigError as exc:
        logger.error("configuration error", extra={"route": route, "error": str(exc)})
        metrics.fault(metrics.CONFIG_ERRORS)
        return text_response(503, "0|Unavailable", PLAIN)
    except Exception as exc:
        # Imported on failure only (the cold-start rule).
        from .errors import RETRY_AFTER_SECONDS, is_store_outage  # noqa: PLC0415

        # Anything but 1|OK makes ECPay retry later; the stack trace goes to the log, never out.
        if is_store_outage(exc):
            logger.warning("callback refused: store unavailable", extra={"route": route})
            metrics.fault(metrics.STORE_ERRORS)
            return text_response(
                503, "0|StoreUnavailable", PLAIN, **{"Retry-After": str(RETRY_AFTER_SECONDS)}
            )
        # The wallet turns ECPay's errors into outcomes, so what lands here is the store failing.
        logger.exception("callback failed", extra={"route": route})
        metrics.fault(metrics.STORE_ERRORS)
        return text_response(500, "0|ServerError", PLAIN)
    logger.info(
        "ecpay notification",
        extra={
            "route": route,
            "outcome": reply.outcome,
            "accepted": reply.accepted,
            "transaction_id": reply.transaction_id,
        },
    )
    metrics.notification(reply.outcome)
    return text_response(413 if oversized else 200, reply.body, PLAIN)


# html.escape's table, without importing the html package (and its entity tables) on this path.
_HTML_ESCAPES = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#x27;"})


def _escape(text: str) -> str:
    return text.translate(_HTML_ESCAPES)


def _with_query(url: str, params: dict[str, str]) -> str:
    parts = urlsplit(url)
    query = [*parse_qsl(parts.query, keep_blank_values=True), *params.items()]
    return urlunsplit((parts.scheme, parts.netloc, parts.path or "/", urlencode(query), parts.fragment))


def _client_return(event: Event) -> LambdaResponse:
    """The shopper's browser back from ECPay (GET, or ECPay's cross-site POST): 303 to the front end."""
    user_id = path_parameter(event, "userId") or ""
    transaction_id = path_parameter(event, "transactionId") or ""
    result = {"transaction_id": transaction_id, "status": "unknown"}
    frontend_url: str | None = None
    try:
        frontend_url = load_settings().frontend_url
        detail = get_service().get_transaction(user_id, transaction_id)
        result["status"] = str(detail.transaction.status)
        # The front end may have lost its state (new tab, other device): tell it whose it is.
        result["user_id"] = user_id
    except NotFound:
        pass
    except Exception:
        # The shopper still gets back to the front end, which can ask the API for the status.
        logger.exception("clientReturn could not read the transaction")
    if frontend_url:
        # 303: the browser follows with a GET whatever method it came with; no cookie is needed.
        return {
            "statusCode": 303,
            "headers": {"Location": _with_query(frontend_url, result), "Cache-Control": "no-store"},
            "body": "",
            "isBase64Encoded": False,
        }
    page = (
        "<!doctype html><meta charset=utf-8><title>Payment</title>"
        f"<p>Transaction {_escape(result['transaction_id'])}: {_escape(result['status'])}</p>"
    )
    return text_response(200, page, "text/html; charset=utf-8", **{"Cache-Control": "no-store"})


def handler(event: dict[str, Any], context: Any) -> LambdaResponse:
    """Lambda entry point of the callback routes: dispatch on the route's last path segment."""
    logs.start_invocation(request_id(event), context)
    try:
        route = route_path(event).rstrip("/").rsplit("/", 1)[-1]
        if route in NOTIFICATION_ROUTES:
            return _notification(event, route)
        if route == "clientReturn":
            return _client_return(event)
        return text_response(404, "0|NotFound", PLAIN)
    finally:
        logs.end_invocation()
