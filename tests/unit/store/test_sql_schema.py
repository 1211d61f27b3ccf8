"""Schema creation and migration on every SQL database: concurrent cold starts migrate exactly once."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import Connection, text

from ecpay_lambda.store import sql_schema as schema
from ecpay_lambda.store.sql import SqlStore

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
