"""Lean request checks: accept only what the resolver's pydantic validation accepts, with the same values.

Each function returns the validated values, or None for "not sure": a value pydantic would refuse,
and also one it would accept but only by a conversion not reproduced here (a float amount, a
leading zero, a recurring plan...). None never means an error answer: the request then goes to the
resolver, which gives the canonical one (or serves it). Checked against pydantic by
tests/unit/api/test_fast_path.py.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Mapping
from typing import Any, NamedTuple

from ...wallet.models import PaymentMethod, TransactionStatus, TransactionType
from ..events import Event
from ..patterns import (
    AMOUNT_PATTERN,
    EMAIL_MAX,
    EMAIL_PATTERN,
    USERNAME_MAX,
    USERNAME_PATTERN,
    strip_white_space,
)

_AMOUNT = re.compile(AMOUNT_PATTERN)
# Query integers: digits without sign, leading zero or white space (pydantic reads more; those go there).
_DIGITS = re.compile(r"[1-9][0-9]{0,6}")
_CURSOR = re.compile(r"[A-Za-z0-9_-]{1,512}")
# The route parameters' bounds (api/routes/common.py: UserId, TransactionId, Page, PageSize, Cursor).
ID_MAX = 64
PAGE_MAX = 1_000_000
PAGE_SIZE_MAX = 100
IDEMPOTENCY_KEY_MAX = 255
_LIST_QUERY = frozenset({"page", "pageSize", "cursor"})
_USERS_QUERY = frozenset({*_LIST_QUERY, "include_closed"})
_BOOLEANS = {"true": True, "false": False}
_ACTIONS = frozenset({"complete", "cancel"})
_UPDATE_STATUSES = {s.value: s for s in (TransactionStatus.COMPLETED, TransactionStatus.CANCELLED)}
_TYPES = {t.value: t for t in (TransactionType.DEPOSIT, TransactionType.WITHDRAW)}
_METHODS = {m.value: m for m in PaymentMethod}
_MISSING = object()


class CreateUser(NamedTuple):
    """A valid POST /users body, as UserCreate reads it (surrounding white space dropped)."""

    username: str
    email: str


class CreateTransaction(NamedTuple):
    """A valid POST /users/{userId}/transactions request without a recurring plan or invoice settings."""

    transaction_type: TransactionType
    amount: int
    payment_method: PaymentMethod | None
    idempotency_key: str | None


class ListQuery(NamedTuple):
    """A listing's valid query."""

    page: int
    page_size: int
    cursor: str | None


class ListUsersQuery(NamedTuple):
    """GET /users's valid query."""

    page: int
    page_size: int
    cursor: str | None
    include_closed: bool


class UpdateTransaction(NamedTuple):
    """A valid PATCH body (no body at all: both None, the seed's way to complete)."""

    action: str | None
    status: TransactionStatus | None


def ids(parameters: Mapping[str, str]) -> bool:
    """True when every path parameter (a user or transaction id) has an accepted length."""
    return all(len(value) <= ID_MAX for value in parameters.values())


def _headers_named(event: Event, name: str) -> list[str]:
    headers = event.get("headers") or {}
    return [value for key, value in headers.items() if isinstance(key, str) and key.lower() == name]


def no_body(event: Event) -> bool:
    """True when the request carries no body (a GET route's body is the resolver's business)."""
    return not event.get("body") and not event.get("isBase64Encoded")


def _utf8(value: str) -> bool:
    # A lone surrogate (JSON "\ud800") is a str pydantic accepts but can never write back out.
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _json_object(event: Event) -> dict[str, Any] | None:
    """The body as a JSON object, when it is plainly one sent as application/json."""
    body = event.get("body")
    if event.get("isBase64Encoded") or not isinstance(body, str) or not body:
        return None
    media = _headers_named(event, "content-type")
    if len(media) != 1 or not isinstance(media[0], str):
        return None
    value = media[0].strip()
    if value != "application/json" and not value.startswith("application/json;"):
        return None
    try:
        data = json.loads(body)
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


@functools.cache
def _compiled(pattern: str) -> re.Pattern[str]:
    # The name and address patterns' large classes take ~4 ms to compile: only a POST /users pays it.
    return re.compile(pattern)


def _name(value: object, pattern: str, limit: int) -> str | None:
    if type(value) is not str or len(value) > limit or not _utf8(value):
        return None
    if _compiled(pattern).fullmatch(value) is None:
        return None
    return strip_white_space(value)


