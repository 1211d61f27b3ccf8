"""Shared by the benchmarks: stores to measure on, statistics, tables, quiet stdout.

Everything talks to 127.0.0.1 only. Absolute numbers depend on the machine and on what else runs:
every benchmark reports ratios measured in the same run.
"""

from __future__ import annotations

import contextlib
import os
import statistics
import sys
import tempfile
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

ROOT = Path(__file__).resolve().parents[1]
TEMPLATE = ROOT / "template.yaml"
REGION = "ap-northeast-1"


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0-100), nearest-rank on sorted values."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    rank = max(1, min(len(ordered), round(q / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


def median(values: Sequence[float]) -> float:
    """The median."""
    return statistics.median(values)


@dataclass
class Table:
    """A titled table printed as aligned text (and as Markdown for the docs)."""

    title: str
    headers: list[str]
    rows: list[list[Any]]
    note: str = ""

    @staticmethod
    def _cell(value: Any) -> str:
        if isinstance(value, bool):
            return str(value)
        if isinstance(value, int):
            return f"{value:,}"
        if isinstance(value, float):
            if value != value:  # NaN
                return "-"
            return f"{value:.2f}" if abs(value) < 1000 else f"{value:,.0f}"
        return str(value)

    def text(self) -> str:
        """Aligned plain text."""
        cells = [self.headers, *[[self._cell(v) for v in row] for row in self.rows]]
        widths = [max(len(row[i]) for row in cells) for i in range(len(self.headers))]
        lines = [self.title, "-" * len(self.title)]
        for index, row in enumerate(cells):
            lines.append(
                "  ".join(
                    c.ljust(w) if i == 0 else c.rjust(w)
                    for i, (c, w) in enumerate(zip(row, widths, strict=True))
                )
            )
            if index == 0:
                lines.append("  ".join("-" * w for w in widths))
        if self.note:
            lines.append(self.note)
        return "\n".join(lines)

    def markdown(self) -> str:
        """A Markdown table under a bold title."""
        lines = [f"**{self.title}**", "", "| " + " | ".join(self.headers) + " |"]
        lines.append("|" + "|".join("---" if i == 0 else "---:" for i in range(len(self.headers))) + "|")
        for row in self.rows:
            lines.append("| " + " | ".join(self._cell(v).replace("|", "\\|") for v in row) + " |")
        if self.note:
            lines += ["", self.note]
        return "\n".join(lines)


@contextlib.contextmanager
def quiet_stdout() -> Iterator[None]:
    """Send file descriptor 1 to /dev/null (the handlers' JSON log lines), restoring it afterwards."""
    sys.stdout.flush()
    saved = os.dup(1)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 1)
        yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(devnull)
        os.close(saved)


# --- stores --------------------------------------------------------------------------------------


@dataclass
class BenchStore:
    """A store URL to measure on, and how to clean it up."""

    kind: str  # sqlite | mysql | postgres | dynamodb
    url: str


def available_kinds(wanted: Sequence[str]) -> tuple[list[str], list[str]]:
    """(kinds to run, notes on the ones left out and why)."""
    kinds: list[str] = []
    notes: list[str] = []
    for kind in wanted:
        if kind == "mysql" and not os.environ.get("TEST_MYSQL_URL"):
            notes.append("mysql: TEST_MYSQL_URL is not set (scripts/test-databases.sh start)")
        elif kind == "postgres" and not os.environ.get("TEST_POSTGRES_URL"):
            notes.append("postgres: TEST_POSTGRES_URL is not set (scripts/test-databases.sh start)")
        else:
            kinds.append(kind)
    return kinds, notes


@contextlib.contextmanager
def moto_endpoint() -> Iterator[str]:
    """The single-threaded moto server of the test suite, with fake credentials in the environment."""
    sys.path.insert(0, str(ROOT))
    from tests.support.moto_server import FAKE_AWS_ENV, UNSET_AWS_ENV, MotoServer  # noqa: PLC0415

    saved = {name: os.environ.get(name) for name in (*FAKE_AWS_ENV, *UNSET_AWS_ENV)}
    os.environ.update(FAKE_AWS_ENV)
    for name in UNSET_AWS_ENV:
        os.environ.pop(name, None)
    server = MotoServer()
    try:
        yield server.start()
    finally:
        server.stop()
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@contextlib.contextmanager
def bench_store(kind: str, workdir: Path, endpoint: str | None = None) -> Iterator[BenchStore]:
    """A fresh, empty store of ``kind`` (its schema created), removed afterwards."""
    from sqlalchemy import create_engine, text  # noqa: PLC0415
    from sqlalchemy.engine import make_url  # noqa: PLC0415

    name = "bench_" + uuid.uuid4().hex[:12]
    if kind == "sqlite":
        yield BenchStore(kind, f"sqlite:///{workdir / name / 'wallet.db'}")
        return
    if kind == "dynamodb":
        if endpoint is None:
            raise ValueError("dynamodb needs a moto endpoint")
        # create_table=true: a bench table on moto is created by ensure_schema (never on AWS).
        url = f"dynamodb://{name}?endpoint_url={quote(endpoint, safe='')}&region={REGION}&create_table=true"
        from ecpay_lambda.store.dynamodb import DynamoDBStore  # noqa: PLC0415

        store = DynamoDBStore.from_url(url)
        store.ensure_schema()
        try:
            yield BenchStore(kind, url)
        finally:
            store.client.delete_table(TableName=store.table_name)
        return
    from ecpay_lambda.store.sql import normalize_url  # noqa: PLC0415

    variable = "TEST_MYSQL_URL" if kind == "mysql" else "TEST_POSTGRES_URL"
    server = make_url(normalize_url(os.environ[variable]))
    admin = create_engine(server, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            if kind == "mysql":
                conn.execute(text(f"CREATE DATABASE {name} CHARACTER SET utf8mb4"))
                private = server.set(database=name)
            else:
                conn.execute(text(f"CREATE SCHEMA {name}"))
                private = server.update_query_dict({"options": f"-csearch_path={name}"})
        yield BenchStore(kind, private.render_as_string(hide_password=False))
    finally:
        with admin.connect() as conn:
            if kind == "mysql":
                conn.execute(text(f"DROP DATABASE IF EXISTS {name}"))
            else:
                conn.execute(text(f"DROP SCHEMA IF EXISTS {name} CASCADE"))
        admin.dispose()


def temp_dir() -> tempfile.TemporaryDirectory[str]:
    """A scratch directory for one benchmark run."""
    return tempfile.TemporaryDirectory(prefix="ecpay-bench-")
