"""The SQL adapter of the wallet's storage port, on SQLAlchemy Core (no ORM session).

SQLite (the embedded default: WAL, ``synchronous=FULL``, ``BEGIN IMMEDIATE`` for writes, busy
timeout), MySQL/MariaDB (pymysql) and PostgreSQL (psycopg 3), chosen by URL. Every ``commit`` is one
database transaction of conditional statements checked by row count:
``UPDATE ... WHERE version = :expected`` for transactions, ``balance + :delta >= 0`` for users, and
unique constraints for notification dedupe keys and idempotency keys.
"""

from __future__ import annotations

import base64
import binascii
import functools
import json
import sqlite3
import threading
import time
import zlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext, suppress
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    Engine,
    MetaData,
    RowMapping,
    String,
    Table,
    and_,
    bindparam,
    create_engine,
    delete,
    event,
    func,
    insert,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError

from ..wallet.attempts import attempts_from_json, attempts_to_json
from ..wallet.errors import InvalidRequest
from ..wallet.invoice_state import dumps_invoice, invoice_due, loads_invoice, settings_dumps, settings_loads
from ..wallet.models import (
    AWAITING_STATUSES,
    IdempotencyRecord,
    LedgerEntry,
    NotificationRecord,
    Page,
    PaymentMethod,
    Transaction,
    TransactionStatus,
    TransactionType,
    User,
    UserStatus,
)
from ..wallet.periodic import plan_from_json, plan_to_json
from ..wallet.port import (
    AtomicWrite,
    Decide,
    DuplicateNotification,
    IdempotencyKeyReused,
    IdentityBound,
    InsufficientFunds,
    InvalidCursor,
    Reads,
    Snapshot,
    StoreConflict,
    TransactionPut,
    TransactionRecords,
    UserDelta,
    UserExists,
    UserHasFunds,
    UserNotActive,
    VersionConflict,
)
from . import PAID_DEPOSIT_STATUSES
from . import sql_batch as batch
from . import sql_schema as s

T = TypeVar("T")
R = TypeVar("R")
P = ParamSpec("P")

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICRO = timedelta(microseconds=1)
_BUSY_TIMEOUT_S = 30.0
_RETRIES = 8  # deadlocks / serialization failures / SQLite busy beyond the timeout
# PostgreSQL: deadlock_detected, serialization_failure. MySQL: deadlock, lock wait timeout.
_PG_RETRY = frozenset({"40P01", "40001"})
_MYSQL_RETRY = frozenset({1213, 1205})
_SCHEMA_LOCK = "ecpay_lambda_wallet_schema"
_PAID_PAGE = 500  # rows per query of iter_paid_deposits
# One writer lock per SQLite database file in this process, taken before BEGIN IMMEDIATE: this
# process's writers queue on it, each woken as soon as the previous one commits, instead of in
# SQLite's busy handler, which sleeps (1 ms growing to 100 ms) while the file is locked and so
# leaves it idle between writers. Writers in other processes (CLI commands) still wait in the busy
# handler; readers (WAL) never wait.
_SQLITE_WRITERS: dict[str, threading.RLock] = {}
_SQLITE_WRITERS_GUARD = threading.Lock()


def sqlite_writer_lock(database: str) -> threading.RLock:
    """This process's writer lock of the SQLite file ``database`` (one per resolved path)."""
    key = str(Path(database).resolve())
    with _SQLITE_WRITERS_GUARD:
        return _SQLITE_WRITERS.setdefault(key, threading.RLock())


def _us(moment: datetime) -> int:
    if moment.tzinfo is None:
        raise ValueError("naive datetime: the wallet stores aware UTC datetimes")
    return (moment - _EPOCH) // _MICRO


def _dt(micros: int) -> datetime:
    return _EPOCH + timedelta(microseconds=micros)


def _opt_us(moment: datetime | None) -> int | None:
    return None if moment is None else _us(moment)


def _opt_dt(micros: int | None) -> datetime | None:
    return None if micros is None else _dt(micros)


