"""The speculative credit (``port.run_with_guess``, ReturnURL's ``route_user_id``) on every store.

DynamoDB applies a first paid delivery in one conditional write; SQL runs the use case as ever. What the
wallet ends up with must not depend on it: these tests post the same notifications with the ReturnURL's
user id to every store and assert the same outcomes, balances, ledgers and records.
"""

from __future__ import annotations

from ecpay_lambda.wallet.models import PaymentMethod, TransactionStatus
from ecpay_lambda.wallet.outcomes import Delivery, EcpayOutcome, OutcomeKind, OutcomeResult, credit_guess
from ecpay_lambda.wallet.port import Decision, Guess, Reads, Snapshot, WalletStore, run_with_guess
from ecpay_lambda.wallet.service import WalletService

from .conftest import Clock
from .helpers import balance, new_user, start_deposit
from .notices import CREDENTIALS, atm_info_body, return_body


def _outcomes(service: WalletService, user_id: str, tid: str) -> list[str]:
    return [n.outcome for n in service.get_transaction(user_id, tid).notifications]


def test_a_paid_return_with_the_user_id_credits_once(service: WalletService) -> None:
    user = new_user(service)
    deposit, mtn = start_deposit(service, user.user_id, 400)
    tid = deposit.transaction_id
    replies = [
        service.handle_return(body, route_transaction_id=tid, route_user_id=user.user_id)
        for body in (return_body(mtn, 400), return_body(mtn, 400, rtn_msg="paid"))
    ]
    assert [(r.body, r.outcome) for r in replies] == [("1|OK", "applied"), ("1|OK", "duplicate")]
    assert balance(service, user.user_id) == (400, 0)
    detail = service.get_transaction(user.user_id, tid)
    got = detail.transaction
    assert (got.status, got.version, got.merchant_trade_no) == (TransactionStatus.PAID, 3, mtn)
    assert got.attempts[-1].state.value == "paid" and got.trade_no and got.paid_at is not None
    assert got.payment_info == got.attempts[-1].payment_info
    assert got.payment_info["payment_type"] == "Credit_CreditCard"
    assert [(e.kind, e.delta_balance) for e in detail.ledger] == [("deposit_paid", 400)]
    assert _outcomes(service, user.user_id, tid) == ["applied", "duplicate"]
    assert service.get_user(user.user_id).open_transactions == 0


def test_an_atm_payment_keeps_the_code_it_was_paid_with(service: WalletService, clock: Clock) -> None:
    user = new_user(service)
    deposit, mtn = start_deposit(service, user.user_id, 700, PaymentMethod.ATM)
    tid = deposit.transaction_id
    assert service.handle_payment_info(atm_info_body(mtn, 700), route_transaction_id=tid).outcome == "applied"
    clock.advance(hours=2)
    reply = service.handle_return(
        return_body(mtn, 700, payment_type="ATM_TAISHIN"),
        route_transaction_id=tid,
        route_user_id=user.user_id,
    )
    assert reply.outcome == "applied"
    got = service.get_transaction(user.user_id, tid).transaction
    assert got.status is TransactionStatus.PAID and got.payment_info["bank_code"] == "812"
    assert (
        got.payment_info["payment_type"] == "ATM_TAISHIN"
        and got.payment_info == got.attempts[-1].payment_info
    )
    assert balance(service, user.user_id) == (700, 0)


def test_the_url_user_id_is_not_trusted(service: WalletService) -> None:
    owner, other = new_user(service, "owner"), new_user(service, "other")
    deposit, mtn = start_deposit(service, owner.user_id, 300)
    reply = service.handle_return(
        return_body(mtn, 300), route_transaction_id=deposit.transaction_id, route_user_id=other.user_id
    )
    # The deposit's owner is credited, as without the guess; the URL's user gets nothing.
    assert reply.outcome == "applied"
    assert (balance(service, owner.user_id), balance(service, other.user_id)) == ((300, 0), (0, 0))


def test_a_mismatch_is_refused_with_the_user_id_as_without(service: WalletService) -> None:
    user = new_user(service)
    deposit, mtn = start_deposit(service, user.user_id, 300)
    tid = deposit.transaction_id
    reply = service.handle_return(return_body(mtn, 299), route_transaction_id=tid, route_user_id=user.user_id)
    assert (reply.accepted, reply.outcome) == (False, "rejected:amount")
    assert balance(service, user.user_id) == (0, 0)
    assert service.get_transaction(user.user_id, tid).transaction.status is TransactionStatus.AWAITING_PAYMENT


def test_run_with_guess_decides_on_what_is_stored_when_the_guess_does_not_hold(
    store: WalletStore, service: WalletService, clock: Clock
) -> None:
    """The port surface itself: a guess about a missing transaction is not written; ``decide`` runs."""
    user = new_user(service)
    oc = EcpayOutcome(
        OutcomeKind.PAID, "nosuchtxn001", "nosuchtxn001ab", CREDENTIALS.merchant_id, 100, trade_no="2601"
    )
    delivery = Delivery("n-guess", "return", "RtnCode=1", clock())
    credit = credit_guess(
        oc, delivery, merchant_id=CREDENTIALS.merchant_id, user_id=user.user_id, now=clock()
    )
    assert credit is not None
    seen: list[Snapshot] = []

    def decide(snap: Snapshot) -> Decision[OutcomeResult]:
        seen.append(snap)
        return Decision(OutcomeResult("ignored", "ignored:unknown_transaction"))

    applied = OutcomeResult("applied", "applied")
    result = run_with_guess(store, Reads(("nosuchtxn001",)), decide, Guess(credit, applied))
    assert result.outcome == "ignored:unknown_transaction"
    assert [dict(s.transactions) for s in seen] == [{}]
    assert balance(service, user.user_id) == (0, 0)
    assert store.list_ledger(user_id=user.user_id) == []
    assert store.list_notifications("nosuchtxn001") == []
