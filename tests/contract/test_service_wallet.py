"""Users, deposits and withdrawals through the WalletService, on every adapter."""

from __future__ import annotations

import pytest

from ecpay_lambda.wallet import errors
from ecpay_lambda.wallet.models import (
    PaymentMethod,
    TransactionStatus,
    TransactionType,
    UserStatus,
)
from ecpay_lambda.wallet.service import WalletService

from .conftest import URLS, Clock
from .helpers import balance, fund, new_user, start_deposit


def test_create_get_list_and_close_user(service: WalletService, clock: Clock) -> None:
    alice = new_user(service, "alice")
    assert (alice.balance, alice.held, alice.status) == (0, 0, UserStatus.ACTIVE)
    assert len(alice.user_id) == 16
    assert service.get_user(alice.user_id) == alice
    clock.advance(seconds=1)  # users list in creation order
    new_user(service, "bob")
    page = service.list_users(page=1, page_size=1)
    assert page.total == 2 and [u.username for u in page.items] == ["alice"]
    closed = service.close_user(alice.user_id)
    assert closed.status is UserStatus.CLOSED
    with pytest.raises(errors.UserClosed):
        service.close_user(alice.user_id)
    with pytest.raises(errors.NotFound):
        service.get_user("u-nobody")
    with pytest.raises(errors.NotFound):
        service.close_user("u-nobody")


def test_username_taken_and_bad_user_input(service: WalletService) -> None:
    new_user(service, "alice")
    with pytest.raises(errors.Conflict):
        service.create_user("alice", "other@example.com")
    with pytest.raises(errors.InvalidRequest):
        service.create_user("", "a@example.com")
    with pytest.raises(errors.InvalidRequest):
        service.create_user("zed", "not-an-email")
    assert service.list_users().total == 1
    with pytest.raises(errors.InvalidRequest):
        service.list_users(page=0)
    with pytest.raises(errors.InvalidRequest):
        service.list_users(page_size=1000)
    with pytest.raises(errors.InvalidRequest):
        service.list_users(cursor="garbage")


def test_deposit_is_credited_once_through_ecpay(service: WalletService) -> None:
    user = new_user(service)
    paid = fund(service, user.user_id, 500)
    assert paid.status is TransactionStatus.PAID
    assert balance(service, user.user_id) == (500, 0)
    detail = service.get_transaction(user.user_id, paid.transaction_id)
    assert [(e.kind, e.delta_balance) for e in detail.ledger] == [("deposit_paid", 500)]
    assert [n.outcome for n in detail.notifications] == ["applied"]
    assert service.get_user(user.user_id).open_transactions == 0
    assert service.audit().clean


def test_withdraw_holds_then_completes_or_cancels(service: WalletService) -> None:
    user = new_user(service)
    fund(service, user.user_id, 500)
    w1, replayed = service.create_transaction(user.user_id, TransactionType.WITHDRAW, 200)
    assert not replayed and w1.status is TransactionStatus.PENDING
    assert balance(service, user.user_id) == (300, 200)
    done = service.update_withdraw(user.user_id, w1.transaction_id, "complete")
    assert done.status is TransactionStatus.COMPLETED
    assert balance(service, user.user_id) == (300, 0)
    w2, _ = service.create_transaction(user.user_id, TransactionType.WITHDRAW, 300)
    assert balance(service, user.user_id) == (0, 300)
    cancelled = service.update_withdraw(user.user_id, w2.transaction_id, "cancel")
    assert cancelled.status is TransactionStatus.CANCELLED
    assert balance(service, user.user_id) == (300, 0)
    with pytest.raises(errors.InvalidState):
        service.update_withdraw(user.user_id, w2.transaction_id, "complete")
    kinds = [e.kind for e in service.get_transaction(user.user_id, w1.transaction_id).ledger]
    assert kinds == ["withdraw_hold", "withdraw_complete"]
    assert service.audit().clean


