"""Schema creation and migration on every SQL database: concurrent cold starts migrate exactly once,
and a database of an older schema keeps its rows readable."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Connection, insert, inspect, text

from ecpay_lambda.store import sql_schema as schema
from ecpay_lambda.store.sql import SqlStore
from ecpay_lambda.wallet.models import Attempt, AttemptState, PaymentMethod, TransactionStatus
from ecpay_lambda.wallet.port import AtomicWrite, TransactionPut

DATABASES = [
    pytest.param("sqlite", id="sqlite"),
    pytest.param("mysql", id="mysql", marks=pytest.mark.mysql),
    pytest.param("postgres", id="postgres", marks=pytest.mark.postgres),
]


@pytest.fixture(params=DATABASES)
def url(request: pytest.FixtureRequest) -> str:
    """A clean database of each SQL kind (see tests/support/sql_plugin.py)."""
    return str(request.getfixturevalue(f"{request.param}_store_url"))


def _versions(store: SqlStore) -> list[int]:
    with store.engine.connect() as conn:
        rows = conn.execute(text("SELECT version FROM wallet_schema_version ORDER BY version"))
        return [int(v) for v in rows.scalars()]


def _race(stores: list[SqlStore]) -> list[BaseException]:
    """Every store runs ensure_schema at the same moment, as concurrent Lambda cold starts do."""
    barrier = threading.Barrier(len(stores))
    failures: list[BaseException] = []

    def cold_start(store: SqlStore) -> None:
        barrier.wait()
        try:
            store.ensure_schema()
        except Exception as exc:
            failures.append(exc)

    threads = [threading.Thread(target=cold_start, args=(s,)) for s in stores]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return failures


def test_concurrent_cold_starts_create_the_schema_once(url: str) -> None:
    stores = [SqlStore.from_url(url) for _ in range(4)]
    try:
        assert _race(stores) == []
        assert _versions(stores[0]) == [v for v, _ in schema.MIGRATIONS]
        assert all(s.schema_version() == schema.LATEST_VERSION for s in stores)
        assert stores[0].get_user("nobody") is None
    finally:
        for s in stores:
            s.dispose()


def test_a_new_migration_runs_once_across_concurrent_cold_starts(
    url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = SqlStore.from_url(url)
    first.ensure_schema()
    first.dispose()
    ran: list[int] = []
    lock = threading.Lock()
    probe = schema.LATEST_VERSION + 1  # a migration after the real ones

    def next_version(conn: Connection) -> None:
        with lock:
            ran.append(probe)
        conn.execute(text("CREATE TABLE wallet_next_probe (id INTEGER PRIMARY KEY)"))

    monkeypatch.setattr(schema, "MIGRATIONS", (*schema.MIGRATIONS, (probe, next_version)))
    monkeypatch.setattr(schema, "LATEST_VERSION", probe)
    stores = [SqlStore.from_url(url) for _ in range(3)]
    try:
        assert _race(stores) == []
        assert ran == [probe]
        assert _versions(stores[0]) == [*range(1, probe + 1)]
        with stores[0].engine.connect() as conn:
            assert conn.execute(text("SELECT COUNT(*) FROM wallet_next_probe")).scalar() == 0
    finally:
        for s in stores:
            s.dispose()


V2_COLUMNS = ("attempts", "next_check_us", "check_count", "paid_us")
V2_INDEXES = ("ix_wallet_transactions_due", "ix_wallet_transactions_paid")
T0_US = 1_764_216_000_123_456  # 2025-11-27 04:00:00.123456 UTC


def _make_v1_database(store: SqlStore) -> None:
    """The tables as schema v1 left them (no v2 columns or indexes), with rows written by v1 code."""
    with store.engine.begin() as conn:
        schema.metadata.create_all(conn, tables=list(schema.V1_TABLES))
        for index in schema.transactions.indexes:
            if index.name in V2_INDEXES:
                index.drop(conn)
        for column in V2_COLUMNS:
            conn.execute(text(f"ALTER TABLE wallet_transactions DROP COLUMN {column}"))
        # v3 (issue 15): the users' sign-in identity and its unique index.
        for index in schema.users.indexes:
            if index.name == "ux_wallet_users_identity":
                index.drop(conn)
        conn.execute(text("ALTER TABLE wallet_users DROP COLUMN identity"))
        schema.schema_version.create(conn)
        conn.execute(insert(schema.schema_version).values(version=1, applied_us=T0_US))
        conn.execute(
            insert(schema.users).values(
                user_id="u1",
                username="alice",
                email="alice@example.com",
                balance=300,
                held=0,
                status="active",
                open_transactions=1,
                created_us=T0_US,
                updated_us=T0_US,
            )
        )
        for tid, status, mtn in (("t-awaiting", "awaiting_payment", "T1A"), ("t-paid", "paid", "T1P")):
            conn.execute(
                insert(schema.transactions).values(
                    transaction_id=tid,
                    user_id="u1",
                    transaction_type="deposit",
                    amount=300,
                    status=status,
                    version=2,
                    created_us=T0_US,
                    updated_us=T0_US,
                    payment_method="Credit",
                    merchant_trade_no=mtn,
                    trade_no=None,
                    payment_info="{}",
                    expires_us=None,
                    refunded_amount=0,
                    related_transaction_id=None,
                    flags="[]",
                )
            )
    with store.engine.connect() as conn:
        columns = {c["name"] for c in inspect(conn).get_columns("wallet_transactions")}
    assert not columns & set(V2_COLUMNS)  # really the v1 shape


def test_a_v1_database_migrates_to_v2_and_keeps_its_rows_readable(url: str) -> None:
    old = SqlStore.from_url(url)
    _make_v1_database(old)
    old.dispose()
    store = SqlStore.from_url(url)
    try:
        store.ensure_schema()
        assert store.schema_version() == schema.LATEST_VERSION
        assert _versions(store) == [v for v, _ in schema.MIGRATIONS]
        awaiting = store.get_transaction("t-awaiting")
        assert awaiting is not None
        assert (awaiting.attempts, awaiting.next_check_at, awaiting.check_count, awaiting.paid_at) == (
            (),
            None,
            0,
            None,
        )
        assert (awaiting.status, awaiting.merchant_trade_no, awaiting.amount) == (
            TransactionStatus.AWAITING_PAYMENT,
            "T1A",
            300,
        )
        # Due at its last update, as before the schedule existed.
        assert store.list_awaiting_payment(due_before=awaiting.updated_at) == [awaiting]
        assert store.list_awaiting_payment(due_before=awaiting.updated_at - timedelta(microseconds=1)) == []
        # A paid v1 row has no payment time: not in the paid listing (nothing invents one).
        wide = list(
            store.iter_paid_deposits(paid_from=datetime(2000, 1, 1, tzinfo=UTC), paid_to=datetime.now(UTC))
        )
        assert wide == []
        user = store.get_user("u1")
        assert user is not None and user.balance == 300
        # v3: users can be bound to an identity, one user per identity; the old user has none.
        assert "identity" in {c["name"] for c in inspect(store.engine).get_columns("wallet_users")}
        assert store.get_user_by_identity("sub-1") is None
        bound = user._replace(user_id="u2", username="bob")
        store.create_user(bound, identity="sub-1")
        assert store.get_user_by_identity("sub-1") == bound
        # The migrated row takes the new fields.
        attempt = Attempt("T1A", PaymentMethod.CREDIT, AttemptState.AWAITING_PAYMENT, awaiting.created_at)
        scheduled = awaiting._replace(
            version=3,
            attempts=(attempt,),
            next_check_at=awaiting.updated_at + timedelta(minutes=10),
            check_count=1,
        )
        store.commit(AtomicWrite(transactions=[TransactionPut(scheduled, 2)]))
        assert store.get_transaction("t-awaiting") == scheduled
        store.ensure_schema()  # idempotent after the migration
        assert store.get_transaction("t-awaiting") == scheduled
    finally:
        store.dispose()
