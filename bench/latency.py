"""Warm latency, in process, of the Lambda handlers on each store, against the store's physical floor.

Three things are timed in one interleaved loop, so that machine noise hits them alike:

- ``notification``: the callbacks handler (``ecpay_lambda.api.ecpay_callbacks.handler``) with the API
  Gateway event of a signed paid ReturnURL for a deposit awaiting payment (a first delivery: it
  verifies, records and credits);
- ``create transaction``: the management handler (``ecpay_lambda.api.handlers.handler``) with the
  event of ``POST /users/{id}/transactions`` for a deposit;
- ``floor``: the store's own bare commit of one row, through the same engine or client: an
  ``INSERT`` in its own transaction on SQL, one ``PutItem`` on DynamoDB.

Warm: each handler has served requests before the timing starts (cold start is ``cold_start``'s).
"""

from __future__ import annotations

import json
import os
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .common import BenchStore, Table, percentile, quiet_stdout
from .wallet_ops import Events, Wallet, context, paid_body, settings_env


@dataclass
class Timings:
    """Seconds per call, by what was timed."""

    samples: dict[str, list[float]]

    def p(self, name: str, q: float) -> float:
        """Percentile ``q`` of ``name`` in milliseconds."""
        return percentile(self.samples[name], q) * 1000


def _floor(store: Any, kind: str) -> Callable[[], None]:
    """One bare commit of one row on ``store``'s own engine or client."""
    if kind == "dynamodb":
        client, table = store.client, store.table_name

        def put() -> None:
            client.put_item(
                TableName=table, Item={"pk": {"S": f"BENCH#{uuid.uuid4().hex}"}, "sk": {"S": "FLOOR"}}
            )

        return put
    from sqlalchemy import Column, Integer, MetaData, String, Table, insert  # noqa: PLC0415

    metadata = MetaData()
    floor = Table("bench_floor", metadata, Column("id", Integer, primary_key=True), Column("v", String(40)))
    metadata.create_all(store.engine)
    engine = store.engine

    def commit_one() -> None:
        with engine.begin() as conn:
            conn.execute(insert(floor).values(v=uuid.uuid4().hex))

    return commit_one


def measure(store: BenchStore, iterations: int, warmup: int = 10) -> Timings:
    """Time the three paths ``iterations`` times each (after ``warmup`` untimed rounds)."""
    from ecpay_lambda.api import composition  # noqa: PLC0415

    os.environ.update(settings_env(store.url))
    os.environ.pop("API_TOKEN", None)
    composition.reset()
    wallet = Wallet.open(store.url)
    events = Events()
    user_id = wallet.user()
    callbacks = events.handler("POST", f"/users/{user_id}/transactions/x/return")
    management = events.handler("POST", f"/users/{user_id}/transactions")
    floor = _floor(wallet.service.store, store.kind)
    ctx = context()
    total = warmup + iterations
    # Deposits awaiting payment, prepared before any timing.
    awaiting = [wallet.awaiting(user_id, 100) for _ in range(total)]
    create_body = json.dumps({"transaction_type": "deposit", "amount": 100}).encode()
    create_event = events.event("POST", f"/users/{user_id}/transactions", create_body)
    samples: dict[str, list[float]] = {"notification": [], "create transaction": [], "floor": []}

    with quiet_stdout():
        for index, (transaction_id, mtn) in enumerate(awaiting):
            path = f"/users/{user_id}/transactions/{transaction_id}/return"
            notify_event = events.event(
                "POST", path, paid_body(mtn, 100), "application/x-www-form-urlencoded"
            )
            started = time.perf_counter()
            floor()
            floor_s = time.perf_counter() - started

            started = time.perf_counter()
            answer = callbacks(notify_event, ctx)
            notify_s = time.perf_counter() - started
            if answer.get("body") != "1|OK":
                raise RuntimeError(f"notification answered {answer}")

            started = time.perf_counter()
            created = management(dict(create_event), ctx)
            create_s = time.perf_counter() - started
            if created.get("statusCode") != 201:
                raise RuntimeError(f"create transaction answered {created}")
            if index >= warmup:
                samples["floor"].append(floor_s)
                samples["notification"].append(notify_s)
                samples["create transaction"].append(create_s)
    composition.reset()
    return Timings(samples)


def table(results: dict[str, Timings]) -> Table:
    """p50/p99 per store and path, and each as a ratio to the floor's p50/p99."""
    rows: list[list[Any]] = []
    for kind, timings in results.items():
        floor50, floor99 = timings.p("floor", 50), timings.p("floor", 99)
        rows.append([f"{kind}: floor (bare commit of one row)", floor50, floor99, 1.0, 1.0])
        for name in ("notification", "create transaction"):
            p50, p99 = timings.p(name, 50), timings.p(name, 99)
            rows.append([f"{kind}: {name}", p50, p99, p50 / floor50, p99 / floor99])
    counts = ", ".join(f"{kind} {len(t.samples['floor'])}" for kind, t in results.items())
    return Table(
        f"Warm latency in process (samples per path: {counts}; interleaved)",
        ["path", "p50 ms", "p99 ms", "p50 / floor p50", "p99 / floor p99"],
        rows,
        note="DynamoDB here is moto in one local process: its floor is moto's, not AWS's.",
    )
