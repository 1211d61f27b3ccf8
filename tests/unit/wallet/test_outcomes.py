"""The state machine of ECPay outcomes (``outcomes.decide``), without any store."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from ecpay_lambda.wallet.models import OPEN_STATUSES, Transaction, TransactionStatus, TransactionType
from ecpay_lambda.wallet.outcomes import Change, EcpayOutcome, OutcomeKind, Skip, decide
from ecpay_lambda.wallet.port import UserDelta

NOW = datetime(2026, 11, 27, 4, 0, tzinfo=UTC)
MERCHANT = "3002607"
MTN = "abcdefghijkl0a1b2c3d"
S = TransactionStatus


def _deposit(status: TransactionStatus = S.AWAITING_PAYMENT, **kw: object) -> Transaction:
    base = Transaction(
        transaction_id="abcdefghijkl",
        user_id="u1",
        transaction_type=TransactionType.DEPOSIT,
        amount=500,
        status=status,
        version=3,
        created_at=NOW - timedelta(hours=1),
        updated_at=NOW - timedelta(hours=1),
        merchant_trade_no=MTN,
    )
    return base._replace(**kw)  # type: ignore[arg-type]


def _oc(kind: OutcomeKind = OutcomeKind.PAID, **kw: object) -> EcpayOutcome:
    base = EcpayOutcome(
        kind=kind, transaction_id="abcdefghijkl", merchant_trade_no=MTN, merchant_id=MERCHANT, amount=500
    )
    return base._replace(**kw)  # type: ignore[arg-type]


def _change(step: Skip | Change) -> Change:
    assert isinstance(step, Change), step
    return step


def _delta(step: Change) -> UserDelta:
    assert step.user_delta is not None
    return step.user_delta


def test_paid_credits_once_with_ledger_and_closes_the_open_count() -> None:
    step = _change(
        decide(_deposit(), _oc(trade_no="T1", payment_type="Credit_CreditCard"), NOW, merchant_id=MERCHANT)
    )
    assert step.status == "applied"
    put = step.puts[0]
    assert put.expected_version == 3 and put.new.version == 4 and put.new.updated_at == NOW
    assert put.new.status is S.PAID and put.new.trade_no == "T1"
    assert put.new.payment_info["payment_type"] == "Credit_CreditCard"
    delta = _delta(step)
    assert (delta.delta_balance, delta.delta_held, delta.delta_open) == (500, 0, -1)
    assert [(e.kind, e.delta_balance) for e in step.ledger] == [("deposit_paid", 500)]
    assert step.credits_money


@pytest.mark.parametrize("status", [S.FAILED, S.EXPIRED])
def test_paid_after_failure_or_expiry_still_credits_without_touching_the_open_count(
    status: TransactionStatus,
) -> None:
    step = _change(decide(_deposit(status), _oc(), NOW, merchant_id=MERCHANT))
    assert step.status == "applied"
    assert _delta(step).delta_open == 0
    assert status not in OPEN_STATUSES


@pytest.mark.parametrize(
    ("oc", "label"),
    [
        (_oc(merchant_id="2000132"), "rejected:merchant_id"),
        (_oc(amount=499), "rejected:amount"),
        (_oc(simulate_paid=True), "ignored:simulate_paid"),
    ],
)
def test_unverifiable_or_simulated_payments_never_credit(oc: EcpayOutcome, label: str) -> None:
    step = decide(_deposit(), oc, NOW, merchant_id=MERCHANT)
    assert isinstance(step, Skip)
    assert step.label == label


@pytest.mark.parametrize("status", [S.PAID, S.REFUNDED, S.PARTIALLY_REFUNDED])
def test_paid_is_final(status: TransactionStatus) -> None:
    deposit = _deposit(status)
    assert decide(deposit, _oc(), NOW, merchant_id=MERCHANT).label == "duplicate"
    assert decide(deposit, _oc(OutcomeKind.FAILED), NOW, merchant_id=MERCHANT).label == "ignored:already_paid"
    assert (
        decide(deposit, _oc(OutcomeKind.EXPIRED), NOW, merchant_id=MERCHANT).label == "ignored:already_paid"
    )
    other_attempt = _oc(merchant_trade_no="abcdefghijkl9z9z9z9z")
    step = _change(decide(deposit, other_attempt, NOW, merchant_id=MERCHANT))
    assert step.status == "flagged"
    assert step.label == "flagged:duplicate_payment"
    assert step.user_delta is None and step.ledger == ()
    assert "duplicate_payment" in step.puts[0].new.flags


def test_failure_of_the_only_attempt_fails_the_deposit_and_an_unknown_one_does_not() -> None:
    step = _change(decide(_deposit(), _oc(OutcomeKind.FAILED), NOW, merchant_id=MERCHANT))
    assert step.puts[0].new.status is S.FAILED
    assert _delta(step).delta_open == -1
    stale = decide(
        _deposit(),
        _oc(OutcomeKind.FAILED, merchant_trade_no="abcdefghijkl9z9z9z9z"),
        NOW,
        merchant_id=MERCHANT,
    )
    assert stale.label == "ignored:unknown_attempt"  # an attempt this deposit never had
    assert decide(_deposit(S.FAILED), _oc(OutcomeKind.FAILED), NOW, merchant_id=MERCHANT).label == "duplicate"


def test_code_issued_moves_to_offline_with_its_payment_info() -> None:
    expires = NOW + timedelta(days=3)
    oc = _oc(
        OutcomeKind.CODE_ISSUED, payment_info={"v_account": "123"}, expires_at=expires, payment_type="ATM_BOT"
    )
    step = _change(decide(_deposit(), oc, NOW, merchant_id=MERCHANT))
    new = step.puts[0].new
    assert new.status is S.AWAITING_OFFLINE_PAYMENT and new.expires_at == expires
    assert dict(new.payment_info) == {"v_account": "123", "payment_type": "ATM_BOT"}
    assert step.user_delta is None
    offline = _deposit(S.AWAITING_OFFLINE_PAYMENT)
    assert decide(offline, oc, NOW, merchant_id=MERCHANT).label == "duplicate"


def test_expiry_only_ends_an_offline_wait() -> None:
    step = _change(
        decide(_deposit(S.AWAITING_OFFLINE_PAYMENT), _oc(OutcomeKind.EXPIRED), NOW, merchant_id=MERCHANT)
    )
    assert step.puts[0].new.status is S.EXPIRED
    assert _delta(step).delta_open == -1
    assert decide(_deposit(), _oc(OutcomeKind.EXPIRED), NOW, merchant_id=MERCHANT).status == "ignored"


def test_outcomes_for_non_deposits_are_ignored() -> None:
    withdraw = _deposit(S.PENDING, transaction_type=TransactionType.WITHDRAW)
    assert decide(withdraw, _oc(), NOW, merchant_id=MERCHANT).label == "ignored:not_a_deposit"


def _refund_pair(refunded: int = 200) -> tuple[Transaction, Transaction]:
    deposit = _deposit(S.PAID, refunded_amount=refunded)
    refund = deposit._replace(
        transaction_id="refund000001",
        transaction_type=TransactionType.REFUND,
        amount=200,
        status=S.PENDING,
        version=1,
        refunded_amount=0,
        related_transaction_id=deposit.transaction_id,
    )
    return deposit, refund


def test_refund_settles_or_gives_the_points_back() -> None:
    deposit, refund = _refund_pair()
    done = _change(
        decide(
            refund,
            _oc(OutcomeKind.REFUNDED, transaction_id=refund.transaction_id, amount=200),
            NOW,
            merchant_id=MERCHANT,
            related=deposit,
        )
    )
    statuses = [p.new.status for p in done.puts]
    assert statuses == [S.COMPLETED, S.PARTIALLY_REFUNDED]
    assert _delta(done).delta_balance == 0 and _delta(done).delta_open == -1
    failed = _change(
        decide(
            refund,
            _oc(OutcomeKind.REFUND_FAILED, transaction_id=refund.transaction_id, amount=200),
            NOW,
            merchant_id=MERCHANT,
            related=deposit,
        )
    )
    refund_new, deposit_new = (p.new for p in failed.puts)
    assert (refund_new.status, deposit_new.status, deposit_new.refunded_amount) == (S.FAILED, S.PAID, 0)
    assert _delta(failed).delta_balance == 200
    assert [e.kind for e in failed.ledger] == ["refund_reversed"]


def test_refund_dedupe_key_is_per_refund_and_notification_key_per_meaning() -> None:
    assert _oc().dedupe_key == f"{MTN}:paid:0"
    assert _oc(OutcomeKind.CODE_ISSUED, period=3).dedupe_key == f"{MTN}:code_issued:3"
    assert _oc(OutcomeKind.REFUNDED, transaction_id="r1").dedupe_key == "r1:refunded:0"
