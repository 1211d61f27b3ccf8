"""Checkout attempts, the reconciliation schedule, paid-deposit listing and reopen_user, on every store.

What the wallet's reconciliation and statement runs rely on: attempts come back exactly as written,
due listings are most overdue first with an inclusive ``due_before``, and ``iter_paid_deposits`` is
exactly [paid_from, paid_to) by payment time, across pages and (on DynamoDB) across day partitions.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone

import pytest

from ecpay_lambda.store import dynamodb as dynamodb_adapter
from ecpay_lambda.store import sql as sql_adapter
from ecpay_lambda.wallet.ids import new_transaction_id, new_user_id
from ecpay_lambda.wallet.models import (
    Attempt,
    AttemptState,
    PaymentMethod,
    Transaction,
    TransactionStatus,
    TransactionType,
    User,
    UserStatus,
)
from ecpay_lambda.wallet.port import AtomicWrite, TransactionPut, WalletStore

T0 = datetime(2026, 11, 27, 4, 0, 0, 123456, tzinfo=UTC)
TAIPEI = timezone(timedelta(hours=8))
US = timedelta(microseconds=1)


@pytest.fixture
def user(store: WalletStore) -> User:
    """An active user of the store under test."""
    created = User(new_user_id(), "alice", "alice@example.com", 0, 0, UserStatus.ACTIVE, 0, T0, T0)
    store.create_user(created)
    return created


def _txn(user: User, **changes: object) -> Transaction:
    values: dict[str, object] = {
        "transaction_id": new_transaction_id(),
        "user_id": user.user_id,
        "transaction_type": TransactionType.DEPOSIT,
        "amount": 100,
        "status": TransactionStatus.AWAITING_PAYMENT,
        "version": 1,
        "created_at": T0,
        "updated_at": T0,
    }
    values.update(changes)
    return Transaction(**values)  # type: ignore[arg-type]


def _put(store: WalletStore, user: User, **changes: object) -> Transaction:
    txn = _txn(user, **changes)
    store.commit(AtomicWrite(transactions=[TransactionPut(txn, 0)]))
    return txn


def _ids(transactions: Iterator[Transaction] | list[Transaction]) -> list[str]:
    return [t.transaction_id for t in transactions]


def _by_id(*transactions: Transaction) -> list[Transaction]:
    return sorted(transactions, key=lambda t: t.transaction_id)


# --- attempts and schedule round trip ------------------------------------------------------------


def _attempts() -> tuple[Attempt, ...]:
    """Twenty attempts covering every field: None fields, odd times, empty and non-ASCII payment info."""
    first = Attempt(
        merchant_trade_no="A0000000000000000001",
        payment_method=None,  # chosen on ECPay's page (ALL)
        state=AttemptState.FAILED,
        created_at=datetime(2026, 11, 27, 12, 0, 0, 1, tzinfo=TAIPEI),  # stored as UTC, same instant
    )
    offline = Attempt(
        merchant_trade_no="A0000000000000000002",
        payment_method=PaymentMethod.CVS,
        state=AttemptState.AWAITING_OFFLINE_PAYMENT,
        created_at=T0 + timedelta(minutes=1),
        trade_no="2611271200000002",
        payment_info={"PaymentNo": "LLL22331234", "StoreName": "全家 台北店", "Barcode1": ""},
        expires_at=T0 + timedelta(days=7, microseconds=999999),
    )
    middle = tuple(
        Attempt(f"A{i:019d}", PaymentMethod.ATM, AttemptState.EXPIRED, T0 + timedelta(minutes=i))
        for i in range(3, 20)
    )
    paid = Attempt(
        merchant_trade_no="A0000000000000000020",
        payment_method=PaymentMethod.CREDIT,
        state=AttemptState.PAID,
        created_at=T0 + timedelta(minutes=20),
        trade_no="2611271200000020",
        payment_info={"payment_type": "Credit_CreditCard"},
    )
    return (first, offline, *middle, paid)


def test_attempts_and_schedule_round_trip_exactly(store: WalletStore, user: User) -> None:
    attempts = _attempts()
    assert len(attempts) == 20
    txn = _put(
        store,
        user,
        status=TransactionStatus.AWAITING_OFFLINE_PAYMENT,
        attempts=attempts,
        next_check_at=T0 + timedelta(minutes=45, microseconds=7),
        check_count=4,
    )
    assert store.get_transaction(txn.transaction_id) == txn
    assert store.list_transactions(user.user_id).items == [txn]
    stored = store.get_transaction(txn.transaction_id)
    assert stored is not None
    assert stored.attempts[0].created_at == attempts[0].created_at  # one instant, whatever the zone
    assert stored.attempts[1].payment_info["StoreName"] == "全家 台北店"
    assert stored.attempts[1].payment_info["Barcode1"] == ""
    assert (stored.attempts[0].payment_method, stored.attempts[0].trade_no) == (None, None)

    paid_at = T0 + timedelta(minutes=21, microseconds=3)
    paid = txn._replace(
        status=TransactionStatus.PAID,
        version=2,
        attempts=attempts[:1],
        next_check_at=None,
        check_count=0,
        paid_at=paid_at,
        updated_at=paid_at,
    )
    store.commit(AtomicWrite(transactions=[TransactionPut(paid, 1)]))
    assert store.get_transaction(txn.transaction_id) == paid
    assert store.list_transactions(user.user_id).items == [paid]


def test_a_transaction_without_attempts_reads_back_empty(store: WalletStore, user: User) -> None:
    withdraw = _put(store, user, transaction_type=TransactionType.WITHDRAW, status=TransactionStatus.PENDING)
    stored = store.get_transaction(withdraw.transaction_id)
    assert stored is not None
    assert (stored.attempts, stored.next_check_at, stored.check_count, stored.paid_at) == ((), None, 0, None)


# --- due listings -------------------------------------------------------------------------------


def test_awaiting_payment_is_listed_by_due_time_most_overdue_first(store: WalletStore, user: User) -> None:
    scheduled = _put(store, user, updated_at=T0, next_check_at=T0 + timedelta(minutes=30))
    fallback = _put(  # no next_check_at: due at its last update
        store, user, status=TransactionStatus.AWAITING_OFFLINE_PAYMENT, updated_at=T0 + timedelta(minutes=10)
    )
    early = _put(store, user, updated_at=T0 + timedelta(hours=1), next_check_at=T0 + timedelta(minutes=5))
    tied = _by_id(
        _put(store, user, next_check_at=T0 + timedelta(minutes=20)),
        _put(store, user, updated_at=T0 + timedelta(minutes=20)),
    )
    _put(store, user, next_check_at=T0 + timedelta(hours=2))  # not due yet
    _put(store, user, status=TransactionStatus.PAID, next_check_at=T0)  # not awaiting
    _put(store, user, status=TransactionStatus.PENDING)  # not at ECPay yet
    _put(store, user, transaction_type=TransactionType.WITHDRAW, status=TransactionStatus.PENDING)

    due = T0 + timedelta(minutes=30)
    expected = [early, fallback, *tied, scheduled]
    assert store.list_awaiting_payment(due_before=due) == expected
    assert store.list_awaiting_payment(due_before=due - US) == expected[:-1]  # due_before is inclusive
    assert store.list_awaiting_payment(due_before=due, limit=2) == expected[:2]
    assert store.list_awaiting_payment(due_before=due, limit=0) == []
    assert store.list_awaiting_payment(due_before=T0 + timedelta(minutes=5) - US) == []


def test_a_new_schedule_moves_a_deposit_in_the_due_order(store: WalletStore, user: User) -> None:
    first = _put(store, user, updated_at=T0)
    second = _put(store, user, updated_at=T0 + timedelta(minutes=1))
    due = T0 + timedelta(minutes=10)
    assert store.list_awaiting_payment(due_before=due) == [first, second]
    # Checked without a change: backed off past the other one (and past due_before).
    backed_off = first._replace(version=2, next_check_at=T0 + timedelta(minutes=5), check_count=1)
    store.commit(AtomicWrite(transactions=[TransactionPut(backed_off, 1)]))
    assert store.list_awaiting_payment(due_before=due) == [second, backed_off]
    later = backed_off._replace(version=3, next_check_at=T0 + timedelta(hours=1), check_count=2)
    store.commit(AtomicWrite(transactions=[TransactionPut(later, 2)]))
    assert store.list_awaiting_payment(due_before=due) == [second]


def test_pending_refunds_are_listed_by_due_time_most_overdue_first(store: WalletStore, user: User) -> None:
    def refund(**changes: object) -> Transaction:
        return _put(
            store, user, transaction_type=TransactionType.REFUND, status=TransactionStatus.PENDING, **changes
        )

    late = refund(updated_at=T0, next_check_at=T0 + timedelta(minutes=15))
    fallback = refund(updated_at=T0 + timedelta(minutes=3))
    soon = refund(updated_at=T0 + timedelta(minutes=40), next_check_at=T0 + timedelta(minutes=1))
    refund(next_check_at=T0 + timedelta(days=1))
    _put(store, user, transaction_type=TransactionType.REFUND, status=TransactionStatus.COMPLETED)
    _put(store, user, status=TransactionStatus.PENDING)  # a deposit, not a refund
    due = T0 + timedelta(minutes=15)
    assert store.list_pending_refunds(due_before=due) == [soon, fallback, late]
    assert store.list_pending_refunds(due_before=due - US) == [soon, fallback]
    assert store.list_pending_refunds(due_before=due, limit=1) == [soon]
    assert store.list_awaiting_payment(due_before=due) == []


# --- paid deposits ------------------------------------------------------------------------------


@pytest.fixture
def small_pages(monkeypatch: pytest.MonkeyPatch) -> int:
    """Pages of 2 in both adapters' iter_paid_deposits, so a few rows span several pages."""
    monkeypatch.setattr(sql_adapter, "_PAID_PAGE", 2)
    monkeypatch.setattr(dynamodb_adapter, "_PAID_PAGE", 2)
    return 2


