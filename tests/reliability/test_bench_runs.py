"""The benchmark runner runs and prints its tables (no timing is asserted: benchmarks are not tests)."""

from __future__ import annotations

import http.client
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

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
