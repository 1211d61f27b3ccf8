"""The benchmark runner runs and prints its tables (no timing is asserted: benchmarks are not tests)."""

from __future__ import annotations

import os
import subprocess
import sys

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