def _encode_cursor(tag: str, micros: int, key: str) -> str:
    raw = json.dumps([tag, micros, key], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_cursor(tag: str, cursor: str) -> tuple[int, str]:
    """Raise ``InvalidCursor`` for anything but a cursor this adapter made for this listing."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        got_tag, micros, key = json.loads(raw)
    except (binascii.Error, ValueError, TypeError):
        raise InvalidCursor from None
    if got_tag != tag or type(micros) is not int or not isinstance(key, str):
        raise InvalidCursor
    return micros, key


def _dropped(exc: DBAPIError) -> bool:
    """The connection was lost (server restart, idle timeout, a killed session): SQLAlchemy has
    invalidated it and the pool replaces it, so the whole read or use case can simply run again."""
    return bool(exc.connection_invalidated)


def _reconnecting(read: Callable[P, R]) -> Callable[P, R]:
    """Run a read again, once, on a fresh connection when its pooled one turned out to be dead.

    This replaces ``pool_pre_ping`` (a ping round trip before every checkout): a stale connection
    costs one failed statement when it happens, instead of a ping on every request.
    """

    @functools.wraps(read)
    def again(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return read(*args, **kwargs)
        except DBAPIError as exc:
            if not _dropped(exc):
                raise
        return read(*args, **kwargs)

    return again


def _check_versions(write: AtomicWrite) -> None:
    for put in write.transactions:
        if put.new.version != put.expected_version + 1:
            raise ValueError("TransactionPut.new.version must be expected_version + 1")


def _check_page(page: int, page_size: int) -> None:
    # The DynamoDB adapter's rule too (tests/contract): a listing never sees an offset below 0.
    if page < 1 or page_size < 1:
        raise InvalidRequest("page and page_size must be positive")


def _user(row: RowMapping) -> User:
    return User(
        user_id=row["user_id"],
        username=row["username"],
        email=row["email"],
        balance=int(row["balance"]),
        held=int(row["held"]),
        status=UserStatus(row["status"]),
        open_transactions=int(row["open_transactions"]),
        created_at=_dt(row["created_us"]),
        updated_at=_dt(row["updated_us"]),
        invoice_settings=settings_loads(row["invoice_settings"]),
    )


# Where each column of ``wallet_transactions`` sits in a row of ``select(s.transactions)``: transaction
# rows are read by position (a listing decodes 20 of them; by-name access cost more than the rest).
_TC = {column.name: index for index, column in enumerate(s.transactions.columns)}
_T_ID, _T_USER, _T_TYPE, _T_AMOUNT, _T_STATUS, _T_VERSION = (
    _TC[n] for n in ("transaction_id", "user_id", "transaction_type", "amount", "status", "version")
)
_T_CREATED, _T_UPDATED, _T_METHOD, _T_MTN, _T_TRADE_NO, _T_INFO = (
    _TC[n]
    for n in ("created_us", "updated_us", "payment_method", "merchant_trade_no", "trade_no", "payment_info")
)
_T_EXPIRES, _T_REFUNDED, _T_RELATED, _T_FLAGS, _T_ATTEMPTS, _T_NEXT_CHECK = (
    _TC[n]
    for n in ("expires_us", "refunded_amount", "related_transaction_id", "flags", "attempts", "next_check_us")
)
_T_CHECKS, _T_PAID, _T_PLAN, _T_INVOICE = (_TC[n] for n in ("check_count", "paid_us", "plan", "invoice"))


def _txn(row: Sequence[Any]) -> Transaction:
    """A transaction from a row of ``select(s.transactions)`` (by position, see ``_TC``)."""
    method, info, flags, attempts, plan = (
        row[_T_METHOD], row[_T_INFO], row[_T_FLAGS], row[_T_ATTEMPTS], row[_T_PLAN],
    )  # fmt: skip
    return Transaction(
        transaction_id=row[_T_ID],
        user_id=row[_T_USER],
        transaction_type=TransactionType(row[_T_TYPE]),
        amount=int(row[_T_AMOUNT]),
        status=TransactionStatus(row[_T_STATUS]),
        version=int(row[_T_VERSION]),
        created_at=_dt(row[_T_CREATED]),
        updated_at=_dt(row[_T_UPDATED]),
        payment_method=None if method is None else PaymentMethod(method),
        merchant_trade_no=row[_T_MTN],
        trade_no=row[_T_TRADE_NO],
        # The empty JSON values most rows hold, without the parser.
        payment_info={} if info == "{}" else json.loads(info),
        expires_at=_opt_dt(row[_T_EXPIRES]),
        refunded_amount=int(row[_T_REFUNDED]),
        related_transaction_id=row[_T_RELATED],
        flags=frozenset() if flags == "[]" else frozenset(json.loads(flags)),
        attempts=attempts_from_json(json.loads(attempts)) if attempts and attempts != "[]" else (),
        next_check_at=_opt_dt(row[_T_NEXT_CHECK]),
        check_count=int(row[_T_CHECKS] or 0),
        paid_at=_opt_dt(row[_T_PAID]),
        plan=plan_from_json(json.loads(plan)) if plan else None,
        invoice=loads_invoice(row[_T_INVOICE]),
    )


def _txn_json(row: Sequence[Any]) -> Transaction:
    """A transaction from a row of one of the ``*_JSON`` statements (one JSON array column)."""
    return _txn(json.loads(row[0]))


def _txn_values(t: Transaction) -> dict[str, Any]:
    return {
        "transaction_id": t.transaction_id,
        "user_id": t.user_id,
        "transaction_type": str(t.transaction_type),
        "amount": t.amount,
        "status": str(t.status),
        "version": t.version,
        "created_us": _us(t.created_at),
        "updated_us": _us(t.updated_at),
        "payment_method": None if t.payment_method is None else str(t.payment_method),
        "merchant_trade_no": t.merchant_trade_no,
        "trade_no": t.trade_no,
        "payment_info": json.dumps(dict(t.payment_info), sort_keys=True) if t.payment_info else "{}",
        "expires_us": None if t.expires_at is None else _us(t.expires_at),
        "refunded_amount": t.refunded_amount,
        "related_transaction_id": t.related_transaction_id,
        "flags": json.dumps(sorted(t.flags)) if t.flags else "[]",
        "attempts": json.dumps(attempts_to_json(t.attempts), sort_keys=True) if t.attempts else "[]",
        "next_check_us": None if t.next_check_at is None else _us(t.next_check_at),
        "check_count": t.check_count,
        "paid_us": None if t.paid_at is None else _us(t.paid_at),
        "plan": None if t.plan is None else json.dumps(plan_to_json(t.plan), sort_keys=True),
        "invoice": dumps_invoice(t.invoice),
        "invoice_due_us": _opt_us(invoice_due(t)),
    }


def _entry(row: Mapping[Any, Any]) -> LedgerEntry:
    return LedgerEntry(
        entry_id=row["entry_id"],
        user_id=row["user_id"],
        transaction_id=row["transaction_id"],
        kind=row["kind"],
        delta_balance=int(row["delta_balance"]),
        delta_held=int(row["delta_held"]),
        created_at=_dt(row["created_us"]),
    )


def _notification(row: Mapping[Any, Any]) -> NotificationRecord:
    return NotificationRecord(
        notification_id=row["notification_id"],
        received_at=_dt(row["received_us"]),
        route=row["route"],
        raw_body=row["raw_body"],
        outcome=row["outcome"],
        transaction_id=row["transaction_id"],
        merchant_trade_no=row["merchant_trade_no"],
        dedupe_key=row["dedupe_key"],
    )


def _notification_values(n: NotificationRecord) -> dict[str, Any]:
    return {
        "notification_id": n.notification_id,
        "received_us": _us(n.received_at),
        "route": n.route,
        "raw_body": n.raw_body,
        "outcome": n.outcome,
        "transaction_id": n.transaction_id,
        "merchant_trade_no": n.merchant_trade_no,
        "dedupe_key": n.dedupe_key,
    }


def _idempotency(row: RowMapping) -> IdempotencyRecord:
    return IdempotencyRecord(
        user_id=row["user_id"],
        key=row["idem_key"],
        request_fingerprint=row["fingerprint"],
        transaction_id=row["transaction_id"],
        created_at=_dt(row["created_us"]),
        expires_at=_dt(row["expires_us"]),
    )


class _Abort(Exception):
    """Raised inside a database transaction to roll it back; carries the conflict to report."""

    def __init__(self, conflict: StoreConflict) -> None:
        super().__init__(str(conflict))
        self.conflict = conflict


# -- statements built once ----------------------------------------------------------------------
# A request only binds values to these: building a statement tree (and hashing it for SQLAlchemy's
# compiled cache) on every call cost more CPU than the database round trip it was for. Parameter
# names start with ``b_`` where a column of the same name is also written (SQLAlchemy reserves
# column names for the VALUES/SET clause); an INSERT or UPDATE executed with a dict takes its
# columns from the dict's keys.
_U = s.users.c
_T = s.transactions.c
_INSERT_USER = insert(s.users)
_INSERT_TRANSACTION = insert(s.transactions)
_INSERT_LEDGER = insert(s.ledger)
_INSERT_NOTIFICATION = insert(s.notifications)
_INSERT_IDEMPOTENCY = insert(s.idempotency)
_USER = select(s.users).where(_U.user_id == bindparam("b_user_id"))
_USER_LOCKED = _USER.with_for_update()
_USER_STATUS = select(_U.status).where(_U.user_id == bindparam("b_user_id"))
_USER_BY_IDENTITY = select(s.users).where(_U.identity == bindparam("b_identity"))
_TRANSACTION = select(s.transactions).where(_T.transaction_id == bindparam("b_transaction_id"))
# One transaction locked: the common read of a use case, as ``_TRANSACTIONS_LOCKED`` with one id.
_TRANSACTION_LOCKED = _TRANSACTION.with_for_update()
_TRANSACTIONS_LOCKED = (
    select(s.transactions)
    .where(_T.transaction_id.in_(bindparam("b_ids", expanding=True)))
    .order_by(_T.transaction_id)
    .with_for_update()
)
_UPDATE_TRANSACTION = update(s.transactions).where(
    _T.transaction_id == bindparam("b_transaction_id"), _T.version == bindparam("b_expected")
)
_COUNT_USER_TRANSACTIONS = (
    select(func.count()).select_from(s.transactions).where(_T.user_id == bindparam("b_user_id"))
)
_USER_TRANSACTIONS = (
    select(s.transactions)
    .where(_T.user_id == bindparam("b_user_id"))
    .order_by(_T.created_us.desc(), _T.transaction_id.desc())
    .limit(bindparam("b_limit"))
)
_USER_TRANSACTIONS_PAGE = _USER_TRANSACTIONS.offset(bindparam("b_offset"))
_USER_TRANSACTIONS_AFTER = _USER_TRANSACTIONS.where(
    or_(
        _T.created_us < bindparam("b_micros"),
        and_(_T.created_us == bindparam("b_micros"), _T.transaction_id < bindparam("b_key")),
    )
)
# MariaDB/MySQL (batched): a transaction row read as ONE column, the JSON array of its columns in
# ``_TC``'s order (``_txn_json``). PyMySQL's pure-Python protocol code parses every column's
# description and value; one column instead of 25 is about half a listing's CPU (and of the
# notification's locked read). JSON keeps each value's type: numbers, strings, null.
_T_JSON = func.json_array(*s.transactions.columns)
_TRANSACTION_JSON = _TRANSACTION.with_only_columns(_T_JSON)
_TRANSACTION_LOCKED_JSON = _TRANSACTION_LOCKED.with_only_columns(_T_JSON)
_USER_TRANSACTIONS_PAGE_JSON = _USER_TRANSACTIONS_PAGE.with_only_columns(_T_JSON)
_USER_TRANSACTIONS_AFTER_JSON = _USER_TRANSACTIONS_AFTER.with_only_columns(_T_JSON)
_LEDGER_OF = (
    select(s.ledger)
    .where(s.ledger.c.transaction_id == bindparam("b_transaction_id"))
    .order_by(s.ledger.c.seq)
)
_NOTIFICATIONS_OF = (
    select(s.notifications)
    .where(s.notifications.c.transaction_id == bindparam("b_transaction_id"))
    .order_by(s.notifications.c.seq)
)
# Column names of a ledger or notification row read on the DBAPI cursor (tuples), for ``_entry`` and
# ``_notification``.
_LEDGER_NAMES = tuple(c.name for c in s.ledger.columns)
_NOTIFICATION_NAMES = tuple(c.name for c in s.notifications.columns)
_EXPIRED_IDEMPOTENCY = delete(s.idempotency).where(
    s.idempotency.c.user_id == bindparam("b_user_id"),
    s.idempotency.c.idem_key == bindparam("b_key"),
    s.idempotency.c.expires_us <= bindparam("b_now"),
)
_IDEMPOTENCY = select(s.idempotency).where(
    s.idempotency.c.user_id == bindparam("b_user_id"), s.idempotency.c.idem_key == bindparam("b_key")
)


@functools.cache
def _user_delta(require_active: bool, stamped: bool) -> Any:
    """``UPDATE users``: add the deltas where every counter stays >= 0 (and the user is active)."""
    conditions = [
        _U.user_id == bindparam("b_user_id"),
        _U.balance + bindparam("b_balance") >= 0,
        _U.held + bindparam("b_held") >= 0,
        _U.open_transactions + bindparam("b_open") >= 0,
    ]
    if require_active:
        conditions.append(_U.status == str(UserStatus.ACTIVE))
    values: dict[str, Any] = {
        "balance": _U.balance + bindparam("b_balance"),
        "held": _U.held + bindparam("b_held"),
        "open_transactions": _U.open_transactions + bindparam("b_open"),
    }
    if stamped:
        values["updated_us"] = bindparam("b_stamp")
    return update(s.users).where(*conditions).values(**values)


def _delta_statement(delta: UserDelta, write: AtomicWrite) -> tuple[Any, dict[str, Any]]:
    """``delta``'s conditional UPDATE and its values; ``updated_us`` stamped with the write's newest time."""
    stamp = max(
        [_us(p.new.updated_at) for p in write.transactions] + [_us(e.created_at) for e in write.ledger],
        default=None,
    )
    params = {
        "b_user_id": delta.user_id,
        "b_balance": delta.delta_balance,
        "b_held": delta.delta_held,
        "b_open": delta.delta_open,
    }
    if stamp is not None:
        params["b_stamp"] = stamp
    return _user_delta(delta.require_active, stamp is not None), params


def _txn_update_values(put: TransactionPut) -> dict[str, Any]:
    """``_UPDATE_TRANSACTION``'s values: every column but the id, where the version is the expected one."""
    values = _txn_values(put.new)
    values["b_transaction_id"] = values.pop("transaction_id")
    values["b_expected"] = put.expected_version
    return values


def _entry_values(e: LedgerEntry) -> dict[str, Any]:
    return {
        "entry_id": e.entry_id,
        "user_id": e.user_id,
        "transaction_id": e.transaction_id,
        "kind": e.kind,
        "delta_balance": e.delta_balance,
        "delta_held": e.delta_held,
        "created_us": _us(e.created_at),
    }


def _idempotency_values(record: IdempotencyRecord) -> dict[str, Any]:
    return {
        "user_id": record.user_id,
        "idem_key": record.key,
        "fingerprint": record.request_fingerprint,
        "transaction_id": record.transaction_id,
        "created_us": _us(record.created_at),
        "expires_us": _us(record.expires_at),
    }


def normalize_url(url: str) -> str:
    """Pick the project's drivers for bare scheme names (mysql -> pymysql, postgresql -> psycopg 3)."""
    for bare, full in (
        ("mysql://", "mysql+pymysql://"),
        ("mariadb://", "mariadb+pymysql://"),
        ("postgresql://", "postgresql+psycopg://"),
        ("postgres://", "postgresql+psycopg://"),
    ):
        if url.startswith(bare):
            return full + url[len(bare) :]
    return url


class SqlStore:
    """``WalletStore`` on SQLAlchemy Core; the schema is created/migrated on first use."""

    def __init__(self, engine: Engine, *, batched: bool = False) -> None:
        self.engine = engine
        # MariaDB/MySQL opened by ``from_url`` (multi-statements on): the hot statements go on the
        # DBAPI cursor, a write's statements as one batch (store/sql_batch.py).
        self._batched = batched
        self._dialect = engine.dialect.name
        self._sqlite = self._dialect == "sqlite"
        database = engine.url.database
        self._writer = sqlite_writer_lock(database) if self._sqlite and database else None
        self._ready = False
        self._ready_lock = threading.Lock()

    @classmethod
    def from_url(cls, url: str) -> SqlStore:
        """``sqlite:///path``, ``mysql+pymysql://...``, ``postgresql+psycopg://...``."""
        parsed = make_url(normalize_url(url))
        backend = parsed.get_backend_name()
        if backend == "sqlite":
            return cls(_sqlite_engine(parsed.database))
        kwargs: dict[str, Any] = {
            # No pool_pre_ping: a ping round trip before every request. A connection the server
            # dropped fails its first statement instead, and the read or use case runs again
            # (``_reconnecting``, ``_write``).
            "pool_recycle": 300,
            # No reset (a ROLLBACK round trip) when a connection goes back to the pool: every use
            # ends its transaction explicitly (``with conn.begin()``), and a Connection closed with
            # one still open rolls it back itself.
            "pool_reset_on_return": None,
            "pool_size": 10,
            "max_overflow": 20,
            # Conditional UPDATEs re-check their WHERE on the newest committed row; READ COMMITTED
            # also avoids MySQL's gap locks (and the deadlocks they bring) on unique inserts.
            "isolation_level": "READ COMMITTED",
        }
        if backend in ("mysql", "mariadb"):
            if "charset" not in parsed.query:
                parsed = parsed.update_query_dict({"charset": "utf8mb4"})
            engine = create_engine(parsed, **kwargs)
            if parsed.get_driver_name() == "pymysql":
                event.listen(engine, "do_connect", batch.connect)
                return cls(engine, batched=True)
            return cls(engine)
        if backend != "postgresql":
            raise ValueError(f"unsupported SQL store URL scheme {parsed.drivername!r}")
        return cls(create_engine(parsed, **kwargs))

    # -- plumbing ---------------------------------------------------------------------------

    @contextmanager
    def _tx(self, *, write: bool) -> Iterator[Connection]:
        writer: AbstractContextManager[object] = nullcontext()
        if write and self._writer is not None:
            writer = self._writer  # held until the transaction has committed or rolled back
        with writer, self.engine.connect() as conn:
            if self._sqlite:
                # Picked up by the "begin" listener: writers take the write lock at BEGIN, so a
                # read-then-write transaction never fails half-way with "database is locked".
                conn.execution_options(sqlite_begin="BEGIN IMMEDIATE" if write else "BEGIN")
            with conn.begin():
                yield conn

    def _retryable(self, exc: DBAPIError) -> bool:
        orig = exc.orig
        if self._sqlite:
            return isinstance(exc, OperationalError) and "locked" in str(orig).lower()
        if self._dialect == "postgresql":
            return getattr(orig, "sqlstate", None) in _PG_RETRY
        args: tuple[Any, ...] = tuple(getattr(orig, "args", ()))
        return len(args) > 0 and args[0] in _MYSQL_RETRY

    def _write(self, fn: Callable[[Connection], R]) -> R:
        """Run ``fn(conn)`` in a write transaction, retrying deadlocks; map ``_Abort`` to its conflict."""
        self._ensure()
        for attempt in range(_RETRIES):
            try:
                with self._tx(write=True) as conn:
                    return fn(conn)
            except _Abort as abort:
                raise abort.conflict from None
            except DBAPIError as exc:
                # A dropped connection runs the use case again on a fresh one (no pre-ping): if the
                # lost attempt did commit, its compare-and-set makes the repeat a conflict or a no-op.
                if attempt + 1 < _RETRIES and (self._retryable(exc) or _dropped(exc)):
                    time.sleep(0.01 * (attempt + 1))  # back off a little; the other writer finishes
                    continue
                raise
        raise AssertionError("unreachable")

    def _ensure(self) -> None:
        if self._ready:
            return
        with self._ready_lock:
            if not self._ready:
                self.ensure_schema()
                self._ready = True

    # -- schema -----------------------------------------------------------------------------

    def ensure_schema(self) -> None:
        """Create or migrate the tables (idempotent; concurrent cold starts serialize on a lock)."""
        if self._dialect in ("mysql", "mariadb"):
            # MySQL DDL commits implicitly, so a session-level named lock serializes migrations.
            with self.engine.connect() as conn:
                got = conn.execute(text("SELECT GET_LOCK(:name, 60)"), {"name": _SCHEMA_LOCK}).scalar()
                if got != 1:
                    raise RuntimeError("could not take the schema migration lock")
                try:
                    self._migrate(conn)
                    conn.commit()
                finally:
                    conn.execute(text("SELECT RELEASE_LOCK(:name)"), {"name": _SCHEMA_LOCK})
                    conn.commit()
        else:
            with self._tx(write=True) as conn:
                if self._dialect == "postgresql":
                    lock_id = zlib.crc32(_SCHEMA_LOCK.encode())
                    conn.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": lock_id})
                self._migrate(conn)
        self._ready = True

    def _migrate(self, conn: Connection) -> None:
        s.schema_version.create(conn, checkfirst=True)
        current = conn.execute(select(func.max(s.schema_version.c.version))).scalar() or 0
        if current > s.LATEST_VERSION:
            raise RuntimeError(
                f"database schema version {current} is newer than this code ({s.LATEST_VERSION})"
            )
        for version, migrate in s.MIGRATIONS:
            if version > current:
                migrate(conn)
                conn.execute(
                    insert(s.schema_version).values(version=version, applied_us=_us(datetime.now(UTC)))
                )

    @_reconnecting
    def schema_version(self) -> int:
        """The applied schema version (0 before first use)."""
        self._ensure()
        with self._tx(write=False) as conn:
            return int(conn.execute(select(func.max(s.schema_version.c.version))).scalar() or 0)

    def ping(self) -> bool:
        """True when the database answers."""
        try:
            with self.engine.connect() as conn:
                conn.execute(text("SELECT 1"))
        except DBAPIError:
            return False
        return True

    def dispose(self) -> None:
        """Close pooled connections (tests, shutdown)."""
        self.engine.dispose()

    # -- users ------------------------------------------------------------------------------

    def create_user(self, user: User, identity: str | None = None) -> None:
        """Insert a new user; ``UserExists`` if the username (or id) is taken, ``IdentityBound`` if
        ``identity`` already has a user."""
        values = {
            "identity": identity,
            "user_id": user.user_id,
            "username": user.username,
            "email": user.email,
            "balance": user.balance,
            "held": user.held,
            "status": str(user.status),
            "open_transactions": user.open_transactions,
            "created_us": _us(user.created_at),
            "updated_us": _us(user.updated_at),
            "invoice_settings": settings_dumps(user.invoice_settings),
        }

        def run(conn: Connection) -> None:
            try:
                conn.execute(_INSERT_USER, values)
            except IntegrityError:
                raise _Abort(UserExists(f"username {user.username!r} is taken")) from None

        try:
            self._write(run)
        except UserExists:
            # One unique violation or the other; the identity's owner, read afterwards, tells which.
            if identity is not None and self.get_user_by_identity(identity) is not None:
                raise IdentityBound("the identity already has a user") from None
            raise

    @_reconnecting
    def get_user_by_identity(self, identity: str) -> User | None:
        """The user bound to ``identity``, or None."""
        self._ensure()
        with self._tx(write=False) as conn:
            row = conn.execute(_USER_BY_IDENTITY, {"b_identity": identity}).mappings().first()
        return None if row is None else _user(row)

    @_reconnecting
    def get_user(self, user_id: str) -> User | None:
        """One user, or None."""
        self._ensure()
        with self._tx(write=False) as conn:
            row = conn.execute(_USER, {"b_user_id": user_id}).mappings().first()
        return None if row is None else _user(row)

    @_reconnecting
    def list_users(self, *, page: int = 1, page_size: int = 20, cursor: str | None = None) -> Page[User]:
        """Users by creation order; ``cursor`` takes precedence over ``page``."""
        _check_page(page, page_size)
        self._ensure()
        c = s.users.c
        query = select(s.users).order_by(c.created_us, c.user_id).limit(page_size + 1)
        if cursor is not None:
            micros, key = _decode_cursor("u", cursor)
            query = query.where(or_(c.created_us > micros, and_(c.created_us == micros, c.user_id > key)))
        else:
            query = query.offset((page - 1) * page_size)
        with self._tx(write=False) as conn:
            total = int(conn.execute(select(func.count()).select_from(s.users)).scalar() or 0)
            rows = conn.execute(query).mappings().all()
        items = [_user(r) for r in rows[:page_size]]
        more = len(rows) > page_size
        next_cursor = _encode_cursor("u", _us(items[-1].created_at), items[-1].user_id) if more else None
        return Page(items=items, total=total, next_cursor=next_cursor)

    def iter_users(self) -> Iterator[User]:
        """Every user, fetched in keyset pages so no connection stays open between pages."""
        cursor: str | None = None
        while True:
            page = self.list_users(page_size=500, cursor=cursor)
            yield from page.items
            if page.next_cursor is None:
                return
            cursor = page.next_cursor

    def close_user(self, user_id: str, now: datetime) -> User:
        """Active -> closed in one conditional UPDATE; ``UserNotActive`` / ``UserHasFunds`` otherwise."""
        c = s.users.c

        def run(conn: Connection) -> User:
            result = conn.execute(
                update(s.users)
                .where(
                    c.user_id == user_id,
                    c.status == str(UserStatus.ACTIVE),
                    c.balance == 0,
                    c.held == 0,
                    c.open_transactions == 0,
                )
                .values(status=str(UserStatus.CLOSED), updated_us=_us(now))
            )
            row = conn.execute(select(s.users).where(c.user_id == user_id)).mappings().first()
            if result.rowcount == 1 and row is not None:
                return _user(row)
            if row is None or row["status"] != str(UserStatus.ACTIVE):
                raise _Abort(UserNotActive(user_id))
            raise _Abort(UserHasFunds(f"user {user_id} has money or open transactions"))

        user: User = self._write(run)
        return user

    def reopen_user(self, user_id: str, now: datetime) -> User | None:
        """Closed -> active in one conditional UPDATE; None when missing or not closed."""
        c = s.users.c

        def run(conn: Connection) -> User | None:
            result = conn.execute(
                update(s.users)
                .where(c.user_id == user_id, c.status == str(UserStatus.CLOSED))
                .values(status=str(UserStatus.ACTIVE), updated_us=_us(now))
            )
            if result.rowcount != 1:
                return None
            row = conn.execute(select(s.users).where(c.user_id == user_id)).mappings().first()
            return None if row is None else _user(row)

        user: User | None = self._write(run)
        return user

    # -- the atomic write -------------------------------------------------------------------

    def commit(self, write: AtomicWrite) -> None:
        """Apply ``write`` in one database transaction or raise exactly one ``StoreConflict``."""
        _check_versions(write)

        def body(conn: Connection) -> AtomicWrite:
            self._apply(conn, write)
            return write

        self._write_decided(body)

    def run(self, reads: Reads, decide: Decide[T]) -> T:
        """Read, decide and write in one database transaction (see ``WalletStore.run``).

        The reads lock their rows (``SELECT ... FOR UPDATE`` on MariaDB/PostgreSQL; SQLite's writer
        holds the database from ``BEGIN IMMEDIATE``), so the decision's compare-and-set cannot lose
        to another writer; a deadlock or a dropped connection runs the whole use case again.
        """
        decided: list[T] = []

        def body(conn: Connection) -> AtomicWrite | None:
            decided.clear()
            decision = decide(self._snapshot(conn, reads))
            decided.append(decision.result)
            if decision.write is not None:
                _check_versions(decision.write)
                self._apply(conn, decision.write)
            return decision.write

        self._write_decided(body)
        return decided[0]

    def _write_decided(self, body: Callable[[Connection], AtomicWrite | None]) -> None:
        """``_write(body)``, with the conflicts a caller decides again on completed by a read."""
        written: list[AtomicWrite | None] = []

        def run(conn: Connection) -> None:
            written.clear()
            written.append(body(conn))

        try:
            self._write(run)
        except VersionConflict as conflict:
            # Read the winner after the rollback so the caller can decide again without a read.
            raise VersionConflict(
                conflict.transaction_id, self.get_transaction(conflict.transaction_id)
            ) from None
        except IdempotencyKeyReused as conflict:
            existing = None
            idempotency = written[0].idempotency if written and written[0] is not None else None
            if idempotency is not None:
                existing = self.get_idempotency(idempotency.user_id, idempotency.key)
            raise IdempotencyKeyReused(conflict.key, existing) from None

    def _snapshot(self, conn: Connection, reads: Reads) -> Snapshot:
        """The rows ``reads`` names, locked until the transaction ends."""
        found: dict[str, Transaction] = {}
        wanted = sorted(set(reads.transaction_ids))
        if wanted:
            # Locked in id order, like every write: concurrent use cases queue instead of deadlocking.
            found = self._locked_transactions(conn, wanted)
        if reads.related:
            named = {t.related_transaction_id for t in found.values() if t.related_transaction_id}
            related = sorted(named - set(found))
            if related:
                found.update(self._locked_transactions(conn, related))
        user = None
        if reads.user_id is not None:
            row = conn.execute(_USER_LOCKED, {"b_user_id": reads.user_id}).mappings().first()
            user = None if row is None else _user(row)
        return Snapshot(found, user)

    def _locked_transactions(self, conn: Connection, ids: Sequence[str]) -> dict[str, Transaction]:
        if self._batched and len(ids) == 1:
            query = batch.step(_TRANSACTION_LOCKED_JSON, conn.dialect, {"b_transaction_id": ids[0]})
            (rows,) = batch.fetch(conn, query)
            return {txn.transaction_id: txn for txn in map(_txn_json, rows)}
        locked = conn.execute(_TRANSACTIONS_LOCKED, {"b_ids": list(ids)})
        return {txn.transaction_id: txn for txn in map(_txn, locked)}

    def _apply(self, conn: Connection, write: AtomicWrite) -> None:
        # Statement order is the lock order (notification, idempotency, transactions by id, user):
        # the same in every write, so concurrent writers queue instead of deadlocking.
        if self._batched:
            self._apply_batched(conn, write)
            return
        if write.notification is not None:
            self._insert_notification(conn, write.notification)
        if write.idempotency is not None:
            self._insert_idempotency(conn, write.idempotency)
        for put in sorted(write.transactions, key=lambda p: p.new.transaction_id):
            self._put_transaction(conn, put)
        if write.user_delta is not None:
            self._apply_delta(conn, write.user_delta, write)
        if write.ledger:
            conn.execute(_INSERT_LEDGER, [_entry_values(e) for e in write.ledger])

    def _apply_batched(self, conn: Connection, write: AtomicWrite) -> None:
        """``_apply`` as one multi-statement batch (MariaDB/MySQL): the same statements in the same
        order, each one's failure or row count mapped to the same conflict.

        On MariaDB the batch also ends the transaction: each compare-and-set is followed by an
        in-SQL check (``batch.ONE_ROW``) and the batch by ``COMMIT``, so a write is one turn and a
        compare-and-set that matched nothing stops the batch before its ``COMMIT``. On MySQL (no
        compound statements outside a stored program) the row counts are checked here, before the
        caller's ``COMMIT``. Either way a conflict rolls the whole write back."""
        dialect = conn.dialect
        in_sql = bool(getattr(dialect, "is_mariadb", False))
        steps: list[batch.Step] = []
        duplicate: list[StoreConflict | None] = []  # per statement: the conflict its IntegrityError means
        # Statements that must match one row -> their conflict (None: the user delta's, whose reason
        # is read after the refusal); on MariaDB keyed by the index of the check that follows them.
        one_row: dict[int, StoreConflict | None] = {}

        def add(statement: Any, values: Mapping[str, Any], dup: StoreConflict | None = None) -> None:
            steps.append(batch.step(statement, dialect, values))
            duplicate.append(dup)

        def must_match_one_row(conflict: StoreConflict | None) -> None:
            if in_sql:
                steps.append(batch.ONE_ROW)
                duplicate.append(None)
            one_row[len(steps) - 1] = conflict

        def refused(conflict: StoreConflict | None) -> StoreConflict:
            if conflict is not None:
                return conflict
            assert write.user_delta is not None
            return self._delta_refused(conn, write.user_delta)

        if write.notification is not None:
            key = write.notification.dedupe_key
            dup = None if key is None else DuplicateNotification(key)
            add(_INSERT_NOTIFICATION, _notification_values(write.notification), dup)
        if write.idempotency is not None:
            record = write.idempotency
            created = _us(record.created_at)
            add(_EXPIRED_IDEMPOTENCY, {"b_user_id": record.user_id, "b_key": record.key, "b_now": created})
            add(_INSERT_IDEMPOTENCY, _idempotency_values(record), IdempotencyKeyReused(record.key))
        for put in sorted(write.transactions, key=lambda p: p.new.transaction_id):
            tid = put.new.transaction_id
            if put.expected_version == 0:
                add(_INSERT_TRANSACTION, _txn_values(put.new), VersionConflict(tid))
            else:
                add(_UPDATE_TRANSACTION, _txn_update_values(put))
                must_match_one_row(VersionConflict(tid))
        if write.user_delta is not None:
            statement, params = _delta_statement(write.user_delta, write)
            add(statement, params)
            must_match_one_row(None)
        for entry in write.ledger:
            add(_INSERT_LEDGER, _entry_values(entry))
        try:
            counts = batch.run_batch(conn, steps, commit=in_sql)
        except batch.BatchFailed as failed:
            error = failed.error
            if in_sql and failed.index in one_row and batch.is_one_row_failure(error):
                raise _Abort(refused(one_row[failed.index])) from None
            conflict = duplicate[failed.index]
            if conflict is not None and isinstance(error, IntegrityError):
                raise _Abort(conflict) from None
            raise error from error.orig
        if in_sql:
            return  # committed: every check ran in the batch, before its COMMIT
        for index, conflict in one_row.items():
            if counts[index] != 1:
                raise _Abort(refused(conflict))

    def _insert_notification(self, conn: Connection, record: NotificationRecord) -> None:
        try:
            conn.execute(_INSERT_NOTIFICATION, _notification_values(record))
        except IntegrityError:
            if record.dedupe_key is None:
                raise
            raise _Abort(DuplicateNotification(record.dedupe_key)) from None

    def _insert_idempotency(self, conn: Connection, record: IdempotencyRecord) -> None:
        created = _us(record.created_at)
        # An expired key may be used again: drop the old record in the same transaction.
        expired = {"b_user_id": record.user_id, "b_key": record.key, "b_now": created}
        conn.execute(_EXPIRED_IDEMPOTENCY, expired)
        try:
            conn.execute(_INSERT_IDEMPOTENCY, _idempotency_values(record))
        except IntegrityError:
            raise _Abort(IdempotencyKeyReused(record.key)) from None

    def _put_transaction(self, conn: Connection, put: TransactionPut) -> None:
        tid = put.new.transaction_id
        if put.expected_version == 0:
            try:
                conn.execute(_INSERT_TRANSACTION, _txn_values(put.new))
            except IntegrityError:
                raise _Abort(VersionConflict(tid)) from None
            return
        result = conn.execute(_UPDATE_TRANSACTION, _txn_update_values(put))
        if result.rowcount != 1:
            raise _Abort(VersionConflict(tid))

    def _apply_delta(self, conn: Connection, delta: UserDelta, write: AtomicWrite) -> None:
        statement, params = _delta_statement(delta, write)
        if conn.execute(statement, params).rowcount != 1:
            raise _Abort(self._delta_refused(conn, delta))

    def _delta_refused(self, conn: Connection, delta: UserDelta) -> StoreConflict:
        """Why ``delta``'s conditional UPDATE matched no row: the user is missing or not active, or a
        counter would go below 0."""
        row = conn.execute(_USER_STATUS, {"b_user_id": delta.user_id}).first()
        if row is None or (delta.require_active and row[0] != str(UserStatus.ACTIVE)):
            return UserNotActive(delta.user_id)
        return InsufficientFunds(delta.user_id)

    # -- transactions -----------------------------------------------------------------------

    @_reconnecting
    def get_transaction(self, transaction_id: str) -> Transaction | None:
        """One transaction, or None."""
        self._ensure()
        key = {"b_transaction_id": transaction_id}
        if self._batched:
            (rows,) = batch.read(self.engine, batch.step(_TRANSACTION_JSON, self.engine.dialect, key))
            return _txn_json(rows[0]) if rows else None
        with self._tx(write=False) as conn:
            row = conn.execute(_TRANSACTION, key).first()
        return None if row is None else _txn(row)

    @_reconnecting
    def get_transaction_records(self, transaction_id: str) -> TransactionRecords | None:
        """A transaction, its ledger and its notifications in one read transaction."""
        self._ensure()
        key = {"b_transaction_id": transaction_id}
        if self._batched:
            dialect = self.engine.dialect
            found, ledger, notes = batch.read(
                self.engine,
                batch.step(_TRANSACTION_JSON, dialect, key),
                batch.step(_LEDGER_OF, dialect, key),
                batch.step(_NOTIFICATIONS_OF, dialect, key),
            )
            if not found:
                return None
            return TransactionRecords(
                _txn_json(found[0]),
                [_entry(dict(zip(_LEDGER_NAMES, r, strict=True))) for r in ledger],
                [_notification(dict(zip(_NOTIFICATION_NAMES, r, strict=True))) for r in notes],
            )
        with self._tx(write=False) as conn:
            row = conn.execute(_TRANSACTION, key).first()
            if row is None:
                return None
            entries = conn.execute(_LEDGER_OF, key).mappings()
            records = conn.execute(_NOTIFICATIONS_OF, key).mappings()
            return TransactionRecords(
                _txn(row), [_entry(r) for r in entries], [_notification(r) for r in records]
            )

    @_reconnecting
    def list_transactions(
        self, user_id: str, *, page: int = 1, page_size: int = 20, cursor: str | None = None
    ) -> Page[Transaction]:
        """A user's transactions, newest first (a cursor continues only this user's listing)."""
        _check_page(page, page_size)
        self._ensure()
        params: dict[str, Any] = {"b_user_id": user_id, "b_limit": page_size + 1}
        if cursor is not None:
            params["b_micros"], params["b_key"] = _decode_cursor(f"t:{user_id}", cursor)
            query, query_json = _USER_TRANSACTIONS_AFTER, _USER_TRANSACTIONS_AFTER_JSON
        else:
            params["b_offset"] = (page - 1) * page_size
            query, query_json = _USER_TRANSACTIONS_PAGE, _USER_TRANSACTIONS_PAGE_JSON
        if self._batched:
            # The count, the page and the COMMIT sent together (one turn), each row one JSON column.
            dialect = self.engine.dialect
            count = batch.step(_COUNT_USER_TRANSACTIONS, dialect, {"b_user_id": user_id})
            counted, found = batch.read(self.engine, count, batch.step(query_json, dialect, params))
            total = int(counted[0][0])
            items = [_txn_json(r) for r in found[:page_size]]
            more = len(found) > page_size
        else:
            with self._tx(write=False) as conn:
                total = int(conn.execute(_COUNT_USER_TRANSACTIONS, params).scalar() or 0)
                rows = conn.execute(query, params).all()
            items = [_txn(r) for r in rows[:page_size]]
            more = len(rows) > page_size
        next_cursor = (
            _encode_cursor(f"t:{user_id}", _us(items[-1].created_at), items[-1].transaction_id)
            if more
            else None
        )
        return Page(items=items, total=total, next_cursor=next_cursor)

    @_reconnecting
    def _list_due(
        self, ttype: TransactionType, statuses: Sequence[str], due_before: datetime, limit: int
    ) -> list[Transaction]:
        self._ensure()
        c = s.transactions.c
        due = func.coalesce(c.next_check_us, c.updated_us)
        query = (
            select(s.transactions)
            .where(
                c.transaction_type == str(ttype),
                c.status.in_(list(statuses)),
                due <= _us(due_before),
            )
            .order_by(due, c.transaction_id)
            .limit(limit)
        )
        with self._tx(write=False) as conn:
            return [_txn(r) for r in conn.execute(query).all()]

    def list_awaiting_payment(self, *, due_before: datetime, limit: int = 100) -> list[Transaction]:
        """Deposits in an awaiting_* status due for a check, most overdue first."""
        statuses = sorted(str(x) for x in AWAITING_STATUSES)
        return self._list_due(TransactionType.DEPOSIT, statuses, due_before, limit)

    def list_pending_refunds(self, *, due_before: datetime, limit: int = 100) -> list[Transaction]:
        """Refunds still pending and due for a check, most overdue first."""
        statuses = [str(TransactionStatus.PENDING)]
        return self._list_due(TransactionType.REFUND, statuses, due_before, limit)

    def iter_paid_deposits(self, *, paid_from: datetime, paid_to: datetime) -> Iterator[Transaction]:
        """Paid, partially refunded or refunded deposits whose ``paid_at`` is in [paid_from, paid_to).

        By payment time, then id, in pages of ``_PAID_PAGE`` rows (keyset pagination on that order).
        """
        self._ensure()
        c = s.transactions.c
        paid_statuses = sorted(str(x) for x in PAID_DEPOSIT_STATUSES)
        after: tuple[int, str] | None = None
        while True:
            query = select(s.transactions).where(
                c.transaction_type == str(TransactionType.DEPOSIT),
                c.status.in_(paid_statuses),
                c.paid_us >= _us(paid_from),
                c.paid_us < _us(paid_to),
            )
            if after is not None:
                query = query.where(
                    or_(c.paid_us > after[0], and_(c.paid_us == after[0], c.transaction_id > after[1]))
                )
            query = query.order_by(c.paid_us, c.transaction_id).limit(_PAID_PAGE)
            with self._tx(write=False) as conn:
                rows = [_txn(r) for r in conn.execute(query).all()]
            yield from rows
            if len(rows) < _PAID_PAGE:
                return
            last = rows[-1]
            assert last.paid_at is not None
            after = (_us(last.paid_at), last.transaction_id)

    @_reconnecting
    def get_idempotency(self, user_id: str, key: str) -> IdempotencyRecord | None:
        """The stored idempotency record (possibly expired)."""
        self._ensure()
        with self._tx(write=False) as conn:
            row = conn.execute(_IDEMPOTENCY, {"b_user_id": user_id, "b_key": key}).mappings().first()
        return None if row is None else _idempotency(row)

    # -- ledger and notifications -----------------------------------------------------------

    @_reconnecting
    def list_ledger(
        self, *, transaction_id: str | None = None, user_id: str | None = None
    ) -> list[LedgerEntry]:
        """Ledger entries of one transaction or one user (or both), oldest first."""
        if transaction_id is None and user_id is None:
            raise ValueError("list_ledger needs transaction_id or user_id")
        self._ensure()
        c = s.ledger.c
        where = [c.transaction_id == transaction_id] if transaction_id is not None else []
        where += [c.user_id == user_id] if user_id is not None else []
        with self._tx(write=False) as conn:
            rows = conn.execute(select(s.ledger).where(*where).order_by(c.seq)).mappings().all()
        return [_entry(r) for r in rows]

    def record_notification(self, record: NotificationRecord) -> None:
        """Append a notification record on its own; ``DuplicateNotification`` if its key exists."""
        self._write(lambda conn: self._insert_notification(conn, record))

    @_reconnecting
    def list_notifications(self, transaction_id: str) -> list[NotificationRecord]:
        """Notification records of one transaction, oldest first."""
        self._ensure()
        c = s.notifications.c
        with self._tx(write=False) as conn:
            rows = (
                conn.execute(
                    select(s.notifications).where(c.transaction_id == transaction_id).order_by(c.seq)
                )
                .mappings()
                .all()
            )
        return [_notification(r) for r in rows]

    # -- health -----------------------------------------------------------------------------

    def probe_write(self) -> None:
        """Overwrite the one row of ``wallet_health`` in a write transaction (raises when it cannot)."""
        now = _us(datetime.now(UTC))

        def run(conn: Connection) -> None:
            if not getattr(self, "_health_ready", False):
                _HEALTH.create(conn, checkfirst=True)
            found = conn.execute(
                update(_HEALTH).where(_HEALTH.c.probe == _HEALTH_PROBE).values(written_us=now)
            ).rowcount
            if not found:
                conn.execute(insert(_HEALTH).values(probe=_HEALTH_PROBE, written_us=now))

        # IntegrityError: a concurrent probe inserted the row first, so the store did write.
        with suppress(IntegrityError):
            self._write(run)
        self._health_ready = True

    # -- active users -----------------------------------------------------------------------

    # -- e-invoices (issue 13) ----------------------------------------------------------------

    def set_invoice_settings(self, user_id: str, settings: Mapping[str, str], now: datetime) -> User | None:
        """Replace a user's e-invoice buyer settings; the updated user, or None when missing."""
        self._ensure()
        c = s.users.c

        def run(conn: Connection) -> User | None:
            done = conn.execute(
                update(s.users)
                .where(c.user_id == user_id)
                .values(invoice_settings=settings_dumps(settings), updated_us=_us(now))
            )
            if done.rowcount != 1:
                return None
            row = conn.execute(select(s.users).where(c.user_id == user_id)).mappings().first()
            return None if row is None else _user(row)

        result: User | None = self._write(run)
        return result

    @_reconnecting
    def list_invoices_due(self, *, due_before: datetime, limit: int = 100) -> list[Transaction]:
        """Deposits whose e-invoice has work due by ``due_before``, most overdue first."""
        self._ensure()
        c = s.transactions.c
        query = (
            select(s.transactions)
            .where(c.invoice_due_us.is_not(None), c.invoice_due_us <= _us(due_before))
            .order_by(c.invoice_due_us, c.transaction_id)
            .limit(limit)
        )
        with self._tx(write=False) as conn:
            return [_txn(r) for r in conn.execute(query).all()]

    @_reconnecting
    def list_active_users(
        self, *, page: int = 1, page_size: int = 20, cursor: str | None = None
    ) -> Page[User]:
        """Users that are not closed, by creation order (cursors interchangeable with ``list_users``)."""
        _check_page(page, page_size)
        self._ensure()
        c = s.users.c
        active = c.status != str(UserStatus.CLOSED)
        query = select(s.users).where(active).order_by(c.created_us, c.user_id).limit(page_size + 1)
        if cursor is not None:
            micros, key = _decode_cursor("u", cursor)
            query = query.where(or_(c.created_us > micros, and_(c.created_us == micros, c.user_id > key)))
        else:
            query = query.offset((page - 1) * page_size)
        with self._tx(write=False) as conn:
            total = int(conn.execute(select(func.count()).select_from(s.users).where(active)).scalar() or 0)
            rows = conn.execute(query).mappings().all()
        items = [_user(r) for r in rows[:page_size]]
        more = len(rows) > page_size
        next_cursor = _encode_cursor("u", _us(items[-1].created_at), items[-1].user_id) if more else None
        return Page(items=items, total=total, next_cursor=next_cursor)


# The health probe's table lives outside the migrations: it holds no data, is created on first probe
# (CREATE TABLE IF NOT EXISTS), and a wallet that never answers /healthz never has it.
_HEALTH = Table(
    "wallet_health",
    MetaData(),
    Column("probe", String(32), primary_key=True),
    Column("written_us", BigInteger, nullable=False),
)
_HEALTH_PROBE = "healthz"


def _use_wal(cur: Any) -> None:
    """Put the database in WAL mode (persistent in the file: done once, by whichever connection is first).

    Switching the journal mode needs an exclusive lock, and SQLite answers "database is locked" at once
    instead of calling the busy handler when another connection holds one (concurrent cold starts on a
    new file): wait for it here, within the same busy timeout as every other write.
    """
    if str(cur.execute("PRAGMA journal_mode").fetchone()[0]).lower() == "wal":
        return
    deadline = time.monotonic() + _BUSY_TIMEOUT_S
    while True:
        try:
            cur.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc).lower() or time.monotonic() > deadline:
                raise
            time.sleep(0.01)


def _sqlite_engine(database: str | None) -> Engine:
    if not database or database == ":memory:" or database.startswith("file:"):
        raise ValueError("the SQLite store needs a file path: sqlite:///path/to/wallet.db")
    path = Path(database)
    path.parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(
        f"sqlite:///{path}",
        connect_args={"timeout": _BUSY_TIMEOUT_S, "check_same_thread": False},
        pool_size=10,
        max_overflow=30,
        pool_timeout=60,
    )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Transactions are issued by hand below: pysqlite's own implicit BEGIN is switched off.
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        _use_wal(cur)
        # FULL: a commit is on disk before it is acknowledged (money is never acknowledged early).
        cur.execute("PRAGMA synchronous=FULL")
        cur.execute(f"PRAGMA busy_timeout={int(_BUSY_TIMEOUT_S * 1000)}")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        conn.exec_driver_sql(conn.get_execution_options().get("sqlite_begin", "BEGIN"))

    return engine
