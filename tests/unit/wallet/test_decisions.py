"""The pure decisions of user and operator actions (``wallet.decisions``), without any store."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from ecpay_lambda.ecpay.card_refunds import RefundPlan
from ecpay_lambda.ecpay.limits import DEFAULT_AMOUNT_LIMITS
from ecpay_lambda.wallet import errors
from ecpay_lambda.wallet.decisions import (
    decide_cancel_deposit,
    decide_checkout,
    decide_create,
    decide_refund,
    decide_withdraw_action,
    idempotency_record,
    refundable,
)
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
from ecpay_lambda.wallet.port import TransactionPut, UserDelta, VersionConflict
from ecpay_lambda.wallet.retry import retry_on_conflict

NOW = datetime(2026, 11, 27, 4, 0, tzinfo=UTC)
S = TransactionStatus


def _user(status: UserStatus = UserStatus.ACTIVE) -> User:
    return User("u1", "alice", "a@example.com", 1000, 0, status, 0, NOW, NOW)


def _txn(
    ttype: TransactionType = TransactionType.WITHDRAW, status: S = S.PENDING, **kw: object
) -> Transaction:
    base = Transaction(
        transaction_id="abcdefghijkl",
        user_id="u1",
        transaction_type=ttype,
        amount=300,
        status=status,
        version=2,
        created_at=NOW - timedelta(hours=1),
        updated_at=NOW - timedelta(hours=1),
    )
    return base._replace(**kw)  # type: ignore[arg-type]


# -- create -----------------------------------------------------------------------------------------


def test_a_withdraw_holds_its_amount_with_one_ledger_entry() -> None:
    txn = _txn()._replace(version=1)
    decision = decide_create(_user(), txn, None)
    assert decision.result == txn and decision.write is not None
    assert decision.write.transactions == (TransactionPut(txn, 0),)
    assert decision.write.user_delta == UserDelta("u1", -300, 300, 1, require_active=True)
    [entry] = decision.write.ledger
    assert (entry.kind, entry.delta_balance, entry.delta_held) == ("withdraw_hold", -300, 300)


def test_a_deposit_is_only_counted_open() -> None:
    txn = _txn(TransactionType.DEPOSIT)._replace(version=1)
    decision = decide_create(_user(), txn, idempotency_record("u1", "k", "fp", txn.transaction_id, NOW))
    assert decision.write is not None
    assert decision.write.user_delta == UserDelta("u1", delta_open=1, require_active=True)
    assert decision.write.ledger == ()
    assert decision.write.idempotency is not None
    assert decision.write.idempotency.expires_at == NOW + timedelta(hours=24)


def test_create_refuses_a_missing_or_closed_user() -> None:
    with pytest.raises(errors.NotFound):
        decide_create(None, _txn(), None)
    with pytest.raises(errors.UserClosed):
        decide_create(_user(UserStatus.CLOSED), _txn(), None)


# -- withdraw ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("action", "status", "delta", "kind"),
    [
        ("complete", S.COMPLETED, UserDelta("u1", 0, -300, -1), "withdraw_complete"),
        ("cancel", S.CANCELLED, UserDelta("u1", 300, -300, -1), "withdraw_cancel"),
    ],
)
def test_withdraw_actions_move_the_held_amount(action: str, status: S, delta: UserDelta, kind: str) -> None:
    txn = _txn()
    decision = decide_withdraw_action(txn, "u1", txn.transaction_id, action, NOW)  # type: ignore[arg-type]
    new = decision.result
    assert new is not None and new.status is status and new.version == 3 and new.updated_at == NOW
    assert decision.write is not None
    assert decision.write.transactions == (TransactionPut(new, 2),)
    assert decision.write.user_delta == delta
    [entry] = decision.write.ledger
    assert (entry.kind, entry.delta_balance + entry.delta_held) == (
        kind,
        delta.delta_balance + delta.delta_held,
    )


def test_withdraw_action_refusals() -> None:
    with pytest.raises(errors.NotFound):
        decide_withdraw_action(None, "u1", "t", "complete", NOW)
    with pytest.raises(errors.NotFound):  # another user's transaction looks missing
        decide_withdraw_action(_txn(), "u2", "t", "complete", NOW)
    with pytest.raises(errors.InvalidState):
        decide_withdraw_action(_txn(status=S.COMPLETED), "u1", "t", "cancel", NOW)
    with pytest.raises(errors.InvalidState):
        decide_withdraw_action(_txn(TransactionType.DEPOSIT), "u1", "t", "complete", NOW)
    # Cancelling a deposit is the cancel-deposit use case's job: no write, result None.
    assert decide_withdraw_action(_txn(TransactionType.DEPOSIT), "u1", "t", "cancel", NOW) == (None, None)


# -- cancel a deposit -------------------------------------------------------------------------------


def _live_deposit() -> Transaction:
    attempt = Attempt("abcdefghijkl0a1b2c3d", PaymentMethod.ATM, AttemptState.AWAITING_OFFLINE_PAYMENT, NOW)
    return _txn(TransactionType.DEPOSIT, S.AWAITING_OFFLINE_PAYMENT, attempts=(attempt,))


def test_a_deposit_with_a_payable_attempt_asks_ecpay_then_refuses() -> None:
    deposit = _live_deposit()
    assert decide_cancel_deposit(deposit, "u1", "t", NOW, asked_ecpay=False) == (None, None)
    with pytest.raises(errors.DepositPayable) as refused:
        decide_cancel_deposit(deposit, "u1", "t", NOW, asked_ecpay=True)
    assert refused.value.details == {"attempts": ["abcdefghijkl0a1b2c3d"]}


def test_an_unpaid_deposit_is_cancelled_and_no_longer_open() -> None:
    deposit = _txn(TransactionType.DEPOSIT, S.AWAITING_PAYMENT, next_check_at=NOW, check_count=3)
    decision = decide_cancel_deposit(deposit, "u1", "t", NOW, asked_ecpay=False)
    assert decision.result is not None and decision.result.status is S.CANCELLED
    assert (decision.result.next_check_at, decision.result.check_count) == (None, 0)
    assert decision.write is not None and decision.write.user_delta == UserDelta("u1", delta_open=-1)
    assert decision.write.ledger == ()  # no money moves


@pytest.mark.parametrize("status", [S.PAID, S.CANCELLED])
def test_a_paid_or_cancelled_deposit_is_not_cancelled(status: S) -> None:
    with pytest.raises(errors.InvalidState):
        decide_cancel_deposit(_txn(TransactionType.DEPOSIT, status), "u1", "t", NOW, asked_ecpay=True)


# -- checkout ---------------------------------------------------------------------------------------


def test_checkout_adds_an_attempt_and_builds_the_form_from_it() -> None:
    deposit = _txn(TransactionType.DEPOSIT, S.PENDING, payment_method=PaymentMethod.CREDIT)
    seen: list[tuple[Transaction, PaymentMethod]] = []

    def form(attempted: Transaction, method: PaymentMethod) -> str:
        seen.append((attempted, method))
        return "form"

    decision = decide_checkout(
        deposit,
        "u1",
        deposit.transaction_id,
        wanted=None,
        merchant_trade_no=lambda tid: tid + "0a1b2c3d",
        now=NOW,
        next_check_at=NOW + timedelta(minutes=15),
        limits=DEFAULT_AMOUNT_LIMITS,
        form=form,
    )
    assert decision.result == "form"
    [(attempted, method)] = seen
    assert method is PaymentMethod.CREDIT and attempted.status is S.AWAITING_PAYMENT
    assert attempted.merchant_trade_no == "abcdefghijkl0a1b2c3d"
    assert decision.write is not None
    assert decision.write.transactions == (TransactionPut(attempted, 2),)
    # pending and awaiting_payment are both open: the count does not change, the user must be active.
    assert decision.write.user_delta == UserDelta("u1", delta_open=0, require_active=True)


def test_checkout_refuses_an_amount_above_the_method_limit() -> None:
    deposit = _txn(TransactionType.DEPOSIT, S.PENDING, amount=50_000)
    with pytest.raises(errors.AmountOutOfRange):
        decide_checkout(
            deposit,
            "u1",
            "t",
            wanted=PaymentMethod.CVS,
            merchant_trade_no=lambda tid: "x",
            now=NOW,
            next_check_at=NOW,
            limits=DEFAULT_AMOUNT_LIMITS,
            form=lambda attempted, method: None,
        )


# -- refund -----------------------------------------------------------------------------------------


def _paid_card(**kw: object) -> Transaction:
    values: dict[str, object] = {
        "payment_method": PaymentMethod.CREDIT,
        "trade_no": "2411271200000001",
        "merchant_trade_no": "abcdefghijkl0a1b2c3d",
        **kw,
    }
    return _txn(TransactionType.DEPOSIT, S.PAID, **values)


def test_refundable_is_what_remains_or_the_asked_part() -> None:
    assert refundable(_paid_card(refunded_amount=100), "u1", "t", None) == 200
    assert refundable(_paid_card(), "u1", "t", 50) == 50
    with pytest.raises(errors.InvalidRequest):
        refundable(_paid_card(refunded_amount=100), "u1", "t", 250)
    with pytest.raises(errors.RefundNotPossible):
        refundable(_paid_card(related_transaction_id="r1"), "u1", "t", None)
    with pytest.raises(errors.InvalidState):
        refundable(_paid_card(payment_method=PaymentMethod.ATM), "u1", "t", None)


def test_a_refund_debits_the_wallet_before_ecpay_is_asked() -> None:
    deposit = _paid_card()
    plan = RefundPlan(actions=("R",), reason="")
    decision = decide_refund(
        deposit, "r-1", 120, plan, "captured", now=NOW, next_check_at=NOW, idempotency=None
    )
    refund = decision.result
    assert (refund.transaction_id, refund.amount, refund.status) == ("r-1", 120, S.PENDING)
    assert refund.related_transaction_id == deposit.transaction_id
    write = decision.write
    assert write is not None
    assert [p.expected_version for p in write.transactions] == [0, 2]
    assert write.transactions[1].new.refunded_amount == 120
    assert write.user_delta == UserDelta("u1", delta_balance=-120, delta_open=1)
    assert [(e.kind, e.delta_balance) for e in write.ledger] == [("refund", -120)]


# -- the retry helper -------------------------------------------------------------------------------


def test_retry_on_conflict_runs_again_then_gives_up() -> None:
    calls: list[int] = []

    def step() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise VersionConflict("t")
        return "done"

    assert retry_on_conflict(step, lambda: "gave up") == "done" and len(calls) == 3
    tries: list[int] = []

    def always_conflicts() -> str:
        tries.append(1)
        raise VersionConflict("t")

    assert retry_on_conflict(always_conflicts, lambda: "gave up", attempts=4) == "gave up"
    assert len(tries) == 4
