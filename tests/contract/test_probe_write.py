"""``probe_write`` (for /healthz) on every adapter: repeatable, and invisible to the wallet's data."""

from __future__ import annotations

from ecpay_lambda.wallet.port import WalletStore


def test_probe_write_is_repeatable_and_leaves_the_wallet_alone(store: WalletStore) -> None:
    before = store.list_users(page_size=100)
    store.probe_write()
    store.probe_write()  # overwrites the same record: no error, nothing accumulates
    after = store.list_users(page_size=100)
    assert after.total == before.total and after.items == before.items
    assert list(store.iter_users()) == list(before.items)
    assert store.ping()
