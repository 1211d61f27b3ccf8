"""MariaDB: the hot statements on the DBAPI cursor, a write's statements as one batch (store/sql_batch.py).

What could go wrong and is checked here on a real server: the pre-rendered statements drifting from
what SQLAlchemy compiles and binds; a batch that commits part of a write, or maps a failing statement
to the wrong conflict; a dead pooled connection under the cursor-level read not being retried; the
write no longer being one batch (the round trips this module exists to save).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from bench.wire import proxied
from sqlalchemy import create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import IntegrityError, ProgrammingError

from ecpay_lambda.store import sql, sql_batch
from ecpay_lambda.store.sql import SqlStore
from ecpay_lambda.wallet.ids import new_notification_id, new_transaction_id, new_user_id
from ecpay_lambda.wallet.models import (
    IdempotencyRecord,
    LedgerEntry,
    NotificationRecord,
    Transaction,
    TransactionStatus,
    TransactionType,
    User,
    UserStatus,
)
from ecpay_lambda.wallet.port import (
    AtomicWrite,
    Decision,
    DuplicateNotification,
    InsufficientFunds,
    Reads,
    Snapshot,
    TransactionPut,
    UserDelta,
    UserNotActive,
    VersionConflict,
)

pytestmark = pytest.mark.mysql

T0 = datetime(2026, 11, 28, 4, 0, tzinfo=UTC)
T1 = T0 + timedelta(seconds=5)


@pytest.fixture
def store(mysql_store_url: str) -> Iterator[SqlStore]:
    """A store on a fresh MariaDB database, as ``from_url`` opens it (batched)."""
    opened = SqlStore.from_url(mysql_store_url)
    opened.ensure_schema()
    yield opened
    opened.dispose()


def _user(balance: int = 0, status: UserStatus = UserStatus.ACTIVE) -> User:
    return User(new_user_id(), f"u{new_user_id()[-8:]}", "u@example.com", balance, 0, status, 1, T0, T0)


def _deposit(user: User) -> Transaction:
    return Transaction(
        new_transaction_id(),
        user.user_id,
        TransactionType.DEPOSIT,
        100,
        TransactionStatus.AWAITING_PAYMENT,
        1,
        T0,
        T0,
        merchant_trade_no="W0000000000000000001",
    )


def _notification(txn: Transaction, key: str | None = "dedupe-1") -> NotificationRecord:
    return NotificationRecord(
        new_notification_id(), T1, "return", "RtnCode=1&x=100%", "applied", txn.transaction_id, None, key
    )


def _entry(txn: Transaction, entry_id: str = "e1") -> LedgerEntry:
    return LedgerEntry(entry_id, txn.user_id, txn.transaction_id, "deposit_paid", txn.amount, 0, T1)


def _paid(txn: Transaction, entry_id: str = "e1", key: str | None = "dedupe-1") -> AtomicWrite:
    """The write of an applied payment: notification, transaction, user credit, ledger entry."""
    new = txn._replace(status=TransactionStatus.PAID, version=txn.version + 1, updated_at=T1, paid_at=T1)
    return AtomicWrite(
        transactions=(TransactionPut(new, txn.version),),
        user_delta=UserDelta(txn.user_id, delta_balance=txn.amount, delta_open=-1),
        ledger=(_entry(txn, entry_id),),
        notification=_notification(txn, key),
    )


def _setup(
    store: SqlStore, balance: int = 0, status: UserStatus = UserStatus.ACTIVE
) -> tuple[User, Transaction]:
    user = _user(balance, status)
    store.create_user(user)
    txn = _deposit(user)
    store.commit(AtomicWrite(transactions=(TransactionPut(txn, 0),)))
    return user, txn


def _sent(store: SqlStore) -> list[tuple[str, Any]]:
    """Every statement the store sends from now on (SQLAlchemy's cursor event), with its parameters."""
    seen: list[tuple[str, Any]] = []

    @event.listens_for(store.engine, "before_cursor_execute")
    def _record(_c: Any, _cur: Any, statement: str, parameters: Any, _ctx: Any, _many: bool) -> None:
        seen.append((statement, parameters))

    return seen


def test_the_pre_rendered_statements_are_what_sqlalchemy_sends(store: SqlStore) -> None:
    user, txn = _setup(store)
    write = _paid(txn)
    paid = write.transactions[0]
    idem = IdempotencyRecord(user.user_id, "k1", "fp", txn.transaction_id, T0, T1)
    delta_statement, delta_values = sql._delta_statement(write.user_delta, write)  # type: ignore[arg-type]
    cases: list[tuple[Any, dict[str, Any]]] = [
        (sql._INSERT_NOTIFICATION, sql._notification_values(write.notification)),  # type: ignore[arg-type]
        (sql._UPDATE_TRANSACTION, sql._txn_update_values(paid)),
        (sql._INSERT_TRANSACTION, sql._txn_values(_deposit(user))),
        (delta_statement, delta_values),
        (
            sql._user_delta(False, False),
            {"b_user_id": user.user_id, "b_balance": 0, "b_held": 0, "b_open": 0},
        ),
        (sql._INSERT_LEDGER, sql._entry_values(write.ledger[0])),
        (sql._EXPIRED_IDEMPOTENCY, {"b_user_id": user.user_id, "b_key": "k1", "b_now": 5}),
        (sql._INSERT_IDEMPOTENCY, sql._idempotency_values(idem)),
        (sql._TRANSACTION_LOCKED, {"b_transaction_id": txn.transaction_id}),
        (sql._TRANSACTION_LOCKED_JSON, {"b_transaction_id": txn.transaction_id}),
        (sql._TRANSACTION_JSON, {"b_transaction_id": txn.transaction_id}),
        (sql._LEDGER_OF, {"b_transaction_id": txn.transaction_id}),
        (sql._NOTIFICATIONS_OF, {"b_transaction_id": txn.transaction_id}),
        (sql._COUNT_USER_TRANSACTIONS, {"b_user_id": user.user_id}),
        (sql._USER_TRANSACTIONS_PAGE_JSON, {"b_user_id": user.user_id, "b_limit": 21, "b_offset": 20}),
        (
            sql._USER_TRANSACTIONS_AFTER_JSON,
            {"b_user_id": user.user_id, "b_limit": 21, "b_micros": 5, "b_key": txn.transaction_id},
        ),
    ]
    seen = _sent(store)
    with store.engine.connect() as conn, conn.begin() as outer:
        for statement, values in cases:
            del seen[:]
            conn.execute(statement, values)  # SQLAlchemy's own path
            rendered = sql_batch.step(statement, conn.dialect, values)
            assert seen == [(rendered.sql, dict(rendered.values))]
        outer.rollback()


def test_an_applied_payment_is_one_read_and_one_batch(store: SqlStore) -> None:
    user, txn = _setup(store)
    seen = _sent(store)

    def decide(snap: Snapshot) -> Decision[str]:
        assert snap.transactions[txn.transaction_id] == txn
        return Decision("applied", _paid(txn))

    assert store.run(Reads((txn.transaction_id,)), decide) == "applied"
    assert len(seen) == 2  # the locked read, then the four writes together
    assert seen[0][0].rstrip().endswith("FOR UPDATE")
    # The four writes, a check after each compare-and-set (the transaction's, the user's), COMMIT.
    statements = seen[1][0].split(";\n")
    assert len(statements) == 7
    assert [statements[i] for i in (2, 4, 6)] == [sql_batch.ONE_ROW.sql, sql_batch.ONE_ROW.sql, "COMMIT"]
    after = store.get_user(user.user_id)
    assert after is not None and (after.balance, after.open_transactions) == (100, 0)
    assert [e.entry_id for e in store.list_ledger(transaction_id=txn.transaction_id)] == ["e1"]
    stored = store.get_transaction(txn.transaction_id)
    assert stored is not None and stored.status is TransactionStatus.PAID
    # The raw body (with its %) is stored as it came: the batch's values are not formatted twice.
    assert [n.raw_body for n in store.list_notifications(txn.transaction_id)] == ["RtnCode=1&x=100%"]


def test_an_applied_payment_is_two_turns_on_the_wire(mysql_store_url: str) -> None:
    # Counted on the wire, where a COMMIT SQLAlchemy sends on its own would show (its cursor events
    # never see it): the locked read, then the batch that ends with the COMMIT.
    with proxied(mysql_store_url) as (url, wire):
        store = SqlStore.from_url(url)
        try:
            store.ensure_schema()
            user, txn = _setup(store)
            wire.reset()
            assert store.run(Reads((txn.transaction_id,)), lambda _snap: Decision("ok", _paid(txn))) == "ok"
            assert wire.reset() == 2
            store.commit(AtomicWrite(transactions=(TransactionPut(_deposit(user), 0),)))
            assert wire.reset() == 1  # a new deposit: its INSERT and COMMIT in one batch
        finally:
            store.dispose()
    # Committed for every other connection to see (not left open on the pooled one).
    other = SqlStore.from_url(mysql_store_url)
    try:
        stored = other.get_transaction(txn.transaction_id)
        assert stored is not None and stored.status is TransactionStatus.PAID
    finally:
        other.dispose()


def test_the_connection_still_commits_a_transaction_a_batch_did_not_end(
    store: SqlStore, mysql_store_url: str
) -> None:
    # The skipped COMMIT needs both: the last batch ended with COMMIT, and the server says no
    # transaction is open. Here the flag is set by mistake while a transaction is open.
    user = _user()
    store.create_user(user)
    with store.engine.connect() as conn, conn.begin():
        changed = {"u": user.user_id, "e": "changed@example.com"}
        conn.execute(text("UPDATE wallet_users SET email = :e WHERE user_id = :u"), changed)
        conn.connection.dbapi_connection.committed_by_batch = True  # type: ignore[union-attr]
    other = SqlStore.from_url(mysql_store_url)  # another connection: committed, not just written
    try:
        stored = other.get_user(user.user_id)
        assert stored is not None and stored.email == "changed@example.com"
    finally:
        other.dispose()


def _unchanged(store: SqlStore, user: User, txn: Transaction, balance: int = 0) -> None:
    after = store.get_user(user.user_id)
    assert after is not None and (after.balance, after.open_transactions) == (balance, 1)
    assert store.get_transaction(txn.transaction_id) == txn
    assert store.list_ledger(transaction_id=txn.transaction_id) == []


def test_a_stale_version_rolls_back_the_statements_around_it(store: SqlStore) -> None:
    user, txn = _setup(store)
    write = _paid(txn)
    # Expects version 7 (the stored one is 1): the UPDATE matches no row, the statements after it
    # (the user's credit, the ledger entry) run in the batch and must be rolled back with the first.
    stale = TransactionPut(write.transactions[0].new._replace(version=8), 7)
    with pytest.raises(VersionConflict):
        store.commit(write._replace(transactions=(stale,)))
    _unchanged(store, user, txn)
    assert store.list_notifications(txn.transaction_id) == []


def test_a_refused_user_delta_is_its_conflict_and_rolls_back(store: SqlStore) -> None:
    user, txn = _setup(store, status=UserStatus.CLOSED)
    credit = _paid(txn)
    with pytest.raises(UserNotActive):
        store.commit(credit._replace(user_delta=credit.user_delta._replace(require_active=True)))  # type: ignore[union-attr]
    assert store.get_transaction(txn.transaction_id) == txn
    assert store.list_notifications(txn.transaction_id) == []

    user, txn = _setup(store, balance=10)
    debit = _paid(txn)._replace(user_delta=UserDelta(user.user_id, delta_balance=-11))
    with pytest.raises(InsufficientFunds):
        store.commit(debit)
    _unchanged(store, user, txn, balance=10)


def test_a_failing_statement_is_its_conflict_or_sqlalchemys_error(store: SqlStore) -> None:
    user, txn = _setup(store)
    store.record_notification(_notification(txn, "dedupe-1"))
    with pytest.raises(DuplicateNotification):  # the first statement fails: nothing after it ran
        store.commit(_paid(txn, key="dedupe-1"))
    _unchanged(store, user, txn)

    _, other = _setup(store)
    store.commit(_paid(other, entry_id="taken", key="dedupe-2"))
    # The last statement fails (a ledger entry id already used): SQLAlchemy's IntegrityError, and the
    # three statements before it, which succeeded, are rolled back.
    with pytest.raises(IntegrityError):
        store.commit(_paid(txn, entry_id="taken", key="dedupe-3"))
    _unchanged(store, user, txn)
    assert len(store.list_notifications(txn.transaction_id)) == 1  # the one recorded above


def test_a_killed_connection_under_the_locked_read_runs_the_use_case_again(store: SqlStore) -> None:
    _, txn = _setup(store)
    with store.engine.connect() as conn:
        session = int(conn.execute(text("SELECT CONNECTION_ID()")).scalar_one())
        conn.rollback()
    admin = create_engine(make_url(store.engine.url), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f"KILL {session}"))
    finally:
        admin.dispose()
    reads: list[Snapshot] = []

    def decide(snap: Snapshot) -> Decision[str]:
        reads.append(snap)
        return Decision("applied", _paid(txn))

    assert store.run(Reads((txn.transaction_id,)), decide) == "applied"
    assert len(reads) == 1  # the dead connection failed the read itself; the retry read and wrote
    stored = store.get_transaction(txn.transaction_id)
    assert stored is not None and stored.status is TransactionStatus.PAID


