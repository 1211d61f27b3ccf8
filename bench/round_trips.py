"""Storage calls per wallet operation, counted where they leave the process.

- SQL: SQLAlchemy events on the adapter's engine: every statement sent (``before_cursor_execute``,
  the adapter's ``BEGIN`` included), every ``COMMIT``/``ROLLBACK`` and every pool reset (a rollback
  the pool sends when a read-only connection is returned). On MySQL/PostgreSQL each is one network
  round trip; on SQLite they are calls into the library.
- DynamoDB: botocore's event hooks on the adapter's client: one count per API call (``after-call``,
  its parameters taken at ``before-parameter-build``), one per HTTP request actually sent
  (``before-send``: retries included), and an estimate of the capacity units each call consumes,
  from the items it writes or reads (rules in :func:`capacity`).
- On the wire (MariaDB, PostgreSQL, moto's server): a loopback proxy in front of the server counts
  the request/response turns the process waits for (:mod:`bench.wire`): pings, pool resets and a
  driver's own statements included, which the events above cannot see.

Operations: create a deposit, checkout (a new ECPay attempt), apply a paid notification (first
delivery), a duplicate of it (ECPay's re-delivery), create a withdrawal, and read one transaction
with its ledger and notifications (what ``GET .../transactions/{id}`` and ``clientReturn`` do).
Each is repeated and averaged; the counts are deterministic except where a retry happened.
"""

from __future__ import annotations

import contextlib
import functools
import math
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit, urlunsplit

from .common import BenchStore, Table
from .wallet_ops import Wallet, paid_body
from .wire import WireCounter, proxied

OPERATIONS = (
    "create deposit",
    "checkout",
    "apply notification",
    "duplicate notification",
    "create withdraw",
    "read transaction",
)


@dataclass
class Tally:
    """What one operation sent."""

    calls: dict[str, float] = field(default_factory=dict)
    http: int = 0
    http_mean: float = 0.0  # set on averaged tallies
    wire: float = 0.0  # request/response turns on the wire (servers only)
    wru: float = 0.0
    rru: float = 0.0
    stored_bytes: float = 0.0  # DynamoDB: size of the items put (+100 bytes of overhead each)

    @property
    def round_trips(self) -> float:
        """API calls (DynamoDB) or statements + commits + rollbacks (SQL)."""
        return sum(self.calls.values())


class Recorder:
    """Collects the storage calls of whatever runs between :meth:`start` and :meth:`stop`."""

    def __init__(self) -> None:
        self.current: Tally | None = None
        self.lock = threading.Lock()

    def start(self) -> None:
        """Begin a fresh tally."""
        self.current = Tally()

    def stop(self) -> Tally:
        """End and return the tally."""
        tally, self.current = self.current, None
        assert tally is not None
        return tally

    def count(self, name: str, wru: float = 0.0, rru: float = 0.0, stored: int = 0) -> None:
        """One call."""
        with self.lock:
            if self.current is not None:
                self.current.calls[name] = self.current.calls.get(name, 0) + 1
                self.current.wru += wru
                self.current.rru += rru
                self.current.stored_bytes += stored

    def http(self) -> None:
        """One HTTP request sent."""
        with self.lock:
            if self.current is not None:
                self.current.http += 1


