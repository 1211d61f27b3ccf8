"""What every route module shares: parameter types, OpenAPI response declarations, response helpers."""

from __future__ import annotations

from typing import Annotated, Any

from aws_lambda_powertools.event_handler import Response, content_types
from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.params import Header, Path, Query
from aws_lambda_powertools.event_handler.openapi.types import OpenAPIResponse, OpenAPIResponseHeader
from pydantic import BaseModel

from .. import access
from ..auth import Principal
from ..schemas import ErrorResponse

# Management routes need credentials (bearer token or JWT); the OpenAPI spec says so per route.
SECURITY: list[dict[str, list[str]]] = [{"bearerAuth": []}]

# Lengths count characters: API Gateway hands the function path parameters decoded as UTF-8.
UserId = Annotated[
    str, Path(alias="userId", min_length=1, max_length=64, description="a user_id this API returned")
]
TransactionId = Annotated[
    str,
    Path(
        alias="transactionId", min_length=1, max_length=64, description="a transaction_id this API returned"
    ),
]
Page = Annotated[int, Query(ge=1, le=1_000_000, description="1-based page number")]
PageSize = Annotated[int, Query(alias="pageSize", ge=1, le=100, description="items per page")]
Cursor = Annotated[
    str | None,
    Query(
        min_length=1,
        max_length=512,
        pattern=r"^[A-Za-z0-9_-]+$",
        description="continue from a previous page's `next_cursor` (opaque, URL-safe base64; takes "
        "precedence over `page`). A cursor this API did not issue for this listing is refused (400).",
    ),
]

_ERROR_TEXT = {
    400: "Malformed request",
    401: "Missing or wrong credentials",
    404: "No such user or transaction",
    409: "The request conflicts with the current state",
    413: "Body too large",
    415: "Unsupported content type",
    422: "Invalid field values",
    502: "ECPay could not be reached or refused",
    503: "Unavailable: the store cannot be reached (retry after `Retry-After` seconds), or not configured",
}
_RETRY_AFTER: dict[str, OpenAPIResponseHeader] = {
    "Retry-After": {"description": "seconds to wait before retrying", "schema": {"type": "integer"}}
}


def responses(
    status: int, model: type[BaseModel] | None, description: str, *errors: int
) -> dict[int, OpenAPIResponse]:
    """OpenAPI ``responses`` of a route: its success answer and the error answers it may give.

    Every route may answer 400, 401 (when credentials are required), 413, 422 and 503 (a store outage,
    on every route); ``errors`` adds the route's own.
    """
    declared: dict[int, OpenAPIResponse] = {}
    if model is not None:
        declared[status] = {"description": description, "content": {"application/json": {"model": model}}}
    else:
        declared[status] = {"description": description}
    for code in sorted({400, 401, 413, 422, 503, *errors}):
        declared[code] = {
            "description": _ERROR_TEXT.get(code, "Error"),
            "content": {"application/json": {"model": ErrorResponse}},
        }
    declared[503]["headers"] = _RETRY_AFTER
    return declared


def json_response(status: int, model: BaseModel, **headers: str) -> Response[Any]:
    """A JSON response from a pydantic model, by field alias (the seed's ``pageSize``)."""
    return Response(
        status_code=status,
        content_type=content_types.APPLICATION_JSON,
        body=model.model_dump_json(by_alias=True),
        headers=headers or None,
    )


IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        min_length=1,
        max_length=255,
        description="Repeat a request safely: the same key and body answer the same transaction.",
    ),
]


def caller(router: Router) -> Principal:
    """Who sent the request ``router`` is serving (see :func:`ecpay_lambda.api.access.caller`)."""
    return access.caller(router.current_event.raw_event)


def own_wallet(router: Router, user_id: str) -> None:
    """Refuse a caller who may not act on wallet ``user_id`` (see :func:`.access.own_wallet`)."""
    access.own_wallet(router.current_event.raw_event, user_id)


def operator_only(router: Router) -> None:
    """Refuse an end user on an operator route (see :func:`ecpay_lambda.api.access.operator_only`)."""
    access.operator_only(router.current_event.raw_event)
