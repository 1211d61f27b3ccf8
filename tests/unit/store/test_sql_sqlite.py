"""SQLite specifics of the SQL adapter: durability settings, schema versioning, URL handling."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import Connection, text

from ecpay_lambda.store import open_store
from ecpay_lambda.store import sql_schema as schema
from ecpay_lambda.store.sql import SqlStore, normalize_url


def _store(tmp_path: Path) -> SqlStore:
    store = open_store(f"sqlite:///{tmp_path / 'a' / 'b' / 'wallet.db'}")
    assert isinstance(store, SqlStore)
    return store


def test_open_store_creates_parent_directories_and_the_schema_on_first_use(tmp_path: Path) -> None:
    store = _store(tmp_path)
    assert (tmp_path / "a" / "b").is_dir()
    assert store.get_user("nobody") is None  # first use creates the schema
    assert store.schema_version() == schema.LATEST_VERSION
    store.ensure_schema()  # idempotent
    with store.engine.connect() as conn:
        versions = conn.execute(text("SELECT version FROM wallet_schema_version")).scalars().all()
    assert versions == [v for v, _ in schema.MIGRATIONS]
    store.dispose()


def test_sqlite_runs_in_wal_with_full_sync_and_a_busy_timeout(tmp_path: Path) -> None:
    store = _store(tmp_path)
    with store.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 2  # FULL
        assert int(conn.exec_driver_sql("PRAGMA busy_timeout").scalar() or 0) >= 5000
    store.dispose()


def test_writes_begin_immediate(tmp_path: Path) -> None:
    store = _store(tmp_path)
    store.ensure_schema()
    statements: list[str] = []
    from sqlalchemy import event  # noqa: PLC0415

    @event.listens_for(store.engine, "before_cursor_execute")
    def _seen(conn: Connection, cursor: object, statement: str, *args: object) -> None:
        statements.append(statement)

    store.get_user("x")
    from ecpay_lambda.wallet.port import AtomicWrite, UserDelta, UserNotActive  # noqa: PLC0415

    with pytest.raises(UserNotActive):
        store.commit(AtomicWrite(user_delta=UserDelta("x", require_active=True)))
    assert "BEGIN" in statements and "BEGIN IMMEDIATE" in statements
    assert statements.index("BEGIN") < statements.index("BEGIN IMMEDIATE")
    store.dispose()


def test_later_migrations_run_once_in_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = _store(tmp_path)
    store.ensure_schema()
    store.dispose()
    ran: list[int] = []
    probe = schema.LATEST_VERSION + 1  # a migration after the real ones

    def next_version(conn: Connection) -> None:
        ran.append(probe)
        conn.execute(text("ALTER TABLE wallet_users ADD COLUMN nickname VARCHAR(32)"))

    monkeypatch.setattr(schema, "MIGRATIONS", (*schema.MIGRATIONS, (probe, next_version)))
    monkeypatch.setattr(schema, "LATEST_VERSION", probe)
    again = _store(tmp_path)
    again.ensure_schema()
    again.ensure_schema()
    assert ran == [probe]
    assert again.schema_version() == probe
    with again.engine.connect() as conn:
        columns = [row[1] for row in conn.exec_driver_sql("PRAGMA table_info(wallet_users)")]
    assert "nickname" in columns
    again.dispose()


def test_a_database_newer_than_the_code_is_refused(tmp_path: Path) -> None:
    store = _store(tmp_path)
    store.ensure_schema()
    with store.engine.begin() as conn:
        conn.execute(text("INSERT INTO wallet_schema_version (version, applied_us) VALUES (99, 0)"))
    store.dispose()
    newer = _store(tmp_path)
    with pytest.raises(RuntimeError, match="newer"):
        newer.ensure_schema()
    newer.dispose()


def test_urls(tmp_path: Path) -> None:
    assert normalize_url("mysql://u:p@h/db") == "mysql+pymysql://u:p@h/db"
    assert normalize_url("postgres://u@h/db") == "postgresql+psycopg://u@h/db"
    assert normalize_url("postgresql+psycopg://u@h/db") == "postgresql+psycopg://u@h/db"
    with pytest.raises(ValueError):
        open_store("sqlite:///:memory:")
    with pytest.raises(ValueError):
        open_store("redis://localhost")
    with pytest.raises(ValueError):
        open_store("no-scheme")


def test_sqlite_store_does_not_import_boto3(tmp_path: Path) -> None:
    code = (
        "import json, sys; from ecpay_lambda.store import open_store;"
        f"s = open_store('sqlite:///{tmp_path / 'w.db'}'); s.ensure_schema();"
        "print(json.dumps('boto3' in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout) is False


def test_writers_of_one_file_queue_on_one_process_lock_held_from_before_begin_immediate(
    tmp_path: Path,
) -> None:
    import threading  # noqa: PLC0415
    from datetime import UTC, datetime  # noqa: PLC0415

    from sqlalchemy import event  # noqa: PLC0415

    from ecpay_lambda.store.sql import sqlite_writer_lock  # noqa: PLC0415
    from ecpay_lambda.wallet.models import NotificationRecord  # noqa: PLC0415

    store = _store(tmp_path)
    store.ensure_schema()
    # The same file by another spelling of its path: the same lock.
    lock = sqlite_writer_lock(str(tmp_path / "a" / "x" / ".." / "b" / "wallet.db"))
    held_at: dict[str, bool] = {}

    def held_elsewhere() -> bool:
        got: list[bool] = []

        def probe() -> None:  # another thread: the lock is reentrant for the one holding it
            got.append(lock.acquire(blocking=False))
            if got[0]:
                lock.release()

        thread = threading.Thread(target=probe)
        thread.start()
        thread.join()
        return not got[0]

    @event.listens_for(store.engine, "before_cursor_execute")
    def _seen(conn: Connection, cursor: object, statement: str, *args: object) -> None:
        held_at.setdefault(statement.split(maxsplit=1)[0], held_elsewhere())

    store.record_notification(NotificationRecord("n1", datetime.now(UTC), "return", "a=1", "rejected:x"))
    assert held_at["BEGIN"] is True  # BEGIN IMMEDIATE: the lock was taken before it
    assert held_at["INSERT"] is True
    held_at.clear()
    assert store.list_notifications("t") == []  # a read: BEGIN without the writers' lock
    assert held_at["BEGIN"] is False
    assert not held_elsewhere()  # released after the commit
    store.dispose()