# Every character class a JSON encoder must escape or pass through: quotes, backslash, each control
# character, NUL-free non-ASCII (CJK, an astral emoji, the JavaScript line separators).
AWKWARD = (
    '"quoted" \\back\\slash ' + "".join(map(chr, range(1, 32))) + " 綠界 \U0001f4b3 \u2028\u2029 %s %(x)s"
)


def test_a_transaction_read_as_one_json_column_is_the_stored_one(store: SqlStore) -> None:
    user, txn = _setup(store)
    awkward = txn._replace(
        version=2,
        updated_at=T1,
        payment_info={"card": AWKWARD, AWKWARD: "key"},
        flags=frozenset({AWKWARD, "needs_review"}),
        trade_no="2611281200" + "9" * 10,
        expires_at=T1 + timedelta(days=3),
        refunded_amount=2**40,
        paid_at=None,
    )
    store.commit(AtomicWrite(transactions=(TransactionPut(awkward, 1),)))
    expected = store.get_transaction(txn.transaction_id)  # SQLAlchemy's own path: 25 columns
    assert expected == awkward
    seen: list[Transaction] = []

    def decide(snap: Snapshot) -> Decision[str]:
        seen.append(snap.transactions[txn.transaction_id])
        return Decision("read", None)

    store.run(Reads((txn.transaction_id,)), decide)  # the locked read, one JSON column
    assert seen == [expected]
    assert store.list_transactions(user.user_id).items == [expected]