def _paid(store: WalletStore, user: User, paid_at: datetime, **changes: object) -> Transaction:
    values: dict[str, object] = {"status": TransactionStatus.PAID, "paid_at": paid_at, "updated_at": paid_at}
    values.update(changes)
    return _put(store, user, **values)


def test_paid_deposits_are_exactly_those_paid_in_the_range(
    store: WalletStore, user: User, small_pages: int
) -> None:
    start = datetime(2026, 11, 27, 0, 0, tzinfo=TAIPEI)  # 2026-11-26 16:00 UTC
    end = start + timedelta(days=2)  # three UTC days: the 26th, 27th and 28th
    _paid(store, user, start - US)  # before the range
    at_start = _paid(store, user, start)
    refunded = _paid(store, user, start + timedelta(hours=7, minutes=59), status=TransactionStatus.REFUNDED)
    tied = _by_id(  # same payment time, across a page boundary: ordered by id
        _paid(store, user, start + timedelta(hours=8)),  # midnight UTC: the second day's partition
        _paid(store, user, start + timedelta(hours=8), status=TransactionStatus.PARTIALLY_REFUNDED),
        _paid(store, user, start + timedelta(hours=8)),
    )
    next_day = _paid(store, user, start + timedelta(days=1, hours=9))
    last = _paid(store, user, end - US)
    _paid(store, user, end)  # paid_to is exclusive
    _put(store, user, status=TransactionStatus.PAID, updated_at=start + timedelta(hours=1))  # no paid_at
    _paid(store, user, start + timedelta(hours=2), status=TransactionStatus.CANCELLED)  # not paid-family
    _paid(store, user, start + timedelta(hours=2), status=TransactionStatus.AWAITING_PAYMENT)
    _paid(store, user, start + timedelta(hours=3), transaction_type=TransactionType.REFUND)  # not a deposit

    listed = list(store.iter_paid_deposits(paid_from=start, paid_to=end))
    expected = [at_start, refunded, *tied, next_day, last]
    assert len(expected) > small_pages
    assert listed == expected
    assert _ids(store.iter_paid_deposits(paid_from=start + US, paid_to=end - US)) == _ids(expected[1:-1])
    assert list(store.iter_paid_deposits(paid_from=start, paid_to=start)) == []
    assert list(store.iter_paid_deposits(paid_from=end, paid_to=start)) == []
    one_day = list(
        store.iter_paid_deposits(paid_from=start + timedelta(hours=8), paid_to=start + timedelta(days=1))
    )
    assert one_day == tied


