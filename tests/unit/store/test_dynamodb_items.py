"""The DynamoDB item layout: exact round trips, sortable keys, sparse index attributes, cursors."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from ecpay_lambda.store import dynamodb_items as items
from ecpay_lambda.wallet.models import (
    Attempt,
    AttemptState,
    IdempotencyRecord,
    LedgerEntry,
    NotificationRecord,
    PaymentMethod,
    Transaction,
    TransactionStatus,
    TransactionType,
    User,
    UserStatus,
)

T0 = datetime(2024, 5, 1, 12, 0, 0, 123456, tzinfo=UTC)


def _txn(**changes: object) -> Transaction:
    fields: dict[str, object] = {
        "transaction_id": "abc123def456",
        "user_id": "u1",
        "transaction_type": TransactionType.DEPOSIT,
        "amount": 500,
        "status": TransactionStatus.PENDING,
        "version": 1,
        "created_at": T0,
        "updated_at": T0,
    }
    fields.update(changes)
    return Transaction(**fields)  # type: ignore[arg-type]


def test_user_round_trip() -> None:
    user = User("u1", "alice", "a@example.com", 10**15, 7, UserStatus.ACTIVE, 2, T0, T0 + timedelta(1))
    item = items.encode_user(user)
    assert items.decode_user(item) == user
    assert item["balance"] == {"N": "1000000000000000"}
    assert item["gsi1pk"] == {"S": "USERS"}


def test_full_transaction_round_trip_and_its_listing_pointer() -> None:
    txn = _txn(
        status=TransactionStatus.AWAITING_OFFLINE_PAYMENT,
        payment_method=PaymentMethod.ATM,
        merchant_trade_no="abc123def4561234567",
        trade_no="2405011200001",
        payment_info={"BankCode": "812", "vAccount": "9103522175887271", "Blank": ""},
        expires_at=T0 + timedelta(days=3),
        refunded_amount=0,
        flags=frozenset({"duplicate_payment", "other"}),
        version=3,
    )
    assert items.decode_transaction(items.encode_transaction(txn)) == txn
    listing = items.encode_transaction_listing(txn)
    assert listing == {
        "pk": {"S": "USER#u1"},
        "sk": {"S": f"TXN#{items.iso(txn.created_at)}#{txn.transaction_id}"},
        "entity": {"S": "transaction_listing"},
        "transaction_id": {"S": txn.transaction_id},
    }  # a pointer: never in a reconciliation listing, never rewritten by a state change


def test_refund_round_trip() -> None:
    refund = _txn(transaction_type=TransactionType.REFUND, related_transaction_id="zzz999zzz999", amount=120)
    assert items.decode_transaction(items.encode_transaction(refund)) == refund


def test_empty_flags_and_info_are_stored_without_empty_sets() -> None:
    item = items.encode_transaction(_txn())
    assert "flags" not in item  # DynamoDB refuses an empty string set
    assert item["payment_info"] == {"M": {}}
    decoded = items.decode_transaction(item)
    assert decoded.flags == frozenset()
    assert decoded.payment_info == {}


@pytest.mark.parametrize(
    ("txn_type", "status", "partition"),
    [
        (TransactionType.DEPOSIT, TransactionStatus.PENDING, None),
        (TransactionType.DEPOSIT, TransactionStatus.AWAITING_PAYMENT, "AWAITING"),
        (TransactionType.DEPOSIT, TransactionStatus.AWAITING_OFFLINE_PAYMENT, "AWAITING"),
        (TransactionType.DEPOSIT, TransactionStatus.PAID, None),  # without a paid_at
        (TransactionType.DEPOSIT, TransactionStatus.FAILED, None),
        (TransactionType.WITHDRAW, TransactionStatus.PENDING, None),
        (TransactionType.REFUND, TransactionStatus.PENDING, "PENDING_REFUND"),
        (TransactionType.REFUND, TransactionStatus.COMPLETED, None),
    ],
)
def test_reconciliation_index_is_sparse(
    txn_type: TransactionType, status: TransactionStatus, partition: str | None
) -> None:
    item = items.encode_transaction(_txn(transaction_type=txn_type, status=status, updated_at=T0))
    if partition is None:
        assert "gsi1pk" not in item
        assert "gsi1sk" not in item
    else:
        assert item["gsi1pk"] == {"S": partition}
        assert item["gsi1sk"] == {
            "S": f"{items.iso(T0)}#abc123def456"
        }  # due = updated_at without next_check_at


def test_reconciliation_sort_key_is_the_next_check_when_scheduled() -> None:
    due = T0 + timedelta(minutes=10)
    item = items.encode_transaction(_txn(status=TransactionStatus.AWAITING_PAYMENT, next_check_at=due))
    assert item["gsi1sk"] == {"S": f"{items.iso(due)}#abc123def456"}
    bound = items.time_bound_after(due)
    assert item["gsi1sk"]["S"] < bound < f"{items.iso(due + timedelta(microseconds=1))}#000000000000"
    assert items.iso(due) < bound  # a key written before the #<id> suffix compares the same way


@pytest.mark.parametrize(
    "status", [TransactionStatus.PAID, TransactionStatus.PARTIALLY_REFUNDED, TransactionStatus.REFUNDED]
)
def test_paid_deposits_are_indexed_by_utc_day_of_payment(status: TransactionStatus) -> None:
    taipei = timezone(timedelta(hours=8))
    paid_at = datetime(2024, 5, 2, 7, 30, tzinfo=taipei)  # 2024-05-01 23:30 UTC
    item = items.encode_transaction(_txn(status=status, paid_at=paid_at))
    assert item["gsi1pk"] == {"S": "PAID#2024-05-01"}
    assert item["gsi1sk"] == {"S": "2024-05-01T23:30:00.000000+00:00#abc123def456"}
    assert "gsi1pk" not in items.encode_transaction_listing(_txn(status=status, paid_at=paid_at))


@pytest.mark.parametrize(
    ("txn_type", "status"),
    [
        (TransactionType.DEPOSIT, TransactionStatus.CANCELLED),
        (TransactionType.REFUND, TransactionStatus.COMPLETED),
        (TransactionType.WITHDRAW, TransactionStatus.COMPLETED),
    ],
)
def test_a_paid_at_outside_the_paid_deposit_family_is_not_indexed(
    txn_type: TransactionType, status: TransactionStatus
) -> None:
    item = items.encode_transaction(_txn(transaction_type=txn_type, status=status, paid_at=T0))
    assert "gsi1pk" not in item
    assert items.decode_transaction(item).paid_at == T0


def _attempt(number: int, **changes: object) -> Attempt:
    fields: dict[str, object] = {
        "merchant_trade_no": f"abc123def456{number:04d}",
        "payment_method": PaymentMethod.CREDIT,
        "state": AttemptState.FAILED,
        "created_at": T0 + timedelta(minutes=number),
    }
    fields.update(changes)
    return Attempt(**fields)  # type: ignore[arg-type]


def test_attempts_and_schedule_round_trip_exactly() -> None:
    attempts = (
        _attempt(0, payment_method=None),
        _attempt(
            1,
            state=AttemptState.EXPIRED,
            trade_no="2405011200001",
            expires_at=T0 + timedelta(days=3),
            payment_method=PaymentMethod.ATM,
            payment_info={"BankCode": "812", "vAccount": "9103", "Blank": ""},
        ),
        *(_attempt(i) for i in range(2, 19)),
        _attempt(19, state=AttemptState.PAID, trade_no="2405011200020"),
    )
    txn = _txn(
        status=TransactionStatus.PAID,
        attempts=attempts,
        next_check_at=T0 + timedelta(hours=1, microseconds=7),
        check_count=3,
        paid_at=T0 + timedelta(minutes=19, microseconds=1),
    )
    item = items.encode_transaction(txn)
    assert len(item["attempts"]["M"]) == 20
    assert items.decode_transaction(item) == txn
    assert item["paid_attempt"] == {"S": attempts[19].merchant_trade_no}
    first = item["attempts"]["M"][attempts[0].merchant_trade_no]["M"]
    assert first["seq"] == {"N": "0"}
    assert "payment_method" not in first and "trade_no" not in first and "expires_at" not in first
    assert first["payment_info"] == {"M": {}}


def test_items_without_the_new_attributes_decode_with_defaults() -> None:
    item = items.encode_transaction(_txn(status=TransactionStatus.AWAITING_PAYMENT))
    for name in ("attempts", "next_check_at", "check_count", "paid_at"):
        item.pop(name, None)
    decoded = items.decode_transaction(item)
    assert (decoded.attempts, decoded.next_check_at, decoded.check_count, decoded.paid_at) == (
        (),
        None,
        0,
        None,
    )


def test_malformed_attempts_are_refused() -> None:
    item = items.encode_transaction(_txn(attempts=(_attempt(1),)))
    [member] = item["attempts"]["M"].values()
    member["M"]["created_at"] = {"N": "1"}
    with pytest.raises(ValueError):
        items.decode_transaction(item)
    del member["M"]["seq"]
    with pytest.raises(ValueError):
        items.decode_transaction(item)


def test_attempts_of_the_previous_layout_decode_in_order() -> None:
    attempts = tuple(_attempt(i) for i in range(3))
    item = items.encode_transaction(_txn(attempts=attempts))
    by_mtn = item["attempts"]["M"]
    old = [{"M": {k: v for k, v in by_mtn[a.merchant_trade_no]["M"].items() if k != "seq"}} for a in attempts]
    item["attempts"] = {"L": old}
    assert items.decode_transaction(item).attempts == attempts


def test_iso_is_fixed_width_utc_so_string_order_is_time_order() -> None:
    taipei = timezone(timedelta(hours=8))
    moments = [
        datetime(2024, 1, 1, tzinfo=UTC),
        datetime(2024, 1, 1, 0, 0, 0, 1, tzinfo=UTC),
        datetime(2024, 1, 1, 9, 0, 0, tzinfo=taipei),  # 01:00 UTC
        datetime(2024, 1, 1, 2, 0, 0, tzinfo=UTC),
    ]
    encoded = [items.iso(moment) for moment in moments]
    assert len({len(text) for text in encoded}) == 1
    assert sorted(encoded) == encoded
    assert items.parse_iso(encoded[2]) == moments[2]
    assert items.parse_iso(encoded[2]).tzinfo == UTC


def test_naive_datetimes_are_refused() -> None:
    with pytest.raises(ValueError, match="naive"):
        items.iso(datetime(2024, 1, 1))


def test_numbers_are_exact_ints() -> None:
    assert items.to_int("12345678901234567890") == 12345678901234567890
    assert items.to_int("1E+2") == 100
    with pytest.raises(ValueError):
        items.to_int("1.5")
    with pytest.raises(TypeError):
        items.n(1.0)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        items.n(True)


def test_ledger_entry_is_written_under_its_transaction_and_its_user() -> None:
    entry = LedgerEntry("e1", "u1", "t1", "deposit_paid", 500, 0, T0)
    by_txn, by_user = items.encode_ledger_entries(entry)
    assert by_txn["pk"] == {"S": "TXN#t1"}
    assert by_user["pk"] == {"S": "USER#u1"}
    assert by_txn["sk"] == by_user["sk"]
    assert items.decode_ledger_entry(by_txn) == entry == items.decode_ledger_entry(by_user)


def test_notification_records_round_trip_and_find_their_partition() -> None:
    matched = NotificationRecord("n1", T0, "return", "a=1&b=", "applied", "t1", "t1x", "t1x:paid:0")
    unmatched = NotificationRecord("n2", T0, "return", "garbage\ufffd", "rejected:checkmac")
    assert items.decode_notification(items.encode_notification(matched)) == matched
    assert items.decode_notification(items.encode_notification(unmatched)) == unmatched
    assert items.notification_key(matched)["pk"] == {"S": "TXN#t1"}
    assert items.notification_key(unmatched)["pk"] == {"S": "NOTIFS#2024-05-01"}


def test_idempotency_round_trip_with_ttl_after_expiry() -> None:
    record = IdempotencyRecord("u1", "key#with:odd chars", "f" * 64, "t1", T0, T0 + timedelta(hours=24))
    item = items.encode_idempotency(record)
    assert items.decode_idempotency(item) == record
    assert int(item["ttl"]["N"]) > record.expires_at.timestamp()


def test_cursor_round_trip_and_garbage() -> None:
    start = {"pk": {"S": "USER#u1"}, "sk": {"S": "TXN#2024#t1"}}
    cursor = items.encode_cursor(start)
    assert "=" not in cursor
    assert items.decode_cursor(cursor, ("pk", "sk")) == start
    assert items.decode_cursor(cursor, ("pk", "sk", "gsi1pk", "gsi1sk")) is None
    for junk in ["", "!!!", "bm90IGpzb24", items.encode_cursor({"pk": {"S": "x"}})]:
        assert items.decode_cursor(junk, ("pk", "sk")) is None


def test_item_size_counts_utf8_bytes() -> None:
    item = items.encode_notification(NotificationRecord("n", T0, "return", "é" * 1000, "applied"))
    assert items.item_size(item) >= 2000
