"""Stream records to wallet events: the Pipe's filter, applied to items encoded as the store writes them."""

from __future__ import annotations

import itertools
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from ecpay_lambda.store.dynamodb_events import EVENT_NAMES, PIPE_FILTERS, WalletEvent, event_of, forwarded
from ecpay_lambda.store.dynamodb_items import encode_transaction, encode_transaction_listing
from ecpay_lambda.wallet.invoice_state import InvoiceState, InvoiceStatus
from ecpay_lambda.wallet.models import Transaction, TransactionStatus, TransactionType

T0 = datetime(2026, 11, 28, 2, 0, tzinfo=UTC)
S = TransactionStatus


def txn(kind: TransactionType, status: TransactionStatus, version: int = 1, **extra: Any) -> Transaction:
    return Transaction(
        transaction_id="t00000000001",
        user_id="u_1",
        transaction_type=kind,
        amount=1000,
        status=status,
        version=version,
        created_at=T0,
        updated_at=T0 + timedelta(minutes=version),
        **extra,
    )


def records(old: Transaction | None, new: Transaction) -> list[dict[str, Any]]:
    """Stream records of the transaction item and of its listing entry (a pointer; a full copy before)."""
    out = []
    for encode in (encode_transaction, encode_transaction_listing):
        image = encode(new)
        dynamodb: dict[str, Any] = {"Keys": {"pk": image["pk"], "sk": image["sk"]}, "NewImage": image}
        if old is not None:
            dynamodb["OldImage"] = encode(old)
        out.append({"eventName": "INSERT" if old is None else "MODIFY", "dynamodb": dynamodb})
    return out


def events(old: Transaction | None, new: Transaction) -> list[str]:
    return [e.name for r in records(old, new) if (e := event_of(r)) is not None]


def test_a_paid_deposit_is_one_event_with_the_transaction_user_and_amounts() -> None:
    pending = txn(TransactionType.DEPOSIT, S.AWAITING_PAYMENT, 2)
    paid = pending._replace(status=S.PAID, version=3, updated_at=T0 + timedelta(minutes=3))
    found = [e for r in records(pending, paid) if (e := event_of(r)) is not None]
    assert len(found) == 1
    assert found[0].detail() == {
        "name": "deposit.paid",
        "transaction_id": "t00000000001",
        "user_id": "u_1",
        "transaction_type": "deposit",
        "status": "paid",
        "previous_status": "awaiting_payment",
        "amount": 1000,
        "refunded_amount": 0,
        "related_transaction_id": None,
        "version": 3,
        "occurred_at": "2026-11-28T02:03:00.000000+00:00",
        "invoice_number": None,
    }


@pytest.mark.parametrize(
    ("kind", "old", "new", "expected"),
    [
        (TransactionType.DEPOSIT, None, S.PENDING, []),
        (TransactionType.DEPOSIT, S.PENDING, S.AWAITING_PAYMENT, []),
        (TransactionType.DEPOSIT, S.AWAITING_OFFLINE_PAYMENT, S.PAID, ["deposit.paid"]),
        (TransactionType.DEPOSIT, S.EXPIRED, S.PAID, ["deposit.paid"]),  # paid late: credited
        (TransactionType.DEPOSIT, S.PAID, S.PAID, []),  # a duplicate notification, a flag
        (TransactionType.DEPOSIT, S.PAID, S.PARTIALLY_REFUNDED, []),  # the refund is the event
        (TransactionType.DEPOSIT, S.PARTIALLY_REFUNDED, S.PAID, []),  # a refund undone
        (TransactionType.DEPOSIT, S.AWAITING_PAYMENT, S.FAILED, ["deposit.failed"]),
        (TransactionType.DEPOSIT, S.AWAITING_OFFLINE_PAYMENT, S.EXPIRED, ["deposit.expired"]),
        (TransactionType.DEPOSIT, S.PENDING, S.CANCELLED, ["deposit.cancelled"]),
        (TransactionType.WITHDRAW, None, S.PENDING, ["withdrawal.requested"]),
        (TransactionType.WITHDRAW, S.PENDING, S.COMPLETED, ["withdrawal.completed"]),
        (TransactionType.WITHDRAW, S.PENDING, S.CANCELLED, ["withdrawal.cancelled"]),
        (TransactionType.REFUND, None, S.PENDING, []),
        (TransactionType.REFUND, S.PENDING, S.PENDING, []),  # the reconcile schedule moved on
        (TransactionType.REFUND, S.PENDING, S.COMPLETED, ["refund.completed"]),
        (TransactionType.REFUND, S.PENDING, S.FAILED, ["refund.failed"]),
        # A recurring top-up's later charge is a deposit written already paid (wallet.periodic).
        (TransactionType.DEPOSIT, None, S.PAID, ["deposit.paid"]),
        (TransactionType.DEPOSIT, S.EXPIRED, S.CANCELLED, []),
    ],
)
def test_which_changes_are_events(
    kind: TransactionType, old: TransactionStatus | None, new: TransactionStatus, expected: list[str]
) -> None:
    before = None if old is None else txn(kind, old, 1)
    assert events(before, txn(kind, new, 2)) == expected


