"""Users: create, list, read, close (the seed's routes and field names)."""

from __future__ import annotations

from typing import Annotated, Any

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.params import Body, Query

from .. import operations
from ..composition import get_service
from ..schemas import InvoiceSettingsIn, UserCreate, UserList, UserOut
from .common import (
    SECURITY,
    Cursor,
    Page,
    PageSize,
    UserId,
    json_response,
    operator_only,
    own_wallet,
    responses,
)

IncludeClosed = Annotated[
    bool,
    Query(
        alias="include_closed",
        description="also list closed users (for operators); by default closed users are left out",
    ),
]

router = Router()  # type: ignore[no-untyped-call]  # Powertools' __init__ is unannotated


@router.post(
    "/users",
    summary="Create a user",
    operation_id="createUser",
    description=(
        "Operators create any user. An end user (AUTH_MODE=jwt) creates their own wallet, bound to "
        "their sign-in identity: one per identity, a second create answers the first (200)."
    ),
    responses={
        **responses(201, UserOut, "The new user", 404, 409, 415),
        200: {
            "description": "An end user's wallet that already exists (one per identity)",
            "content": {"application/json": {"model": UserOut}},
        },
    },
    security=SECURITY,
    tags=["users"],
)
def create_user(body: Annotated[UserCreate, Body()]) -> Response[Any]:
    """POST /users ``{username, email}`` -> 201 with the user; an end user's second create -> 200."""
    answer = operations.create_user(router.current_event.raw_event, body.username, body.email)
    return json_response(answer.status, UserOut.of(answer.user))


@router.get(
    "/users",
    summary="List users",
    operation_id="listUsers",
    responses=responses(200, UserList, "One page of users", 404),
    security=SECURITY,
    tags=["users"],
)
def list_users(
    page: Page = 1, page_size: PageSize = 20, cursor: Cursor = None, include_closed: IncludeClosed = False
) -> Response[Any]:
    """GET /users?page&pageSize (or &cursor)[&include_closed=true] -> ``{users, total, page, pageSize}``.

    Closed users leave the default list, as the seed's front end expects after ``DELETE /users/{id}``
    ("deleted"); operators list them too with ``include_closed=true``. ``GET /users/{id}`` still
    answers for a closed user (status ``closed``). Operators only (404 for an end user).
    """
    listing = operations.list_users(router.current_event.raw_event, page, page_size, cursor, include_closed)
    return json_response(
        200,
        UserList(
            users=[UserOut.of(u) for u in listing.items],
            total=listing.total,
            page=page,
            pageSize=page_size,
            next_cursor=listing.next_cursor,
        ),
    )


@router.get(
    "/users/<userId>",
    summary="Get a user",
    operation_id="getUser",
    responses=responses(200, UserOut, "The user", 404),
    security=SECURITY,
    tags=["users"],
)
def get_user(user_id: UserId) -> Response[Any]:
    """GET /users/{userId} (an end user: only their own)."""
    return json_response(200, UserOut.of(operations.get_user(router.current_event.raw_event, user_id)))


@router.delete(
    "/users/<userId>",
    summary="Close a user",
    operation_id="closeUser",
    description="Keeps every record. 409 while the user has money, held money or open transactions.",
    responses=responses(200, UserOut, "The closed user", 404, 409),
    security=SECURITY,
    tags=["users"],
)
def close_user(user_id: UserId) -> Response[Any]:
    """DELETE /users/{userId} -> 200 with the closed user (JSON, as the seed expects); operators."""
    operator_only(router)
    return json_response(200, UserOut.of(get_service().close_user(user_id)))


@router.post(
    "/users/<userId>/reopen",
    summary="Reopen a closed user (operator)",
    operation_id="reopenUser",
    description=(
        "A payment that reached a user after it was closed (an ATM/CVS code paid late) is credited and "
        "flagged; reopen the user so the money can be withdrawn or refunded, then close it again."
    ),
    responses=responses(200, UserOut, "The reopened user", 404, 409),
    security=SECURITY,
    tags=["users"],
)
def reopen_user(user_id: UserId) -> Response[Any]:
    """POST /users/{userId}/reopen -> 200 with the active user; 409 when it is not closed; operators."""
    operator_only(router)
    return json_response(200, UserOut.of(get_service().reopen_user(user_id)))


@router.put(
    "/users/<userId>/invoice-settings",
    summary="Set the user's e-invoice buyer settings",
    operation_id="putInvoiceSettings",
    description=(
        "How this user's deposits are invoiced (B2C e-invoice, issue 13): e-mail, a carrier (mobile "
        "barcode checked with ECPay's CheckBarcode, citizen certificate, ECPay member), a donation (love "
        "code checked with CheckLoveCode) or a company tax ID (統一編號, printed). A broken rule answers "
        "400 with the code `invoice_<rule>` and a message that explains it. An end user may set their own."
    ),
    responses=responses(200, UserOut, "The user with its settings", 404, 415),
    security=SECURITY,
    tags=["users"],
)
def put_invoice_settings(user_id: UserId, body: Annotated[InvoiceSettingsIn, Body()]) -> Response[Any]:
    """PUT /users/{userId}/invoice-settings -> 200 with the user (an end user: only their own)."""
    # Imported here: the e-invoice library loads only for the invoice routes' first request.
    from ...wallet.invoices import update_invoice_settings  # noqa: PLC0415
    from ..invoicing import get_invoice_client  # noqa: PLC0415

    own_wallet(router, user_id)
    service = get_service()
    user = update_invoice_settings(
        service.store, user_id, body.as_mapping(), client=get_invoice_client(), now=service.now()
    )
    return json_response(200, UserOut.of(user))
