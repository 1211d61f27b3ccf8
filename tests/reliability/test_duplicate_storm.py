"""Duplicate storm: many copies of the paid notifications of a few deposits, concurrently, over HTTP.

ECPay re-sends a notification until it reads ``1|OK`` (with ``RtnMsg=paid`` instead of ``交易成功``),
and several copies can be in flight at once. Whatever the interleaving, each deposit is credited
exactly once, every copy is answered ``1|OK`` and recorded, and the audit is clean — on every store.

Full size (``make soak``): 1,000 notifications = 10 deposits x 100 copies, 32 clients.
``make test``: 10 deposits x 20 copies.
"""

from __future__ import annotations

import functools
import random
from collections import Counter

from ecpay_lambda.store.outbox import read_outbox

from .conftest import ServerFactory, audit, open_test_store
from .harness import OK, paid_notification, period_notification, run_parallel, size

DEPOSITS = 10
CLIENTS = 32
RTN_MESSAGES = ("交易成功", "paid", "Succeeded", "paid (retry)", "付款成功")


def test_duplicate_storm_credits_each_deposit_once(store_url: str, server_factory: ServerFactory) -> None:
    copies = size(20, 100)
    seed = random.randrange(1 << 30)
    rng = random.Random(seed)
    server = server_factory(store_url, quiet=True)
    api = server.api(server.env["API_TOKEN"])
    user_id = api.create_user()

    deposits: list[tuple[str, str, int]] = []  # (transaction id, MerchantTradeNo, amount)
    for index in range(DEPOSITS):
        amount = 100 + 7 * index
        transaction_id = api.create_deposit(user_id, amount)
        fields = api.checkout(user_id, transaction_id)
        deposits.append((transaction_id, fields["MerchantTradeNo"], amount))

    # One payment per deposit (one TradeNo, as ECPay re-sends the same trade), re-sent with varied RtnMsg.
    storm: list[tuple[str, dict[str, str]]] = []
    for transaction_id, mtn, amount in deposits:
        trade_no = "2" + "".join(rng.choices("0123456789", k=19))
        for copy in range(copies):
            message = RTN_MESSAGES[copy % len(RTN_MESSAGES)] if copy else "交易成功"
            storm.append((transaction_id, paid_notification(mtn, amount, trade_no=trade_no, rtn_msg=message)))
    rng.shuffle(storm)

    def send(transaction_id: str, body: dict[str, str]) -> tuple[int, bytes, str]:
        reply = api.notify(user_id, transaction_id, body)
        return reply.status, reply.body, reply.headers.get("content-type", "")

    jobs = [functools.partial(send, t, b) for t, b in storm]
    answers = run_parallel(jobs, workers=CLIENTS, deadline_s=600)

    wrong = [a for a in answers if a[:2] != (200, OK)]
    assert not wrong, f"seed {seed}: {len(wrong)} of {len(answers)} not answered 200 1|OK: {wrong[:5]}"
    assert all(a[2].startswith("text/plain") for a in answers)

    user = api.user(user_id)
    assert user["balance"] == sum(amount for _, _, amount in deposits), f"seed {seed}: {user}"
    assert user["held"] == 0
    store = open_test_store(store_url)
    for transaction_id, _mtn, amount in deposits:
        detail = api.transaction(user_id, transaction_id)
        assert detail["status"] == "paid"
        credits = [e for e in detail["ledger"] if e["kind"] == "deposit_paid"]
        assert [e["delta_balance"] for e in credits] == [amount], f"seed {seed}: {detail['ledger']}"
        # Every copy is on record; exactly one of them changed anything.
        outcomes = Counter(r.outcome for r in store.list_notifications(transaction_id))
        assert sum(outcomes.values()) == copies, f"seed {seed}: {outcomes}"
        assert outcomes["applied"] == 1, f"seed {seed}: {outcomes}"
        assert outcomes["duplicate"] == copies - 1, f"seed {seed}: {outcomes}"
    report = audit(store_url)
    assert report.clean, report.mismatches
    # Events out (issue 15): the local outbox holds what the deployed Pipe publishes, one
    # deposit.paid per deposit however many copies of its notification arrived.
    events = read_outbox(server.workdir / "data" / "events.jsonl")
    assert Counter(e["name"] for e in events) == {"deposit.paid": DEPOSITS}, f"seed {seed}: {events[:3]}"
    assert {e["transaction_id"] for e in events} == {t for t, _, _ in deposits}


def test_period_charge_storm_credits_each_charge_once(store_url: str, server_factory: ServerFactory) -> None:
    """PeriodReturnURL (recurring top-ups): copies of charges #2..n of a few plans, concurrently."""
    plans, charges = 3, 4  # charges #2..#5 of each plan
    copies = size(10, 50)
    seed = random.randrange(1 << 30)
    rng = random.Random(seed)
    server = server_factory(store_url, quiet=True)
    api = server.api(server.env["API_TOKEN"])
    user_id = api.create_user()

    planned: list[tuple[str, str, int]] = []  # (plan deposit id, MerchantTradeNo, amount)
    for index in range(plans):
        amount = 200 + 11 * index
        transaction_id = api.create_plan(user_id, amount)
        mtn = api.checkout(user_id, transaction_id)["MerchantTradeNo"]
        assert api.notify(user_id, transaction_id, paid_notification(mtn, amount)).body == OK  # charge #1
        planned.append((transaction_id, mtn, amount))

    storm: list[tuple[str, dict[str, str]]] = []
    for transaction_id, mtn, amount in planned:
        for period in range(2, 2 + charges):
            for copy in range(copies):
                message = RTN_MESSAGES[copy % len(RTN_MESSAGES)] if copy else "交易成功"
                storm.append((transaction_id, period_notification(mtn, amount, period, rtn_msg=message)))
    rng.shuffle(storm)

    def send(transaction_id: str, body: dict[str, str]) -> tuple[int, bytes]:
        reply = api.notify_period(user_id, transaction_id, body)
        return reply.status, reply.body

    answers = run_parallel([functools.partial(send, t, b) for t, b in storm], workers=CLIENTS, deadline_s=600)
    wrong = [a for a in answers if a != (200, OK)]
    assert not wrong, f"seed {seed}: {len(wrong)} of {len(answers)} not answered 200 1|OK: {wrong[:5]}"

    user = api.user(user_id)
    assert user["balance"] == sum(amount * (1 + charges) for _, _, amount in planned), f"seed {seed}: {user}"
    store = open_test_store(store_url)
    for transaction_id, _mtn, amount in planned:
        detail = api.transaction(user_id, transaction_id)
        plan = detail["recurring"]
        assert plan["charges_done"] == 1 + charges and len(plan["charge_transaction_ids"]) == charges
        for charge_id in plan["charge_transaction_ids"]:
            charge = api.transaction(user_id, charge_id)
            assert [e["delta_balance"] for e in charge["ledger"]] == [amount], f"seed {seed}: {charge}"
        outcomes = Counter(r.outcome for r in store.list_notifications(transaction_id))
        assert outcomes["applied"] == 1 + charges, f"seed {seed}: {outcomes}"  # ReturnURL + each charge
        assert outcomes["duplicate"] == charges * (copies - 1), f"seed {seed}: {outcomes}"
    report = audit(store_url)
    assert report.clean, report.mismatches
    events = read_outbox(server.workdir / "data" / "events.jsonl")
    assert Counter(e["name"] for e in events) == {"deposit.paid": plans * (1 + charges)}, f"seed {seed}"
