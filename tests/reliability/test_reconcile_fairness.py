"""Fairness: abandoned checkouts never starve a paid deposit whose notification was lost.

Many deposits are checked out at ECPay and never paid (the shopper closed the page); a few, checked out
last, are paid while ECPay's notifications are lost (``drop_callbacks``). ``ecpay-lambda reconcile
--now --limit L`` is then run again and again, as the schedule would run it. Each run takes the most
overdue deposits first and moves each one it asked about to the back (its next check is a backoff
later), so the runs walk the whole queue: every paid deposit is credited within
``ceil((abandoned + paid) / L) + 1`` runs, and no deposit is asked twice before every one was asked once.

The deposits are created over HTTP, as a shop would: requestPayment and the browser's POST to the
sandbox, 4 clients at a time (the harness has no faster way in: the sandbox keeps its trades in its own
process). The reconcile runs keep the service's grace period (15 minutes): ``--grace-minutes 0`` would
shorten the backoff to a minute (see docs/reliability.md, Findings).

``make test``: 60 abandoned + 5 paid, L = 20; ``make soak``: 500 + 20, L = 50.
"""

from __future__ import annotations

import math

from .conftest import ServerFactory, audit, open_test_store
from .harness import Api, run_command, run_parallel, size


def test_paid_deposits_are_reached_through_abandoned_ones(
    sqlite_store_url: str, server_factory: ServerFactory
) -> None:
    abandoned, paid, limit = size(60, 500), size(5, 20), size(20, 50)
    server = server_factory(sqlite_store_url, quiet=True)
    api = server.api(server.env["API_TOKEN"])
    ecpay = Api(server.base_url, scanner=server.scanner)
    assert ecpay.json("POST", "/sandbox/api/settings", {"drop_callbacks": True}).status == 200
    user_id = api.create_user()

    def check_out(amount: int) -> tuple[str, str]:
        transaction_id = api.create_deposit(user_id, amount)
        fields = api.checkout(user_id, transaction_id, "Credit")
        page = ecpay.form("/Cashier/AioCheckOut/V5", fields)
        assert page.status == 200, page.text[:300]
        return transaction_id, fields["MerchantTradeNo"]

    # The abandoned first: the paid ones are the last in the queue, the worst place for them.
    dropped = run_parallel([lambda: check_out(100) for _ in range(abandoned)], workers=4, deadline_s=900)
    payers = run_parallel([lambda a=200 + i: check_out(a) for i in range(paid)], workers=4, deadline_s=300)
    for _transaction_id, mtn in payers:
        reply = ecpay.json("POST", f"/sandbox/api/trades/{mtn}/pay", {})
        assert reply.status == 200 and reply.json()["status"] == "paid", reply.text
    assert api.user(user_id)["balance"] == 0

    total = abandoned + paid
    bound = math.ceil(total / limit) + 1
    env = {"STORE_URL": sqlite_store_url, "ECPAY_ENV": "sandbox", "ECPAY_BASE_URL": server.base_url}
    args = ["reconcile", "--json", "--now", "--limit", str(limit)]
    reports = []
    for _run in range(bound):
        result = run_command(args, env=env, scanner=server.scanner)
        assert result.returncode == 0, result.stderr + result.stdout
        report = result.json()
        assert report["errors"] == [] and report["stopped"] is None, report
        reports.append(report)
        if sum(r["paid"] for r in reports) == paid:
            break
    queries = [r["queries"] for r in reports]
    store = open_test_store(sqlite_store_url)
    asked = sorted(store.get_transaction(t).check_count for t, _ in dropped)  # type: ignore[union-attr]
    print(
        f"{abandoned} abandoned + {paid} paid, --limit {limit}: every paid deposit credited after "
        f"{len(reports)} runs (bound {bound}); queries per run {queries}, {sum(queries)} in all; "
        f"each abandoned one asked {asked[0]} to {asked[-1]} times"
    )
    assert sum(r["paid"] for r in reports) == paid, f"not all credited in {bound} runs: {reports}"
    # Every run takes a full batch while that many are awaiting, one query per deposit (one attempt).
    assert all(r["checked"] == r["queries"] == limit for r in reports), reports
    # Nobody was asked twice before everyone had been asked once.
    assert asked[0] >= 1 and asked[-1] <= 2, asked

    assert api.user(user_id)["balance"] == sum(200 + i for i in range(paid))
    for transaction_id, _mtn in payers:
        detail = api.transaction(user_id, transaction_id)
        assert detail["status"] == "paid"
        assert [e["delta_balance"] for e in detail["ledger"] if e["kind"] == "deposit_paid"] == [
            detail["amount"]
        ]
    result_audit = audit(sqlite_store_url)
    assert result_audit.clean, (result_audit.mismatches, result_audit.problems)
