"""Refund crash: kill -9 the server while card refunds flow; reconcile settles each by ECPay's records.

Many card deposits are paid, their trades left authorised (refund = N), moved to 要關帳 (full = E then
N, part = R) or closed (R) with the sandbox's close action. Refunds, whole or part, are then requested by
4 clients while the local server (``ecpay-lambda serve``: the API and its embedded ECPay sandbox, whose
trades persist in its data directory) is killed with SIGKILL at random moments and restarted on the
same port. A kill can land before the refund is stored, while it is pending (before, during or after
ECPay's DoAction, or between E and N), or after it is settled. Nothing is retried. The kills go on
(at least 2, or 10 under soak) until one of them has left a refund pending; the remaining refunds are
then made on a live server.

Afterwards one reconciliation pass, past the refunds' grace (the service's clock moved 16 minutes on;
``reconcile --now`` does not reach pending refunds: see docs/reliability.md), asks
CreditDetail/QueryTrade/V2 about every pending refund and settles it by what ECPay refunded. Then, for
every deposit: its refund is completed if and only if the sandbox's trade shows it refunded
(``refunded_amount``), and failed (points back) otherwise; each balance is what was paid minus the
completed refunds; nothing is left pending; the audit is clean (every completed refund carries ECPay's
confirmation).

ECPay accepts no DoAction from 20:15 to 20:30 Taipei: the sandbox's clock is moved to 10:00 Taipei
(``clock_offset_seconds``, set again after every restart), and the wallet in ``serve`` reads the
sandbox's clock, so the test runs the same whenever it runs.

``make test``: 24 deposits, at least 2 kills; ``make soak``: 150 deposits, at least 10 kills.
"""

from __future__ import annotations

import http.client
import queue
import random
import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from ecpay_lambda.api.composition import build_store, ecpay_config
from ecpay_lambda.config import parse_settings
from ecpay_lambda.wallet.audit import EVERYTHING
from ecpay_lambda.wallet.service import WalletService
from tests.support.clock import daytime_offset

from .conftest import ServerFactory, audit, open_test_store
from .harness import Api, ServerProcess, run_parallel, size, wait_until

WORKERS = 4
STATES = ("authorised", "to_be_closed", "closed")


def _sandbox(server: ServerProcess) -> Api:
    return Api(server.base_url, scanner=server.scanner)


def _trade(ecpay: Api, mtn: str) -> dict[str, Any]:
    reply = ecpay.request("GET", f"/sandbox/api/trades/{mtn}")
    assert reply.status == 200, reply.text
    return dict(reply.json())


