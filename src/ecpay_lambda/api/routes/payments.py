"""ECPay from the API side: checkout form, refund, an immediate status query, recurring plans' actions."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Annotated, Any, cast
from urllib.parse import parse_qs, quote

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.params import Body, Query
from pydantic import ValidationError

from ...config import Settings, load_settings
from ...wallet.errors import PaymentGatewayError
from ...wallet.models import PaymentMethod
from ...wallet.service import CheckoutUrls
from .. import metrics
from ..composition import get_service
from ..errors import ApiError
from ..events import header, public_base_url
from ..schemas import CheckoutFormOut, CheckoutRequest, RecurringAction, RefundRequest, TransactionOut
from .common import (
    SECURITY,
    IdempotencyKey,
    TransactionId,
    UserId,
    json_response,
    operator_only,
    own_wallet,
    responses,
)

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.data_classes import APIGatewayProxyEventV2

router = Router()  # type: ignore[no-untyped-call]  # Powertools' __init__ is unannotated


def _require_ecpay() -> Settings:
    settings = load_settings()
    if not settings.ecpay_enabled:
        raise ApiError(503, "ecpay_unavailable", "ECPay is not configured for this function")
    return settings


def _event() -> APIGatewayProxyEventV2:
    # The router serves an HTTP API resolver, so its event is always the payload-2.0 class.
    return cast("APIGatewayProxyEventV2", router.current_event)


def _method_from_body(event: APIGatewayProxyEventV2) -> PaymentMethod | None:
    """``payment_method`` from an optional JSON or form body; any other body (the seed's) is ignored."""
    text = event.decoded_body or ""
    if not text.strip():
        return None
    media = (header(event.raw_event, "content-type") or "").split(";", 1)[0].strip().lower()
    data: object
    if media == "application/json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError:
            raise ApiError(400, "invalid_json", "the request body is not valid JSON") from None
    elif media == "application/x-www-form-urlencoded":
        data = {k: v[-1] for k, v in parse_qs(text, keep_blank_values=True).items()}
    else:
        return None
    if not isinstance(data, dict):
        raise ApiError(422, "validation_error", "the request body must be an object")
    try:
        return CheckoutRequest.model_validate(data).payment_method
    except ValidationError:
        raise ApiError(422, "validation_error", "payment_method is not a known ECPay method") from None


def _wants_json(event: APIGatewayProxyEventV2) -> bool:
    accept = (header(event.raw_event, "accept") or "").lower()
    return "application/json" in accept and "text/html" not in accept


_CHECKOUT_RESPONSES = responses(200, None, "The checkout form", 404, 409, 502)
_CHECKOUT_RESPONSES[200] = {
    "description": "The checkout form",
    "content": {
        "text/html": {"schema": {"type": "string"}},
        "application/json": {"model": CheckoutFormOut},
    },
}


@router.post(
    "/users/<userId>/transactions/<transactionId>/requestPayment",
    summary="Start ECPay checkout of a deposit",
    operation_id="requestPayment",
    description=(
        "Answers an auto-submitting HTML form that takes the browser to ECPay (each call is a new "
        "attempt with a fresh MerchantTradeNo), or `{action, fields}` with `Accept: application/json`. "
        "`payment_method` (Credit, ATM, CVS, BARCODE, WebATM, ...) may come in the query string or in a "
        "JSON or form body; any other body is ignored."
    ),
    responses=_CHECKOUT_RESPONSES,
    security=SECURITY,
    tags=["payments"],
)
def request_payment(
    user_id: UserId,
    transaction_id: TransactionId,
    payment_method: Annotated[PaymentMethod | None, Query()] = None,
) -> Response[Any]:
    """POST .../requestPayment -> HTML form (or JSON)."""
    own_wallet(router, user_id)
    settings = _require_ecpay()
    event = _event()
    method = payment_method or _method_from_body(event)
    base = public_base_url(event.raw_event, settings.public_base_url)
    prefix = f"{base}/users/{quote(user_id, safe='')}/transactions/{quote(transaction_id, safe='')}"
    urls = CheckoutUrls(
        return_url=f"{prefix}/return",
        payment_info_url=f"{prefix}/paymentInfo",
        client_back_url=f"{prefix}/clientReturn",
        order_result_url=f"{prefix}/clientReturn",
        period_return_url=f"{prefix}/periodReturn",
    )
    form = get_service().checkout(user_id, transaction_id, urls, payment_method=method)
    if _wants_json(event):
        return json_response(
            200,
            CheckoutFormOut(action=form.action, fields=dict(form.fields)),
            **{"Cache-Control": "no-store"},
        )
    return Response(
        status_code=200,
        content_type="text/html; charset=utf-8",
        body=form.html(),
        headers={"Cache-Control": "no-store"},
    )


@router.post(
    "/users/<userId>/transactions/<transactionId>/refund",
    summary="Refund a paid credit-card deposit (whole or part)",
    operation_id="refundDeposit",
    responses=responses(201, TransactionOut, "The refund transaction", 404, 409, 415, 502),
    security=SECURITY,
    tags=["payments"],
)
def refund(
    user_id: UserId,
    transaction_id: TransactionId,
    body: Annotated[RefundRequest | None, Body()] = None,
    idempotency_key: IdempotencyKey = None,
) -> Response[Any]:
    """POST .../refund ``{amount?}`` -> the refund transaction (operators)."""
    operator_only(router)
    _require_ecpay()
    amount = body.amount if body is not None else None
    try:
        refund_tx = get_service().refund(user_id, transaction_id, amount, idempotency_key=idempotency_key)
    except PaymentGatewayError as exc:
        # The points already left the wallet; money is at risk until ECPay's side is known.
        metrics.emit({metrics.REFUND_FAILURES: 1}, reason=refund_failure_reason(exc))
        raise
    return json_response(201, TransactionOut.of(refund_tx))


# How the wallet words its DoAction failures (wallet.service.WalletService._finish_refund):
# refused = ECPay answered no (the points came back), invalid = refused before sending (points came
# back), unknown = no answer (the refund stays pending until reconciliation settles it).
_REFUND_FAILURES = (
    ("ECPay refused the refund", "refused"),
    ("ECPay refund request invalid", "invalid"),
    ("ECPay did not answer the refund", "unknown"),
)


def refund_failure_reason(exc: PaymentGatewayError) -> str:
    """``refused``, ``invalid`` or ``unknown``: the ``reason`` dimension of a refund failure."""
    for prefix, reason in _REFUND_FAILURES:
        if exc.message.startswith(prefix):
            return reason
    return "unknown"  # the safe reading: nobody knows what ECPay did


@router.post(
    "/users/<userId>/transactions/<transactionId>/sync",
    summary="Ask ECPay about a deposit now (QueryTradeInfo) and apply the answer",
    operation_id="syncDeposit",
    responses=responses(200, TransactionOut, "The deposit after the query", 404, 409, 502),
    security=SECURITY,
    tags=["payments"],
)
def sync(user_id: UserId, transaction_id: TransactionId) -> Response[Any]:
    """POST .../sync -> the deposit."""
    own_wallet(router, user_id)
    _require_ecpay()
    return json_response(200, TransactionOut.of(get_service().sync(user_id, transaction_id)))


@router.post(
    "/users/<userId>/transactions/<transactionId>/recurring",
    summary="Cancel a recurring deposit's plan, or ask ECPay to retry a declined charge (ReAuth)",
    operation_id="recurringAction",
    description=(
        '`{"action": "cancel"}` (the wallet\'s owner or an operator): CreditCardPeriodAction Cancel at '
        'ECPay, then the plan is `cancelled` and no later charge is credited. `{"action": "reauth"}` '
        "(operators): CreditCardPeriodAction ReAuth; a successful retry arrives on PeriodReturnURL. "
        "ECPay's refusal is 409 `period_action_refused` with its RtnCode in `details`."
    ),
    responses=responses(200, TransactionOut, "The plan's deposit", 404, 409, 502),
    security=SECURITY,
    tags=["payments"],
)
def recurring_action(
    user_id: UserId, transaction_id: TransactionId, body: Annotated[RecurringAction, Body()]
) -> Response[Any]:
    """POST .../recurring ``{"action": "cancel" | "reauth"}`` -> the plan's deposit."""
    own_wallet(router, user_id)
    _require_ecpay()
    plans = get_service().plans()
    if body.action == "reauth":
        operator_only(router)
        plans.reauth(user_id, transaction_id)
        transaction = get_service().get_transaction(user_id, transaction_id).transaction
    else:
        transaction = plans.cancel(user_id, transaction_id)
    return json_response(200, TransactionOut.of(transaction))