def test_every_change_is_at_most_one_event_and_every_event_has_a_documented_name() -> None:
    statuses: list[TransactionStatus | None] = [None, *S]
    for kind, old, new in itertools.product(TransactionType, statuses, S):
        before = None if old is None else txn(kind, old, 1)
        names = events(before, txn(kind, new, 2))
        assert len(names) <= 1, (kind, old, new)
        if old == new:
            assert names == [], (kind, old, new)
    assert set(EVENT_NAMES.values()) >= {
        "deposit.paid",
        "deposit.failed",
        "deposit.expired",
        "withdrawal.requested",
        "withdrawal.completed",
        "withdrawal.cancelled",
        "refund.completed",
        "refund.failed",
    }


def test_a_duplicate_storm_is_one_deposit_paid() -> None:
    # One deposit's life as the store writes it: each retry or duplicate notification is a new version.
    life = [S.PENDING, S.AWAITING_PAYMENT, S.PAID, S.PAID, S.PAID, S.PAID, S.PARTIALLY_REFUNDED, S.PAID]
    names: list[str] = []
    previous = None
    for version, status in enumerate(life, start=1):
        current = txn(TransactionType.DEPOSIT, status, version)
        names += events(previous, current)
        previous = current
    assert names == ["deposit.paid"]


def test_other_records_are_not_events() -> None:
    deposit = txn(TransactionType.DEPOSIT, S.PAID, 2)
    record = records(txn(TransactionType.DEPOSIT, S.PENDING), deposit)[0]
    assert forwarded(record)
    assert not forwarded({**record, "eventName": "REMOVE"})
    assert event_of({"eventName": "MODIFY", "dynamodb": {"Keys": {"sk": {"S": "USER"}}}}) is None
    assert event_of({}) is None
    assert len(PIPE_FILTERS) <= 5  # EventBridge Pipes takes at most five filter patterns


def test_the_json_schema_describes_the_event() -> None:
    schema = json.loads((Path(__file__).parents[3] / "docs" / "wallet-event.schema.json").read_text("utf-8"))
    assert set(schema["properties"]) == set(schema["required"]) == set(WalletEvent._fields)
    assert set(schema["properties"]["name"]["enum"]) == {*EVENT_NAMES.values(), "invoice.issued"}


def _invoiced(status: InvoiceStatus, version: int, number: str | None = None) -> Transaction:
    invoice = InvoiceState(status, number=number)
    return txn(TransactionType.DEPOSIT, S.PAID, version, invoice=invoice)


def test_an_issued_invoice_is_one_event_with_its_number() -> None:
    pending = _invoiced(InvoiceStatus.PENDING, 3)
    issued = _invoiced(InvoiceStatus.ISSUED, 4, "AB12345678")
    found = [e for r in records(pending, issued) if (e := event_of(r)) is not None]
    assert [(e.name, e.invoice_number, e.status, e.version) for e in found] == [
        ("invoice.issued", "AB12345678", "paid", 4)
    ]


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        (InvoiceStatus.REQUESTED, InvoiceStatus.PENDING, []),  # the credit: deposit.paid is the event
        (InvoiceStatus.ISSUED, InvoiceStatus.ISSUED, []),  # a later write of the deposit (a flag)
        (InvoiceStatus.ISSUED, InvoiceStatus.VOIDED, []),
        (InvoiceStatus.ISSUED, InvoiceStatus.ALLOWANCE, []),
        (InvoiceStatus.PENDING, InvoiceStatus.FAILED, []),
        (InvoiceStatus.FAILED, InvoiceStatus.ISSUED, ["invoice.issued"]),  # an operator's retry worked
    ],
)
def test_which_invoice_changes_are_events(
    old: InvoiceStatus, new: InvoiceStatus, expected: list[str]
) -> None:
    assert events(_invoiced(old, 3), _invoiced(new, 4, "AB12345678")) == expected


def test_a_refund_of_an_invoiced_deposit_is_not_a_second_invoice_event() -> None:
    issued = _invoiced(InvoiceStatus.ISSUED, 4, "AB12345678")
    refunded = issued._replace(status=S.PARTIALLY_REFUNDED, version=5, refunded_amount=100)
    assert events(issued, refunded) == []
