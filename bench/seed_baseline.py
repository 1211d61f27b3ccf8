"""Against the seed: its Node handlers' way of using MariaDB, rebuilt with PyMySQL, timed with ours.

The seed's handlers open a new MySQL connection for every request, run one plain statement and close
the connection. ``SeedBaseline`` does the same here, on its own tables in the same MariaDB server:

- ``create user``: ``INSERT`` a user;
- ``create transaction``: ``INSERT`` a transaction;
- ``list transactions``: ``SELECT`` a page (20, newest first) plus a ``COUNT(*)``;
- ``ReturnURL``: verify the CheckMacValue of ECPay's form, then one ``UPDATE`` of the transaction.

Like the seed's handlers (and ours), each also does its request's HTTP-level work: it parses the JSON
body it is given and answers a JSON document (the row it wrote, the page it read), so both sides are
timed from request bytes to response bytes.

Ours are the Lambda handlers with the API Gateway events local mode builds from template.yaml, warm,
in process, on the MySQL store (SQLAlchemy's pool, as a warm function keeps it): ``POST /users``,
``POST /users/{id}/transactions``, ``GET /users/{id}/transactions`` (a user with the same 25
transactions as the seed's) and a paid ReturnURL for a deposit awaiting payment. Each round times
every operation on both sides, the order alternating round by round, so noise hits both alike; the
table gives p50 and p99 and the ratio ours / seed (below 1: ours is faster).

Needs MariaDB (``TEST_MYSQL_URL``; ``scripts/test-databases.sh start``): without it the section is
skipped with the reason printed.

    python -m bench --only seed [--quick]
"""

from __future__ import annotations

import json
import os
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from .common import BenchStore, Table, percentile, quiet_stdout
from .money_floor import MoneyFloor, created_transaction
from .wallet_ops import STAGE, Events, Wallet, context, paid_body, settings_env

OPERATIONS = ("create user", "create transaction", "list transactions", "ReturnURL")
FLOORED = ("create transaction", "ReturnURL")  # the goals still missed: their floor is measured too
LISTED = 25  # transactions of the user whose first page is listed (page size 20: a full page)
PAGE = 20

_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS seed_users (
        id VARCHAR(36) PRIMARY KEY, username VARCHAR(64) NOT NULL, email VARCHAR(255) NOT NULL,
        balance INT NOT NULL DEFAULT 0, created_at DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP)""",
    """CREATE TABLE IF NOT EXISTS seed_transactions (
        id VARCHAR(36) PRIMARY KEY, user_id VARCHAR(36) NOT NULL, type VARCHAR(16) NOT NULL,
        amount INT NOT NULL, status VARCHAR(16) NOT NULL, merchant_trade_no VARCHAR(20),
        created_at DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
        KEY by_user (user_id, created_at), UNIQUE KEY by_trade (merchant_trade_no))""",
)


def connection_args(url: str) -> dict[str, Any]:
    """PyMySQL's connect() arguments for a ``mysql+pymysql://user:password@host:port/db`` URL."""
    parts = urlsplit(url)
    return {
        "host": parts.hostname or "127.0.0.1",
        "port": parts.port or 3306,
        "user": unquote(parts.username or ""),
        "password": unquote(parts.password or ""),
        "database": parts.path.lstrip("/"),
        "charset": "utf8mb4",
        # Plain TCP on loopback, as the seed's Node driver connects by default. (Left on, PyMySQL
        # would build a TLS context, loading the system's CA certificates, on every connect.)
        "ssl_disabled": True,
    }


