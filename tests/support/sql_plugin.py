"""pytest plugin: store URLs for the SQL adapter, each a clean, private database for one test.

- ``sqlite_store_url``: a SQLite file in the test's tmp_path (always available).
- ``mysql_store_url``: a fresh database on the server of ``TEST_MYSQL_URL`` (dropped afterwards).
- ``postgres_store_url``: a fresh schema on the server of ``TEST_POSTGRES_URL`` (dropped afterwards);
  the URL sets ``search_path`` to it, so the adapter's unqualified tables land there.

Without the variable a MySQL/PostgreSQL test is skipped with the reason, except under ``CI=true``,
where a missing server is a failure (CI starts both with ``scripts/test-databases.sh start``).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import URL, make_url

START_HINT = 'scripts/test-databases.sh start && eval "$(scripts/test-databases.sh env)"'


def _server_url(variable: str) -> URL:
    value = os.environ.get(variable, "").strip()
    if not value:
        message = f"{variable} is not set (start local servers with: {START_HINT})"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    from ecpay_lambda.store.sql import normalize_url  # noqa: PLC0415 - only when a server is used

    return make_url(normalize_url(value))


def _private_name() -> str:
    return "t_" + uuid.uuid4().hex[:16]


@pytest.fixture
def sqlite_store_url(tmp_path: Path) -> str:
    """A SQLite file URL in a directory that does not exist yet (the adapter must create it)."""
    return f"sqlite:///{tmp_path / 'store' / 'wallet.db'}"


@pytest.fixture
def mysql_store_url() -> Iterator[str]:
    """A new, empty MySQL/MariaDB database for this test (from ``TEST_MYSQL_URL``)."""
    server = _server_url("TEST_MYSQL_URL")
    name = _private_name()
    admin = create_engine(server, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f"CREATE DATABASE {name} CHARACTER SET utf8mb4"))
        yield server.set(database=name).render_as_string(hide_password=False)
        with admin.connect() as conn:
            conn.execute(text(f"DROP DATABASE IF EXISTS {name}"))
    finally:
        admin.dispose()


@pytest.fixture
def postgres_store_url() -> Iterator[str]:
    """A new, empty PostgreSQL schema for this test (on the database of ``TEST_POSTGRES_URL``)."""
    server = _server_url("TEST_POSTGRES_URL")
    name = _private_name()
    admin = create_engine(server, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f"CREATE SCHEMA {name}"))
        url = server.update_query_dict({"options": f"-csearch_path={name}"})
        yield url.render_as_string(hide_password=False)
        with admin.connect() as conn:
            conn.execute(text(f"DROP SCHEMA IF EXISTS {name} CASCADE"))
    finally:
        admin.dispose()
