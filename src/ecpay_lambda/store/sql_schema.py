"""The SQL adapter's tables and ordered migrations (recorded in ``wallet_schema_version``).

Times are stored as BIGINT microseconds since the Unix epoch (UTC): exact, sortable and identical on
SQLite, MySQL/MariaDB and PostgreSQL, whose native datetime types differ in precision and zones.
To change the schema: add a migration at the end of ``MIGRATIONS`` (never edit an applied one) and
update the table definitions below to the result.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    inspect,
    text,
)
from sqlalchemy.dialects import mysql

metadata = MetaData()

# SQLite autoincrements only an INTEGER PRIMARY KEY; elsewhere a 64-bit sequence.
_SEQ = BigInteger().with_variant(Integer(), "sqlite")
# MySQL's TEXT stops at 64 KB; raw notification bodies are kept whole.
_LONG_TEXT = Text().with_variant(mysql.MEDIUMTEXT(), "mysql", "mariadb")
_MYSQL: dict[str, Any] = {"mysql_engine": "InnoDB", "mysql_charset": "utf8mb4", "mariadb_engine": "InnoDB"}

schema_version = Table(
    "wallet_schema_version",
    metadata,
    Column("version", Integer, primary_key=True, autoincrement=False),
    Column("applied_us", BigInteger, nullable=False),
    **_MYSQL,
)

users = Table(
    "wallet_users",
    metadata,
    Column("user_id", String(32), primary_key=True),
    Column("username", String(64), nullable=False, unique=True),
    Column("email", String(254), nullable=False),
    Column("balance", BigInteger, nullable=False),
    Column("held", BigInteger, nullable=False),
    Column("status", String(16), nullable=False),
    Column("open_transactions", Integer, nullable=False),
    Column("created_us", BigInteger, nullable=False),
    Column("updated_us", BigInteger, nullable=False),
    # The end user's sign-in subject (AUTH_MODE=jwt): one wallet per identity; NULL for the others.
    Column("identity", String(255), nullable=True),
    # v4: the buyer's e-invoice settings (JSON object of strings), NULL = none (issue 13).
    Column("invoice_settings", Text, nullable=True),
    Index("ix_wallet_users_created", "created_us", "user_id"),
    Index("ux_wallet_users_identity", "identity", unique=True),
    **_MYSQL,
)

transactions = Table(
    "wallet_transactions",
    metadata,
    Column("transaction_id", String(32), primary_key=True),
    Column("user_id", String(32), nullable=False),
    Column("transaction_type", String(16), nullable=False),
    Column("amount", BigInteger, nullable=False),
    Column("status", String(32), nullable=False),
    Column("version", Integer, nullable=False),
    Column("created_us", BigInteger, nullable=False),
    Column("updated_us", BigInteger, nullable=False),
    Column("payment_method", String(16)),
    Column("merchant_trade_no", String(20)),
    Column("trade_no", String(32)),
    Column("payment_info", Text, nullable=False),  # JSON object of strings
    Column("expires_us", BigInteger),
    Column("refunded_amount", BigInteger, nullable=False),
    Column("related_transaction_id", String(32)),
    Column("flags", Text, nullable=False),  # JSON list of strings
    # v2: every checkout attempt (JSON list), the reconciliation schedule, when ECPay says it was paid.
    Column("attempts", Text),  # NULL on rows written before v2 = no attempts recorded
    Column("next_check_us", BigInteger),
    Column("check_count", Integer, nullable=False, server_default="0"),
    Column("paid_us", BigInteger),
    # v4: a deposit's recurring (periodic) plan, JSON (wallet.periodic's codec); NULL = no plan.
    Column("plan", Text),
    # v5: the deposit's e-invoice (JSON), and when the invoice job should look at it (NULL = nothing due).
    Column("invoice", Text),
    Column("invoice_due_us", BigInteger),
    Index("ix_wallet_transactions_user", "user_id", "created_us", "transaction_id"),
    Index("ix_wallet_transactions_status", "transaction_type", "status", "updated_us"),
    Index("ix_wallet_transactions_due", "transaction_type", "status", "next_check_us"),
    Index("ix_wallet_transactions_paid", "paid_us"),
    Index("ix_wallet_transactions_invoice_due", "invoice_due_us"),
    **_MYSQL,
)

ledger = Table(
    "wallet_ledger",
    metadata,
    Column("seq", _SEQ, primary_key=True, autoincrement=True),
    Column("entry_id", String(40), nullable=False, unique=True),
    Column("user_id", String(32), nullable=False),
    Column("transaction_id", String(32), nullable=False),
    Column("kind", String(32), nullable=False),
    Column("delta_balance", BigInteger, nullable=False),
    Column("delta_held", BigInteger, nullable=False),
    Column("created_us", BigInteger, nullable=False),
    Index("ix_wallet_ledger_user", "user_id", "seq"),
    Index("ix_wallet_ledger_transaction", "transaction_id", "seq"),
    **_MYSQL,
)

notifications = Table(
    "wallet_notifications",
    metadata,
    Column("seq", _SEQ, primary_key=True, autoincrement=True),
    Column("notification_id", String(40), nullable=False, unique=True),
    Column("received_us", BigInteger, nullable=False),
    Column("route", String(32), nullable=False),
    Column("raw_body", _LONG_TEXT, nullable=False),
    Column("outcome", String(128), nullable=False),
    Column("transaction_id", String(64)),
    Column("merchant_trade_no", String(64)),
    # Unique: the store refuses a second applied notification with the same meaning. NULLs (records
    # that change nothing) are not compared on any of the three databases.
    Column("dedupe_key", String(128), unique=True),
    Index("ix_wallet_notifications_transaction", "transaction_id", "seq"),
    **_MYSQL,
)

idempotency = Table(
    "wallet_idempotency",
    metadata,
    Column("user_id", String(32), primary_key=True),
    Column("idem_key", String(255), primary_key=True),
    Column("fingerprint", String(64), nullable=False),
    Column("transaction_id", String(32), nullable=False),
    Column("created_us", BigInteger, nullable=False),
    Column("expires_us", BigInteger, nullable=False),
    **_MYSQL,
)

V1_TABLES = (users, transactions, ledger, notifications, idempotency)


def _v1(conn: Connection) -> None:
    metadata.create_all(conn, tables=list(V1_TABLES), checkfirst=True)


def _v2(conn: Connection) -> None:
    # v1 creates tables from the current definitions, so on a new database these columns exist already.
    present = {column["name"] for column in inspect(conn).get_columns(transactions.name)}
    for name, spec in (
        ("attempts", Text().compile(dialect=conn.dialect)),
        ("next_check_us", BigInteger().compile(dialect=conn.dialect)),
        ("check_count", f"{Integer().compile(dialect=conn.dialect)} NOT NULL DEFAULT 0"),
        ("paid_us", BigInteger().compile(dialect=conn.dialect)),
    ):
        if name not in present:
            conn.execute(text(f"ALTER TABLE {transactions.name} ADD COLUMN {name} {spec}"))
    indexes = {index["name"] for index in inspect(conn).get_indexes(transactions.name)}
    for index in transactions.indexes:
        if index.name not in indexes:
            index.create(conn)


def _v3(conn: Connection) -> None:
    # Users bound to a sign-in identity (issue 15). NULLs never collide in a unique index.
    present = {column["name"] for column in inspect(conn).get_columns(users.name)}
    if "identity" not in present:
        spec = String(255).compile(dialect=conn.dialect)
        conn.execute(text(f"ALTER TABLE {users.name} ADD COLUMN identity {spec}"))
    indexes = {index["name"] for index in inspect(conn).get_indexes(users.name)}
    for index in users.indexes:
        if index.name not in indexes:
            index.create(conn)


def _v4(conn: Connection) -> None:
    # Recurring top-ups (issue 14): the plan of a periodic deposit.
    present = {column["name"] for column in inspect(conn).get_columns(transactions.name)}
    if "plan" not in present:
        conn.execute(
            text(f"ALTER TABLE {transactions.name} ADD COLUMN plan {Text().compile(dialect=conn.dialect)}")
        )


def _v5(conn: Connection) -> None:
    # E-invoices (issue 13): the deposit's invoice and its due time, the user's buyer settings.
    for table, name, spec in (
        (transactions, "invoice", Text().compile(dialect=conn.dialect)),
        (transactions, "invoice_due_us", BigInteger().compile(dialect=conn.dialect)),
        (users, "invoice_settings", Text().compile(dialect=conn.dialect)),
    ):
        present = {column["name"] for column in inspect(conn).get_columns(table.name)}
        if name not in present:
            conn.execute(text(f"ALTER TABLE {table.name} ADD COLUMN {name} {spec}"))
    indexes = {index["name"] for index in inspect(conn).get_indexes(transactions.name)}
    for index in transactions.indexes:
        if index.name not in indexes:
            index.create(conn)


# (version, migration) in order; each runs once, inside the schema lock, then is recorded.
MIGRATIONS: tuple[tuple[int, Callable[[Connection], None]], ...] = (
    (1, _v1),
    (2, _v2),
    (3, _v3),
    (4, _v4),
    (5, _v5),
)
LATEST_VERSION = MIGRATIONS[-1][0]
