"""Wallet events from the DynamoDB table's stream: which records are events, and what each one says.

On AWS an EventBridge Pipe reads the table's stream (NEW_AND_OLD_IMAGES) and puts the records that
pass :data:`PIPE_FILTERS` on the stack's event bus: no Lambda code on the money path. The same
patterns are in template.yaml (tests/template/test_events.py checks they are these), and
:func:`event_of` applies them to one record here, so a unit test, a local outbox or a consumer can
name and read exactly the events the Pipe forwards.

Exactly once per change: only the authoritative transaction item (``sk = TXN``) is considered, never
its listing entry, and a record is an event only when the status *changed* into one that matters
(an update that keeps the status, such as the reconciliation schedule's ``next_check_at``, is none).
Pipes delivers at least once: consumers deduplicate on ``(transaction_id, version)``.

Standard library only; pure functions over the stream's attribute-value format.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

# Names of the events (docs/events.md), by transaction type and the status it changed into.
EVENT_NAMES: dict[tuple[str, str], str] = {
    ("deposit", "paid"): "deposit.paid",
    ("deposit", "failed"): "deposit.failed",
    ("deposit", "expired"): "deposit.expired",
    ("deposit", "cancelled"): "deposit.cancelled",
    ("withdraw", "pending"): "withdrawal.requested",
    ("withdraw", "completed"): "withdrawal.completed",
    ("withdraw", "cancelled"): "withdrawal.cancelled",
    ("refund", "completed"): "refund.completed",
    ("refund", "failed"): "refund.failed",
}
EVENT_SOURCE = "ecpay-wallet"
DETAIL_TYPE = "Wallet Transaction"

_TXN = {"Keys": {"sk": {"S": ["TXN"]}}}


def _changed(types: Sequence[str], into: Sequence[str], not_from: Sequence[str]) -> dict[str, Any]:
    return {
        "eventName": ["MODIFY"],
        "dynamodb": {
            **_TXN,
            "NewImage": {"transaction_type": {"S": list(types)}, "status": {"S": list(into)}},
            "OldImage": {"status": {"S": [{"anything-but": list(not_from)}]}},
        },
    }


# A deposit's e-invoice was issued (issue 13): its ``invoice_status`` (the adapter writes it beside the
# invoice's JSON so that a filter can see it) changed into ``issued``. The money did not move; the event
# tells the merchant's systems the invoice number exists.
INVOICE_ISSUED: dict[str, Any] = {
    "eventName": ["MODIFY"],
    "dynamodb": {
        **_TXN,
        "NewImage": {"transaction_type": {"S": ["deposit"]}, "invoice_status": {"S": ["issued"]}},
        "OldImage": {"invoice_status": {"S": [{"anything-but": ["issued"]}]}},
    },
}

# The first Pipe's filter criteria (at most five patterns; a record passing any one is forwarded).
PIPE_FILTERS: tuple[dict[str, Any], ...] = (
    # Paid: a deposit that was not paid before (a late payment after expiry counts; a refund of a
    # paid deposit, which moves it to partially_refunded/refunded and back, does not).
    _changed(["deposit"], ["paid"], ["paid", "partially_refunded", "refunded"]),
    _changed(["deposit", "refund"], ["failed"], ["failed"]),
    # Cancelled, expired, completed: one pattern for the three (no deposit completes, no withdrawal
    # expires, no refund is cancelled or expires, and none leaves one of these for another), so the
    # five patterns also fit a recurring top-up's charge below.
    _changed(
        ["deposit", "withdraw", "refund"],
        ["cancelled", "expired", "completed"],
        ["cancelled", "expired", "completed"],
    ),
    # Written in this change: a withdrawal is requested (money moves from balance to held), and a
    # recurring top-up's later charge is a deposit created already paid (wallet.periodic).
    {
        "eventName": ["INSERT"],
        "dynamodb": {
            **_TXN,
            "NewImage": {"transaction_type": {"S": ["withdraw"]}, "status": {"S": ["pending"]}},
        },
    },
    {
        "eventName": ["INSERT"],
        "dynamodb": {
            **_TXN,
            "NewImage": {"transaction_type": {"S": ["deposit"]}, "status": {"S": ["paid"]}},
        },
    },
)
# The second Pipe's (WalletInvoiceEventsPipe, created with Invoicing=on): the first one's five patterns
# are taken, and Pipes' filters have no ``$or`` to share one (EventBridge's pattern table: "Or (multiple
# fields)" is not supported by Pipes).
INVOICE_PIPE_FILTERS: tuple[dict[str, Any], ...] = (INVOICE_ISSUED,)


class WalletEvent(NamedTuple):
    """One wallet event: what happened to which transaction of which user, and the amounts."""

    name: str  # e.g. "deposit.paid" (EVENT_NAMES), or "invoice.issued"
    transaction_id: str
    user_id: str
    transaction_type: str
    status: str
    previous_status: str | None  # None for a transaction written in this change
    amount: int  # TWD
    refunded_amount: int  # TWD, deposits: refunded so far
    related_transaction_id: str | None  # a refund's deposit
    version: int  # with transaction_id, the key to deduplicate on
    occurred_at: str  # the transaction's updated_at (ISO-8601 UTC)
    invoice_number: str | None = None  # invoice.issued: ECPay's InvoiceNo (two letters + 8 digits)

    def detail(self) -> dict[str, Any]:
        """The event as a JSON-ready mapping (the outbox's and the documentation's shape)."""
        return self._asdict()


def _matches(pattern: object, value: object) -> bool:
    """The subset of EventBridge pattern matching the Pipes' filters use: nested keys, value lists,
    ``anything-but``. A field the pattern names must exist in the record."""
    if isinstance(pattern, Mapping):
        if not isinstance(value, Mapping):
            return False
        return all(key in value and _matches(sub, value[key]) for key, sub in pattern.items())
    if isinstance(pattern, list):
        for option in pattern:
            if isinstance(option, Mapping) and "anything-but" in option:
                if value not in option["anything-but"]:
                    return True
            elif option == value:
                return True
        return False
    return False


def forwarded(record: Mapping[str, Any]) -> bool:
    """True when a Pipe forwards ``record`` to the bus (it passes one of :data:`PIPE_FILTERS` or
    :data:`INVOICE_PIPE_FILTERS`)."""
    return any(_matches(pattern, record) for pattern in (*PIPE_FILTERS, *INVOICE_PIPE_FILTERS))


def _s(image: Mapping[str, Any], name: str) -> str | None:
    value = image.get(name)
    return value.get("S") if isinstance(value, Mapping) and isinstance(value.get("S"), str) else None


def _n(image: Mapping[str, Any], name: str) -> int:
    value = image.get(name)
    text = value.get("N") if isinstance(value, Mapping) else None
    return int(text) if isinstance(text, str) else 0


def event_of(record: Mapping[str, Any]) -> WalletEvent | None:
    """The event a stream record is, or None when the Pipe would not forward it."""
    if not forwarded(record):
        return None
    dynamodb = record["dynamodb"]
    new = dynamodb["NewImage"]
    old = dynamodb.get("OldImage")
    kind, status = _s(new, "transaction_type") or "", _s(new, "status") or ""
    invoice = _matches(INVOICE_ISSUED, record)
    return WalletEvent(
        name="invoice.issued" if invoice else EVENT_NAMES.get((kind, status), f"{kind}.{status}"),
        transaction_id=_s(new, "transaction_id") or "",
        user_id=_s(new, "user_id") or "",
        transaction_type=kind,
        status=status,
        previous_status=_s(old, "status") if isinstance(old, Mapping) else None,
        amount=_n(new, "amount"),
        refunded_amount=_n(new, "refunded_amount"),
        related_transaction_id=_s(new, "related_transaction_id"),
        version=_n(new, "version"),
        occurred_at=_s(new, "updated_at") or "",
        invoice_number=_invoice_number(new) if invoice else None,
    )


def _invoice_number(image: Mapping[str, Any]) -> str | None:
    text = _s(image, "invoice")
    try:
        number = json.loads(text).get("number") if text else None
    except (ValueError, AttributeError):
        return None
    return number if isinstance(number, str) else None


def filter_patterns_json(patterns: Sequence[Mapping[str, Any]] = PIPE_FILTERS) -> list[str]:
    """``patterns`` (the first Pipe's by default) as a Pipe's ``Pattern`` strings (compact JSON)."""
    return [json.dumps(p, separators=(",", ":")) for p in patterns]
