"""The benchmark runner runs and prints its tables (no timing is asserted: benchmarks are not tests)."""

from __future__ import annotations

import http.client
import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from bench.money_floor import MoneyFloor
from bench.seed_baseline import connection_args
from bench.wallet_ops import paid_body
from pymysql.err import OperationalError

from ecpay_lambda.store.sql import SqlStore
from ecpay_lambda.wallet.models import TransactionStatus

from .harness import REPO


def test_bench_quick_package_prints_a_table() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--only", "package"],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=REPO,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Function package (zip, without boto3)" in done.stdout
    assert "zipped MB" in done.stdout and "bench: done in" in done.stdout


def test_bench_rejects_an_unknown_section() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "bench", "--only", "nonsense"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
        check=False,
    )
    assert done.returncode == 2 and "unknown sections" in done.stderr


def test_bench_seed_without_mariadb_says_why_it_left_the_comparison_out() -> None:
    env = {name: value for name, value in os.environ.items() if name != "TEST_MYSQL_URL"}
    done = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--only", "seed"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
        env=env,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "seed: left out: no MariaDB (TEST_MYSQL_URL is not set" in done.stdout


def test_the_durable_floor_server_commits_each_request_before_answering(tmp_path: Path) -> None:
    """bench/baseline_server.py --durable-commit: the server bench's floor for a server that keeps what it
    acknowledges must really keep it (a floor that skipped the commit would flatter every ratio)."""
    database = tmp_path / "floor.db"
    with subprocess.Popen(
        [sys.executable, str(REPO / "bench" / "baseline_server.py"), "--durable-commit", str(database)],
        stdout=subprocess.PIPE,
        text=True,
    ) as server:
        try:
            assert server.stdout is not None
            port = int(server.stdout.readline().rsplit(":", 1)[1])
            for body in (b"first", b"second"):
                connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
                connection.request("POST", "/return", body)
                assert connection.getresponse().read() == b"1|OK"
                connection.close()
                with sqlite3.connect(database) as db:  # another connection sees it: committed
                    rows = [row[0] for row in db.execute("SELECT body FROM received ORDER BY id")]
                assert rows[-1] == body
            assert rows == [b"first", b"second"]
        finally:
            server.terminate()


@pytest.mark.mysql
def test_the_money_floor_writes_what_our_store_writes(mysql_store_url: str) -> None:
    """bench/money_floor.py: the seed table's floor must do a request's whole money work, committed, in
    rows our own store reads back as it would have written them (a floor that skipped a statement, or
    wrote columns our schema no longer has, would flatter the seed comparison)."""
    store = SqlStore.from_url(mysql_store_url)
    store.ensure_schema()
    floor = MoneyFloor(connection_args(mysql_store_url))
    try:
        user_id = floor.create_user()
        created = json.loads(
            floor.handle_create_transaction(user_id, b'{"transaction_type": "deposit", "amount": 70}')
        )
        pending = store.get_transaction(created["id"])
        assert pending is not None and (pending.status, pending.amount) == (TransactionStatus.PENDING, 70)
        awaiting = floor.awaiting(user_id, 100, "F0000000000000000001")
        forged = paid_body("F0000000000000000001", 100).replace(b"TradeAmt=100", b"TradeAmt=1")
        assert floor.return_url(awaiting, forged) == "0|CheckMacValue error"
        assert floor.return_url(awaiting, paid_body("F0000000000000000001", 100)) == "1|OK"
        # Read by the store, on its own connections: committed.
        paid = store.get_transaction(awaiting)
        assert paid is not None and (paid.status, paid.version) == (TransactionStatus.PAID, 2)
        user = store.get_user(user_id)
        assert user is not None and (user.balance, user.open_transactions) == (100, 1)
        assert [(e.kind, e.delta_balance) for e in store.list_ledger(transaction_id=awaiting)] == [
            ("deposit_paid", 100)
        ]
        assert [n.outcome for n in store.list_notifications(awaiting)] == ["applied"]
        # The unread credit: its compare-and-set refuses another user's deposit, rolling back all of it.
        unread = floor.awaiting(user_id, 100, "G0000000000000000001")
        with pytest.raises(OperationalError):
            floor.return_url(unread, paid_body("G0000000000000000001", 100), unread_for="someone-else")
        floor.conn.rollback()
        assert store.list_notifications(unread) == []
        assert floor.return_url(unread, paid_body("G0000000000000000001", 100), unread_for=user_id) == "1|OK"
        credited = store.get_transaction(unread)
        assert credited is not None and credited.status is TransactionStatus.PAID
        user = store.get_user(user_id)
        assert user is not None and (user.balance, user.open_transactions) == (200, 1)
        assert len(store.list_ledger(transaction_id=unread)) == 1
    finally:
        floor.close()
        store.dispose()
