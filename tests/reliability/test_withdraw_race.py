"""Withdraw race: 200 withdrawals at once over HTTP against one user.

Exactly balance/amount of them succeed (201), every other one gets a clear 409
``insufficient_balance``, and the balance is never negative — not at the end, and not in any read
taken while the race runs (balance + held stays the deposited total throughout).

No answer may be a 5xx. On the SQL stores all 200 requests are in flight at once. On DynamoDB the
stand-in is one single-threaded moto process (tooling.md) that serves one request at a time, slower
than a real partition: 200 requests at once queue behind it for longer than the adapter's 10 s read
timeout and fail as timeouts of the emulator, not of the wallet. There the 200 withdrawals are
released together but at most 16 are in flight, which still races every one of them against 15
others on the same user item.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections import Counter
from typing import Any

from .conftest import ServerFactory, audit
from .harness import OK, Api, paid_notification

WITHDRAWALS = 200
AMOUNT = 100
BALANCE = 5_000  # 50 withdrawals fit


def _fund(api: Api, user_id: str, amount: int) -> None:
    transaction_id = api.create_deposit(user_id, amount)
    fields = api.checkout(user_id, transaction_id)
    reply = api.notify(user_id, transaction_id, paid_notification(fields["MerchantTradeNo"], amount))
    assert (reply.status, reply.body) == (200, OK), reply.text
    assert api.user(user_id)["balance"] == amount


def test_parallel_withdrawals_never_overdraw(store_url: str, server_factory: ServerFactory) -> None:
    server = server_factory(store_url, quiet=True)
    api = server.api(server.env["API_TOKEN"])
    user_id = api.create_user()
    _fund(api, user_id, BALANCE)

    barrier = threading.Barrier(WITHDRAWALS, timeout=120)
    in_flight = threading.BoundedSemaphore(16 if store_url.startswith("dynamodb") else WITHDRAWALS)
    results: list[tuple[int, str | None]] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def withdraw() -> None:
        client = server.api(server.env["API_TOKEN"])
        try:
            key = {"Idempotency-Key": uuid.uuid4().hex}
            client.connect()  # its own connection, open before the start: the race is the requests
            barrier.wait()
            with in_flight:
                reply = client.create_transaction(user_id, "withdraw", AMOUNT, headers=key)
            with lock:
                results.append((reply.status, reply.error_code()))
        except BaseException as exc:  # recorded and re-raised below in the test's thread
            with lock:
                errors.append(exc)
        finally:
            client.close()

    samples: list[dict[str, Any]] = []
    done = threading.Event()

    def watch() -> None:
        watcher = server.api(server.env["API_TOKEN"])
        end = time.monotonic() + 300
        while not done.is_set() and time.monotonic() < end:
            samples.append(watcher.user(user_id))
            time.sleep(0.05)
        watcher.close()

    monitor = threading.Thread(target=watch, daemon=True)
    monitor.start()
    threads = [threading.Thread(target=withdraw, daemon=True) for _ in range(WITHDRAWALS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    done.set()
    monitor.join(timeout=60)
    assert not any(t.is_alive() for t in threads), "withdrawals still running after 300 s"
    assert not errors, errors[:3]

    outcomes = Counter(results)
    expected = BALANCE // AMOUNT
    assert outcomes == Counter({(201, None): expected, (409, "insufficient_balance"): WITHDRAWALS - expected})

    assert samples, "the monitor took no reading during the race"
    for user in samples:
        assert user["balance"] >= 0 and user["held"] >= 0, user
        assert user["balance"] + user["held"] == BALANCE, user
    final = api.user(user_id)
    assert (final["balance"], final["held"]) == (0, BALANCE), final
    listing = api.request("GET", f"/users/{user_id}/transactions?pageSize=100&page=1").json()
    assert listing["total"] == expected + 1  # the successful withdrawals and the funding deposit
    report = audit(store_url)
    assert report.clean, report.mismatches
