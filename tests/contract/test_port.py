"""The storage port, tested directly on every adapter: atomicity and the precise conflict errors."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from ecpay_lambda.wallet.ids import new_entry_id, new_notification_id, new_transaction_id, new_user_id
from ecpay_lambda.wallet.models import (
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
from ecpay_lambda.wallet.port import (
    AtomicWrite,
    DuplicateNotification,
    IdempotencyKeyReused,
    InsufficientFunds,
    InvalidCursor,
    TransactionPut,
    UserDelta,
    UserExists,
    UserHasFunds,
    UserNotActive,
    VersionConflict,
    WalletStore,
)

T0 = datetime(2026, 11, 27, 4, 0, 0, 123456, tzinfo=UTC)


def _user(name: str = "alice", at: datetime = T0) -> User:
    return User(
        user_id=new_user_id(),
        username=name,
        email=f"{name}@example.com",
        balance=0,
        held=0,
        status=UserStatus.ACTIVE,
        open_transactions=0,
        created_at=at,
        updated_at=at,
    )


def _txn(user_id: str, amount: int = 100, **kw: object) -> Transaction:
    values: dict[str, object] = {
        "transaction_id": new_transaction_id(),
        "user_id": user_id,
        "transaction_type": TransactionType.DEPOSIT,
        "amount": amount,
        "status": TransactionStatus.PENDING,
        "version": 1,
        "created_at": T0,
        "updated_at": T0,
    }
    values.update(kw)
    return Transaction(**values)  # type: ignore[arg-type]


def _entry(txn: Transaction, db: int, dh: int = 0, kind: str = "test") -> LedgerEntry:
    return LedgerEntry(new_entry_id(), txn.user_id, txn.transaction_id, kind, db, dh, T0)


def _note(key: str | None, tid: str | None = None, outcome: str = "applied") -> NotificationRecord:
    return NotificationRecord(
        notification_id=new_notification_id(),
        received_at=T0,
        route="return",
        raw_body="MerchantTradeNo=x&RtnCode=1",
        outcome=outcome,
        transaction_id=tid,
        merchant_trade_no="x",
        dedupe_key=key,
    )


def _funded(store: WalletStore, balance: int = 500) -> tuple[User, Transaction]:
    """A user credited through one committed write (insert + delta + ledger)."""
    user = _user()
    store.create_user(user)
    txn = _txn(user.user_id, balance, status=TransactionStatus.PAID)
    store.commit(
        AtomicWrite(
            transactions=[TransactionPut(txn, 0)],
            user_delta=UserDelta(user.user_id, delta_balance=balance),
            ledger=[_entry(txn, balance)],
        )
    )
    return user, txn


def test_schema_is_idempotent_and_store_answers(store: WalletStore) -> None:
    store.ensure_schema()
    store.ensure_schema()
    assert store.ping() is True


def test_user_roundtrip_and_unique_username(store: WalletStore) -> None:
    user = _user("bob")
    store.create_user(user)
    assert store.get_user(user.user_id) == user
    assert store.get_user("u-missing") is None
    with pytest.raises(UserExists):
        store.create_user(_user("bob"))
    assert store.list_users().total == 1


def test_list_users_by_page_and_by_cursor(store: WalletStore) -> None:
    users = [_user(f"user{i:02d}", T0 + timedelta(seconds=i)) for i in range(7)]
    for u in reversed(users):
        store.create_user(u)
    page2 = store.list_users(page=2, page_size=3)
    assert page2.total == 7
    assert [u.username for u in page2.items] == ["user03", "user04", "user05"]
    assert store.list_users(page=4, page_size=3).items == []
    seen: list[str] = []
    cursor: str | None = None
    while True:
        page = store.list_users(page_size=3, cursor=cursor)
        assert page.total == 7
        seen += [u.username for u in page.items]
        cursor = page.next_cursor
        if cursor is None:
            break
    assert seen == [u.username for u in users]
    assert [u.username for u in store.iter_users()] == seen


def test_bad_cursor_is_refused(store: WalletStore) -> None:
    # Every adapter raises the port's InvalidCursor (an InvalidRequest: the API answers 400).
    with pytest.raises(InvalidCursor):
        store.list_users(cursor="not-a-cursor")


def test_transaction_roundtrip_keeps_every_field(store: WalletStore) -> None:
    user = _user()
    store.create_user(user)
    txn = _txn(
        user.user_id,
        250,
        status=TransactionStatus.AWAITING_OFFLINE_PAYMENT,
        payment_method=PaymentMethod.ATM,
        merchant_trade_no="abcdefghijkl0000001a",
        trade_no="2411270000000002",
        payment_info={"bank_code": "812", "v_account": "9103522175887271"},
        expires_at=T0 + timedelta(days=3, microseconds=7),
        refunded_amount=0,
        flags=frozenset({"duplicate_payment", "x"}),
    )
    store.commit(AtomicWrite(transactions=[TransactionPut(txn, 0)]))
    got = store.get_transaction(txn.transaction_id)
    assert got == txn
    assert got is not None and got.created_at.tzinfo is not None
    assert store.get_transaction("zzzzzzzzzzzz") is None


def test_commit_cas_detects_a_stale_version_and_writes_nothing(store: WalletStore) -> None:
    user, _ = _funded(store, 100)
    txn = _txn(user.user_id)
    store.commit(AtomicWrite(transactions=[TransactionPut(txn, 0)]))
    v2 = txn._replace(status=TransactionStatus.AWAITING_PAYMENT, version=2)
    store.commit(AtomicWrite(transactions=[TransactionPut(v2, 1)]))
    stale = txn._replace(status=TransactionStatus.FAILED, version=2)
    with pytest.raises(VersionConflict) as info:
        store.commit(
            AtomicWrite(
                transactions=[TransactionPut(stale, 1)],
                user_delta=UserDelta(user.user_id, delta_balance=-10),
                ledger=[_entry(txn, -10)],
                notification=_note("k:stale:0", txn.transaction_id),
            )
        )
    assert info.value.transaction_id == txn.transaction_id
    assert info.value.current is None or info.value.current.version == 2
    assert store.get_transaction(txn.transaction_id) == v2
    after = store.get_user(user.user_id)
    assert after is not None and after.balance == 100
    assert store.list_ledger(transaction_id=txn.transaction_id) == []
    assert store.list_notifications(txn.transaction_id) == []


def test_inserting_an_existing_transaction_is_a_version_conflict(store: WalletStore) -> None:
    user = _user()
    store.create_user(user)
    txn = _txn(user.user_id)
    store.commit(AtomicWrite(transactions=[TransactionPut(txn, 0)]))
    with pytest.raises(VersionConflict):
        store.commit(AtomicWrite(transactions=[TransactionPut(txn._replace(amount=999), 0)]))
    assert store.get_transaction(txn.transaction_id) == txn


def test_delta_never_goes_negative_and_rolls_back_everything(store: WalletStore) -> None:
    user, _ = _funded(store, 50)
    withdraw = _txn(user.user_id, 60, transaction_type=TransactionType.WITHDRAW)
    with pytest.raises(InsufficientFunds):
        store.commit(
            AtomicWrite(
                transactions=[TransactionPut(withdraw, 0)],
                user_delta=UserDelta(user.user_id, -60, 60, 1),
                ledger=[_entry(withdraw, -60, 60)],
            )
        )
    assert store.get_transaction(withdraw.transaction_id) is None
    after = store.get_user(user.user_id)
    assert after is not None and (after.balance, after.held, after.open_transactions) == (50, 0, 0)
    assert len(store.list_ledger(user_id=user.user_id)) == 1
    with pytest.raises(InsufficientFunds):
        store.commit(AtomicWrite(user_delta=UserDelta(user.user_id, delta_held=-1)))
    # Exactly the balance is allowed.
    store.commit(
        AtomicWrite(
            transactions=[TransactionPut(withdraw._replace(amount=50), 0)],
            user_delta=UserDelta(user.user_id, -50, 50, 1),
            ledger=[_entry(withdraw, -50, 50)],
        )
    )
    after = store.get_user(user.user_id)
    assert after is not None and (after.balance, after.held, after.open_transactions) == (0, 50, 1)


def test_require_active_refuses_closed_and_missing_users(store: WalletStore) -> None:
    user = _user()
    store.create_user(user)
    closed = store.close_user(user.user_id, T0 + timedelta(seconds=1))
    assert closed.status is UserStatus.CLOSED
    txn = _txn(user.user_id)
    with pytest.raises(UserNotActive):
        store.commit(
            AtomicWrite(
                transactions=[TransactionPut(txn, 0)],
                user_delta=UserDelta(user.user_id, delta_open=1, require_active=True),
            )
        )
    assert store.get_transaction(txn.transaction_id) is None
    with pytest.raises(UserNotActive):
        store.commit(AtomicWrite(user_delta=UserDelta("u-nobody", delta_open=1, require_active=True)))


def test_close_user_checks_money_and_open_transactions(store: WalletStore) -> None:
    user, _ = _funded(store, 10)
    with pytest.raises(UserHasFunds):
        store.close_user(user.user_id, T0)
    store.commit(AtomicWrite(user_delta=UserDelta(user.user_id, delta_balance=-10, delta_open=1)))
    with pytest.raises(UserHasFunds):
        store.close_user(user.user_id, T0)
    store.commit(AtomicWrite(user_delta=UserDelta(user.user_id, delta_open=-1)))
    closed = store.close_user(user.user_id, T0 + timedelta(seconds=5))
    assert closed.status is UserStatus.CLOSED
    assert closed.updated_at == T0 + timedelta(seconds=5)
    with pytest.raises(UserNotActive):
        store.close_user(user.user_id, T0)
    with pytest.raises(UserNotActive):
        store.close_user("u-nobody", T0)


def test_duplicate_notification_key_is_refused_and_nothing_written(store: WalletStore) -> None:
    user = _user()
    store.create_user(user)
    txn = _txn(user.user_id)
    store.commit(
        AtomicWrite(transactions=[TransactionPut(txn, 0)], notification=_note("m:paid:0", txn.transaction_id))
    )
    v2 = txn._replace(status=TransactionStatus.PAID, version=2)
    with pytest.raises(DuplicateNotification) as info:
        store.commit(
            AtomicWrite(
                transactions=[TransactionPut(v2, 1)],
                user_delta=UserDelta(user.user_id, delta_balance=100),
                ledger=[_entry(txn, 100)],
                notification=_note("m:paid:0", txn.transaction_id),
            )
        )
    assert info.value.dedupe_key == "m:paid:0"
    assert store.get_transaction(txn.transaction_id) == txn
    after = store.get_user(user.user_id)
    assert after is not None and after.balance == 0
    assert len(store.list_notifications(txn.transaction_id)) == 1
    # The same key in a lone record is refused too; records without a key never collide.
    with pytest.raises(DuplicateNotification):
        store.record_notification(_note("m:paid:0", txn.transaction_id))
    store.record_notification(_note(None, txn.transaction_id, "duplicate"))
    store.record_notification(_note(None, txn.transaction_id, "duplicate"))
    outcomes = [n.outcome for n in store.list_notifications(txn.transaction_id)]
    assert outcomes == ["applied", "duplicate", "duplicate"]


def test_notification_record_roundtrip(store: WalletStore) -> None:
    body = "RtnMsg=交易成功&X=" + "y" * 5000 + "&blank="
    note = _note(None, "abc")._replace(raw_body=body, outcome="rejected:check_mac_value")
    store.record_notification(note)
    assert store.list_notifications("abc") == [note]
    assert store.list_notifications("other") == []


def test_idempotency_key_is_unique_per_user_until_it_expires(store: WalletStore) -> None:
    user = _user()
    store.create_user(user)
    other = _user("carol")
    store.create_user(other)
    t1 = _txn(user.user_id)
    rec = IdempotencyRecord(user.user_id, "key-1", "fp1", t1.transaction_id, T0, T0 + timedelta(hours=24))
    store.commit(AtomicWrite(transactions=[TransactionPut(t1, 0)], idempotency=rec))
    assert store.get_idempotency(user.user_id, "key-1") == rec
    t2 = _txn(user.user_id)
    rec2 = rec._replace(
        request_fingerprint="fp2", transaction_id=t2.transaction_id, created_at=T0 + timedelta(hours=1)
    )
    with pytest.raises(IdempotencyKeyReused) as info:
        store.commit(AtomicWrite(transactions=[TransactionPut(t2, 0)], idempotency=rec2))
    assert info.value.existing is None or info.value.existing == rec
    assert store.get_transaction(t2.transaction_id) is None
    # Another user may use the same key.
    t3 = _txn(other.user_id)
    store.commit(
        AtomicWrite(
            transactions=[TransactionPut(t3, 0)],
            idempotency=rec._replace(user_id=other.user_id, transaction_id=t3.transaction_id),
        )
    )
    # After expiry the key may be used again, replacing the old record.
    late = T0 + timedelta(hours=25)
    rec3 = rec2._replace(created_at=late, expires_at=late + timedelta(hours=24))
    store.commit(AtomicWrite(transactions=[TransactionPut(t2, 0)], idempotency=rec3))
    assert store.get_idempotency(user.user_id, "key-1") == rec3
    assert store.get_idempotency(user.user_id, "missing") is None


def test_list_transactions_newest_first_with_pages_and_cursor(store: WalletStore) -> None:
    user = _user()
    store.create_user(user)
    other = _user("dave")
    store.create_user(other)
    made = []
    for i in range(5):
        t = _txn(
            user.user_id, 10 + i, created_at=T0 + timedelta(minutes=i), updated_at=T0 + timedelta(minutes=i)
        )
        store.commit(AtomicWrite(transactions=[TransactionPut(t, 0)]))
        made.append(t)
    store.commit(AtomicWrite(transactions=[TransactionPut(_txn(other.user_id), 0)]))
    newest_first = [t.transaction_id for t in reversed(made)]
    page1 = store.list_transactions(user.user_id, page=1, page_size=2)
    assert page1.total == 5
    assert [t.transaction_id for t in page1.items] == newest_first[:2]
    page3 = store.list_transactions(user.user_id, page=3, page_size=2)
    assert [t.transaction_id for t in page3.items] == newest_first[4:]
    seen: list[str] = []
    cursor: str | None = None
    while True:
        page = store.list_transactions(user.user_id, page_size=2, cursor=cursor)
        seen += [t.transaction_id for t in page.items]
        cursor = page.next_cursor
        if cursor is None:
            break
    assert seen == newest_first
    assert store.list_transactions("u-nobody").total == 0


def test_ledger_lists_by_user_and_transaction_in_order(store: WalletStore) -> None:
    user, _ = _funded(store, 300)
    w = _txn(user.user_id, 100, transaction_type=TransactionType.WITHDRAW)
    hold = _entry(w, -100, 100, "withdraw_hold")
    store.commit(
        AtomicWrite(
            transactions=[TransactionPut(w, 0)],
            user_delta=UserDelta(user.user_id, -100, 100, 1),
            ledger=[hold],
        )
    )
    done = _entry(w, 0, -100, "withdraw_complete")
    store.commit(
        AtomicWrite(
            transactions=[TransactionPut(w._replace(status=TransactionStatus.COMPLETED, version=2), 1)],
            user_delta=UserDelta(user.user_id, 0, -100, -1),
            ledger=[done],
        )
    )
    assert [e.kind for e in store.list_ledger(transaction_id=w.transaction_id)] == [
        "withdraw_hold",
        "withdraw_complete",
    ]
    entries = store.list_ledger(user_id=user.user_id)
    assert len(entries) == 3 and entries[1:] == [hold, done]
    assert sum(e.delta_balance for e in entries) == 200
    after = store.get_user(user.user_id)
    assert after is not None and (after.balance, after.held) == (200, 0)


def test_due_listings_filter_by_type_status_and_age(store: WalletStore) -> None:
    user = _user()
    store.create_user(user)
    old, new = T0, T0 + timedelta(hours=1)

    def put(**kw: object) -> Transaction:
        t = _txn(user.user_id, 100, **kw)
        store.commit(AtomicWrite(transactions=[TransactionPut(t, 0)]))
        return t

    a = put(status=TransactionStatus.AWAITING_PAYMENT, updated_at=old)
    b = put(status=TransactionStatus.AWAITING_OFFLINE_PAYMENT, updated_at=old + timedelta(seconds=1))
    put(status=TransactionStatus.AWAITING_PAYMENT, updated_at=new)
    put(status=TransactionStatus.PAID, updated_at=old)
    put(status=TransactionStatus.PENDING, updated_at=old)
    r = put(status=TransactionStatus.PENDING, transaction_type=TransactionType.REFUND, updated_at=old)
    put(status=TransactionStatus.COMPLETED, transaction_type=TransactionType.REFUND, updated_at=old)
    put(status=TransactionStatus.PENDING, transaction_type=TransactionType.WITHDRAW, updated_at=old)
    cutoff = old + timedelta(minutes=30)
    awaiting = store.list_awaiting_payment(due_before=cutoff)
    assert [t.transaction_id for t in awaiting] == [a.transaction_id, b.transaction_id]
    assert len(store.list_awaiting_payment(due_before=cutoff, limit=1)) == 1
    assert [t.transaction_id for t in store.list_pending_refunds(due_before=cutoff)] == [r.transaction_id]
    assert store.list_pending_refunds(due_before=old - timedelta(microseconds=1)) == []