def create_user(event: Event) -> CreateUser | None:
    """POST /users ``{username, email}`` (other fields ignored, as UserCreate does)."""
    data = _json_object(event)
    if data is None:
        return None
    username = _name(data.get("username"), USERNAME_PATTERN, USERNAME_MAX)
    email = _name(data.get("email"), EMAIL_PATTERN, EMAIL_MAX)
    if username is None or email is None:
        return None
    return CreateUser(username, email)


def _amount(value: object) -> int | None:
    if type(value) is int:
        return value if 1 <= value <= 100_000_000 else None
    if type(value) is str and _AMOUNT.fullmatch(value):
        return int(value)
    return None


def _idempotency_key(event: Event) -> str | object | None:
    """The header's value, None when absent, ``_MISSING`` when unsure (several, a list, odd length)."""
    values = _headers_named(event, "idempotency-key")
    if not values:
        return None
    if len(values) > 1 or type(values[0]) is not str:
        return _MISSING
    value = values[0]
    # A comma may be a list of values to the resolver; a key's own rules are the wallet's (same answer).
    if not 1 <= len(value) <= IDEMPOTENCY_KEY_MAX or "," in value or not _utf8(value):
        return _MISSING
    return value


def create_transaction(event: Event) -> CreateTransaction | None:
    """POST /users/{userId}/transactions: a deposit or withdrawal without ``recurring`` or ``invoice``."""
    data = _json_object(event)
    if data is None:
        return None
    transaction_type = data.get("transaction_type")
    amount = _amount(data.get("amount"))
    if type(transaction_type) is not str or transaction_type not in _TYPES or amount is None:
        return None
    if data.get("status", None) not in (None, "pending"):
        return None
    if data.get("recurring") is not None or data.get("invoice") is not None:
        return None
    method = data.get("payment_method")
    if method is not None and (type(method) is not str or method not in _METHODS):
        return None
    key = _idempotency_key(event)
    if key is _MISSING:
        return None
    return CreateTransaction(
        _TYPES[transaction_type],
        amount,
        None if method is None else _METHODS[method],
        key if isinstance(key, str) else None,
    )


def _query_int(value: object, default: int, limit: int) -> int | None:
    if value is _MISSING:
        return default
    if type(value) is not str or _DIGITS.fullmatch(value) is None:
        return None
    number = int(value)
    return number if number <= limit else None


def list_query(event: Event, allowed: frozenset[str] = _LIST_QUERY) -> ListQuery | None:
    """A listing's ``page``, ``pageSize`` and ``cursor`` (any other query parameter: unsure)."""
    query = event.get("queryStringParameters") or {}
    if not isinstance(query, Mapping) or not allowed.issuperset(query):
        return None
    page = _query_int(query.get("page", _MISSING), 1, PAGE_MAX)
    page_size = _query_int(query.get("pageSize", _MISSING), 20, PAGE_SIZE_MAX)
    cursor = query.get("cursor")
    if cursor is not None and (type(cursor) is not str or _CURSOR.fullmatch(cursor) is None):
        return None
    if page is None or page_size is None:
        return None
    return ListQuery(page, page_size, cursor)


def list_users_query(event: Event) -> ListUsersQuery | None:
    """GET /users's query: a listing's, and ``include_closed`` written ``true`` or ``false``."""
    listing = list_query(event, _USERS_QUERY)
    if listing is None:
        return None
    query = event.get("queryStringParameters") or {}
    include_closed = query.get("include_closed", "false")
    if include_closed not in _BOOLEANS:
        return None
    return ListUsersQuery(*listing, _BOOLEANS[include_closed])


def update_transaction(event: Event) -> UpdateTransaction | None:
    """A PATCH body: none at all (and no content type), or an object with a known action and status."""
    if event.get("body") is None and not event.get("isBase64Encoded"):
        if _headers_named(event, "content-type"):
            return None
        return UpdateTransaction(None, None)
    data = _json_object(event)
    if data is None:
        return None
    action, status = data.get("action"), data.get("status")
    if action is not None and (type(action) is not str or action not in _ACTIONS):
        return None
    if status is not None and (type(status) is not str or status not in _UPDATE_STATUSES):
        return None
    return UpdateTransaction(action, None if status is None else _UPDATE_STATUSES[status])
