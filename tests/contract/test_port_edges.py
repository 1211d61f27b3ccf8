"""The adapters agree on the edges: the exact error (or the exact empty answer) each one gives.

Every adapter runs this file (see conftest): a difference between SQL and DynamoDB on any of these
is a bug in one of them, never "adapter-specific behaviour" the wallet must guess at.
"""

from __future__ import annotations

from datetime import timedelta

import pytest

from ecpay_lambda.wallet.errors import InvalidRequest
from ecpay_lambda.wallet.models import Page, TransactionStatus
from ecpay_lambda.wallet.port import (
    AtomicWrite,
    DuplicateNotification,
    InvalidCursor,
    TransactionPut,
    UserDelta,
    UserNotActive,
    WalletStore,
)

from .test_port import T0, _entry, _funded, _note, _txn, _user

GARBAGE = ["not-a-cursor", "", "e30", "W10", "eyJwayI6MX0", "%%%", "bnVsbA"]


@pytest.mark.parametrize("cursor", GARBAGE)
def test_a_malformed_cursor_is_invalid_cursor_in_every_listing(store: WalletStore, cursor: str) -> None:
    user = _user()
    store.create_user(user)
    with pytest.raises(InvalidCursor):
        store.list_users(cursor=cursor)
    with pytest.raises(InvalidCursor):
        store.list_active_users(cursor=cursor)
    with pytest.raises(InvalidCursor):
        store.list_transactions(user.user_id, cursor=cursor)


def test_invalid_cursor_is_an_invalid_request() -> None:
    # The API answers 400 invalid_request for it, like any other refused input.
    assert issubclass(InvalidCursor, InvalidRequest)
    assert InvalidCursor().code == "invalid_request"


def _two_pages_of_transactions(store: WalletStore) -> tuple[str, str]:
    """(user id, a next cursor of that user's transactions)."""
    user = _user(f"u{len(store.list_users().items)}")
    store.create_user(user)
    for i in range(3):
        txn = _txn(user.user_id, created_at=T0 + timedelta(seconds=i))
        store.commit(AtomicWrite(transactions=[TransactionPut(txn, 0)]))
    cursor = store.list_transactions(user.user_id, page_size=2).next_cursor
    assert cursor is not None
    return user.user_id, cursor


def test_a_cursor_continues_only_its_own_listing(store: WalletStore) -> None:
    alice, alice_cursor = _two_pages_of_transactions(store)
    bob, _ = _two_pages_of_transactions(store)
    users_cursor = store.list_users(page_size=1).next_cursor
    assert users_cursor is not None
    # Another user's transactions: refused, never a page of someone else's listing.
    with pytest.raises(InvalidCursor):
        store.list_transactions(bob, cursor=alice_cursor)
    # A users cursor is not a transactions cursor, and the other way round.
    with pytest.raises(InvalidCursor):
        store.list_transactions(alice, cursor=users_cursor)
    with pytest.raises(InvalidCursor):
        store.list_users(cursor=alice_cursor)
    # ... but the users listings share theirs (list_active_users documents it).
    assert len(store.list_active_users(page_size=1, cursor=users_cursor).items) == 1
    assert len(store.list_transactions(alice, page_size=2, cursor=alice_cursor).items) == 1


@pytest.mark.parametrize(("page", "page_size"), [(0, 20), (-1, 20), (1, 0), (1, -5)])
def test_a_page_below_one_is_invalid_request(store: WalletStore, page: int, page_size: int) -> None:
    user = _user()
    store.create_user(user)
    with pytest.raises(InvalidRequest):
        store.list_users(page=page, page_size=page_size)
    with pytest.raises(InvalidRequest):
        store.list_active_users(page=page, page_size=page_size)
    with pytest.raises(InvalidRequest):
        store.list_transactions(user.user_id, page=page, page_size=page_size)


def test_listings_of_a_missing_user_are_empty(store: WalletStore) -> None:
    assert store.list_transactions("u-missing") == Page([], 0, None)
    assert store.list_ledger(user_id="u-missing") == []
    assert store.list_notifications("t-missing") == []
    assert store.get_transaction("t-missing") is None
    assert store.get_idempotency("u-missing", "key") is None
    assert store.get_user_by_identity("nobody") is None


def test_a_page_past_the_end_is_empty_with_the_total(store: WalletStore) -> None:
    user = _user()
    store.create_user(user)
    assert store.list_users(page=5, page_size=2) == Page([], 1, None)
    assert store.list_active_users(page=5, page_size=2) == Page([], 1, None)
    assert store.list_transactions(user.user_id, page=3) == Page([], 0, None)


def test_closing_a_missing_or_closed_user_is_user_not_active(store: WalletStore) -> None:
    with pytest.raises(UserNotActive):
        store.close_user("u-missing", T0)
    user = _user()
    store.create_user(user)
    store.close_user(user.user_id, T0)
    with pytest.raises(UserNotActive):
        store.close_user(user.user_id, T0)
    assert store.reopen_user("u-missing", T0) is None


def test_list_ledger_needs_a_transaction_or_a_user_and_filters_by_both(store: WalletStore) -> None:
    user, txn = _funded(store, 300)
    with pytest.raises(ValueError, match="transaction_id or user_id"):
        store.list_ledger()
    by_txn = store.list_ledger(transaction_id=txn.transaction_id)
    assert [e.delta_balance for e in by_txn] == [300]
    assert store.list_ledger(transaction_id=txn.transaction_id, user_id=user.user_id) == by_txn
    assert store.list_ledger(transaction_id=txn.transaction_id, user_id="u-someone-else") == []


def test_a_recorded_dedupe_key_is_duplicate_notification_on_its_own_too(store: WalletStore) -> None:
    user, txn = _funded(store, 100)
    store.record_notification(_note("k-1", txn.transaction_id))
    with pytest.raises(DuplicateNotification):
        store.record_notification(_note("k-1", txn.transaction_id))
    with pytest.raises(DuplicateNotification):
        store.commit(
            AtomicWrite(
                transactions=[TransactionPut(txn._replace(version=2, status=TransactionStatus.PAID), 1)],
                user_delta=UserDelta(user.user_id, delta_balance=1),
                ledger=[_entry(txn, 1)],
                notification=_note("k-1", txn.transaction_id),
            )
        )
    assert [n.dedupe_key for n in store.list_notifications(txn.transaction_id)] == ["k-1"]
    assert store.get_user(user.user_id).balance == 100  # type: ignore[union-attr]