def test_reads_are_one_turn_and_read_what_sqlalchemy_reads(store: SqlStore) -> None:
    user, txn = _setup(store)
    store.commit(_paid(txn))
    for _ in range(3):
        store.commit(AtomicWrite(transactions=(TransactionPut(_deposit(user)._replace(created_at=T1), 0),)))
    plain = SqlStore(create_engine(store.engine.url))  # SQLAlchemy's own path (not batched)
    try:
        seen = _sent(store)
        records = store.get_transaction_records(txn.transaction_id)
        first = store.list_transactions(user.user_id, page_size=2)
        assert first.next_cursor is not None
        after = store.list_transactions(user.user_id, page_size=2, cursor=first.next_cursor)
        assert store.get_transaction(txn.transaction_id) == plain.get_transaction(txn.transaction_id)
        assert store.get_transaction("missing") is None and store.get_transaction_records("missing") is None
        # Each read: its queries and the COMMIT sent together.
        assert len(seen) == 6 and all(statement.endswith(";\nCOMMIT") for statement, _ in seen)
        assert records == plain.get_transaction_records(txn.transaction_id)
        assert records is not None and len(records.ledger) == 1 and len(records.notifications) == 1
        assert first == plain.list_transactions(user.user_id, page_size=2)
        assert after == plain.list_transactions(user.user_id, page_size=2, cursor=first.next_cursor)
        assert first.total == 4 and len(first.items) + len(after.items) == 4
    finally:
        plain.dispose()


def test_a_failed_read_never_returns_its_open_transaction_to_the_pool(store: SqlStore) -> None:
    _, txn = _setup(store)
    opened = sql_batch.step(
        sql._TRANSACTION_JSON, store.engine.dialect, {"b_transaction_id": txn.transaction_id}
    )
    with pytest.raises(ProgrammingError):  # the first SELECT opened a transaction, the second fails
        sql_batch.read(store.engine, opened, sql_batch.Step("SELECT * FROM no_such_table", {}))
    with store.engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT @@in_transaction").scalar_one() == 0
        conn.rollback()
