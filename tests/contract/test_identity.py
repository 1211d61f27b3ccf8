"""Issue 15 on every store: a user created for a sign-in identity is found by it; one user per identity."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

from ecpay_lambda.wallet.port import IdentityBound, UserExists, WalletStore
from tests.contract.test_port import _user


def test_a_user_created_for_an_identity_is_found_by_it(store: WalletStore) -> None:
    alice = _user("alice")
    store.create_user(alice, identity="idp|sub-1")
    assert store.get_user_by_identity("idp|sub-1") == alice
    assert store.get_user_by_identity("idp|sub-2") is None
    plain = _user("bob")
    store.create_user(plain)  # operators' users carry no identity
    assert store.get_user(plain.user_id) == plain
    assert store.get_user_by_identity("") is None
    assert store.list_users().total == 2


def test_one_user_per_identity(store: WalletStore) -> None:
    first = _user("alice")
    store.create_user(first, identity="sub-1")
    with pytest.raises(IdentityBound):
        store.create_user(_user("alice2"), identity="sub-1")
    assert store.list_users().total == 1  # nothing of the refused user was written
    with pytest.raises(UserExists):  # a taken username is still that error, identity or not
        store.create_user(_user("alice"), identity="sub-2")
    assert store.get_user_by_identity("sub-2") is None
    assert store.get_user_by_identity("sub-1") == first


def test_concurrent_creates_for_one_identity_make_one_user(store: WalletStore) -> None:
    def create(i: int) -> str:
        try:
            store.create_user(_user(f"racer{i}"), identity="sub-race")
        except IdentityBound:
            return "bound"
        return "created"

    with ThreadPoolExecutor(max_workers=4) as pool:
        outcomes = list(pool.map(create, range(8)))
    assert outcomes.count("created") == 1
    assert store.list_users().total == 1
    assert store.get_user_by_identity("sub-race") is not None