def _transactions(api: Api, user_id: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    page = 1
    while True:
        reply = api.request("GET", f"/users/{user_id}/transactions?page={page}&pageSize=100")
        assert reply.status == 200, reply.text
        items = reply.json()["transactions"]
        found.extend(items)
        if len(items) < 100:
            return found
        page += 1


@pytest.mark.timeout(size(300, 1200))  # the soak size pays and refunds 300 deposits through 10+ restarts
def test_kill9_during_refunds_then_reconcile_settles_by_ecpay(
    sqlite_store_url: str, server_factory: ServerFactory
) -> None:
    count, kills_wanted = size(60, 300), size(2, 10)
    seed = random.randrange(1 << 30)
    rng = random.Random(seed)
    server = server_factory(sqlite_store_url, name="wallet", quiet=True)
    api = server.api(server.env["API_TOKEN"])
    offset = daytime_offset()

    def configure_sandbox() -> None:
        # Sandbox settings live in the process: set again after every restart, before any refund.
        reply = _sandbox(server).json("POST", "/sandbox/api/settings", {"clock_offset_seconds": offset})
        assert reply.status == 200, reply.text

    configure_sandbox()
    ecpay = _sandbox(server)
    user_id = api.create_user()

    def paid_deposit(index: int) -> dict[str, Any]:
        amount = 1000 + 10 * index
        transaction_id = api.create_deposit(user_id, amount)
        fields = api.checkout(user_id, transaction_id, "Credit")
        assert ecpay.form("/Cashier/AioCheckOut/V5", fields).status == 200
        mtn = fields["MerchantTradeNo"]
        assert ecpay.json("POST", f"/sandbox/api/trades/{mtn}/pay", {}).status == 200
        state = STATES[index % 3]
        if state != "authorised":
            reply = ecpay.json("POST", f"/sandbox/api/trades/{mtn}/close", {"state": state})
            assert reply.status == 200 and reply.json()["card_state"] == state, reply.text
        # An authorised trade can only be abandoned whole; the others are refunded whole or in part.
        part = state != "authorised" and (index // 3) % 2 == 1
        return {"id": transaction_id, "mtn": mtn, "amount": amount, "refund": amount // 2 if part else None}

    jobs = [lambda i=index: paid_deposit(i) for index in range(count)]
    deposits: list[dict[str, Any]] = run_parallel(jobs, workers=WORKERS, deadline_s=600)

    def all_paid() -> bool:
        return all(api.transaction(user_id, d["id"])["status"] == "paid" for d in deposits)

    assert wait_until(all_paid, timeout=120, interval=0.3), "the card payments were not all credited"
    paid_total = sum(d["amount"] for d in deposits)
    assert api.user(user_id)["balance"] == paid_total

    # One more authorised trade, never refunded: a partial refund of it is refused after asking ECPay
    # (QueryTrade/V2) for its state, so a new process loads the whole refund path before the clock runs.
    spare = api.create_deposit(user_id, 500)
    fields = api.checkout(user_id, spare, "Credit")
    assert ecpay.form("/Cashier/AioCheckOut/V5", fields).status == 200
    assert ecpay.json("POST", f"/sandbox/api/trades/{fields['MerchantTradeNo']}/pay", {}).status == 200
    assert wait_until(lambda: api.transaction(user_id, spare)["status"] == "paid", timeout=60)
    paid_total += 500

    def warm_up() -> None:
        api.close()  # after a restart this thread's kept-alive connection is dead
        reply = api.json("POST", f"/users/{user_id}/transactions/{spare}/refund", {"amount": 100})
        assert (reply.status, reply.error_code()) == (409, "refund_partial_before_close"), reply.text

    warm_up()

    # --- refunds while the server is killed ----------------------------------------------------
    todo: queue.Queue[dict[str, Any]] = queue.Queue()
    for deposit in rng.sample(deposits, len(deposits)):
        todo.put(deposit)
    ready = threading.Event()
    ready.set()
    starts = [server.starts]  # which process the server is: a new one means new connections
    answers: dict[str, str] = {}  # deposit id -> HTTP status (or the connection error) of its refund
    lock = threading.Lock()

    def refund_worker(worker_seed: int) -> None:
        pace = random.Random(worker_seed)
        client = server.api(server.env["API_TOKEN"])
        seen = server.starts
        while True:
            try:
                deposit = todo.get_nowait()
            except queue.Empty:
                return
            ready.wait(timeout=120)
            if starts[0] != seen:  # a kept-alive connection to the killed process is dead
                client.close()
                seen = starts[0]
            payload = {} if deposit["refund"] is None else {"amount": deposit["refund"]}
            path = f"/users/{user_id}/transactions/{deposit['id']}/refund"
            try:
                reply = client.json("POST", path, payload)
                answer = f"{reply.status} {reply.error_code() or ''}".strip()
            except (OSError, http.client.HTTPException) as exc:  # the server died under it: outcome unknown
                client.close()
                answer = f"lost ({type(exc).__name__})"
            with lock:
                answers[deposit["id"]] = answer
            time.sleep(pace.uniform(0.0, 0.05))

    workers = [
        threading.Thread(target=refund_worker, args=(rng.randrange(1 << 30),), daemon=True)
        for _ in range(WORKERS)
    ]
    for worker in workers:
        worker.start()
    store = open_test_store(sqlite_store_url)
    kill_times: list[float] = []
    started = time.monotonic()
    while any(w.is_alive() for w in workers) and time.monotonic() - started < 600:
        time.sleep(rng.uniform(0.1, 0.5))
        ready.clear()
        server.kill9()
        kill_times.append(round(time.monotonic() - started, 2))
        # Enough kills once one of them left a refund pending: the rest are refunded on a live server.
        enough = len(kill_times) >= kills_wanted and store.list_pending_refunds(
            due_before=EVERYTHING, limit=1
        )
        server.restart()
        configure_sandbox()
        warm_up()
        starts[0] = server.starts
        ready.set()
        if enough or todo.empty():
            break
    for worker in workers:
        worker.join(timeout=300)
    assert not any(w.is_alive() for w in workers), "the refund clients did not finish"
    assert len(answers) == count

    # --- what the wallet holds before reconciliation ---------------------------------------------
    refunds = [t for t in _transactions(api, user_id) if t["transaction_type"] == "refund"]
    before = {
        status: sum(r["status"] == status for r in refunds) for status in ("pending", "completed", "failed")
    }
    lost = sum(a.startswith("lost") for a in answers.values())
    print(
        f"seed {seed}: {len(kill_times)} kills at {kill_times} s; {count} refund requests, {lost} cut by a "
        f"kill; answers {sorted(set(answers.values()))}; refunds before reconcile {before}"
    )

    settings = parse_settings(
        {"STORE_URL": sqlite_store_url, "ECPAY_ENV": "sandbox", "ECPAY_BASE_URL": server.base_url}
    )
    later = WalletService(
        build_store(settings),
        ecpay_config(settings),
        # The server's wallet reads the sandbox's clock: past the refunds' 15-minute grace by that clock.
        clock=lambda: datetime.now(UTC) + timedelta(seconds=offset, minutes=16),
    )
    report = later.reconcile(limit=10_000)
    print(f"reconcile: {report}")
    assert report.errors == [] and report.review == [] and report.stopped is None, report
    assert report.refunds_checked == before["pending"], report
    assert report.refunds_settled + report.refunds_reversed == before["pending"], report
    assert before["pending"] >= 1, f"seed {seed}: {len(kill_times)} kills, none left a refund pending"

    # --- every refund agrees with ECPay's records ------------------------------------------------
    refunds = [t for t in _transactions(api, user_id) if t["transaction_type"] == "refund"]
    by_deposit: dict[str, list[dict[str, Any]]] = {}
    for refund in refunds:
        by_deposit.setdefault(refund["related_transaction_id"], []).append(refund)
    completed_total = 0
    confirmed_by: dict[str, int] = {}
    for deposit in deposits:
        trade = _trade(ecpay, deposit["mtn"])
        detail = api.transaction(user_id, deposit["id"])
        mine = by_deposit.get(deposit["id"], [])
        assert len(mine) <= 1, mine  # one request per deposit, never retried
        assert all(r["status"] in ("completed", "failed") for r in mine), mine
        completed = sum(r["amount"] for r in mine if r["status"] == "completed")
        where = (
            f"seed {seed}: deposit {deposit['id']} ({answers[deposit['id']]}): {mine} / {trade['actions']}"
        )
        # Completed iff ECPay refunded it, by the same amount; failed iff ECPay refunded nothing.
        assert trade["refunded_amount"] == completed, where
        assert detail["refunded_amount"] == completed, where
        expected_status = (
            "paid"
            if completed == 0
            else "refunded"
            if completed == deposit["amount"]
            else "partially_refunded"
        )
        assert detail["status"] == expected_status, where
        assert detail["related_transaction_id"] is None, where
        for refund in mine:
            if refund["status"] == "completed":
                source = refund["payment_info"]["confirmed_by"]
                confirmed_by[source] = confirmed_by.get(source, 0) + 1
        completed_total += completed
    after = {
        status: sum(r["status"] == status for r in refunds) for status in ("pending", "completed", "failed")
    }
    print(f"refunds after reconcile {after}; completed refunds confirmed by {confirmed_by}")
    assert after["pending"] == 0

    assert api.user(user_id)["balance"] == paid_total - completed_total
    result = audit(sqlite_store_url)
    assert result.clean, (result.mismatches, result.problems)
    assert not [line for line in result.stuck if line.startswith("refund")], result.stuck
