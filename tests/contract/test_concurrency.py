"""Real threads against every adapter: duplicate notifications credit once, withdrawals never overdraw.

Sizes: the issue's numbers (20 workers x 50 deliveries; 100 withdrawals of 10 against 500) on SQL
stores. moto serializes every request through one single-threaded server and copies the table on
each transactional write, so the DynamoDB run uses smaller counts with the same shape (more
attempts than can succeed, all started together).
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TypeVar

from ecpay_lambda.wallet import errors
from ecpay_lambda.wallet.models import TransactionType
from ecpay_lambda.wallet.service import WalletService

from .helpers import balance, fund, new_user, start_deposit
from .notices import return_body

T = TypeVar("T")


@dataclass(frozen=True)
class Sizes:
    workers: int
    deliveries_each: int
    withdrawals: int
    withdraw_amount: int
    funded: int


SQL_SIZES = Sizes(workers=20, deliveries_each=50, withdrawals=100, withdraw_amount=10, funded=500)
DYNAMODB_SIZES = Sizes(workers=8, deliveries_each=4, withdrawals=24, withdraw_amount=10, funded=120)


def _sizes(store_kind: str) -> Sizes:
    return DYNAMODB_SIZES if store_kind == "dynamodb" else SQL_SIZES


def _together(workers: int, jobs: int, job: Callable[[int], T]) -> list[T]:
    """Run ``job(i)`` for ``jobs`` indices on ``workers`` threads, released at once by a barrier."""
    barrier = threading.Barrier(min(workers, jobs))

    def run(i: int) -> T:
        if i < barrier.parties:
            barrier.wait()
        return job(i)

    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(run, range(jobs)))


def test_same_paid_notification_from_many_threads_credits_once(
    service: WalletService, store_kind: str
) -> None:
    sizes = _sizes(store_kind)
    user = new_user(service)
    deposit, mtn = start_deposit(service, user.user_id, 700)
    bodies = [return_body(mtn, 700), return_body(mtn, 700, rtn_msg="paid")]

    def deliver_many(worker: int) -> list[str]:
        return [
            service.handle_return(
                bodies[(worker + n) % 2], route_transaction_id=deposit.transaction_id
            ).outcome
            for n in range(sizes.deliveries_each)
        ]

    outcomes = Counter(o for batch in _together(sizes.workers, sizes.workers, deliver_many) for o in batch)
    assert outcomes["applied"] == 1
    assert outcomes["duplicate"] == sizes.workers * sizes.deliveries_each - 1
    assert balance(service, user.user_id) == (700, 0)
    detail = service.get_transaction(user.user_id, deposit.transaction_id)
    assert [e.kind for e in detail.ledger] == ["deposit_paid"]
    assert len(detail.notifications) == sizes.workers * sizes.deliveries_each
    assert service.get_user(user.user_id).open_transactions == 0
    assert service.audit().clean


def test_parallel_withdrawals_never_overdraw(service: WalletService, store_kind: str) -> None:
    sizes = _sizes(store_kind)
    user = new_user(service)
    fund(service, user.user_id, sizes.funded)
    stop = threading.Event()
    seen_negative: list[tuple[int, int]] = []

    def watch() -> None:
        # Reads concurrently with the writers: no committed state may ever be negative.
        while not stop.is_set():
            now = balance(service, user.user_id)
            if now[0] < 0 or now[1] < 0:
                seen_negative.append(now)

    watcher = threading.Thread(target=watch)
    watcher.start()

    def withdraw(_: int) -> str:
        try:
            service.create_transaction(user.user_id, TransactionType.WITHDRAW, sizes.withdraw_amount)
        except errors.InsufficientBalance:
            return "refused"
        return "ok"

    try:
        results = Counter(_together(sizes.workers, sizes.withdrawals, withdraw))
    finally:
        stop.set()
        watcher.join()
    expected_ok = sizes.funded // sizes.withdraw_amount
    assert results == {"ok": expected_ok, "refused": sizes.withdrawals - expected_ok}
    assert seen_negative == []
    assert balance(service, user.user_id) == (0, sizes.funded)
    assert service.list_transactions(user.user_id).total == expected_ok + 1
    assert service.get_user(user.user_id).open_transactions == expected_ok
    assert service.audit().clean


def test_same_idempotency_key_from_many_threads_creates_one_transaction(
    service: WalletService, store_kind: str
) -> None:
    sizes = _sizes(store_kind)
    user = new_user(service)

    def create(_: int) -> tuple[str, bool]:
        txn, replayed = service.create_transaction(
            user.user_id, TransactionType.DEPOSIT, 100, idempotency_key="same-key"
        )
        return txn.transaction_id, replayed

    results = _together(sizes.workers, sizes.workers, create)
    assert len({tid for tid, _ in results}) == 1
    assert sum(1 for _, replayed in results if not replayed) == 1
    assert service.list_transactions(user.user_id).total == 1
    assert service.get_user(user.user_id).open_transactions == 1
