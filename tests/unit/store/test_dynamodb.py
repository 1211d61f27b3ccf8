"""DynamoDBStore against moto's single-threaded server: conflicts, budget, listings, concurrency.

The shared contract suite (tests/contract) checks the port's behaviour on every adapter; these tests
check what is DynamoDB's own: which conflict a cancelled transaction maps to, how many calls each
use costs, cursors, the sparse reconciliation index, and races through a serializing server.
"""

from __future__ import annotations

import threading
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

import pytest
from tests.support.moto_plugin import dynamodb_url

from ecpay_lambda.api.composition import build_store
from ecpay_lambda.api.errors import to_http_error
from ecpay_lambda.cli import main
from ecpay_lambda.config import ConfigError, parse_settings
from ecpay_lambda.store import StoreNotReady
from ecpay_lambda.store import dynamodb as dynamodb_module
from ecpay_lambda.store.dynamodb import TABLE_DEFINITION, DynamoDBStore, TableNotFound, TransactionTooLarge
from ecpay_lambda.store.dynamodb_items import encode_transaction, iso, transaction_listing_key
from ecpay_lambda.wallet.attempts import attempt_to_json
from ecpay_lambda.wallet.errors import InvalidRequest
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
from ecpay_lambda.wallet.port import (
    AtomicWrite,
    DuplicateNotification,
    IdempotencyKeyReused,
    InsufficientFunds,
    TransactionPut,
    UserDelta,
    UserExists,
    UserHasFunds,
    UserNotActive,
    VersionConflict,
)

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


# --- fixtures and builders -----------------------------------------------------------------------


@pytest.fixture
def store(dynamodb_store_url: str) -> DynamoDBStore:
    return DynamoDBStore.from_url(dynamodb_store_url)


class CallLog:
    """Every DynamoDB API call a client makes (one per operation, retries inside botocore excluded)."""

    def __init__(self, store: DynamoDBStore) -> None:
        self.names: list[str] = []
        self._lock = threading.Lock()
        self._events = store.client.meta.events
        self._events.register("before-call.dynamodb.*", self._record)

    def _record(self, model: Any, **_: Any) -> None:
        with self._lock:
            self.names.append(model.name)

    def close(self) -> None:
        self._events.unregister("before-call.dynamodb.*", self._record)


@pytest.fixture
def calls(store: DynamoDBStore) -> Iterator[CallLog]:
    log = CallLog(store)
    yield log
    log.close()


def new_id() -> str:
    return uuid.uuid4().hex[:12]


def make_user(store: DynamoDBStore, *, user_id: str | None = None, created_at: datetime = T0) -> User:
    uid = user_id or new_id()
    user = User(uid, f"name-{uid}", f"{uid}@example.com", 0, 0, UserStatus.ACTIVE, 0, created_at, created_at)
    store.create_user(user)
    return user


def new_transaction(
    user_id: str,
    *,
    txn_type: TransactionType = TransactionType.DEPOSIT,
    amount: int = 500,
    status: TransactionStatus = TransactionStatus.PENDING,
    created_at: datetime = T0,
) -> Transaction:
    return Transaction(new_id(), user_id, txn_type, amount, status, 1, created_at, created_at)


def advance(
    txn: Transaction, status: TransactionStatus, at: datetime | None = None, **changes: Any
) -> Transaction:
    return txn._replace(status=status, version=txn.version + 1, updated_at=at or txn.updated_at, **changes)


def entry(txn: Transaction, kind: str, delta_balance: int, delta_held: int = 0) -> LedgerEntry:
    return LedgerEntry(
        new_id(), txn.user_id, txn.transaction_id, kind, delta_balance, delta_held, txn.updated_at
    )


def notification(
    txn: Transaction, outcome: str = "applied", dedupe_key: str | None = None
) -> NotificationRecord:
    return NotificationRecord(
        new_id(),
        txn.updated_at,
        "return",
        "RtnCode=1&RtnMsg=",
        outcome,
        txn.transaction_id,
        "mtn",
        dedupe_key,
    )


def open_deposit(store: DynamoDBStore, user: User, *, amount: int = 500, at: datetime = T0) -> Transaction:
    """A deposit awaiting payment (version 2), counted as the user's open transaction."""
    txn = new_transaction(user.user_id, amount=amount, created_at=at)
    store.commit(
        AtomicWrite(transactions=[TransactionPut(txn, 0)], user_delta=UserDelta(user.user_id, delta_open=1))
    )
    awaiting = advance(txn, TransactionStatus.AWAITING_PAYMENT, payment_method=PaymentMethod.CREDIT)
    store.commit(AtomicWrite(transactions=[TransactionPut(awaiting, 1)]))
    return awaiting


def pay_write(txn: Transaction, dedupe_key: str, at: datetime | None = None) -> AtomicWrite:
    """What applying a verified paid notification writes."""
    paid = advance(txn, TransactionStatus.PAID, at or txn.updated_at + timedelta(minutes=1))
    return AtomicWrite(
        transactions=[TransactionPut(paid, txn.version)],
        user_delta=UserDelta(txn.user_id, delta_balance=txn.amount, delta_open=-1),
        ledger=[entry(paid, "deposit_paid", txn.amount)],
        notification=notification(paid, dedupe_key=dedupe_key),
    )


def funded_user(store: DynamoDBStore, amount: int) -> User:
    user = make_user(store)
    store.commit(pay_write(open_deposit(store, user, amount=amount), f"{new_id()}:paid:0"))
    return user


