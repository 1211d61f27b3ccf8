"""Deadline: a reconcile run against an ECPay that accepts connections and never answers.

Deposits are checked out at the sandbox; then ``ecpay-lambda reconcile --now`` is pointed
(``ECPAY_BASE_URL``) at a TCP server that accepts every connection and never sends a byte. Each
QueryTradeInfo waits for the client's timeout (10 s: ``ECPAY_TIMEOUT``'s default), so the run must stop
on its own: at its deadline (``--deadline-seconds``; no query is
started unless the client's timeout and a second fit before it), or after 3 queries in a row without an
answer (``ecpay_unreachable``). The report says why it stopped, how many deposits it skipped and which
queries failed; the exit status is 1 (a partial run: something due was not checked). Nothing about
money changes: every balance, status and ledger entry is as before, and the audit is clean.

Variants (the run's time is printed, never asserted):

- ``--deadline-seconds 12``: one query (it times out at 10 s), then ``stopped: deadline``; exit 1.
- ``--deadline-seconds 5``: shorter than one query may take: no query at all, ``stopped: deadline``,
  every deposit skipped, no error — still exit 1.
- ``--deadline-seconds 120`` (``make soak`` only, about 30 s): three timeouts, then
  ``stopped: ecpay_unreachable``; exit 1.

``make test``: 6 deposits; ``make soak``: 30.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from .conftest import ServerFactory, audit, open_test_store
from .harness import Api, run_command, size, soak


class HangingServer:
    """Accepts TCP connections on 127.0.0.1 and never answers; counts them."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0), backlog=64)
        self.listener.settimeout(0.2)
        self.port = self.listener.getsockname()[1]
        self.accepted: list[socket.socket] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.accepted.append(conn)  # held open, never read from or written to

    @property
    def url(self) -> str:
        """The base URL to give as ECPAY_BASE_URL."""
        return f"http://127.0.0.1:{self.port}"

    def close(self) -> None:
        """Stop accepting and drop every held connection."""
        self._stop.set()
        self._thread.join(timeout=5)
        self.listener.close()
        for conn in self.accepted:
            conn.close()


@pytest.fixture
def hanging() -> Iterator[HangingServer]:
    """A silent ECPay."""
    server = HangingServer()
    yield server
    server.close()


def _money(api: Api, user_id: str, ids: list[str]) -> dict[str, Any]:
    """Everything about money the API shows: the balance and each deposit's status and ledger."""
    snapshot: dict[str, Any] = {"user": {k: api.user(user_id)[k] for k in ("balance", "held")}}
    for transaction_id in ids:
        detail = api.transaction(user_id, transaction_id)
        snapshot[transaction_id] = (detail["status"], detail["amount"], detail["ledger"])
    return snapshot


# (--deadline-seconds, why the run stops, queries it starts): a query starts only while the client's
# timeout plus a second still fit before the deadline; 3 unanswered queries in a row end the run.
VARIANTS = [(12, "deadline", 1), (5, "deadline", 0)] + ([(120, "ecpay_unreachable", 3)] if soak() else [])


def test_reconcile_stops_at_its_deadline_when_ecpay_hangs(
    sqlite_store_url: str, server_factory: ServerFactory, hanging: HangingServer
) -> None:
    count = size(6, 30)
    server = server_factory(sqlite_store_url, quiet=True)
    api = server.api(server.env["API_TOKEN"])
    ecpay = Api(server.base_url, scanner=server.scanner)
    user_id = api.create_user()
    ids = []
    for index in range(count):
        transaction_id = api.create_deposit(user_id, 300 + index)
        fields = api.checkout(user_id, transaction_id, "Credit")
        assert ecpay.form("/Cashier/AioCheckOut/V5", fields).status == 200
        ids.append(transaction_id)
    before = _money(api, user_id, ids)
    env = {"STORE_URL": sqlite_store_url, "ECPAY_ENV": "sandbox", "ECPAY_BASE_URL": hanging.url}

    for deadline, reason, queries in VARIANTS:
        connections = len(hanging.accepted)
        args = ["reconcile", "--json", "--now", "--grace-minutes", "0", "--deadline-seconds", str(deadline)]
        result = run_command(args, env=env, timeout=deadline + 120, scanner=server.scanner)
        report = result.json()
        asked = len(hanging.accepted) - connections
        print(
            f"--deadline-seconds {deadline}: exit {result.returncode} after {result.seconds:.1f} s; "
            f"stopped={report['stopped']} checked={report['checked']} queries={report['queries']} "
            f"skipped={report['skipped']} errors={len(report['errors'])}"
        )
        assert report["stopped"] == reason, report
        assert report["queries"] == asked == queries, (report, asked)
        assert report["checked"] == report["queries"], report  # one live attempt each
        assert report["skipped"] == count - report["checked"], report
        assert (report["paid"], report["failed"], report["expired"]) == (0, 0, 0), report
        assert len(report["errors"]) == report["queries"], report
        assert all("query failed (TransportError)" in line for line in report["errors"]), report["errors"]
        assert result.returncode == 1, (result.returncode, result.stderr)  # stopped early: partial
        assert _money(api, user_id, ids) == before

    # The deposits asked about were rescheduled (backoff), the others keep their place in the queue.
    store = open_test_store(sqlite_store_url)
    counts = sorted(store.get_transaction(t).check_count for t in ids)  # type: ignore[union-attr]
    assert sum(counts) == sum(queries for _, _, queries in VARIANTS), counts
    result_audit = audit(sqlite_store_url)
    assert result_audit.clean, (result_audit.mismatches, result_audit.problems)
