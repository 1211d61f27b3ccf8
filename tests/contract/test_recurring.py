"""Recurring top-ups on every store: the plan is kept, each later charge (PeriodReturnURL) becomes its own
paid deposit exactly once, declined charges are recorded, concurrent duplicates credit once."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

from ecpay_lambda.ecpay.testing import FakeEcpay
from ecpay_lambda.wallet import errors
from ecpay_lambda.wallet.models import PaymentMethod, Plan, PlanState, TransactionType
from ecpay_lambda.wallet.periodic import charge_transaction_id, plan_state
from ecpay_lambda.wallet.port import WalletStore
from ecpay_lambda.wallet.service import CheckoutUrls, WalletService

from .conftest import URLS
from .helpers import balance, new_user
from .notices import CREDENTIALS, return_body, signed_body

PERIOD_URLS = CheckoutUrls(**{**URLS.__dict__, "period_return_url": "https://api.example.com/p/periodReturn"})


def period_body(mtn: str, amount: int, successes: int, *, rtn_code: str = "1", **extra: str) -> bytes:
    """A signed PeriodReturnURL body (§5.5)."""
    return signed_body(
        {
            "MerchantID": CREDENTIALS.merchant_id,
            "MerchantTradeNo": mtn,
            "StoreID": "",
            "RtnCode": rtn_code,
            "RtnMsg": "交易成功" if rtn_code == "1" else "declined",
            "PeriodType": "M",
            "Frequency": "1",
            "ExecTimes": "6",
            "Amount": str(amount),
            "Gwsr": str(10000 + successes) if rtn_code == "1" else "",
            "ProcessDate": f"2026/12/{10 + successes:02d} 10:00:00",
            "AuthCode": "777777",
            "FirstAuthAmount": str(amount),
            "TotalSuccessTimes": str(successes),
            **extra,
        }
    )


def _paid_plan(service: WalletService, amount: int = 300) -> tuple[str, str, str]:
    user = new_user(service)
    txn, _ = service.create_transaction(
        user.user_id, TransactionType.DEPOSIT, amount, recurring=Plan("M", 1, 6)
    )
    assert txn.payment_method is PaymentMethod.CREDIT
    form = service.checkout(user.user_id, txn.transaction_id, PERIOD_URLS)
    assert (form.fields["PeriodType"], form.fields["ExecTimes"], form.fields["PeriodAmount"]) == (
        "M",
        "6",
        str(amount),
    )
    mtn = form.fields["MerchantTradeNo"]
    assert service.handle_return(return_body(mtn, amount)).outcome == "applied"
    return user.user_id, txn.transaction_id, mtn


def test_the_plan_is_stored_and_read_back(service: WalletService, store: WalletStore) -> None:
    user_id, tid, _ = _paid_plan(service)
    stored = store.get_transaction(tid)
    assert stored is not None and stored.plan == Plan("M", 1, 6)
    listed = store.list_transactions(user_id).items
    assert [t.plan for t in listed] == [Plan("M", 1, 6)]


def test_each_charge_is_credited_once_as_its_own_deposit(service: WalletService, store: WalletStore) -> None:
    user_id, tid, mtn = _paid_plan(service)
    cb = service.callbacks()
    outcomes = [
        cb.handle_period_return(period_body(mtn, 300, 2), route_transaction_id=tid).outcome,
        cb.handle_period_return(period_body(mtn, 300, 2, RtnMsg="paid")).outcome,
        cb.handle_period_return(period_body(mtn, 300, 2, rtn_code="10200058")).outcome,
        cb.handle_period_return(period_body(mtn, 300, 2, rtn_code="10200058")).outcome,
        cb.handle_period_return(period_body(mtn, 300, 3)).outcome,
        cb.handle_period_return(period_body(mtn, 301, 4)).outcome,
        cb.handle_period_return(period_body(mtn, 300, 4, SimulatePaid="1")).outcome,
    ]
    assert outcomes == [
        "applied",
        "duplicate",
        "applied:period_failed",
        "duplicate",
        "applied",
        "rejected:amount",
        "ignored:simulate_paid",
    ]
    assert balance(service, user_id) == (900, 0)
    plan_txn = store.get_transaction(tid)
    assert plan_txn is not None and plan_txn.plan is not None
    assert plan_txn.plan.charged == ((mtn, 2), (mtn, 3)) and len(plan_txn.plan.failures) == 1
    for period in (2, 3):
        charge = store.get_transaction(charge_transaction_id(tid, mtn, period))
        assert charge is not None and charge.status == "paid" and charge.paid_at is not None
        assert [e.delta_balance for e in store.list_ledger(transaction_id=charge.transaction_id)] == [300]
    assert service.audit().clean


def test_concurrent_duplicates_credit_once(service: WalletService) -> None:
    user_id, _, mtn = _paid_plan(service)
    cb = service.callbacks()
    body = period_body(mtn, 300, 2)
    with ThreadPoolExecutor(max_workers=4) as pool:
        replies = list(pool.map(lambda _: cb.handle_period_return(body), range(8)))
    assert all(r.body == "1|OK" for r in replies)
    assert sorted(r.outcome for r in replies).count("applied") == 1
    assert balance(service, user_id) == (600, 0)
    assert service.audit().clean


def test_cancel_stops_the_plan(service: WalletService, fake_ecpay: FakeEcpay) -> None:
    user_id, tid, mtn = _paid_plan(service)
    cancelled = service.update_withdraw(user_id, tid, "cancel")  # PATCH cancel on the plan's deposit
    assert [(a["MerchantTradeNo"], a["Action"]) for a in fake_ecpay.period_actions] == [(mtn, "Cancel")]
    assert plan_state(cancelled) is PlanState.CANCELLED and cancelled.status == "paid"
    with pytest.raises(errors.InvalidState):
        service.plans().cancel(user_id, tid)
    # A charge ECPay made before the cancel reached it is still real money: credited and flagged.
    reply = service.callbacks().handle_period_return(period_body(mtn, 300, 2))
    assert reply.outcome == "flagged:paid_after_cancel"
    assert balance(service, user_id) == (600, 0)


def test_reauth_asks_ecpay_and_a_key_reused_with_another_plan_is_refused(
    service: WalletService, fake_ecpay: FakeEcpay
) -> None:
    user_id, tid, mtn = _paid_plan(service)
    assert service.plans().reauth(user_id, tid) == {"rtn_code": "1", "rtn_msg": "OK"}
    assert [(a["MerchantTradeNo"], a["Action"]) for a in fake_ecpay.period_actions] == [(mtn, "ReAuth")]
    first, replayed = service.create_transaction(
        user_id, TransactionType.DEPOSIT, 500, idempotency_key="k-plan-1", recurring=Plan("M", 1, 12)
    )
    again, replayed_again = service.create_transaction(
        user_id, TransactionType.DEPOSIT, 500, idempotency_key="k-plan-1", recurring=Plan("M", 1, 12)
    )
    assert (replayed, replayed_again, again.transaction_id) == (False, True, first.transaction_id)
    with pytest.raises(errors.IdempotencyMismatch):
        service.create_transaction(
            user_id, TransactionType.DEPOSIT, 500, idempotency_key="k-plan-1", recurring=Plan("M", 1, 6)
        )
    with pytest.raises(errors.InvalidState):  # a one-time deposit has no plan to act on
        service.plans().cancel(
            user_id, service.create_transaction(user_id, TransactionType.DEPOSIT, 100)[0].transaction_id
        )