@dataclass
class SeedBaseline:
    """The seed's handlers' database work: a connection per request, one plain statement."""

    args: dict[str, Any]

    def _run(self, work: Callable[[Any], Any]) -> Any:
        import pymysql  # noqa: PLC0415

        conn = pymysql.connect(**self.args)
        try:
            with conn.cursor() as cursor:
                result = work(cursor)
            conn.commit()
            return result
        finally:
            conn.close()

    def create_schema(self) -> None:
        """The seed's two tables."""
        for statement in _SCHEMA:
            self._run(lambda cursor, s=statement: cursor.execute(s))

    def create_user(self, username: str, email: str | None = None) -> str:
        """INSERT a user."""
        user_id = str(uuid.uuid4())
        self._run(
            lambda c: c.execute(
                "INSERT INTO seed_users (id, username, email) VALUES (%s, %s, %s)",
                (user_id, username, email or f"{username}@example.com"),
            )
        )
        return user_id

    def handle_create_user(self, body: bytes) -> str:
        """POST /users as the seed answers it: the JSON body in, the new user out."""
        data = json.loads(body)
        user_id = self.create_user(data["username"], data["email"])
        return json.dumps({"id": user_id, "username": data["username"], "email": data["email"], "balance": 0})

    def handle_create_transaction(self, user_id: str, body: bytes) -> str:
        """POST /users/{id}/transactions: the JSON body in, the new transaction out."""
        return created_transaction(user_id, body, self.create_transaction)

    def handle_list_transactions(self, user_id: str) -> str:
        """GET /users/{id}/transactions: the page and the total as JSON."""
        rows, total = self.list_transactions(user_id)
        transactions = [
            {"id": r[0], "type": r[1], "amount": r[2], "status": r[3], "created_at": r[4].isoformat()}
            for r in rows
        ]
        return json.dumps({"transactions": transactions, "total": total})

    def create_transaction(self, user_id: str, amount: int, merchant_trade_no: str | None = None) -> str:
        """INSERT a deposit."""
        transaction_id = str(uuid.uuid4())
        self._run(
            lambda c: c.execute(
                "INSERT INTO seed_transactions (id, user_id, type, amount, status, merchant_trade_no) "
                "VALUES (%s, %s, 'deposit', %s, 'pending', %s)",
                (transaction_id, user_id, amount, merchant_trade_no),
            )
        )
        return transaction_id

    def list_transactions(self, user_id: str) -> tuple[list[Any], int]:
        """SELECT the first page, newest first, and COUNT them all."""

        def work(c: Any) -> tuple[list[Any], int]:
            c.execute(
                "SELECT id, type, amount, status, created_at FROM seed_transactions WHERE user_id = %s "
                "ORDER BY created_at DESC LIMIT %s OFFSET 0",
                (user_id, PAGE),
            )
            rows = list(c.fetchall())
            c.execute("SELECT COUNT(*) FROM seed_transactions WHERE user_id = %s", (user_id,))
            return rows, int(c.fetchone()[0])

        result: tuple[list[Any], int] = self._run(work)
        return result

    def return_url(self, body: bytes) -> str:
        """Check the form's CheckMacValue, then mark the transaction paid; ECPay's reply line."""
        from ecpay_lambda.ecpay.checkmac import verify_check_mac_value  # noqa: PLC0415

        fields = dict(parse_qsl(body.decode("utf-8"), keep_blank_values=True))
        if not verify_check_mac_value(fields, STAGE.hash_key, STAGE.hash_iv):
            return "0|CheckMacValue error"
        paid = fields.get("RtnCode") == "1"
        self._run(
            lambda c: c.execute(
                "UPDATE seed_transactions SET status = %s WHERE merchant_trade_no = %s",
                ("paid" if paid else "failed", fields["MerchantTradeNo"]),
            )
        )
        return "1|OK"


@dataclass
class Comparison:
    """Seconds per call, by side ("seed", "ours") and operation: wall time, and this process's CPU time
    (the client's own work, without the database server's; steadier than wall time on a busy machine)."""

    samples: dict[str, dict[str, list[float]]]
    cpu: dict[str, dict[str, list[float]]]

    def p(self, side: str, operation: str, q: float) -> float:
        """Percentile ``q`` of the wall time, in milliseconds (NaN: not measured on that side)."""
        samples = self.samples[side].get(operation)
        return percentile(samples, q) * 1000 if samples else float("nan")

    def cpu_p(self, side: str, operation: str, q: float) -> float:
        """Percentile ``q`` of the CPU time, in milliseconds (NaN: not measured on that side)."""
        samples = self.cpu[side].get(operation)
        return percentile(samples, q) * 1000 if samples else float("nan")


