"""Transactions: create (idempotent), list, read with ledger, complete or cancel a withdraw."""

from __future__ import annotations

from typing import Annotated, Any

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.params import Body

from ...wallet.models import TransactionType
from .. import operations
from ..schemas import (
    TransactionCreate,
    TransactionDetailOut,
    TransactionList,
    TransactionOut,
    WithdrawUpdate,
)
from .common import (
    SECURITY,
    Cursor,
    IdempotencyKey,
    Page,
    PageSize,
    TransactionId,
    UserId,
    json_response,
    responses,
)

router = Router()  # type: ignore[no-untyped-call]  # Powertools' __init__ is unannotated


@router.post(
    "/users/<userId>/transactions",
    summary="Create a deposit or a withdrawal",
    operation_id="createTransaction",
    description=(
        "A deposit starts `pending` (pay it with requestPayment); with `recurring` it is a card top-up "
        "charged every period (ECPay 定期定額), each later charge a deposit of its own. A withdrawal moves "
        "the amount from "
        "balance to held. With `Idempotency-Key`, a repeat answers the first transaction (200, header "
        "`Idempotent-Replayed: true`); the same key with another body is refused (422)."
    ),
    responses={
        **responses(201, TransactionOut, "The new transaction", 404, 409, 415),
        200: {
            "description": "A repeat with the same Idempotency-Key and body: the first transaction",
            "content": {"application/json": {"model": TransactionOut}},
        },
    },
    security=SECURITY,
    tags=["transactions"],
)
def create_transaction(
    user_id: UserId, body: Annotated[TransactionCreate, Body()], idempotency_key: IdempotencyKey = None
) -> Response[Any]:
    """POST /users/{userId}/transactions ``{transaction_type, amount}`` -> ``{transaction_id, ...}``."""
    transaction, replayed = operations.create_transaction(
        router.current_event.raw_event,
        user_id,
        TransactionType(body.transaction_type),
        body.amount,
        payment_method=body.payment_method,
        idempotency_key=idempotency_key,
        recurring=None if body.recurring is None else body.recurring.model_dump(),
        invoice=None if body.invoice is None else body.invoice.as_mapping(),
    )
    if replayed:
        return json_response(200, TransactionOut.of(transaction), **{"Idempotent-Replayed": "true"})
    return json_response(201, TransactionOut.of(transaction))


@router.get(
    "/users/<userId>/transactions",
    summary="List a user's transactions, newest first",
    operation_id="listTransactions",
    responses=responses(200, TransactionList, "One page of transactions", 404),
    security=SECURITY,
    tags=["transactions"],
)
def list_transactions(
    user_id: UserId, page: Page = 1, page_size: PageSize = 20, cursor: Cursor = None
) -> Response[Any]:
    """GET /users/{userId}/transactions?page&pageSize -> ``{transactions, total, ...}``."""
    listing = operations.list_transactions(router.current_event.raw_event, user_id, page, page_size, cursor)
    return json_response(
        200,
        TransactionList(
            transactions=[TransactionOut.of(t) for t in listing.items],
            total=listing.total,
            page=page,
            pageSize=page_size,
            next_cursor=listing.next_cursor,
        ),
    )


@router.get(
    "/users/<userId>/transactions/<transactionId>",
    summary="Get a transaction with its ledger entries and ECPay notifications",
    operation_id="getTransaction",
    responses=responses(200, TransactionDetailOut, "The transaction", 404),
    security=SECURITY,
    tags=["transactions"],
)
def get_transaction(user_id: UserId, transaction_id: TransactionId) -> Response[Any]:
    """GET /users/{userId}/transactions/{transactionId}."""
    detail = operations.get_transaction(router.current_event.raw_event, user_id, transaction_id)
    return json_response(200, TransactionDetailOut.of_detail(detail))


@router.patch(
    "/users/<userId>/transactions/<transactionId>",
    summary="Complete (default) or cancel a pending withdrawal; cancel an unpaid deposit",
    operation_id="updateTransaction",
    description=(
        'Body optional: `{"action": "complete" | "cancel"}` (or the seed\'s `{"status": "completed" | '
        '"cancelled"}`; both may be given only when they agree, else 422). A withdrawal is completed '
        "(the default) or cancelled. A deposit can only be cancelled, and only while no checkout attempt "
        "can still be paid (409 `deposit_payable` names the attempts that can); only ECPay marks a deposit "
        "paid (completing one is 409). Cancelling a paid recurring deposit cancels its plan at ECPay "
        "(CreditCardPeriodAction Cancel): no later charge is made."
    ),
    responses=responses(200, TransactionOut, "The updated transaction", 404, 409, 415),
    security=SECURITY,
    tags=["transactions"],
)
def update_transaction(
    user_id: UserId, transaction_id: TransactionId, body: Annotated[WithdrawUpdate | None, Body()] = None
) -> Response[Any]:
    """PATCH /users/{userId}/transactions/{transactionId}: the seed sends no body to complete (operators)."""
    transaction = operations.update_transaction(
        router.current_event.raw_event,
        user_id,
        transaction_id,
        None if body is None else body.action,
        None if body is None else body.status,
    )
    return json_response(200, TransactionOut.of(transaction))
