"""Small flows shared by the contract tests (money only ever arrives through ECPay)."""

from __future__ import annotations

from ecpay_lambda.wallet.models import PaymentMethod, Transaction, TransactionType, User
from ecpay_lambda.wallet.service import WalletService

from .conftest import URLS
from .notices import return_body


def new_user(service: WalletService, name: str = "alice") -> User:
    """A fresh active user."""
    return service.create_user(name, f"{name}@example.com")


def start_deposit(
    service: WalletService, user_id: str, amount: int, method: PaymentMethod = PaymentMethod.CREDIT
) -> tuple[Transaction, str]:
    """Create a deposit and check it out: (deposit, MerchantTradeNo of the attempt)."""
    txn, _ = service.create_transaction(user_id, TransactionType.DEPOSIT, amount, payment_method=method)
    form = service.checkout(user_id, txn.transaction_id, URLS)
    return txn, form.fields["MerchantTradeNo"]


def fund(service: WalletService, user_id: str, amount: int) -> Transaction:
    """Deposit ``amount`` through a checkout and a verified paid ReturnURL; the paid deposit."""
    txn, mtn = start_deposit(service, user_id, amount)
    reply = service.handle_return(return_body(mtn, amount), route_transaction_id=txn.transaction_id)
    assert (reply.accepted, reply.body, reply.outcome) == (True, "1|OK", "applied")
    return service.get_transaction(user_id, txn.transaction_id).transaction


def balance(service: WalletService, user_id: str) -> tuple[int, int]:
    """(balance, held) of a user."""
    user = service.get_user(user_id)
    return user.balance, user.held
