"""A connection the database dropped costs a retry, not an error, and no request pays a ping.

A real fault on real servers: the store's pooled connection is killed server-side between two
requests (``KILL`` on MariaDB, ``pg_terminate_backend`` on PostgreSQL), as an idle timeout, a failover
or a restart would. The next read, and the next use case (``WalletStore.run``: read, decide, write),
fail their first statement, run again on a fresh connection and answer as if nothing happened.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from ecpay_lambda.store.sql import SqlStore
from ecpay_lambda.wallet.ids import new_transaction_id, new_user_id
from ecpay_lambda.wallet.models import Transaction, TransactionStatus, TransactionType, User, UserStatus
from ecpay_lambda.wallet.port import AtomicWrite, Decision, Reads, Snapshot, TransactionPut, UserDelta

T0 = datetime(2026, 11, 27, 4, 0, tzinfo=UTC)


@pytest.fixture(
    params=[
        pytest.param("mysql", marks=pytest.mark.mysql),
        pytest.param("postgres", marks=pytest.mark.postgres),
    ]
)
def server(request: pytest.FixtureRequest) -> Iterator[tuple[str, SqlStore]]:
    """(kind, a store on a fresh database of that server)."""
    url = str(request.getfixturevalue(f"{request.param}_store_url"))
    store = SqlStore.from_url(url)
    store.ensure_schema()
    yield request.param, store
    store.dispose()


def _kill_pooled_connection(kind: str, store: SqlStore) -> None:
    """Kill, from another session, the one connection the store's pool holds."""
    ask = "SELECT CONNECTION_ID()" if kind == "mysql" else "SELECT pg_backend_pid()"
    with store.engine.connect() as conn:
        session = int(conn.execute(text(ask)).scalar_one())
        conn.rollback()
    admin = create_engine(make_url(store.engine.url), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            if kind == "mysql":
                conn.execute(text(f"KILL {session}"))
            else:
                conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": session})
    finally:
        admin.dispose()


def _user() -> User:
    return User(new_user_id(), "alice", "a@example.com", 0, 0, UserStatus.ACTIVE, 0, T0, T0)


def test_no_pre_ping(server: tuple[str, SqlStore]) -> None:
    _, store = server
    assert store.engine.pool._pre_ping is False


def test_a_killed_connection_is_replaced_for_reads_and_use_cases(server: tuple[str, SqlStore]) -> None:
    kind, store = server
    user = _user()
    store.create_user(user)

    _kill_pooled_connection(kind, store)
    assert store.get_user(user.user_id) == user  # a read: runs again on a new connection

    _kill_pooled_connection(kind, store)
    txn = Transaction(
        new_transaction_id(), user.user_id, TransactionType.DEPOSIT, 100, TransactionStatus.PENDING, 1, T0, T0
    )
    calls: list[Snapshot] = []

    def decide(snap: Snapshot) -> Decision[str]:
        calls.append(snap)
        assert snap.user is not None
        write = AtomicWrite((TransactionPut(txn, 0),), UserDelta(user.user_id, delta_open=1))
        return Decision("created", write)

    assert store.run(Reads(user_id=user.user_id), decide) == "created"  # a use case: runs again
    assert len(calls) == 1  # the dead connection failed before anything was read
    assert store.get_transaction(txn.transaction_id) == txn
    after = store.get_user(user.user_id)
    assert after is not None and after.open_transactions == 1

    _kill_pooled_connection(kind, store)
    records = store.get_transaction_records(txn.transaction_id)
    assert records is not None and records.transaction == txn
