"""Crash: kill -9 the local server at random moments while ECPay's notifications flow.

The ECPay sandbox runs as a process of its own (ECPay does not go down with the merchant's server):
``ecpay-lambda sandbox``, retrying each ReturnURL until ``1|OK`` (2, 5, 10 and 20 s apart, at most 5
deliveries, as ECPay does at minutes apart). The wallet server (``ecpay-lambda serve`` on one SQLite
file) is killed with SIGKILL at random points while the sandbox reports payments, and restarted on
the same port (the ReturnURLs contain it). After the restarts and the sandbox's retries, every paid
deposit is credited exactly once (one whose five deliveries all failed, as ECPay's finite retries can
leave one, by a reconciliation pass), the audit is clean and the SQLite file passes its integrity check.

``make test``: 40 deposits, 2 kills. ``make soak``: 300 deposits, 10 kills.
"""

from __future__ import annotations

import random
import sqlite3
import threading
import time
from datetime import timedelta
from typing import Any

import pytest

from ecpay_lambda.api.composition import build_service
from ecpay_lambda.config import parse_settings
from ecpay_lambda.local.sandbox.engine import MAX_DELIVERIES

from .conftest import ServerFactory, audit
from .harness import Api, size, wait_until

RETRY_DELAYS = "2,5,10,20"  # deliveries at 0, 2, 7, 17 and 37 s: longer than a restart takes


# The soak size creates and pays 300 deposits through 10 restarts: minutes on a shared 2-core machine.
@pytest.mark.timeout(size(300, 1500))
def test_kill9_while_notifications_flow(sqlite_store_url: str, server_factory: ServerFactory) -> None:
    deposits_wanted, kills_wanted = size(40, 300), size(2, 10)
    seed = random.randrange(1 << 30)
    rng = random.Random(seed)
    sandbox = server_factory(command="sandbox", retry_delays=RETRY_DELAYS, name="ecpay", quiet=True)
    server = server_factory(sqlite_store_url, name="wallet", quiet=True)
    api = server.api(server.env["API_TOKEN"])
    ecpay = Api(sandbox.base_url, scanner=sandbox.scanner)
    user_id = api.create_user()

    deposits: list[tuple[str, str, int]] = []
    for index in range(deposits_wanted):
        amount = 100 + index
        transaction_id = api.create_deposit(user_id, amount)
        fields = api.checkout(user_id, transaction_id, "Credit")
        # The shopper's browser posts the form to ECPay: here, the sandbox that outlives the crashes.
        page = ecpay.form("/Cashier/AioCheckOut/V5", fields)
        assert page.status == 200, page.text[:500]
        deposits.append((transaction_id, fields["MerchantTradeNo"], amount))

    paying = threading.Event()
    paying.set()
    pay_errors: list[str] = []

    def pay_all() -> None:
        payer = Api(sandbox.base_url, scanner=sandbox.scanner)
        try:
            for _transaction_id, mtn, _amount in deposits:
                reply = payer.json("POST", f"/sandbox/api/trades/{mtn}/pay", {"method": "Credit"})
                if reply.status != 200:
                    pay_errors.append(f"{mtn}: {reply.status} {reply.text[:200]}")
                time.sleep(rng.uniform(0.05, 0.4))
        finally:
            paying.clear()
            payer.close()

    payer = threading.Thread(target=pay_all, daemon=True)
    payer.start()
    kill_times: list[float] = []
    started = time.monotonic()
    while paying.is_set() and len(kill_times) < kills_wanted and time.monotonic() - started < 600:
        time.sleep(rng.uniform(0.2, 1.2))
        if not paying.is_set():
            break
        server.kill9()
        kill_times.append(round(time.monotonic() - started, 2))
        server.restart()
    payer.join(timeout=600)
    assert not payer.is_alive(), "the payer did not finish"
    assert not pay_errors, pay_errors[:5]
    assert kill_times, f"seed {seed}: the payments finished before the first kill"

    def status(transaction_id: str) -> str:
        return str(api.transaction(user_id, transaction_id)["status"])

    def exhausted(mtn: str) -> bool:
        # ECPay gave up: every delivery it makes was made, none acknowledged.
        attempts = _callbacks(ecpay, mtn)
        return len(attempts) >= MAX_DELIVERIES and not any(a["ok"] for a in attempts)

    def settled() -> bool:
        return all(status(t) == "paid" or exhausted(mtn) for t, mtn, _ in deposits)

    # The last retry of a notification sent just before a kill comes 37 s after its first delivery.
    assert wait_until(settled, timeout=180, interval=0.5), f"seed {seed}: " + "; ".join(
        f"{t} {status(t)}: {_callbacks(ecpay, mtn)}" for t, mtn, _ in deposits if status(t) != "paid"
    )
    # A deposit whose five deliveries all met a dead or restarting server is what ECPay's finite retries
    # leave behind in the real world too (more often under a slow machine's long restarts): the wallet's
    # reconciliation asks QueryTradeInfo and credits it, once. Anything else unpaid is a defect.
    given_up = [(t, mtn) for t, mtn, _ in deposits if status(t) != "paid"]
    if given_up:
        settings = parse_settings(
            {"STORE_URL": sqlite_store_url, "ECPAY_ENV": "sandbox", "ECPAY_BASE_URL": sandbox.base_url}
        )
        service = build_service(settings)
        service.reconcile_grace = timedelta(0)
        report = service.reconcile(limit=1_000, ignore_schedule=True)
        assert report.errors == [] and report.paid == len(given_up), (seed, report)
    assert all(status(t) == "paid" for t, _, _ in deposits), f"seed {seed}: not every deposit was credited"
    unacknowledged = {mtn for _, mtn in given_up}
    assert all(
        any(a["ok"] for a in _callbacks(ecpay, mtn)) for _, mtn, _ in deposits if mtn not in unacknowledged
    ), f"seed {seed}: unacknowledged callbacks"

    attempts = [a for _, mtn, _ in deposits for a in _callbacks(ecpay, mtn)]
    failed = [a for a in attempts if not a["ok"]]
    print(
        f"seed {seed}: {len(kill_times)} kills at {kill_times} s; {len(attempts)} deliveries, "
        f"{len(failed)} failed and retried; {len(given_up)} given up by ECPay and credited by reconcile"
    )
    assert failed, "no delivery was interrupted: the kills did not exercise anything"

    user = api.user(user_id)
    assert user["balance"] == sum(a for _, _, a in deposits), f"seed {seed}: {user}"
    for transaction_id, _mtn, amount in deposits:
        ledger = api.transaction(user_id, transaction_id)["ledger"]
        assert [e["delta_balance"] for e in ledger if e["kind"] == "deposit_paid"] == [amount], ledger
    report = audit(sqlite_store_url)
    assert report.clean, report.mismatches
    database = sqlite_store_url.removeprefix("sqlite:///")
    with sqlite3.connect(database) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)


def _callbacks(ecpay: Api, merchant_trade_no: str) -> list[dict[str, Any]]:
    reply = ecpay.request("GET", f"/sandbox/api/trades/{merchant_trade_no}")
    assert reply.status == 200, reply.text
    return [a for a in reply.json()["callbacks"] if a["kind"] == "return"]