def test_withdraw_beyond_balance_is_refused_and_changes_nothing(service: WalletService) -> None:
    user = new_user(service)
    fund(service, user.user_id, 100)
    with pytest.raises(errors.InsufficientBalance):
        service.create_transaction(user.user_id, TransactionType.WITHDRAW, 101)
    assert balance(service, user.user_id) == (100, 0)
    assert service.list_transactions(user.user_id).total == 1
    service.create_transaction(user.user_id, TransactionType.WITHDRAW, 100)
    assert balance(service, user.user_id) == (0, 100)


@pytest.mark.parametrize("amount", [0, -5, True, 1.5, "10", 10**12])
def test_bad_amounts_are_invalid_requests(service: WalletService, amount: object) -> None:
    user = new_user(service)
    for ttype in (TransactionType.DEPOSIT, TransactionType.WITHDRAW):
        with pytest.raises(errors.InvalidRequest):
            service.create_transaction(user.user_id, ttype, amount)  # type: ignore[arg-type]
    assert service.list_transactions(user.user_id).total == 0
    assert service.get_user(user.user_id).open_transactions == 0


def test_unknown_and_closed_users_get_typed_errors(service: WalletService) -> None:
    with pytest.raises(errors.NotFound):
        service.create_transaction("u-nobody", TransactionType.DEPOSIT, 100)
    with pytest.raises(errors.NotFound):
        service.list_transactions("u-nobody")
    user = new_user(service)
    service.close_user(user.user_id)
    with pytest.raises(errors.UserClosed):
        service.create_transaction(user.user_id, TransactionType.DEPOSIT, 100)
    assert service.list_transactions(user.user_id).total == 0
    with pytest.raises(errors.InvalidRequest):
        service.create_transaction(user.user_id, "loan", 100)  # type: ignore[arg-type]
    with pytest.raises(errors.InvalidRequest):
        service.create_transaction(user.user_id, TransactionType.REFUND, 100)


def test_a_create_refused_by_the_write_says_why(service: WalletService) -> None:
    # A new transaction is one conditional write, no read of the user first: the refusal alone must
    # still tell a missing user, a closed one and a short balance apart (and write nothing).
    with pytest.raises(errors.NotFound):
        service.create_transaction("u-nobody", TransactionType.WITHDRAW, 100, idempotency_key="k1")
    assert service.store.get_idempotency("u-nobody", "k1") is None
    user = new_user(service)
    with pytest.raises(errors.InsufficientBalance):
        service.create_transaction(user.user_id, TransactionType.WITHDRAW, 100)
    service.close_user(user.user_id)
    with pytest.raises(errors.UserClosed):  # closed and short of money: closed is the answer
        service.create_transaction(user.user_id, TransactionType.WITHDRAW, 100)
    assert service.list_transactions(user.user_id).total == 0


def test_a_missing_users_listing_is_not_found_whatever_the_cursor(service: WalletService) -> None:
    with pytest.raises(errors.NotFound):
        service.list_transactions("u-nobody", cursor="not-a-cursor")
    user = new_user(service)
    with pytest.raises(errors.InvalidRequest):
        service.list_transactions(user.user_id, cursor="not-a-cursor")


def test_user_with_money_or_open_transactions_cannot_close(service: WalletService) -> None:
    user = new_user(service)
    deposit, _ = service.create_transaction(user.user_id, TransactionType.DEPOSIT, 100)
    with pytest.raises(errors.UserNotEmpty):
        service.close_user(user.user_id)  # an open (pending) deposit
    assert service.get_user(user.user_id).status is UserStatus.ACTIVE
    rich = new_user(service, "rich")
    fund(service, rich.user_id, 100)
    with pytest.raises(errors.UserNotEmpty):
        service.close_user(rich.user_id)
    w, _ = service.create_transaction(rich.user_id, TransactionType.WITHDRAW, 100)
    with pytest.raises(errors.UserNotEmpty):
        service.close_user(rich.user_id)  # held money
    service.update_withdraw(rich.user_id, w.transaction_id, "complete")
    assert service.close_user(rich.user_id).status is UserStatus.CLOSED
    assert deposit.status is TransactionStatus.PENDING