def _timed(call: Callable[[], Any]) -> tuple[float, float, Any]:
    cpu, started = time.thread_time(), time.perf_counter()
    result = call()
    return time.perf_counter() - started, time.thread_time() - cpu, result


def measure(store: BenchStore, iterations: int, warmup: int = 10) -> Comparison:
    """``iterations`` timed rounds (after ``warmup``), each operation once per side per round."""
    from ecpay_lambda.api import composition  # noqa: PLC0415

    seed = SeedBaseline(connection_args(store.url))
    seed.create_schema()
    floor = MoneyFloor(connection_args(store.url))
    os.environ.update(settings_env(store.url))
    os.environ.pop("API_TOKEN", None)
    composition.reset()
    wallet = Wallet.open(store.url)
    events = Events()
    ctx = context()
    total = warmup + iterations
    tag = uuid.uuid4().hex[:6]

    # Both sides list a user with the same number of transactions.
    our_lister = wallet.user()
    for _ in range(LISTED):
        wallet.deposit(our_lister, 100)
    seed_lister = seed.create_user(f"seedlist{tag}")
    for _ in range(LISTED):
        seed.create_transaction(seed_lister, 100)
    # Deposits awaiting payment, and their paid notifications, prepared before any timing.
    our_user = wallet.user()
    seed_user = seed.create_user(f"seed{tag}")
    ours_awaiting = [wallet.awaiting(our_user, 100) for _ in range(total)]
    seed_awaiting = []
    for index in range(total):
        mtn = f"S{tag}{index:08d}"
        seed.create_transaction(seed_user, 100, mtn)
        seed_awaiting.append(paid_body(mtn, 100))
    floor_user = floor.create_user()

    def floor_deposits(prefix: str) -> list[tuple[str, bytes]]:
        mtns = [f"{prefix}{tag}{index:08d}" for index in range(total)]
        return [(floor.awaiting(floor_user, 100, mtn), paid_body(mtn, 100)) for mtn in mtns]

    floor_awaiting, floor_unread = floor_deposits("F"), floor_deposits("G")

    users = events.handler("POST", "/users")
    transactions = events.handler("POST", f"/users/{our_user}/transactions")
    lister = events.handler("GET", f"/users/{our_lister}/transactions")
    callbacks = events.handler("POST", f"/users/{our_user}/transactions/x/return")
    create_body = json.dumps({"transaction_type": "deposit", "amount": 100}).encode()
    create_event = events.event("POST", f"/users/{our_user}/transactions", create_body)
    list_event = events.event("GET", f"/users/{our_lister}/transactions")

    def ours(operation: str, index: int) -> Callable[[], Any]:
        if operation == "create user":
            body = json.dumps({"username": f"o{tag}{index}", "email": "o@example.com"}).encode()
            event = events.event("POST", "/users", body)
            return lambda: _expect(users(event, ctx), 201)
        if operation == "create transaction":
            return lambda: _expect(transactions(dict(create_event), ctx), 201)
        if operation == "list transactions":
            return lambda: _expect(lister(dict(list_event), ctx), 200)
        transaction_id, mtn = ours_awaiting[index]
        path = f"/users/{our_user}/transactions/{transaction_id}/return"
        event = events.event("POST", path, paid_body(mtn, 100), "application/x-www-form-urlencoded")
        return lambda: _expect(callbacks(event, ctx), 200, "1|OK")

    seed_create_body = json.dumps({"transaction_type": "deposit", "amount": 100}).encode()

    def theirs(operation: str, index: int) -> Callable[[], Any]:
        if operation == "create user":
            body = json.dumps({"username": f"s{tag}{index}", "email": "s@example.com"}).encode()
            return lambda: seed.handle_create_user(body)
        if operation == "create transaction":
            return lambda: seed.handle_create_transaction(seed_user, seed_create_body)
        if operation == "list transactions":
            return lambda: seed.handle_list_transactions(seed_lister)
        body = seed_awaiting[index]
        return lambda: _check(seed.return_url(body) == "1|OK", "the seed's ReturnURL failed")

    def floors(operation: str, index: int) -> Callable[[], Any]:
        if operation == "create transaction":
            return lambda: floor.handle_create_transaction(floor_user, seed_create_body)
        transaction_id, body = floor_awaiting[index]
        return lambda: _check(
            floor.return_url(transaction_id, body) == "1|OK", "the floor's ReturnURL failed"
        )

    def unread_floor(index: int) -> Callable[[], Any]:
        transaction_id, body = floor_unread[index]
        return lambda: _check(
            floor.return_url(transaction_id, body, floor_user) == "1|OK", "unread floor failed"
        )

    samples: dict[str, dict[str, list[float]]] = {
        "seed": {op: [] for op in OPERATIONS},
        "ours": {op: [] for op in OPERATIONS},
        "floor": {op: [] for op in FLOORED},
        "unread floor": {"ReturnURL": []},
    }
    cpu: dict[str, dict[str, list[float]]] = {side: {op: [] for op in ops} for side, ops in samples.items()}
    with quiet_stdout():
        for index in range(total):
            for operation in OPERATIONS:
                sides = [("ours", ours(operation, index)), ("seed", theirs(operation, index))]
                if operation in FLOORED:
                    sides.append(("floor", floors(operation, index)))
                if operation == "ReturnURL":
                    sides.append(("unread floor", unread_floor(index)))
                shift = index % len(sides)  # each side takes its turn to go first
                for side, call in sides[shift:] + sides[:shift]:
                    seconds, cpu_seconds, _ = _timed(call)
                    if index >= warmup:
                        samples[side][operation].append(seconds)
                        cpu[side][operation].append(cpu_seconds)
    composition.reset()
    floor.close()
    return Comparison(samples, cpu)


