"""Fixtures of the reliability suite: stores, the local server as a killable process, the secret scanner.

Sizes are reduced under ``make test`` and full under ``make soak`` (SOAK=1): see ``harness.size``.
MySQL/PostgreSQL come from TEST_MYSQL_URL/TEST_POSTGRES_URL (tests/support/sql_plugin.py: skipped
with the reason when unset, a failure under CI=true); DynamoDB is the session's single-threaded moto
server (tests/support/moto_plugin.py).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from ecpay_lambda.store import open_store
from ecpay_lambda.wallet.audit import run_audit
from ecpay_lambda.wallet.port import WalletStore
from ecpay_lambda.wallet.results import AuditReport

from .harness import STAGE, SecretScanner, ServerProcess, random_secret

STORES = ("sqlite", "mysql", "postgres", "dynamodb")
_TOTALS = {"scanned": 0, "findings": 0}


@pytest.fixture
def scanner() -> Iterator[SecretScanner]:
    """Watches every response and log line of one test for the HashKey, HashIV and API token."""
    watch = SecretScanner()
    watch.add("stage HashKey", STAGE.hash_key)
    watch.add("stage HashIV", STAGE.hash_iv)
    yield watch
    _TOTALS["scanned"] += watch.scanned
    _TOTALS["findings"] += len(watch.findings)
    watch.assert_clean()


@pytest.fixture
def api_token(scanner: SecretScanner) -> str:
    """A fresh API token for the management routes (watched by the scanner)."""
    token = "tok" + random_secret(32)
    scanner.add("API token", token)
    return token


@pytest.fixture(params=STORES)
def store_url(request: pytest.FixtureRequest) -> str:
    """A fresh, empty store of each kind (MySQL/PostgreSQL only when their servers are given)."""
    name = "dynamodb_store_url" if request.param == "dynamodb" else f"{request.param}_store_url"
    return str(request.getfixturevalue(name))


ServerFactory = Callable[..., ServerProcess]


@pytest.fixture
def server_factory(tmp_path: Path, scanner: SecretScanner, api_token: str) -> Iterator[ServerFactory]:
    """Start local servers (``serve`` or ``sandbox``); each is stopped and its log scanned afterwards."""
    started: list[ServerProcess] = []

    def start(
        store_url: str | None = None,
        *,
        command: str = "serve",
        env: dict[str, str] | None = None,
        name: str | None = None,
        retry_delays: str = "0.2,0.4,0.8,1.6",
        quiet: bool = False,
    ) -> ServerProcess:
        # The scenarios snapshot the money path (statuses, updated_at): local mode's e-invoice worker
        # (issue 13) would be a second writer on paid deposits, so it is off unless a scenario asks.
        variables = {"API_TOKEN": api_token, "INVOICING": "off", **(env or {})}
        if store_url is not None:
            variables["STORE_URL"] = store_url
        workdir = tmp_path / (name or f"{command}{len(started)}")
        server = ServerProcess(
            workdir, command=command, env=variables, retry_delays=retry_delays, quiet=quiet, scanner=scanner
        )
        started.append(server)
        server.start()
        return server

    yield start
    for server in reversed(started):
        server.stop()
        server.scan_log()


def open_test_store(url: str) -> WalletStore:
    """The adapter for ``url`` in this process (for audits and direct checks)."""
    return open_store(url)


def audit(url: str) -> AuditReport:
    """The wallet's audit over the whole store."""
    return run_audit(open_test_store(url), now=datetime.now(UTC), grace=timedelta(hours=1))


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """One line on what the secret scan covered."""
    if _TOTALS["scanned"]:
        terminalreporter.write_line(
            f"reliability secret scan: {_TOTALS['scanned']} responses and log lines checked, "
            f"{_TOTALS['findings']} findings"
        )
