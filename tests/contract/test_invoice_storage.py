"""Issue 13 on every store: a deposit's e-invoice round-trips, the job's due list follows it, and a
user's invoice settings are stored with the user."""

from __future__ import annotations

from datetime import timedelta
from types import MappingProxyType

from ecpay_lambda.ecpay.testing import FakeEcpay
from ecpay_lambda.wallet.invoice_state import (
    InvoiceAllowance,
    InvoiceState,
    InvoiceStatus,
    requested,
)
from ecpay_lambda.wallet.models import TransactionStatus
from ecpay_lambda.wallet.port import AtomicWrite, TransactionPut, WalletStore
from tests.contract.conftest import Clock, make_service
from tests.contract.helpers import fund, new_user
from tests.contract.test_port import T0, _txn, _user


def _put(store: WalletStore, old_version: int, new: object) -> None:
    store.commit(AtomicWrite(transactions=(TransactionPut(new, old_version),)))  # type: ignore[arg-type]


def test_an_invoice_round_trips_with_its_deposit(store: WalletStore) -> None:
    user = _user()
    store.create_user(user)
    inv = InvoiceState(
        InvoiceStatus.ALLOWANCE,
        buyer=MappingProxyType({"kind": "donation", "love_code": "168001"}),
        number="AB12345678",
        date=T0,
        random_number="1234",
        allowances=(InvoiceAllowance("2026112712345678", 40, T0 + timedelta(days=1)),),
        tries=2,
        next_attempt_at=T0 + timedelta(minutes=5),
        error="timeout",
    )
    txn = _txn(user.user_id, status=TransactionStatus.PARTIALLY_REFUNDED, paid_at=T0, invoice=inv)
    _put(store, 0, txn)
    assert store.get_transaction(txn.transaction_id) == txn
    assert store.list_transactions(user.user_id).items == [txn]
    plain = _txn(user.user_id)
    _put(store, 0, plain)
    assert store.get_transaction(plain.transaction_id).invoice is None  # type: ignore[union-attr]


def test_the_due_list_follows_the_invoice_work(store: WalletStore) -> None:
    user = _user()
    store.create_user(user)
    wanted = _txn(user.user_id, invoice=requested({"kind": "email"}))
    _put(store, 0, wanted)
    later = T0 + timedelta(hours=1)
    assert store.list_invoices_due(due_before=later) == []  # requested: not paid yet, nothing to do
    paid = wanted._replace(
        version=2,
        status=TransactionStatus.PAID,
        paid_at=T0,
        invoice=wanted.invoice._replace(status=InvoiceStatus.PENDING),  # type: ignore[union-attr]
    )
    _put(store, 1, paid)
    assert store.list_invoices_due(due_before=later) == [paid]
    assert store.list_invoices_due(due_before=T0 - timedelta(seconds=1)) == []  # not due yet
    # A failed attempt moves it later: due again only after its next attempt time.
    retry = paid._replace(
        version=3,
        invoice=paid.invoice._replace(tries=1, next_attempt_at=T0 + timedelta(hours=2)),  # type: ignore[union-attr]
    )
    _put(store, 2, retry)
    assert store.list_invoices_due(due_before=later) == []
    assert store.list_invoices_due(due_before=T0 + timedelta(hours=3)) == [retry]
    issued = retry._replace(
        version=4,
        invoice=InvoiceState(InvoiceStatus.ISSUED, number="AB00000001", date=T0, random_number="0001"),
    )
    _put(store, 3, issued)
    assert store.list_invoices_due(due_before=T0 + timedelta(days=9)) == []
    # A confirmed refund makes it due again (void or allowance), with no hook in the refund code.
    refunded = issued._replace(version=5, status=TransactionStatus.REFUNDED, refunded_amount=100)
    _put(store, 4, refunded)
    assert store.list_invoices_due(due_before=T0 + timedelta(days=9)) == [refunded]
    # While a refund is still being settled with ECPay, nothing is due.
    settling = refunded._replace(version=6, related_transaction_id="r" * 12)
    _put(store, 5, settling)
    assert store.list_invoices_due(due_before=T0 + timedelta(days=9)) == []


def test_the_due_list_is_most_overdue_first_and_limited(store: WalletStore) -> None:
    user = _user()
    store.create_user(user)
    made = []
    for minutes in (30, 10, 20):
        txn = _txn(
            user.user_id,
            status=TransactionStatus.PAID,
            paid_at=T0,
            invoice=InvoiceState(InvoiceStatus.PENDING, next_attempt_at=T0 + timedelta(minutes=minutes)),
        )
        _put(store, 0, txn)
        made.append(txn)
    due = store.list_invoices_due(due_before=T0 + timedelta(hours=1))
    assert [t.transaction_id for t in due] == [
        made[1].transaction_id,
        made[2].transaction_id,
        made[0].transaction_id,
    ]
    assert store.list_invoices_due(due_before=T0 + timedelta(hours=1), limit=1) == [made[1]]


def test_invoice_settings_are_stored_with_the_user(store: WalletStore) -> None:
    user = _user()
    store.create_user(user)
    assert store.get_user(user.user_id).invoice_settings == {}  # type: ignore[union-attr]
    settings = {"kind": "company", "tax_id": "04595257", "name": "公司名稱", "email": "a@example.com"}
    updated = store.set_invoice_settings(user.user_id, settings, T0 + timedelta(minutes=1))
    assert updated is not None
    assert dict(updated.invoice_settings) == settings
    assert updated.balance == user.balance and updated.username == user.username
    again = store.get_user(user.user_id)
    assert again is not None and dict(again.invoice_settings) == settings
    assert store.set_invoice_settings(user.user_id, {}, T0 + timedelta(minutes=2)) is not None
    cleared = store.get_user(user.user_id)
    assert cleared is not None and dict(cleared.invoice_settings) == {}
    assert store.set_invoice_settings("missing-user", settings, T0) is None
    created = _user("bob")._replace(invoice_settings=MappingProxyType({"kind": "email"}))
    store.create_user(created)
    bob = store.get_user(created.user_id)
    assert bob is not None and dict(bob.invoice_settings) == {"kind": "email"}


# --- the wallet's own writes, on every store ------------------------------------------------------


def test_the_credit_and_the_invoice_marker_are_one_write(store: WalletStore) -> None:
    """A deposit made while invoicing is on is 'requested'; the credit's write makes it 'pending' and
    due, so a crash right after the credit (nothing issued yet) leaves the job its work."""
    clock = Clock()
    service = make_service(store, FakeEcpay(), clock)
    service.invoicing = True
    user = new_user(service)
    paid = fund(service, user.user_id, 500)
    assert paid.invoice is not None and paid.invoice.status is InvoiceStatus.PENDING
    assert [t.transaction_id for t in store.list_invoices_due(due_before=clock.now)] == [paid.transaction_id]
    assert service.get_user(user.user_id).balance == 500  # the same write credited the money
    service.invoicing = False
    plain = fund(service, user.user_id, 300)
    assert plain.invoice is None  # invoicing off: no invoice, nothing queued
    assert len(store.list_invoices_due(due_before=clock.now)) == 1
