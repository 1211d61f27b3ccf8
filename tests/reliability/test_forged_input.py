"""Forged input over HTTP: tampered, mis-signed, malformed, oversized and empty notifications.

Full size (``make soak``): 10,400 forgeries (800 of each of the 13 categories in forgery.py);
``make test``: 1,040. None may change a balance or a transaction; every one must be recorded by the
wallet (a notification record with a ``rejected:`` outcome) and answered with an error line
(``0|<reason>``), never ``1|OK``. Generated from a seed that the test prints on failure.
"""

from __future__ import annotations

import functools
import random
from collections import Counter
from typing import Any

from sqlalchemy import create_engine, func, select

from ecpay_lambda.store import sql_schema

from .conftest import ServerFactory, audit
from .forgery import Forger, Forgery, PeriodForger, Target
from .harness import OK, Api, paid_notification, run_parallel, size

CLIENTS = 32


def _snapshot(api: Api, user_id: str, transaction_ids: list[str]) -> dict[str, Any]:
    user = api.user(user_id)
    state: dict[str, Any] = {"user": (user["balance"], user["held"], user["status"])}
    for transaction_id in transaction_ids:
        detail = api.transaction(user_id, transaction_id)
        state[transaction_id] = (
            detail["status"],
            detail["amount"],
            detail.get("merchant_trade_no"),
            detail.get("trade_no"),
            detail["updated_at"],
            [(e["kind"], e["delta_balance"], e["delta_held"]) for e in detail["ledger"]],
        )
    return state


def _notification_rows(sqlite_url: str, after_seq: int) -> list[tuple[int, str, str | None]]:
    engine = create_engine(sqlite_url)
    table = sql_schema.notifications
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                select(table.c.seq, table.c.outcome, table.c.transaction_id)
                .where(table.c.seq > after_seq)
                .order_by(table.c.seq)
            ).all()
            return [(int(r[0]), str(r[1]), r[2]) for r in rows]
    finally:
        engine.dispose()


def _max_seq(sqlite_url: str) -> int:
    engine = create_engine(sqlite_url)
    try:
        with engine.connect() as conn:
            return int(
                conn.execute(select(func.coalesce(func.max(sql_schema.notifications.c.seq), 0))).scalar_one()
            )
    finally:
        engine.dispose()


def test_forged_notifications_change_nothing(sqlite_store_url: str, server_factory: ServerFactory) -> None:
    count = size(1_040, 10_400)
    seed = random.randrange(1 << 30)
    server = server_factory(sqlite_store_url, quiet=True)
    api = server.api(server.env["API_TOKEN"])
    user_id = api.create_user()

    # One paid deposit (money that must stay put) and four awaiting payment (what forgers aim at).
    paid_id = api.create_deposit(user_id, 500)
    paid_mtn = api.checkout(user_id, paid_id)["MerchantTradeNo"]
    assert api.notify(user_id, paid_id, paid_notification(paid_mtn, 500)).body == OK
    targets = []
    for amount, method in ((100, "Credit"), (250, "ATM"), (1_000, "ALL"), (3_000, "CVS")):
        transaction_id = api.create_deposit(user_id, amount)
        fields = api.checkout(user_id, transaction_id, method)
        targets.append(Target(user_id, transaction_id, fields["MerchantTradeNo"], amount))
    watched = [paid_id, *(t.transaction_id for t in targets)]
    before = _snapshot(api, user_id, watched)
    first_new_seq = _max_seq(sqlite_store_url)

    forgeries = Forger(targets, seed).make(count)

    def send(forgery: Forgery) -> tuple[int, bytes]:
        path = f"/users/{forgery.user_id}/transactions/{forgery.transaction_id}/return"
        reply = api.form(path, forgery.body, forgery.content_type)
        return reply.status, reply.body

    answers = run_parallel([functools.partial(send, f) for f in forgeries], workers=CLIENTS, deadline_s=900)

    accepted = [(f.category, f.detail, a) for f, a in zip(forgeries, answers, strict=True) if a[1] == OK]
    assert not accepted, f"seed {seed}: forgeries answered 1|OK: {accepted[:10]}"
    not_error_line = [
        (f.category, f.detail, a)
        for f, a in zip(forgeries, answers, strict=True)
        if not a[1].startswith(b"0|") or a[0] >= 500
    ]
    assert not not_error_line, f"seed {seed}: answers that are not an error line: {not_error_line[:10]}"

    after = _snapshot(api, user_id, watched)
    assert after == before, f"seed {seed}: state changed"
    report = audit(sqlite_store_url)
    assert report.clean, report.mismatches

    rows = _notification_rows(sqlite_store_url, first_new_seq)
    outcomes = Counter(outcome.split(":", 1)[0] for _, outcome, _ in rows)
    assert outcomes == Counter({"rejected": len(rows)}), f"seed {seed}: {outcomes}"
    if len(rows) != len(forgeries):
        by_answer = Counter((f.category, a[0], a[1][:24]) for f, a in zip(forgeries, answers, strict=True))
        raise AssertionError(
            f"seed {seed}: {len(forgeries)} forgeries sent, only {len(rows)} recorded "
            "(design §2: every request that reaches a callback route is recorded); "
            f"answers by category: {sorted(by_answer.items())}"
        )


def test_forged_period_notifications_change_nothing(
    sqlite_store_url: str, server_factory: ServerFactory
) -> None:
    """The same categories against PeriodReturnURL: charge #2 of paid recurring deposits."""
    count = size(260, 2_600)
    seed = random.randrange(1 << 30)
    server = server_factory(sqlite_store_url, quiet=True)
    api = server.api(server.env["API_TOKEN"])
    user_id = api.create_user()
    targets = []
    for amount in (300, 1_200):
        transaction_id = api.create_plan(user_id, amount)
        mtn = api.checkout(user_id, transaction_id)["MerchantTradeNo"]
        assert api.notify(user_id, transaction_id, paid_notification(mtn, amount)).body == OK
        targets.append(Target(user_id, transaction_id, mtn, amount))
    watched = [t.transaction_id for t in targets]
    before = _snapshot(api, user_id, watched)
    first_new_seq = _max_seq(sqlite_store_url)

    forgeries = PeriodForger(targets, seed).make(count)

    def send(forgery: Forgery) -> tuple[int, bytes]:
        path = f"/users/{forgery.user_id}/transactions/{forgery.transaction_id}/periodReturn"
        reply = api.form(path, forgery.body, forgery.content_type)
        return reply.status, reply.body

    answers = run_parallel([functools.partial(send, f) for f in forgeries], workers=CLIENTS, deadline_s=900)
    accepted = [(f.category, f.detail, a) for f, a in zip(forgeries, answers, strict=True) if a[1] == OK]
    assert not accepted, f"seed {seed}: forgeries answered 1|OK: {accepted[:10]}"
    assert all(a[1].startswith(b"0|") and a[0] < 500 for a in answers), f"seed {seed}"
    after = _snapshot(api, user_id, watched)
    assert after == before, f"seed {seed}: state changed"
    assert all(api.transaction(user_id, t)["recurring"]["charges_done"] == 1 for t in watched)
    report = audit(sqlite_store_url)
    assert report.clean, report.mismatches
    rows = _notification_rows(sqlite_store_url, first_new_seq)
    outcomes = Counter(outcome.split(":", 1)[0] for _, outcome, _ in rows)
    assert outcomes == Counter({"rejected": len(forgeries)}), f"seed {seed}: {outcomes}"