def test_a_deposit_cannot_be_completed_by_an_operator(service: WalletService) -> None:
    user = new_user(service)
    deposit, _ = start_deposit(service, user.user_id, 300)
    with pytest.raises(errors.InvalidState):
        service.update_withdraw(user.user_id, deposit.transaction_id, "complete")
    # Cancelling is for deposits no attempt of which can still be paid: this one's checkout is open.
    with pytest.raises(errors.DepositPayable):
        service.update_withdraw(user.user_id, deposit.transaction_id, "cancel")
    got = service.get_transaction(user.user_id, deposit.transaction_id).transaction
    assert got.status is TransactionStatus.AWAITING_PAYMENT
    assert balance(service, user.user_id) == (0, 0)
    with pytest.raises(errors.InvalidRequest):
        service.update_withdraw(user.user_id, deposit.transaction_id, "approve")  # type: ignore[arg-type]


def test_transactions_of_another_user_are_not_found(service: WalletService) -> None:
    alice = new_user(service, "alice")
    bob = new_user(service, "bob")
    deposit, _ = service.create_transaction(alice.user_id, TransactionType.DEPOSIT, 100)
    with pytest.raises(errors.NotFound):
        service.get_transaction(bob.user_id, deposit.transaction_id)
    with pytest.raises(errors.NotFound):
        service.checkout(bob.user_id, deposit.transaction_id, URLS)
    with pytest.raises(errors.NotFound):
        service.get_transaction(alice.user_id, "zzzzzzzzzzzz")


def test_idempotency_key_replays_and_detects_a_different_body(service: WalletService, clock: Clock) -> None:
    user = new_user(service)
    first, replayed = service.create_transaction(
        user.user_id, TransactionType.DEPOSIT, 100, payment_method=PaymentMethod.ATM, idempotency_key="k-1"
    )
    assert not replayed
    again, replayed = service.create_transaction(
        user.user_id, TransactionType.DEPOSIT, 100, payment_method=PaymentMethod.ATM, idempotency_key="k-1"
    )
    assert replayed and again.transaction_id == first.transaction_id
    with pytest.raises(errors.IdempotencyMismatch):
        service.create_transaction(user.user_id, TransactionType.DEPOSIT, 101, idempotency_key="k-1")
    with pytest.raises(errors.IdempotencyMismatch):
        service.create_transaction(user.user_id, TransactionType.WITHDRAW, 100, idempotency_key="k-1")
    assert service.list_transactions(user.user_id).total == 1
    clock.advance(hours=23, minutes=59)
    _, replayed = service.create_transaction(
        user.user_id, TransactionType.DEPOSIT, 100, payment_method=PaymentMethod.ATM, idempotency_key="k-1"
    )
    assert replayed
    clock.advance(minutes=2)  # past 24 hours: the key is free again
    fresh, replayed = service.create_transaction(
        user.user_id, TransactionType.DEPOSIT, 101, idempotency_key="k-1"
    )
    assert not replayed and fresh.transaction_id != first.transaction_id
    with pytest.raises(errors.InvalidRequest):
        service.create_transaction(user.user_id, TransactionType.DEPOSIT, 5, idempotency_key="")
    with pytest.raises(errors.InvalidRequest):
        service.create_transaction(user.user_id, TransactionType.DEPOSIT, 5, idempotency_key="x" * 256)


def test_listing_transactions_newest_first(service: WalletService, clock: Clock) -> None:
    user = new_user(service)
    made = []
    for amount in (10, 20, 30):
        txn, _ = service.create_transaction(user.user_id, TransactionType.DEPOSIT, amount)
        made.append(txn.transaction_id)
        clock.advance(seconds=1)
    page = service.list_transactions(user.user_id, page=1, page_size=2)
    assert page.total == 3
    assert [t.transaction_id for t in page.items] == made[::-1][:2]
    assert page.next_cursor is not None
    rest = service.list_transactions(user.user_id, page_size=2, cursor=page.next_cursor)
    assert [t.transaction_id for t in rest.items] == made[:1]
    assert rest.next_cursor is None
