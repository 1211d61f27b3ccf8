"""Serve a hot request on the lean path, or say None: the resolver answers it (api/handlers.py).

The route logic is api/operations.py's, shared with the Powertools routes; an exception it raises
is answered by api/answers.py, as the resolver's exception handlers answer it. The response dict is
the one the resolver builds for a JSON answer (payload 2.0: statusCode, body, isBase64Encoded,
headers, cookies).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from ...config import Settings
from .. import operations
from ..answers import answer_exception
from ..errors import RETRY_AFTER_SECONDS
from ..events import Event, LambdaResponse, header
from . import checks, render
from .table import find

# What a route answers with: status, JSON body, extra headers.
Answer = tuple[int, str, dict[str, str] | None]
Serve = Callable[[Event, Mapping[str, str]], Answer]


def _create_user(event: Event, parameters: Mapping[str, str]) -> Answer | None:
    body = checks.create_user(event)
    if body is None:
        return None
    return _run(lambda: _user_answer(operations.create_user(event, body.username, body.email)))


def _user_answer(answer: operations.UserAnswer) -> Answer:
    return answer.status, render.user(answer.user), None


def _get_user(event: Event, parameters: Mapping[str, str]) -> Answer | None:
    if not checks.ids(parameters) or not checks.no_body(event):
        return None
    user_id = parameters["userId"]
    return _run(lambda: (200, render.user(operations.get_user(event, user_id)), None))


def _create_transaction(event: Event, parameters: Mapping[str, str]) -> Answer | None:
    request = checks.create_transaction(event)
    if request is None or not checks.ids(parameters):
        return None
    user_id = parameters["userId"]

    def run() -> Answer:
        transaction, replayed = operations.create_transaction(
            event,
            user_id,
            request.transaction_type,
            request.amount,
            payment_method=request.payment_method,
            idempotency_key=request.idempotency_key,
        )
        if replayed:
            return 200, render.transaction(transaction), {"Idempotent-Replayed": "true"}
        return 201, render.transaction(transaction), None

    return _run(run)


def _list_transactions(event: Event, parameters: Mapping[str, str]) -> Answer | None:
    query = checks.list_query(event)
    if query is None or not checks.ids(parameters) or not checks.no_body(event):
        return None
    user_id = parameters["userId"]

    def run() -> Answer:
        listing = operations.list_transactions(event, user_id, query.page, query.page_size, query.cursor)
        return 200, render.transaction_page(listing, query.page, query.page_size), None

    return _run(run)


def _get_transaction(event: Event, parameters: Mapping[str, str]) -> Answer | None:
    if not checks.ids(parameters) or not checks.no_body(event):
        return None
    user_id, transaction_id = parameters["userId"], parameters["transactionId"]
    return _run(
        lambda: (
            200,
            render.transaction_detail(operations.get_transaction(event, user_id, transaction_id)),
            None,
        )
    )


def _list_users(event: Event, parameters: Mapping[str, str]) -> Answer | None:
    query = checks.list_users_query(event)
    if query is None or not checks.no_body(event):
        return None

    def run() -> Answer:
        listing = operations.list_users(
            event, query.page, query.page_size, query.cursor, query.include_closed
        )
        return 200, render.user_page(listing, query.page, query.page_size), None

    return _run(run)


def _update_transaction(event: Event, parameters: Mapping[str, str]) -> Answer | None:
    request = checks.update_transaction(event)
    if request is None or not checks.ids(parameters):
        return None
    user_id, transaction_id = parameters["userId"], parameters["transactionId"]

    def run() -> Answer:
        transaction = operations.update_transaction(
            event, user_id, transaction_id, request.action, request.status
        )
        return 200, render.transaction(transaction), None

    return _run(run)


def _healthz(event: Event, parameters: Mapping[str, str]) -> Answer | None:
    if not checks.no_body(event):
        return None
    if operations.store_writable():
        return 200, render.HEALTHY, None
    return 503, render.DEGRADED, {"Retry-After": str(RETRY_AFTER_SECONDS)}


def _run(route: Callable[[], Answer]) -> Answer:
    try:
        return route()
    except Exception as exc:
        # As the resolver's exception handlers answer it (logged and counted there for faults).
        return answer_exception(exc)


_SERVE: dict[str, Callable[[Event, Mapping[str, str]], Answer | None]] = {
    "create_user": _create_user,
    "get_user": _get_user,
    "create_transaction": _create_transaction,
    "list_transactions": _list_transactions,
    "get_transaction": _get_transaction,
    "healthz": _healthz,
    "list_users": _list_users,
    "update_transaction": _update_transaction,
}


def serve(event: Event, settings: Settings) -> LambdaResponse | None:
    """The response to ``event`` when the lean path serves it, else None (hand it to the resolver).

    With CORS configured, a request with an ``Origin`` header goes to the resolver, which adds the
    CORS headers (the lean path never writes them).
    """
    if settings.cors_origins and header(event, "origin") is not None:
        return None
    found = find(event)
    if found is None:
        return None
    route, parameters = found
    answer = _SERVE[route.name](event, parameters)
    if answer is None:
        return None
    status, body, extra = answer
    return {
        "statusCode": status,
        "body": body,
        "isBase64Encoded": False,
        "headers": {**(extra or {}), "Content-Type": "application/json"},
        "cookies": [],
    }