def test_a_payment_refunded_later_stays_listed_at_its_payment_time(store: WalletStore, user: User) -> None:
    paid_at = T0 + timedelta(minutes=5)
    deposit = _paid(store, user, paid_at)
    refunded = deposit._replace(
        version=2, status=TransactionStatus.REFUNDED, refunded_amount=100, updated_at=T0 + timedelta(days=3)
    )
    store.commit(AtomicWrite(transactions=[TransactionPut(refunded, 1)]))
    assert list(store.iter_paid_deposits(paid_from=T0, paid_to=T0 + timedelta(days=1))) == [refunded]
    assert (
        list(store.iter_paid_deposits(paid_from=T0 + timedelta(days=3), paid_to=T0 + timedelta(days=4))) == []
    )


def test_many_paid_deposits_on_one_day_page_through_in_order(
    store: WalletStore, user: User, small_pages: int
) -> None:
    deposits = [_paid(store, user, T0 + timedelta(seconds=i)) for i in reversed(range(7))]
    listed = list(store.iter_paid_deposits(paid_from=T0, paid_to=T0 + timedelta(minutes=1)))
    assert listed == list(reversed(deposits))


# --- reopen_user --------------------------------------------------------------------------------


def test_reopen_user(store: WalletStore, user: User) -> None:
    closed = store.close_user(user.user_id, T0 + timedelta(minutes=1))
    assert closed.status is UserStatus.CLOSED
    later = T0 + timedelta(minutes=2)
    reopened = store.reopen_user(user.user_id, later)
    assert reopened == user._replace(status=UserStatus.ACTIVE, updated_at=later)
    assert store.get_user(user.user_id) == reopened
    assert store.reopen_user(user.user_id, later + timedelta(minutes=1)) is None  # active: not closed
    assert store.get_user(user.user_id) == reopened  # unchanged by the refused reopen
    assert store.reopen_user("u-missing", later) is None
    assert store.get_user("u-missing") is None