def withdraw_write(user_id: str, amount: int, *, idempotency_key: str | None = None) -> AtomicWrite:
    txn = new_transaction(user_id, txn_type=TransactionType.WITHDRAW, amount=amount)
    record = None
    if idempotency_key is not None:
        record = IdempotencyRecord(
            user_id, idempotency_key, "fp", txn.transaction_id, T0, T0 + timedelta(hours=24)
        )
    return AtomicWrite(
        transactions=[TransactionPut(txn, 0)],
        user_delta=UserDelta(
            user_id, delta_balance=-amount, delta_held=amount, delta_open=1, require_active=True
        ),
        ledger=[entry(txn, "withdraw_hold", -amount, amount)],
        idempotency=record,
    )


def raw_item(store: DynamoDBStore, pk: str, sk: str) -> dict[str, Any] | None:
    response = store.client.get_item(
        TableName=store.table_name, Key={"pk": {"S": pk}, "sk": {"S": sk}}, ConsistentRead=True
    )
    item: dict[str, Any] | None = response.get("Item")
    return item


# --- schema, URL, health -------------------------------------------------------------------------


def test_table_matches_the_definition_and_ensure_schema_is_idempotent(store: DynamoDBStore) -> None:
    store.ensure_schema()
    table = store.client.describe_table(TableName=store.table_name)["Table"]
    assert table["KeySchema"] == TABLE_DEFINITION["KeySchema"]
    assert table.get("BillingModeSummary", {}).get("BillingMode", "PAY_PER_REQUEST") == "PAY_PER_REQUEST"
    [index] = table["GlobalSecondaryIndexes"]
    assert index["IndexName"] == "gsi1"
    assert index["KeySchema"] == TABLE_DEFINITION["GlobalSecondaryIndexes"][0]["KeySchema"]
    assert index["Projection"] == {"ProjectionType": "ALL"}
    assert store.ping()


def test_ping_is_false_without_a_table(moto_endpoint: str) -> None:
    assert not DynamoDBStore.from_url(dynamodb_url(moto_endpoint, "no-such-table")).ping()