def _check(ok: bool, message: str) -> None:
    if not ok:
        raise RuntimeError(message)


def _expect(answer: dict[str, Any], status: int, body: str | None = None) -> None:
    _check(answer.get("statusCode") == status, f"answered {str(answer)[:200]}")
    if body is not None:
        _check(answer.get("body") == body, f"answered {str(answer)[:200]}")


def table(result: Comparison) -> Table:
    """p50/p99 of each operation on both sides, and ours / seed; the floor's p50 where measured."""
    rows: list[list[Any]] = []
    for operation in OPERATIONS:
        seed50, seed99 = result.p("seed", operation, 50), result.p("seed", operation, 99)
        ours50, ours99 = result.p("ours", operation, 50), result.p("ours", operation, 99)
        floor50 = result.p("floor", operation, 50)
        unread50 = result.p("unread floor", operation, 50)
        seed_cpu, ours_cpu = result.cpu_p("seed", operation, 50), result.cpu_p("ours", operation, 50)
        rows.append(
            [
                operation,
                seed50,
                ours50,
                ours50 / seed50,
                seed99,
                ours99,
                ours99 / seed99,
                seed_cpu,
                ours_cpu,
                ours_cpu / seed_cpu,
                floor50,
                floor50 / seed50,
                unread50,
                unread50 / seed50,
            ]
        )
    count = len(result.samples["seed"]["create user"])
    return Table(
        f"Against the seed on MariaDB: warm, in process, {count} samples per operation and side, interleaved",
        [
            "operation",
            "seed p50 ms",
            "ours p50 ms",
            "p50 ours/seed",
            "seed p99 ms",
            "ours p99 ms",
            "p99 ours/seed",
            "seed CPU p50",
            "ours CPU p50",
            "CPU ours/seed",
            "floor p50 ms",
            "p50 floor/seed",
            "unread floor p50",
            "unread floor/seed",
        ],
        rows,
        note="seed = its handlers' work with PyMySQL (JSON body in, a new connection per request, one plain "
        "statement, JSON out); ours = the Lambda handlers on the MySQL store. Below 1.00: ours is faster. "
        "CPU = this process's CPU time per call (ms; the database server's work not included). "
        "floor = the seed's HTTP-level work plus our store's statements for the request as plain SQL on one "
        "kept connection, in the fewest turns the money rules allow (bench/money_floor.py; the ReturnURL's "
        "reads the deposit before crediting it, as our SQL store does): no such handler is faster here. "
        "unread floor = the same ReturnURL credit sent speculatively without the read (as the DynamoDB "
        "store sends it), its conditions in the compare-and-set.",
    )
