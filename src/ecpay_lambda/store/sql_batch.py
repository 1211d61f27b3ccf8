"""MariaDB/MySQL: a use case's statements on the DBAPI cursor, its writes sent as one batch.

Why (docs/performance.md, "The notification's SQL on MariaDB"): on a paid ReturnURL, SQLAlchemy's
per-statement execution machinery and one request/response turn per statement were most of the
notification's CPU. Here the SQL adapter's own statement objects (store/sql.py) are compiled by
SQLAlchemy once per dialect and set of keys, and a request only binds its values and sends them on
the connection's DBAPI cursor, inside the same SQLAlchemy transaction (``Connection.begin()``; MySQL
has no BEGIN statement to skip). A write's statements go as one multi-statement batch (the connection
is opened with ``CLIENT.MULTI_STATEMENTS``): one turn instead of one per statement. The server stops
at the first failing statement; every statement's row count is read and checked by the caller
BEFORE the ``COMMIT``, so a compare-and-set that matched no row still rolls the whole write back.

Errors are SQLAlchemy's, as on its own path: a driver error becomes the ``sqlalchemy.exc`` class
SQLAlchemy would raise (``IntegrityError``, ``OperationalError``...), and a lost connection is
invalidated and flagged ``connection_invalidated`` so the adapter's retry runs the use case again.
Each batch fires the engine's ``before_cursor_execute`` once (what the benchmarks count).
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping
from typing import Any, NamedTuple

from sqlalchemy import Connection, Engine
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import DBAPIError
from sqlalchemy.sql.expression import ClauseElement


class Step(NamedTuple):
    """One statement of a batch: its SQL as SQLAlchemy compiles it for the dialect (PyMySQL's
    ``pyformat``: ``%(name)s``) and its values by name."""

    sql: str
    values: Mapping[str, Any]


class Rendered(NamedTuple):
    """A statement compiled once: its SQL and the values of the literals it binds (``param_1``...)."""

    sql: str
    literals: Mapping[str, Any]


class BatchFailed(Exception):
    """Statement ``index`` of a batch failed with ``error`` (a ``sqlalchemy.exc.DBAPIError``); the
    statements before it ran, none after it."""

    def __init__(self, index: int, error: DBAPIError) -> None:
        super().__init__(f"statement {index} of a batch failed: {error}")
        self.index = index
        self.error = error


@functools.cache
def render(statement: ClauseElement, dialect: Dialect, keys: frozenset[str]) -> Rendered:
    """``statement`` as SQLAlchemy compiles it to execute it with a parameter dict of ``keys`` (the
    sorted keys name an INSERT's or UPDATE's columns, as ``Connection.execute`` passes them)."""
    compiled: Any = statement.compile(dialect=dialect, column_keys=sorted(keys))  # an SQLCompiler
    if dialect.paramstyle != "pyformat" or compiled._bind_processors:
        # Every hot statement binds plain str/int values by name; a statement with a value SQLAlchemy
        # would convert must take SQLAlchemy's own path.
        raise ValueError("render() needs named parameters that SQLAlchemy passes as they are")
    # What SQLAlchemy binds besides ``keys`` (raises if the statement needs a value not in ``keys``).
    params = compiled.construct_params(dict.fromkeys(keys))
    return Rendered(compiled.string, {k: v for k, v in params.items() if k not in keys})


def step(statement: ClauseElement, dialect: Dialect, values: Mapping[str, Any]) -> Step:
    """``statement`` with ``values`` bound, ready for :func:`run_batch` or :func:`fetch`."""
    rendered = render(statement, dialect, frozenset(values))
    return Step(rendered.sql, {**rendered.literals, **values} if rendered.literals else values)


def _wrapped(conn: Connection, exc: Exception, sql: str, args: Any) -> DBAPIError:
    """The SQLAlchemy error of a driver error, the connection invalidated when it was lost."""
    dialect = conn.dialect
    dbapi = dialect.loaded_dbapi
    lost = dialect.is_disconnect(exc, conn.connection.dbapi_connection, None)  # type: ignore[arg-type]
    if lost:
        conn.invalidate(exc)
    wrapped = DBAPIError.instance(
        sql, args, exc, dbapi.Error, connection_invalidated=lost, dialect=dialect, ismulti=False
    )
    if not isinstance(wrapped, DBAPIError):  # only for errors that are not the driver's
        raise exc
    return wrapped


def _announce(conn: Connection, cursor: Any, sql: str, args: Any) -> None:
    if conn._has_events or conn.engine._has_events:  # SQLAlchemy's own guard
        conn.dispatch.before_cursor_execute(conn, cursor, sql, args, None, False)


def fetch(conn: Connection, *queries: Step) -> list[list[tuple[Any, ...]]]:
    """The rows of each SELECT of ``queries``, sent together (one turn), on the DBAPI cursor."""
    cursor = conn.connection.cursor()
    sql = ""
    results: list[list[tuple[Any, ...]]] = []
    try:
        sql = ";\n".join(cursor.mogrify(q.sql, q.values) for q in queries)
        _announce(conn, cursor, sql, None)
        try:
            cursor.execute(sql)
            results.append(list(cursor.fetchall()))
            while cursor.nextset():
                results.append(list(cursor.fetchall()))
        except conn.dialect.loaded_dbapi.Error as exc:
            raise _wrapped(conn, exc, sql, None) from exc
    finally:
        cursor.close()
    if len(results) != len(queries):
        raise AssertionError(f"{len(queries)} queries answered {len(results)} results")
    return results


# Ends a read sent with its queries (:func:`read`), or a write whose checks are in SQL (:data:`ONE_ROW`).
COMMIT = Step("COMMIT", {})

_ER_SIGNAL_EXCEPTION = 1644  # MariaDB/MySQL's error number of an unhandled user SIGNAL

# MariaDB only (a compound statement outside a stored program): raises SQLSTATE 45000 unless the
# statement just before it matched exactly one row (FOUND_ROWS is on: matched, not changed, rows).
# A compare-and-set followed by this check can go in a batch that ends with ``COMMIT``: the server
# stops at the first error, so a write whose compare-and-set matched nothing never reaches it.
ONE_ROW_MESSAGE = "ecpay_lambda: the statement before this check did not match exactly one row"
ONE_ROW = Step(
    "BEGIN NOT ATOMIC IF ROW_COUNT() <> 1 THEN "
    f"SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = '{ONE_ROW_MESSAGE}'; END IF; END",
    {},
)


def is_one_row_failure(error: DBAPIError) -> bool:
    """Whether ``error`` is a :data:`ONE_ROW` check's (SQLSTATE 45000, its message)."""
    args: tuple[Any, ...] = tuple(getattr(error.orig, "args", ()))
    return len(args) > 1 and args[0] == _ER_SIGNAL_EXCEPTION and args[1] == ONE_ROW_MESSAGE