def test_from_url(moto_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> None:
    store = DynamoDBStore.from_url(f"dynamodb://My_Table.v2?endpoint_url={moto_endpoint}&region=us-west-2")
    assert store.table_name == "My_Table.v2"
    assert store.client.meta.region_name == "us-west-2"
    assert store.client.meta.endpoint_url == moto_endpoint
    monkeypatch.setenv("AWS_REGION", "eu-west-1")
    assert DynamoDBStore.from_url("dynamodb://Wallet").client.meta.region_name == "eu-west-1"
    monkeypatch.delenv("AWS_REGION")
    monkeypatch.delenv("AWS_DEFAULT_REGION", raising=False)
    assert DynamoDBStore.from_url("dynamodb://Wallet").client.meta.region_name == "ap-northeast-1"
    assert not store.creates_table  # never by default: on AWS only the template creates the table
    assert DynamoDBStore.from_url("dynamodb://Wallet?create_table=true").creates_table
    assert not DynamoDBStore.from_url("dynamodb://Wallet?create_table=false").creates_table
    bad_urls = ["sqlite:///x.db", "dynamodb://", "dynamodb://ab", "dynamodb://T?nope=1", "dynamodb://T/x"]
    for bad in [*bad_urls, "dynamodb://Wallet?create_table=yes", "dynamodb://Wallet?create_table="]:
        with pytest.raises(ValueError):
            DynamoDBStore.from_url(bad)


def test_ensure_schema_never_creates_a_table_unless_the_url_allows_it(moto_endpoint: str) -> None:
    # A region of its own on the session's moto server: no other test's tables are there.
    url = f"dynamodb://Wallet-prod?endpoint_url={quote(moto_endpoint, safe='')}&region=sa-east-1"
    store = DynamoDBStore.from_url(url)
    with pytest.raises(TableNotFound, match="'Wallet-prod'") as raised:
        store.ensure_schema()
    assert isinstance(raised.value, StoreNotReady)
    assert "create_table=true" in str(raised.value)  # says how to get a table locally
    assert store.client.list_tables()["TableNames"] == []
    creating = DynamoDBStore.from_url(f"{url}&create_table=true")
    try:
        creating.ensure_schema()
        assert creating.client.list_tables()["TableNames"] == ["Wallet-prod"]
        store.ensure_schema()  # the table exists now: nothing to create, no error
        assert store.ping()
    finally:
        creating.client.delete_table(TableName="Wallet-prod")


def test_a_missing_table_is_a_configuration_error_for_the_api_and_the_cli(
    moto_endpoint: str, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"dynamodb://Wallet-typo?endpoint_url={quote(moto_endpoint, safe='')}&region=sa-east-1"
    with pytest.raises(ConfigError, match="'Wallet-typo'") as raised:
        build_store(parse_settings({"STORE_URL": url, "ECPAY_BASE_URL": "http://127.0.0.1:9"}))
    assert to_http_error(raised.value).status == 503  # the API's answer: not a 500 with a stack
    capsys.readouterr()
    assert main(["audit", "--store-url", url]) == 2
    assert "'Wallet-typo' does not exist" in capsys.readouterr().err
    assert DynamoDBStore.from_url(url).client.list_tables()["TableNames"] == []


# --- users ---------------------------------------------------------------------------------------


def test_create_user_refuses_a_taken_username_or_id(store: DynamoDBStore) -> None:
    user = make_user(store)
    with pytest.raises(UserExists):
        store.create_user(user._replace(user_id=new_id()))
    with pytest.raises(UserExists):
        store.create_user(user._replace(username="someone-else"))
    assert store.list_users().total == 1
    assert store.get_user(user.user_id) == user


def test_close_user(store: DynamoDBStore, calls: CallLog) -> None:
    user = make_user(store)
    closed = store.close_user(user.user_id, T0 + timedelta(days=1))
    assert calls.names[-1] == "UpdateItem"
    assert closed == user._replace(status=UserStatus.CLOSED, updated_at=T0 + timedelta(days=1))
    assert store.get_user(user.user_id) == closed
    with pytest.raises(UserNotActive):
        store.close_user(user.user_id, T0)
    with pytest.raises(UserNotActive):
        store.close_user("nobody", T0)
    assert raw_item(store, "USER#nobody", "USER") is None  # no stub user was created


@pytest.mark.parametrize(
    "leftover",
    [
        pytest.param(
            lambda s, u: s.commit(pay_write(open_deposit(s, u, amount=1), "x:paid:0")), id="balance"
        ),
        pytest.param(open_deposit, id="open-deposit"),
        pytest.param(
            lambda s, u: (
                s.commit(pay_write(open_deposit(s, u, amount=5), "y:paid:0")),
                s.commit(withdraw_write(u.user_id, 5)),
            ),
            id="held",
        ),
    ],
)
def test_close_user_refuses_money_or_open_transactions(
    store: DynamoDBStore, leftover: Callable[[DynamoDBStore, User], object]
) -> None:
    user = make_user(store)
    leftover(store, user)
    with pytest.raises(UserHasFunds):
        store.close_user(user.user_id, T0)
    assert store_user(store, user).status is UserStatus.ACTIVE


# --- commit: each conflict mapping ---------------------------------------------------------------


def test_version_cas(store: DynamoDBStore) -> None:
    user = make_user(store)
    txn = open_deposit(store, user)  # version 2
    newer = advance(txn, TransactionStatus.AWAITING_OFFLINE_PAYMENT, payment_info={"BankCode": "812"})
    store.commit(AtomicWrite(transactions=[TransactionPut(newer, 2)]))
    assert store.get_transaction(txn.transaction_id) == newer

    # A writer that still holds version 2 loses, and learns the current version without a read.
    stale = advance(txn, TransactionStatus.FAILED)
    with pytest.raises(VersionConflict) as caught:
        store.commit(AtomicWrite(transactions=[TransactionPut(stale, 2)]))
    assert caught.value.transaction_id == txn.transaction_id
    assert caught.value.current == newer

    with pytest.raises(VersionConflict) as again:
        # "Must not exist yet", but it does.
        store.commit(AtomicWrite(transactions=[TransactionPut(txn._replace(version=1), 0)]))
    assert again.value.current == newer

    ghost = new_transaction(user.user_id)
    with pytest.raises(VersionConflict) as missing:
        store.commit(AtomicWrite(transactions=[TransactionPut(ghost._replace(version=5), 4)]))
    assert missing.value.current is None

    with pytest.raises(ValueError, match="expected_version"):
        store.commit(AtomicWrite(transactions=[TransactionPut(newer._replace(version=9), 3)]))


def test_insufficient_funds_writes_nothing(store: DynamoDBStore) -> None:
    user = funded_user(store, 100)
    before_ledger = store.list_ledger(user_id=user.user_id)
    write = withdraw_write(user.user_id, 101)
    with pytest.raises(InsufficientFunds) as caught:
        store.commit(write)
    assert caught.value.user_id == user.user_id
    assert store.get_transaction(write.transactions[0].new.transaction_id) is None
    assert store.list_ledger(user_id=user.user_id) == before_ledger
    after = store_user(store, user)
    assert (after.balance, after.held, after.open_transactions) == (100, 0, 0)
    assert store.list_transactions(user.user_id).total == 1


def store_user(store: DynamoDBStore, user: User) -> User:
    found = store.get_user(user.user_id)
    assert found is not None
    return found


def test_insufficient_held(store: DynamoDBStore) -> None:
    user = funded_user(store, 100)
    store.commit(withdraw_write(user.user_id, 40))
    txn = new_transaction(user.user_id, txn_type=TransactionType.WITHDRAW, amount=50)
    with pytest.raises(InsufficientFunds):
        store.commit(
            AtomicWrite(
                transactions=[TransactionPut(txn, 0)],
                user_delta=UserDelta(user.user_id, delta_held=-50),
                ledger=[entry(txn, "withdraw_complete", 0, -50)],
            )
        )
    assert (store_user(store, user).balance, store_user(store, user).held) == (60, 40)


def test_open_transactions_cannot_go_negative(store: DynamoDBStore) -> None:
    user = make_user(store)
    with pytest.raises(InsufficientFunds):
        store.commit(AtomicWrite(user_delta=UserDelta(user.user_id, delta_open=-1)))


def test_user_not_active(store: DynamoDBStore) -> None:
    user = make_user(store)
    store.close_user(user.user_id, T0)
    with pytest.raises(UserNotActive):
        store.commit(withdraw_write(user.user_id, 1))
    # A precondition alone (no counter changes) is checked too.
    with pytest.raises(UserNotActive):
        store.commit(AtomicWrite(user_delta=UserDelta(user.user_id, require_active=True)))
    # A missing user is "not active", and no stub user appears.
    with pytest.raises(UserNotActive):
        store.commit(AtomicWrite(user_delta=UserDelta("ghost", delta_balance=10)))
    with pytest.raises(UserNotActive):
        store.commit(AtomicWrite(transactions=[TransactionPut(new_transaction("ghost"), 0)]))
    assert raw_item(store, "USER#ghost", "USER") is None


def test_closed_user_is_not_active_even_when_also_short_of_funds(store: DynamoDBStore) -> None:
    user = make_user(store)
    store.close_user(user.user_id, T0)
    with pytest.raises(UserNotActive):
        store.commit(withdraw_write(user.user_id, 10**6))


def test_duplicate_notification(store: DynamoDBStore) -> None:
    user = make_user(store)
    txn = open_deposit(store, user)
    store.commit(pay_write(txn, "mtn1:paid:0"))
    # A resend with the same meaning: duplicate, even though its version is stale too.
    with pytest.raises(DuplicateNotification) as caught:
        store.commit(pay_write(txn, "mtn1:paid:0"))
    assert caught.value.dedupe_key == "mtn1:paid:0"
    assert store_user(store, user).balance == 500
    assert len(store.list_ledger(transaction_id=txn.transaction_id)) == 1
    assert [record.dedupe_key for record in store.list_notifications(txn.transaction_id)] == ["mtn1:paid:0"]
    # record_notification keeps dedupe keys unique as well.
    with pytest.raises(DuplicateNotification):
        store.record_notification(notification(txn, dedupe_key="mtn1:paid:0"))


def test_an_applied_notification_is_its_own_dedupe_item(store: DynamoDBStore, calls: CallLog) -> None:
    user = make_user(store)
    txn = open_deposit(store, user)
    earlier = notification(txn, outcome="rejected:checkmac")._replace(received_at=T0 + timedelta(minutes=5))
    store.record_notification(earlier)
    calls.names.clear()
    store.commit(pay_write(txn, "mtn1:paid:0", at=T0 + timedelta(minutes=9)))
    assert calls.names == ["TransactWriteItems"]
    # The record keyed by its dedupe key, and no DEDUPE# item: one item (2 WRU) fewer.
    record = raw_item(store, f"TXN#{txn.transaction_id}", "NOTIF#~mtn1:paid:0")
    assert record is not None and record["outcome"] == {"S": "applied"}
    assert raw_item(store, "DEDUPE#mtn1:paid:0", "DEDUPE") is None
    # Records still read oldest first, whatever their sort keys.
    records = store.list_notifications(txn.transaction_id)
    assert [r.outcome for r in records] == ["rejected:checkmac", "applied"]
    detail = store.get_transaction_records(txn.transaction_id)
    assert detail is not None and detail.notifications == records


def test_idempotency_key_reused_returns_the_existing_record(store: DynamoDBStore) -> None:
    user = funded_user(store, 100)
    first = withdraw_write(user.user_id, 100, idempotency_key="key-1")
    store.commit(first)
    # The retry would also overdraw: the idempotency answer must win.
    retry = withdraw_write(user.user_id, 100, idempotency_key="key-1")
    with pytest.raises(IdempotencyKeyReused) as caught:
        store.commit(retry)
    assert caught.value.key == "key-1"
    assert caught.value.existing == first.idempotency
    assert store.get_idempotency(user.user_id, "key-1") == first.idempotency
    assert store.get_transaction(retry.transactions[0].new.transaction_id) is None
    # Keys are scoped per user.
    other = funded_user(store, 100)
    store.commit(withdraw_write(other.user_id, 10, idempotency_key="key-1"))


def test_an_expired_idempotency_record_is_replaced(store: DynamoDBStore) -> None:
    user = funded_user(store, 100)
    first = withdraw_write(user.user_id, 10, idempotency_key="k")
    store.commit(first)
    assert first.idempotency is not None
    later = withdraw_write(user.user_id, 10, idempotency_key="k")
    assert later.idempotency is not None
    expired_at = first.idempotency.expires_at
    renewed = later._replace(idempotency=later.idempotency._replace(created_at=expired_at))
    store.commit(renewed)
    assert store.get_idempotency(user.user_id, "k") == renewed.idempotency


def test_failed_commit_changes_nothing(store: DynamoDBStore) -> None:
    user = make_user(store)
    txn = open_deposit(store, user)
    before = (store.get_user(user.user_id), store.get_transaction(txn.transaction_id))
    write = pay_write(txn, "k:paid:0")
    bad = write._replace(user_delta=UserDelta(user.user_id, delta_balance=txn.amount, delta_held=-1))
    with pytest.raises(InsufficientFunds):
        store.commit(bad)
    assert (store.get_user(user.user_id), store.get_transaction(txn.transaction_id)) == before
    assert store.list_ledger(transaction_id=txn.transaction_id) == []
    assert store.list_notifications(txn.transaction_id) == []
    store.commit(write)  # the dedupe key was not consumed by the failed attempt
    assert store_user(store, user).balance == txn.amount


def test_transaction_limits_are_refused_before_calling(store: DynamoDBStore, calls: CallLog) -> None:
    user = make_user(store)
    calls.names.clear()
    txn = new_transaction(user.user_id)
    many = AtomicWrite(transactions=[TransactionPut(txn, 0)], ledger=[entry(txn, "x", 0) for _ in range(50)])
    with pytest.raises(TransactionTooLarge, match="100-item"):
        store.commit(many)
    huge = notification(txn)._replace(raw_body="x" * 500_000)
    with pytest.raises(TransactionTooLarge, match="400 KB"):
        store.commit(AtomicWrite(notification=huge))
    with pytest.raises(TransactionTooLarge, match="400 KB"):
        store.record_notification(huge)
    assert calls.names == []


# --- the call budget -----------------------------------------------------------------------------


def test_call_budget(store: DynamoDBStore, calls: CallLog) -> None:
    user = funded_user(store, 1000)
    txn = open_deposit(store, user)

    calls.names.clear()
    store.commit(withdraw_write(user.user_id, 100, idempotency_key="idem"))
    assert calls.names == ["TransactWriteItems"], "creating a transaction with its idempotency key"

    calls.names.clear()
    store.commit(pay_write(txn, "budget:paid:0"))
    assert calls.names == ["TransactWriteItems"], "applying a notification"

    calls.names.clear()
    with pytest.raises(DuplicateNotification):
        store.commit(pay_write(txn, "budget:paid:0"))
    store.record_notification(notification(txn, outcome="duplicate"))
    assert calls.names == ["TransactWriteItems", "PutItem"], "a duplicate notification"

    calls.names.clear()
    with pytest.raises(VersionConflict) as caught:
        store.commit(AtomicWrite(transactions=[TransactionPut(advance(txn, TransactionStatus.FAILED), 2)]))
    assert caught.value.current is not None
    assert caught.value.current.status is TransactionStatus.PAID
    assert calls.names == ["TransactWriteItems"], "a lost compare-and-set reports the current version"

    calls.names.clear()
    store.get_transaction(txn.transaction_id)
    store.get_user(user.user_id)
    store.get_idempotency(user.user_id, "idem")
    assert calls.names == ["GetItem"] * 3
    assert "Scan" not in calls.names


# --- listings ------------------------------------------------------------------------------------


def test_list_users_pages_and_cursors(store: DynamoDBStore, calls: CallLog) -> None:
    users = [make_user(store, created_at=T0 + timedelta(seconds=i)) for i in range(5)]
    ids = [user.user_id for user in users]

    first = store.list_users(page_size=2)
    assert ([u.user_id for u in first.items], first.total) == (ids[:2], 5)
    assert first.next_cursor is not None
    second = store.list_users(page_size=2, cursor=first.next_cursor)
    assert [u.user_id for u in second.items] == ids[2:4]
    assert second.next_cursor is not None
    third = store.list_users(page_size=2, cursor=second.next_cursor, page=99)  # the cursor wins
    assert ([u.user_id for u in third.items], third.next_cursor) == (ids[4:], None)

    by_page = [store.list_users(page=page, page_size=2) for page in (1, 2, 3, 4)]
    assert [[u.user_id for u in p.items] for p in by_page] == [ids[:2], ids[2:4], ids[4:], []]
    assert [p.total for p in by_page] == [5] * 4
    assert by_page[1].next_cursor is not None
    assert by_page[2].next_cursor is None

    exact = store.list_users(page=1, page_size=5)
    assert (len(exact.items), exact.next_cursor) == (5, None)  # no cursor to an empty page
    assert [u.user_id for u in store.iter_users()] == ids
    assert "Scan" not in calls.names


def test_list_transactions_newest_first_with_cursor(store: DynamoDBStore) -> None:
    user = make_user(store)
    other = make_user(store)
    created = []
    for i in range(5):
        txn = new_transaction(user.user_id, created_at=T0 + timedelta(minutes=i))
        store.commit(AtomicWrite(transactions=[TransactionPut(txn, 0)], user_delta=UserDelta(user.user_id)))
        created.append(txn.transaction_id)
    store.commit(AtomicWrite(transactions=[TransactionPut(new_transaction(other.user_id), 0)]))
    newest_first = created[::-1]

    seen: list[str] = []
    cursor: str | None = None
    pages = 0
    while True:
        page = store.list_transactions(user.user_id, page_size=2, cursor=cursor)
        assert page.total == 5
        seen += [t.transaction_id for t in page.items]
        pages += 1
        cursor = page.next_cursor
        if cursor is None:
            break
    assert (seen, pages) == (newest_first, 3)
    assert [t.transaction_id for t in store.list_transactions(user.user_id, page=2, page_size=3).items] == (
        newest_first[3:]
    )

    # The listing shows every version of its transaction (it points at the transaction item).
    latest = store.get_transaction(created[0])
    assert latest is not None
    moved = advance(latest, TransactionStatus.AWAITING_PAYMENT, T0 + timedelta(hours=1))
    store.commit(AtomicWrite(transactions=[TransactionPut(moved, 1)]))
    assert store.list_transactions(user.user_id, page=3, page_size=2).items == [moved]

    assert store.list_transactions("nobody").total == 0
    other_cursor = store.list_transactions(other.user_id, page_size=1)
    first_cursor = store.list_transactions(user.user_id, page_size=1).next_cursor
    assert first_cursor is not None
    with pytest.raises(InvalidRequest):
        store.list_transactions(other.user_id, cursor=first_cursor)  # another user's cursor
    with pytest.raises(InvalidRequest):
        store.list_transactions(user.user_id, cursor="not-a-cursor")
    with pytest.raises(InvalidRequest):
        store.list_users(cursor=first_cursor)  # a transaction cursor is not a user cursor
    assert other_cursor.total == 1


def test_ledger_and_notifications_oldest_first(store: DynamoDBStore) -> None:
    user = make_user(store)
    first = open_deposit(store, user, amount=100, at=T0)
    second = open_deposit(store, user, amount=200, at=T0 + timedelta(hours=1))
    store.commit(pay_write(second, "b:paid:0", at=T0 + timedelta(hours=2)))
    store.commit(pay_write(first, "a:paid:0", at=T0 + timedelta(hours=3)))
    by_user = store.list_ledger(user_id=user.user_id)
    assert [(e.transaction_id, e.delta_balance) for e in by_user] == [
        (second.transaction_id, 200),
        (first.transaction_id, 100),
    ]
    assert [e.transaction_id for e in store.list_ledger(transaction_id=first.transaction_id)] == [
        first.transaction_id
    ]
    assert store.list_ledger(transaction_id=first.transaction_id, user_id="someone-else") == []
    assert sum(e.delta_balance for e in by_user) == store_user(store, user).balance == 300

    late = notification(first, outcome="ignored:paid")._replace(received_at=T0 + timedelta(days=1))
    store.record_notification(late)
    assert [n.outcome for n in store.list_notifications(first.transaction_id)] == ["applied", "ignored:paid"]

    stray = NotificationRecord(new_id(), T0, "return", "MerchantID=evil", "rejected:checkmac")
    store.record_notification(stray)
    assert raw_item(
        store, "NOTIFS#2024-05-01", f"NOTIF#{T0.isoformat(timespec='microseconds')}#{stray.notification_id}"
    )
    with pytest.raises(ValueError):
        store.list_ledger()


def test_awaiting_index_follows_status_changes(store: DynamoDBStore) -> None:
    user = make_user(store)
    deposit = new_transaction(user.user_id, created_at=T0)
    store.commit(AtomicWrite(transactions=[TransactionPut(deposit, 0)]))
    cutoff = T0 + timedelta(hours=1)
    assert store.list_awaiting_payment(due_before=cutoff) == []  # pending: not yet at ECPay

    awaiting = advance(deposit, TransactionStatus.AWAITING_PAYMENT, T0 + timedelta(minutes=1))
    store.commit(AtomicWrite(transactions=[TransactionPut(awaiting, 1)]))
    assert store.list_awaiting_payment(due_before=cutoff) == [awaiting]
    assert store.list_awaiting_payment(due_before=T0 + timedelta(minutes=1)) == [awaiting]  # inclusive
    assert store.list_awaiting_payment(due_before=T0 + timedelta(minutes=1, microseconds=-1)) == []

    offline = advance(awaiting, TransactionStatus.AWAITING_OFFLINE_PAYMENT, T0 + timedelta(minutes=2))
    store.commit(AtomicWrite(transactions=[TransactionPut(offline, 2)]))
    assert store.list_awaiting_payment(due_before=cutoff) == [offline]

    older = new_transaction(
        user.user_id, status=TransactionStatus.AWAITING_PAYMENT, created_at=T0 - timedelta(days=1)
    )
    store.commit(AtomicWrite(transactions=[TransactionPut(older, 0)]))
    assert store.list_awaiting_payment(due_before=cutoff) == [older, offline]  # most overdue first
    assert store.list_awaiting_payment(due_before=cutoff, limit=1) == [older]

    paid = advance(offline, TransactionStatus.PAID, T0 + timedelta(minutes=3))
    store.commit(AtomicWrite(transactions=[TransactionPut(paid, 3)]))
    assert store.list_awaiting_payment(due_before=cutoff) == [older]
    item = raw_item(store, f"TXN#{paid.transaction_id}", "TXN")
    assert item is not None
    assert "gsi1pk" not in item  # paid without a paid_at: in no listing
    assert "gsi1sk" not in item


def test_reconciliation_index_is_keyed_by_due_time_then_id(store: DynamoDBStore) -> None:
    user = make_user(store)
    due = T0 + timedelta(minutes=30)
    scheduled = new_transaction(user.user_id, status=TransactionStatus.AWAITING_PAYMENT)._replace(
        next_check_at=due, check_count=2
    )
    store.commit(AtomicWrite(transactions=[TransactionPut(scheduled, 0)]))
    item = raw_item(store, f"TXN#{scheduled.transaction_id}", "TXN")
    assert item is not None
    assert item["gsi1pk"] == {"S": "AWAITING"}
    assert item["gsi1sk"] == {"S": f"{due.isoformat(timespec='microseconds')}#{scheduled.transaction_id}"}
    assert store.list_awaiting_payment(due_before=due - timedelta(microseconds=1)) == []  # updated_at ignored
    assert store.list_awaiting_payment(due_before=due) == [scheduled]


def test_index_entries_written_before_the_id_suffix_are_still_listed(store: DynamoDBStore) -> None:
    # Items written by the previous version keyed the reconciliation index by the bare updated_at.
    user = make_user(store)
    old = new_transaction(user.user_id, status=TransactionStatus.AWAITING_PAYMENT)
    store.commit(AtomicWrite(transactions=[TransactionPut(old, 0)]))
    store.client.update_item(
        TableName=store.table_name,
        Key={"pk": {"S": f"TXN#{old.transaction_id}"}, "sk": {"S": "TXN"}},
        UpdateExpression="SET gsi1sk = :bare REMOVE check_count",
        ExpressionAttributeValues={":bare": {"S": T0.isoformat(timespec="microseconds")}},
    )
    newer = new_transaction(user.user_id, status=TransactionStatus.AWAITING_PAYMENT)._replace(
        updated_at=T0 + timedelta(seconds=1)
    )
    store.commit(AtomicWrite(transactions=[TransactionPut(newer, 0)]))
    assert store.list_awaiting_payment(due_before=T0) == [old]
    assert store.list_awaiting_payment(due_before=T0 + timedelta(hours=1)) == [old, newer]


def test_pending_refunds_index(store: DynamoDBStore) -> None:
    user = make_user(store)
    refund = new_transaction(user.user_id, txn_type=TransactionType.REFUND, amount=50)
    store.commit(AtomicWrite(transactions=[TransactionPut(refund, 0)]))
    cutoff = T0 + timedelta(hours=1)
    assert store.list_pending_refunds(due_before=cutoff) == [refund]
    assert store.list_awaiting_payment(due_before=cutoff) == []
    done = advance(refund, TransactionStatus.COMPLETED, T0 + timedelta(minutes=1))
    store.commit(AtomicWrite(transactions=[TransactionPut(done, 1)]))
    assert store.list_pending_refunds(due_before=cutoff) == []


def paid_deposit(
    user: User, paid_at: datetime, status: TransactionStatus = TransactionStatus.PAID
) -> Transaction:
    return new_transaction(user.user_id, status=status)._replace(paid_at=paid_at, updated_at=paid_at)


def test_paid_deposits_are_listed_from_day_partitions_without_a_scan(
    store: DynamoDBStore, calls: CallLog, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(dynamodb_module, "_PAID_PAGE", 2)  # several pages per day with a few items
    user = make_user(store)
    midnight = datetime(2024, 5, 2, tzinfo=UTC)
    moments = [midnight - timedelta(hours=1), midnight - timedelta(microseconds=1), midnight]
    moments += [midnight + timedelta(hours=h) for h in (1, 2, 3, 23)] + [midnight + timedelta(days=2)]
    deposits = [paid_deposit(user, at) for at in moments]
    for deposit in reversed(deposits):
        store.commit(AtomicWrite(transactions=[TransactionPut(deposit, 0)]))
    item = raw_item(store, f"TXN#{deposits[2].transaction_id}", "TXN")
    assert item is not None
    assert item["gsi1pk"] == {"S": "PAID#2024-05-02"}
    assert item["gsi1sk"] == {
        "S": f"{midnight.isoformat(timespec='microseconds')}#{deposits[2].transaction_id}"
    }
    calls.names.clear()
    listed = list(
        store.iter_paid_deposits(
            paid_from=midnight - timedelta(hours=1), paid_to=midnight + timedelta(days=2)
        )
    )
    assert listed == deposits[:-1]
    assert "Scan" not in calls.names
    # [May 1 23:00, May 3 00:00): the partitions of May 1 (2 keys: a full page, then an empty one) and
    # May 2 (5 keys: pages of 2, 2, 1), one consistent BatchGetItem per non-empty page; never May 3.
    assert calls.names.count("Query") == 5
    assert calls.names.count("BatchGetItem") == 4
    assert set(calls.names) == {"Query", "BatchGetItem"}


def test_iter_paid_deposits_drops_what_the_index_has_not_caught_up_with(store: DynamoDBStore) -> None:
    user = make_user(store)
    paid = paid_deposit(user, T0)
    store.commit(AtomicWrite(transactions=[TransactionPut(paid, 0)]))
    # The consistent re-read wins over a stale index entry: simulate one by keeping the index keys
    # while the item itself has moved out of the paid family.
    store.client.update_item(
        TableName=store.table_name,
        Key={"pk": {"S": f"TXN#{paid.transaction_id}"}, "sk": {"S": "TXN"}},
        UpdateExpression="SET #status = :cancelled",
        ExpressionAttributeNames={"#status": "status"},
        ExpressionAttributeValues={":cancelled": {"S": "cancelled"}},
    )
    assert list(store.iter_paid_deposits(paid_from=T0, paid_to=T0 + timedelta(days=1))) == []


def test_attempts_are_stored_as_a_map_keyed_by_merchant_trade_no(store: DynamoDBStore) -> None:
    user = make_user(store)
    attempt = Attempt(
        "abc123",
        PaymentMethod.ATM,
        AttemptState.AWAITING_OFFLINE_PAYMENT,
        T0,
        None,
        {"BankCode": "812"},
        T0 + timedelta(days=3),
    )
    paid = Attempt("abc124", PaymentMethod.CREDIT, AttemptState.PAID, T0, "2401")
    txn = new_transaction(user.user_id, status=TransactionStatus.AWAITING_OFFLINE_PAYMENT)._replace(
        attempts=(attempt, paid)
    )
    store.commit(AtomicWrite(transactions=[TransactionPut(txn, 0)]))
    item = raw_item(store, f"TXN#{txn.transaction_id}", "TXN")
    assert item is not None
    stored = item["attempts"]["M"]["abc123"]
    assert stored["M"]["merchant_trade_no"] == {"S": "abc123"}
    assert stored["M"]["payment_info"] == {"M": {"BankCode": {"S": "812"}}}
    assert stored["M"]["seq"] == {"N": "0"}  # the list's order survives the map
    assert item["attempts"]["M"]["abc124"]["M"]["seq"] == {"N": "1"}
    assert "trade_no" not in stored["M"]  # None is an absent key, never a NULL
    assert item["paid_attempt"] == {"S": "abc124"}  # the first paid attempt, for the fast path's condition
    assert store.get_transaction(txn.transaction_id) == txn
    assert store.list_transactions(user.user_id).items == [txn]
    listing = raw_item(store, f"USER#{user.user_id}", f"TXN#{iso(txn.created_at)}#{txn.transaction_id}")
    assert listing is not None and "attempts" not in listing  # a pointer, not a copy


def test_items_of_the_previous_layout_still_read(store: DynamoDBStore) -> None:
    """Attempts as a list of maps and a full listing copy (the layout before the fast path) read back."""
    user = make_user(store)
    attempt = Attempt("abc123", PaymentMethod.CREDIT, AttemptState.AWAITING_PAYMENT, T0)
    txn = new_transaction(user.user_id, status=TransactionStatus.AWAITING_PAYMENT)._replace(
        attempts=(attempt,), merchant_trade_no="abc123"
    )
    store.commit(AtomicWrite(transactions=[TransactionPut(txn, 0)]))
    old_item = encode_transaction(txn)
    old_item["attempts"] = {"L": [_old_attempt(attempt)]}
    old_copy = {**encode_transaction(txn), **transaction_listing_key(txn)}
    old_copy.pop("gsi1pk", None)
    old_copy.pop("gsi1sk", None)
    old_copy["attempts"] = old_item["attempts"]
    store.client.put_item(TableName=store.table_name, Item=old_item)
    store.client.put_item(TableName=store.table_name, Item=old_copy)
    assert store.get_transaction(txn.transaction_id) == txn
    assert store.list_transactions(user.user_id).items == [txn]
    # The next write moves it to the map layout; the old full copy is not rewritten, and the listing
    # still shows the new version (it reads the transaction item).
    moved = advance(txn, TransactionStatus.AWAITING_PAYMENT, T0 + timedelta(hours=1))
    store.commit(AtomicWrite(transactions=[TransactionPut(moved, txn.version)]))
    item = raw_item(store, f"TXN#{txn.transaction_id}", "TXN")
    assert item is not None and "M" in item["attempts"]
    assert store.list_transactions(user.user_id).items == [moved]


def _old_attempt(attempt: Attempt) -> dict[str, Any]:
    data = attempt_to_json(attempt)
    return {
        "M": {
            name: {"S": value} if isinstance(value, str) else {"M": {k: {"S": v} for k, v in value.items()}}
            for name, value in data.items()
            if value is not None
        }
    }


def test_reopen_user_is_one_conditional_update(store: DynamoDBStore, calls: CallLog) -> None:
    user = make_user(store)
    store.close_user(user.user_id, T0 + timedelta(minutes=1))
    calls.names.clear()
    reopened = store.reopen_user(user.user_id, T0 + timedelta(minutes=2))
    assert calls.names == ["UpdateItem"]
    assert reopened == user._replace(updated_at=T0 + timedelta(minutes=2))
    assert store.reopen_user(user.user_id, T0 + timedelta(minutes=3)) is None
    assert store.reopen_user("nobody", T0) is None
    assert raw_item(store, "USER#nobody", "USER") is None  # a failed reopen creates no stub


# --- concurrency through the single-threaded server ----------------------------------------------


def test_concurrent_duplicate_notifications_credit_once(dynamodb_store_url: str) -> None:
    store = DynamoDBStore.from_url(dynamodb_store_url)
    user = make_user(store)
    deposit = open_deposit(store, user, amount=700)
    threads, attempts = 8, 25
    barrier = threading.Barrier(threads)

    def deliver() -> Counter[str]:
        outcomes: Counter[str] = Counter()
        barrier.wait()
        for _ in range(attempts):
            # Every attempt works from the snapshot read before the race: all but one must lose.
            try:
                store.commit(pay_write(deposit, "race:paid:0"))
                outcomes["applied"] += 1
            except DuplicateNotification:
                # Not recorded here: every record would grow the table that moto copies per item.
                outcomes["duplicate"] += 1
            except VersionConflict:
                outcomes["conflict"] += 1
        return outcomes

    with ThreadPoolExecutor(threads) as pool:
        results = list(pool.map(lambda _: deliver(), range(threads)))
    total = sum(results, Counter())
    assert total["applied"] == 1
    # Once applied, both the dedupe key and the version condition fail: the duplicate wins.
    assert total["duplicate"] == threads * attempts - 1
    assert total["conflict"] == 0
    final = store_user(store, user)
    assert (final.balance, final.held, final.open_transactions) == (700, 0, 0)
    assert len(store.list_ledger(transaction_id=deposit.transaction_id)) == 1
    assert [record.outcome for record in store.list_notifications(deposit.transaction_id)] == ["applied"]


def test_parallel_withdrawals_never_overdraw(dynamodb_store_url: str) -> None:
    store = DynamoDBStore.from_url(dynamodb_store_url)
    user = funded_user(store, 1000)
    threads, attempts, amount = 8, 10, 70
    barrier = threading.Barrier(threads)

    def withdraw() -> Counter[str]:
        outcomes: Counter[str] = Counter()
        barrier.wait()
        for _ in range(attempts):
            try:
                store.commit(withdraw_write(user.user_id, amount))
                outcomes["ok"] += 1
            except InsufficientFunds:
                outcomes["refused"] += 1
        return outcomes

    with ThreadPoolExecutor(threads) as pool:
        total = sum(pool.map(lambda _: withdraw(), range(threads)), Counter())
    assert total == {"ok": 1000 // amount, "refused": threads * attempts - 1000 // amount}
    final = store_user(store, user)
    assert final.balance == 1000 - amount * (1000 // amount) >= 0
    assert final.held == amount * (1000 // amount)
    ledger = store.list_ledger(user_id=user.user_id)
    assert sum(e.delta_balance for e in ledger) == final.balance
    assert sum(e.delta_held for e in ledger) == final.held
    assert store.list_transactions(user.user_id).total == 1 + 1000 // amount