def _attach_sql(store: Any, recorder: Recorder) -> None:
    from sqlalchemy import event  # noqa: PLC0415

    engine = store.engine

    def statement(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        verb = statement.lstrip().split(None, 1)[0].upper() if statement.strip() else "?"
        if ";\n" in statement:  # store/sql_batch.py: several statements sent together, one turn
            verb = "batch ending in COMMIT" if statement.rstrip().endswith("COMMIT") else f"batch from {verb}"
        recorder.count(verb)

    def commit(conn: Any) -> None:
        # MariaDB: after a batch that ended with its own COMMIT, the connection sends none.
        if getattr(conn.connection.dbapi_connection, "commit_is_sent", True):
            recorder.count("COMMIT")

    event.listen(engine, "before_cursor_execute", statement)
    event.listen(engine, "commit", commit)
    event.listen(engine, "rollback", lambda conn: recorder.count("ROLLBACK"))
    # The pool's "reset" event fires on every check-in; a ROLLBACK is sent only when the pool resets.
    if str(getattr(engine.pool, "_reset_on_return", "")) != "ResetStyle.reset_none":
        event.listen(
            engine.pool, "reset", lambda dbapi_conn, record, *rest: recorder.count("reset (ROLLBACK)")
        )


def _size(item: Any) -> int:
    from ecpay_lambda.store.dynamodb_items import item_size  # noqa: PLC0415

    return int(item_size(item)) if isinstance(item, dict) else 0


def _kb(size: int, unit: int) -> int:
    return max(1, math.ceil(size / unit))


def capacity(operation: str, params: dict[str, Any], parsed: dict[str, Any] | None) -> tuple[float, float]:
    """(WRU, RRU) one call consumes on an on-demand table, estimated from what it writes and reads.

    Writes: 1 WRU per started KB of the item (Update/Delete/ConditionCheck items counted as 1 KB:
    this wallet's items are far smaller); TransactWriteItems doubles that for every item, whether it
    succeeds or is cancelled; a written item that carries the ``gsi1`` keys adds 1 WRU per KB for the
    index. Reads: strongly consistent reads cost 1 RRU per started 4 KB (GetItem: at least 1, even
    for a missing item; Query: per 4 KB of all items read); eventually consistent ones half.
    """
    wru = rru = 0.0
    if operation == "PutItem":
        item = params.get("Item", {})
        wru = _kb(_size(item), 1024) * (2 if "gsi1pk" in item else 1)
    elif operation in ("UpdateItem", "DeleteItem"):
        wru = 1
    elif operation == "TransactWriteItems":
        for entry in params.get("TransactItems", []):
            if "Put" in entry:
                item = entry["Put"].get("Item", {})
                units = _kb(_size(item), 1024)
                wru += 2 * units + (units if "gsi1pk" in item else 0)
            else:
                wru += 2
    elif operation in ("GetItem", "Query", "BatchGetItem"):
        factor = 1.0 if params.get("ConsistentRead") else 0.5
        if operation == "GetItem":
            rru = _kb(_size((parsed or {}).get("Item")), 4096) * factor
        elif operation == "Query":
            total = sum(_size(i) for i in (parsed or {}).get("Items", []))
            rru = _kb(total, 4096) * factor
        else:
            for items in ((parsed or {}).get("Responses") or {}).values():
                rru += sum(_kb(_size(i), 4096) for i in items)
    return wru, rru


def stored_bytes(operation: str, params: dict[str, Any]) -> int:
    """Bytes of new items a write stores (item size + DynamoDB's 100 bytes of per-item overhead)."""
    items: list[Any] = []
    if operation == "PutItem":
        items = [params.get("Item", {})]
    elif operation == "TransactWriteItems":
        items = [e["Put"].get("Item", {}) for e in params.get("TransactItems", []) if "Put" in e]
    return sum(_size(item) + 100 for item in items)


def _attach_dynamodb(store: Any, recorder: Recorder) -> None:
    events = store.client.meta.events
    pending: dict[int, dict[str, Any]] = {}

    def before_build(params: dict[str, Any], model: Any, **kwargs: Any) -> None:
        pending[threading.get_ident()] = dict(params)

    def after_call(http_response: Any, parsed: dict[str, Any], model: Any, **kwargs: Any) -> None:
        request = pending.pop(threading.get_ident(), {})
        wru, rru = capacity(model.name, request, parsed)
        recorder.count(model.name, wru, rru, stored_bytes(model.name, request))

    events.register("before-parameter-build.dynamodb", before_build)
    events.register("after-call.dynamodb", after_call)
    events.register("before-send.dynamodb", lambda **kwargs: recorder.http())


@contextlib.contextmanager
def _on_the_wire(store: BenchStore) -> Iterator[tuple[str, WireCounter | None]]:
    """The store's URL through a wire counter (a server's), or as it is (SQLite: no wire)."""
    if store.kind == "sqlite":
        yield store.url, None
        return
    if store.kind == "dynamodb":
        parts = urlsplit(store.url)
        options = parse_qs(parts.query)
        with proxied(options["endpoint_url"][-1]) as (endpoint, counter):
            options["endpoint_url"] = [endpoint]
            yield urlunsplit(parts._replace(query=urlencode(options, doseq=True))), counter
        return
    with proxied(store.url) as (url, counter):
        yield url, counter


def measure(store: BenchStore, repeats: int) -> dict[str, Tally]:
    """The average tally of each operation on ``store`` (``repeats`` times each)."""
    with _on_the_wire(store) as (url, wire):
        return _measure(store, url, wire, repeats)


def _measure(store: BenchStore, url: str, wire: WireCounter | None, repeats: int) -> dict[str, Tally]:
    wallet = Wallet.open(url)
    recorder = Recorder()
    if store.kind == "dynamodb":
        _attach_dynamodb(wallet.service.store, recorder)
    else:
        _attach_sql(wallet.service.store, recorder)

    totals: dict[str, list[Tally]] = {name: [] for name in OPERATIONS}

    def timed(name: str, action: Callable[[], Any]) -> Any:
        if wire is not None:
            wire.reset()
        recorder.start()
        result = action()
        tally = recorder.stop()
        if wire is not None:
            tally.wire = wire.reset()
        totals[name].append(tally)
        return result

    user_id = wallet.user()
    for _ in range(repeats):
        transaction_id = timed("create deposit", functools.partial(wallet.deposit, user_id, 100))
        mtn = timed("checkout", functools.partial(wallet.checkout, user_id, transaction_id))
        body = paid_body(mtn, 100)
        # Posted to the ReturnURL checkout gave ECPay: /users/{userId}/transactions/{transactionId}/return.
        notify = functools.partial(wallet.notify, transaction_id, user_id=user_id)
        reply = timed("apply notification", functools.partial(notify, body))
        assert reply == "1|OK", reply
        resent = paid_body(mtn, 100, rtn_msg="paid")  # ECPay's re-delivery: same payment, RtnMsg=paid
        timed("duplicate notification", functools.partial(notify, resent))
        timed("create withdraw", functools.partial(wallet.withdraw, user_id, 10))
        timed("read transaction", functools.partial(wallet.service.get_transaction, user_id, transaction_id))
    return {name: _average(tallies) for name, tallies in totals.items()}


def _average(tallies: list[Tally]) -> Tally:
    out = Tally()
    http = 0
    for tally in tallies:
        for name, n in tally.calls.items():
            out.calls[name] = out.calls.get(name, 0) + n
        http += tally.http
        out.wru += tally.wru
        out.rru += tally.rru
        out.stored_bytes += tally.stored_bytes
        out.wire += tally.wire
    n = len(tallies)
    out.calls = {k: v / n for k, v in out.calls.items()}
    out.http_mean = http / n
    out.wru /= n
    out.rru /= n
    out.stored_bytes /= n
    out.wire /= n
    return out


def tables(results: dict[str, dict[str, Tally]]) -> list[Table]:
    """Round trips per operation and store; their breakdown; DynamoDB capacity units."""
    kinds = list(results)
    totals = [[name, *(results[k][name].round_trips for k in kinds)] for name in OPERATIONS]
    out = [Table("Storage round trips per operation (mean of the repeats)", ["operation", *kinds], totals)]
    served = [k for k in kinds if k != "sqlite"]
    if served:
        out.append(
            Table(
                "Round trips on the wire per operation (request/response turns through a proxy)",
                ["operation", *served],
                [[name, *(results[k][name].wire for k in served)] for name in OPERATIONS],
                note="Everything the process waits for: statements, COMMIT, pings, pool resets (SQL); "
                "HTTP requests (DynamoDB on moto's server). bench/wire.py.",
            )
        )
    detail = [
        [name, kind, ", ".join(f"{call} {n:g}" for call, n in sorted(results[kind][name].calls.items()))]
        for kind in kinds
        for name in OPERATIONS
    ]
    out.append(Table("What the round trips are", ["operation", "store", "calls"], detail))
    if "dynamodb" in results:
        dyn = results["dynamodb"]
        out.append(
            Table(
                "DynamoDB per operation (estimated on-demand capacity)",
                ["operation", "API calls", "HTTP requests", "WRU", "RRU", "bytes stored"],
                [
                    [n, dyn[n].round_trips, dyn[n].http_mean, dyn[n].wru, dyn[n].rru, dyn[n].stored_bytes]
                    for n in OPERATIONS
                ],
                note="WRU/RRU from the items each call writes and reads (bench/round_trips.py: capacity).",
            )
        )
    return out
