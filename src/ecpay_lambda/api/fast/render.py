"""Lean rendering of the hot routes' answers, byte for byte as the pydantic models render them.

``model.model_dump_json(by_alias=True)`` writes fields in declaration order, compact, UTF-8 (no
``\\uXXXX`` for non-ASCII), datetimes in ISO 8601 with ``Z`` for UTC. The plain cases are written
here with ``json.dumps``; anything else (a recurring plan, an e-invoice, a user's invoice settings,
a time in another zone, a value of an unexpected type) raises :class:`Unusual` inside, and the
answer is then rendered by the model itself, so it is right whatever it holds (only slower).
tests/unit/api/test_fast_path.py compares the two on every shape it can build.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from datetime import datetime
from enum import Enum
from typing import Any, TypeVar

from ...wallet.attempts import attempts_of
from ...wallet.models import (
    Attempt,
    AttemptState,
    LedgerEntry,
    NotificationRecord,
    Page,
    PaymentMethod,
    Transaction,
    TransactionStatus,
    TransactionType,
    User,
    UserStatus,
)
from ...wallet.service import TransactionDetail

T = TypeVar("T")


class Unusual(Exception):
    """A value the lean renderer does not write (the model renders it instead)."""


def _time(value: object) -> str:
    if type(value) is not datetime:
        raise Unusual
    text = value.isoformat()
    if text.endswith("+00:00"):  # UTC (an offset of zero): pydantic writes Z
        return text[:-6] + "Z"
    if value.tzinfo is None:
        return text
    raise Unusual  # another offset: the model's own format


def _maybe_time(value: object) -> str | None:
    return None if value is None else _time(value)


def _str(value: object) -> str:
    if type(value) is not str:
        raise Unusual
    return value


def _maybe_str(value: object) -> str | None:
    return None if value is None else _str(value)


def _int(value: object) -> int:
    if type(value) is not int:
        raise Unusual
    return value


def _enum(value: object, kind: type[Enum]) -> str:
    if not isinstance(value, kind):
        raise Unusual
    return str(value.value)


def _maybe_method(value: object) -> str | None:
    return None if value is None else _enum(value, PaymentMethod)


def _strings(value: object) -> dict[str, str]:
    if not isinstance(value, Mapping):
        raise Unusual
    return {_str(k): _str(v) for k, v in value.items()}


def _user(user: User) -> dict[str, Any]:
    if user.invoice_settings:
        raise Unusual
    return {
        "user_id": _str(user.user_id),
        "username": _str(user.username),
        "email": _str(user.email),
        "balance": _int(user.balance),
        "held": _int(user.held),
        "status": _enum(user.status, UserStatus),
        "created_at": _time(user.created_at),
        "invoice_settings": None,
    }


def _attempt(attempt: Attempt) -> dict[str, Any]:
    return {
        "merchant_trade_no": _str(attempt.merchant_trade_no),
        "payment_method": _maybe_method(attempt.payment_method),
        "state": _enum(attempt.state, AttemptState),
        "trade_no": _maybe_str(attempt.trade_no),
        "payment_info": _strings(attempt.payment_info),
        "expires_at": _maybe_time(attempt.expires_at),
        "created_at": _time(attempt.created_at),
    }


def _transaction(tx: Transaction) -> dict[str, Any]:
    if tx.plan is not None or tx.invoice is not None:
        raise Unusual
    if not isinstance(tx.flags, (set, frozenset, list, tuple)):
        raise Unusual
    # The common values are tested inline (a listing renders 20 of these per request).
    method, mtn, trade_no, expires, related, paid = (
        tx.payment_method,
        tx.merchant_trade_no,
        tx.trade_no,
        tx.expires_at,
        tx.related_transaction_id,
        tx.paid_at,
    )
    return {
        "transaction_id": _str(tx.transaction_id),
        "user_id": _str(tx.user_id),
        "transaction_type": _enum(tx.transaction_type, TransactionType),
        "amount": _int(tx.amount),
        "status": _enum(tx.status, TransactionStatus),
        "payment_method": None if method is None else _enum(method, PaymentMethod),
        "merchant_trade_no": None if mtn is None else _str(mtn),
        "trade_no": None if trade_no is None else _str(trade_no),
        "payment_info": _strings(tx.payment_info) if tx.payment_info else {},
        "expires_at": None if expires is None else _time(expires),
        "refunded_amount": _int(tx.refunded_amount),
        "related_transaction_id": None if related is None else _str(related),
        "flags": [_str(f) for f in sorted(tx.flags)] if tx.flags else [],
        "created_at": _time(tx.created_at),
        "updated_at": _time(tx.updated_at),
        "attempts": [_attempt(a) for a in attempts_of(tx)],
        "paid_at": None if paid is None else _time(paid),
        "recurring": None,
        "invoice": None,
    }


def _entry(entry: LedgerEntry) -> dict[str, Any]:
    return {
        "entry_id": _str(entry.entry_id),
        "kind": _str(entry.kind),
        "delta_balance": _int(entry.delta_balance),
        "delta_held": _int(entry.delta_held),
        "created_at": _time(entry.created_at),
    }


def _notification(record: NotificationRecord) -> dict[str, Any]:
    return {
        "notification_id": _str(record.notification_id),
        "received_at": _time(record.received_at),
        "route": _str(record.route),
        "outcome": _str(record.outcome),
        "merchant_trade_no": _maybe_str(record.merchant_trade_no),
    }


def _page(listing: Page[Transaction], page: int, page_size: int) -> dict[str, Any]:
    return {
        "transactions": [_transaction(t) for t in listing.items],
        "total": _int(listing.total),
        "page": page,
        "pageSize": page_size,
        "next_cursor": _maybe_str(listing.next_cursor),
    }


def _user_page(listing: Page[User], page: int, page_size: int) -> dict[str, Any]:
    return {
        "users": [_user(u) for u in listing.items],
        "total": _int(listing.total),
        "page": page,
        "pageSize": page_size,
        "next_cursor": _maybe_str(listing.next_cursor),
    }


def _detail(detail: TransactionDetail) -> dict[str, Any]:
    return {
        **_transaction(detail.transaction),
        "ledger": [_entry(e) for e in detail.ledger],
        "notifications": [_notification(n) for n in detail.notifications],
    }


def _lean(build: Callable[[], dict[str, Any]]) -> str | None:
    try:
        body = json.dumps(build(), ensure_ascii=False, separators=(",", ":"))
        body.encode("utf-8")  # a lone surrogate: the model refuses to write it (a fault either way)
    except (Unusual, UnicodeEncodeError, TypeError, ValueError):
        return None
    return body


# Each renderer below falls back to its model, imported only then (pydantic on that request alone).


def user(value: User) -> str:
    """``UserOut.of(value).model_dump_json(by_alias=True)``."""
    body = _lean(lambda: _user(value))
    if body is not None:
        return body
    from ..schemas import UserOut  # noqa: PLC0415

    return UserOut.of(value).model_dump_json(by_alias=True)


def transaction(value: Transaction) -> str:
    """``TransactionOut.of(value).model_dump_json(by_alias=True)``."""
    body = _lean(lambda: _transaction(value))
    if body is not None:
        return body
    from ..schemas import TransactionOut  # noqa: PLC0415

    return TransactionOut.of(value).model_dump_json(by_alias=True)


def transaction_page(listing: Page[Transaction], page: int, page_size: int) -> str:
    """The ``TransactionList`` of one page, as GET /users/{userId}/transactions renders it."""
    body = _lean(lambda: _page(listing, page, page_size))
    if body is not None:
        return body
    from ..schemas import TransactionList, TransactionOut  # noqa: PLC0415

    model = TransactionList(
        transactions=[TransactionOut.of(t) for t in listing.items],
        total=listing.total,
        page=page,
        pageSize=page_size,
        next_cursor=listing.next_cursor,
    )
    return model.model_dump_json(by_alias=True)


def user_page(listing: Page[User], page: int, page_size: int) -> str:
    """The ``UserList`` of one page, as GET /users renders it."""
    body = _lean(lambda: _user_page(listing, page, page_size))
    if body is not None:
        return body
    from ..schemas import UserList, UserOut  # noqa: PLC0415

    model = UserList(
        users=[UserOut.of(u) for u in listing.items],
        total=listing.total,
        page=page,
        pageSize=page_size,
        next_cursor=listing.next_cursor,
    )
    return model.model_dump_json(by_alias=True)


def transaction_detail(value: TransactionDetail) -> str:
    """``TransactionDetailOut.of_detail(value).model_dump_json(by_alias=True)``."""
    body = _lean(lambda: _detail(value))
    if body is not None:
        return body
    from ..schemas import TransactionDetailOut  # noqa: PLC0415

    return TransactionDetailOut.of_detail(value).model_dump_json(by_alias=True)


HEALTHY = '{"status":"ok","store":true}'
DEGRADED = '{"status":"degraded","store":false}'