def read(engine: Engine, *queries: Step) -> list[list[tuple[Any, ...]]]:
    """The rows of each SELECT of ``queries``, read in ONE turn: the queries and a ``COMMIT`` sent
    together on a pooled connection, outside SQLAlchemy's transaction (which would send its own
    ``COMMIT``, a second turn). At READ COMMITTED each statement sees the newest committed rows either
    way; the ``COMMIT`` ends the transaction the first SELECT opened, so the connection goes back to
    the pool clean (and holds no metadata lock meanwhile)."""
    with engine.connect() as conn:
        try:
            results = fetch(conn, *queries, COMMIT)
        except BaseException:
            # Its transaction may still be open: never give this connection back to the pool.
            conn.invalidate()
            raise
    return results[:-1]


def run_batch(conn: Connection, steps: Iterable[Step], *, commit: bool = False) -> list[int]:
    """Send ``steps`` as one multi-statement batch; each statement's row count (matched rows).

    Raises :class:`BatchFailed` naming the statement that failed; the transaction is then the caller's
    to roll back (an exception leaving ``Connection.begin()`` does). ``commit``: the batch ends with
    ``COMMIT`` (every check must then be in the batch, :data:`ONE_ROW`), and the connection's own
    commit at the end of ``Connection.begin()`` sends nothing (:func:`connect`).
    """
    batch = [*steps, COMMIT] if commit else list(steps)
    counts: list[int] = []
    cursor = conn.connection.cursor()
    sql = ""
    try:
        # Each statement's values interpolated as PyMySQL does in execute() (it sends no parameters
        # on the wire); the whole batch is then sent as it stands (no further % formatting).
        sql = ";\n".join(cursor.mogrify(s.sql, s.values) for s in batch)
        _announce(conn, cursor, sql, None)
        try:
            cursor.execute(sql)
            counts.append(cursor.rowcount)
            while cursor.nextset():
                counts.append(cursor.rowcount)
        except conn.dialect.loaded_dbapi.Error as exc:
            raise BatchFailed(len(counts), _wrapped(conn, exc, sql, None)) from exc
    finally:
        cursor.close()
    if len(counts) != len(batch):
        raise AssertionError(f"a batch of {len(batch)} statements answered {len(counts)} results")
    if commit:
        conn.connection.dbapi_connection.committed_by_batch = True  # type: ignore[union-attr]
        return counts[:-1]
    return counts


def connect(_dialect: Any, _record: Any, cargs: Any, cparams: dict[str, Any]) -> Any:
    """The engine's ``do_connect`` listener: a PyMySQL connection with ``CLIENT.MULTI_STATEMENTS``
    added to the flags SQLAlchemy set (FOUND_ROWS: row counts are matched rows, which the
    compare-and-set checks rely on), whose ``commit()`` skips a batch's own ``COMMIT``."""
    from pymysql.constants import CLIENT  # noqa: PLC0415 (the driver is loaded by now)

    cparams["client_flag"] = int(cparams.get("client_flag", 0)) | CLIENT.MULTI_STATEMENTS
    return _connection_class()(*cargs, **cparams)


@functools.cache
def _connection_class() -> type[Any]:
    from pymysql.connections import Connection as PyMySQLConnection  # noqa: PLC0415
    from pymysql.constants import SERVER_STATUS  # noqa: PLC0415

    class BatchConnection(PyMySQLConnection):  # type: ignore[misc]
        """PyMySQL's connection; ``commit()`` sends nothing after a batch that ended with ``COMMIT``
        (:func:`run_batch`) while the server reports no open transaction: it would be a turn that
        does nothing. Any other commit (or an open transaction, whatever happened) is sent."""

        committed_by_batch = False

        @property
        def commit_is_sent(self) -> bool:
            """Whether ``commit()`` would send a ``COMMIT`` now."""
            in_transaction = bool(self.server_status & SERVER_STATUS.SERVER_STATUS_IN_TRANS)
            return in_transaction or not self.committed_by_batch

        def commit(self) -> None:
            sent = self.commit_is_sent
            self.committed_by_batch = False
            if sent:
                super().commit()

        def rollback(self) -> None:
            self.committed_by_batch = False
            super().rollback()

    return BatchConnection
