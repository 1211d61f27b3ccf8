"""Every checkout attempt is kept: the pure rules (``attempts``, ``outcomes.decide``) without a store."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from ecpay_lambda.wallet.attempts import (
    attempts_from_json,
    attempts_of,
    attempts_to_json,
    focus,
    live_attempts,
    with_attempts,
)
from ecpay_lambda.wallet.models import (
    Attempt,
    AttemptState,
    PaymentMethod,
    Transaction,
    TransactionStatus,
    TransactionType,
)
from ecpay_lambda.wallet.outcomes import (
    FLAG_CLOSED_USER_CREDIT,
    FLAG_DUPLICATE_PAYMENT,
    FLAG_PAID_AFTER_CANCEL,
    Change,
    EcpayOutcome,
    OutcomeKind,
    Skip,
    decide,
)
from ecpay_lambda.wallet.reconcile import MAX_BACKOFF, next_check

NOW = datetime(2026, 11, 27, 4, 0, tzinfo=UTC)
MERCHANT = "3002607"
A = "abcdefghijkl0a1b2c3d"  # attempt A: ATM, code issued
B = "abcdefghijkl0a1b2c3e"  # attempt B: card, started after A
S = TransactionStatus
AS = AttemptState


def _attempt(mtn: str, state: AttemptState, method: PaymentMethod, **kw: object) -> Attempt:
    return Attempt(mtn, method, state, NOW - timedelta(hours=2))._replace(**kw)  # type: ignore[arg-type]


ATM_A = _attempt(
    A,
    AS.AWAITING_OFFLINE_PAYMENT,
    PaymentMethod.ATM,
    payment_info={"bank_code": "812", "v_account": "9103522175887271"},
    expires_at=NOW + timedelta(days=3),
)
CARD_B = _attempt(B, AS.AWAITING_PAYMENT, PaymentMethod.CREDIT)


def _deposit(*attempts: Attempt, status: TransactionStatus | None = None) -> Transaction:
    base = Transaction(
        transaction_id="abcdefghijkl",
        user_id="u1",
        transaction_type=TransactionType.DEPOSIT,
        amount=2000,
        status=S.PENDING,
        version=5,
        created_at=NOW - timedelta(hours=3),
        updated_at=NOW - timedelta(hours=1),
    )
    txn = with_attempts(base, tuple(attempts))
    return txn if status is None else txn._replace(status=status)


def _oc(kind: OutcomeKind, mtn: str, **kw: object) -> EcpayOutcome:
    base = EcpayOutcome(
        kind=kind, transaction_id="abcdefghijkl", merchant_trade_no=mtn, merchant_id=MERCHANT, amount=2000
    )
    return base._replace(**kw)  # type: ignore[arg-type]


def _change(step: Skip | Change) -> Change:
    assert isinstance(step, Change), step
    return step


def test_the_deposit_mirrors_its_newest_live_attempt() -> None:
    txn = _deposit(ATM_A, CARD_B)
    assert txn.status is S.AWAITING_PAYMENT and txn.merchant_trade_no == B
    assert [a.merchant_trade_no for a in live_attempts(txn)] == [A, B]
    assert focus(txn.attempts) == CARD_B


def test_a_failed_card_attempt_leaves_the_deposit_awaiting_the_earlier_atm_code() -> None:
    """Finding 1: B fails while A's code is still payable; the deposit must not end ``failed``."""
    step = _change(decide(_deposit(ATM_A, CARD_B), _oc(OutcomeKind.FAILED, B), NOW, merchant_id=MERCHANT))
    new = step.puts[0].new
    assert new.status is S.AWAITING_OFFLINE_PAYMENT
    assert new.merchant_trade_no == A and new.payment_info["v_account"] == "9103522175887271"
    assert [a.state for a in new.attempts] == [AS.AWAITING_OFFLINE_PAYMENT, AS.FAILED]
    assert step.user_delta is None  # still open: nothing to count


def test_paying_a_superseded_attempt_credits_the_deposit_once() -> None:
    step = _change(
        decide(_deposit(ATM_A, CARD_B), _oc(OutcomeKind.PAID, A, trade_no="T-A"), NOW, merchant_id=MERCHANT)
    )
    new = step.puts[0].new
    assert step.status == "applied" and step.credits_money
    assert new.status is S.PAID and new.merchant_trade_no == A and new.trade_no == "T-A"
    assert new.paid_at == NOW
    assert step.user_delta is not None and step.user_delta.delta_balance == 2000
    assert step.user_delta.require_active
    # The same payment again is a duplicate; the other attempt paid too is flagged, never credited.
    again = decide(new, _oc(OutcomeKind.PAID, A), NOW, merchant_id=MERCHANT)
    assert again == Skip("duplicate", "duplicate")
    second = _change(decide(new, _oc(OutcomeKind.PAID, B), NOW, merchant_id=MERCHANT))
    assert second.status == "flagged" and second.user_delta is None and not second.ledger
    assert FLAG_DUPLICATE_PAYMENT in second.puts[0].new.flags


def test_a_credit_for_a_closed_user_is_applied_and_flagged() -> None:
    step = _change(
        decide(
            _deposit(ATM_A, status=S.FAILED),
            _oc(OutcomeKind.PAID, A),
            NOW,
            merchant_id=MERCHANT,
            user_closed=True,
        )
    )
    assert step.status == "flagged" and step.credits_money
    assert FLAG_CLOSED_USER_CREDIT in step.puts[0].new.flags
    assert step.user_delta is not None and not step.user_delta.require_active


def test_a_payment_after_cancel_is_credited_and_flagged() -> None:
    cancelled = _deposit(ATM_A._replace(state=AS.EXPIRED), status=S.CANCELLED)
    step = _change(decide(cancelled, _oc(OutcomeKind.PAID, A), NOW, merchant_id=MERCHANT))
    assert step.puts[0].new.status is S.PAID and FLAG_PAID_AFTER_CANCEL in step.puts[0].new.flags


def test_a_simulated_payment_is_never_credited() -> None:
    step = decide(_deposit(ATM_A), _oc(OutcomeKind.PAID, A, simulate_paid=True), NOW, merchant_id=MERCHANT)
    assert step == Skip("ignored", "ignored:simulate_paid")


def test_a_code_issued_late_for_an_earlier_attempt_is_kept() -> None:
    card_a = _attempt(A, AS.AWAITING_PAYMENT, PaymentMethod.ATM)
    step = _change(
        decide(
            _deposit(card_a, CARD_B),
            _oc(
                OutcomeKind.CODE_ISSUED,
                A,
                payment_info={"payment_no": "LLL123"},
                expires_at=NOW + timedelta(days=1),
            ),
            NOW,
            merchant_id=MERCHANT,
        )
    )
    new = step.puts[0].new
    assert (
        new.attempts[0].state is AS.AWAITING_OFFLINE_PAYMENT
        and new.attempts[0].payment_info["payment_no"] == "LLL123"
    )
    assert new.status is S.AWAITING_PAYMENT and new.merchant_trade_no == B  # B is still the newest live one


def test_the_deposit_ends_only_when_every_attempt_ended() -> None:
    txn = _deposit(ATM_A, CARD_B._replace(state=AS.FAILED))
    step = _change(decide(txn, _oc(OutcomeKind.EXPIRED, A), NOW, merchant_id=MERCHANT))
    new = step.puts[0].new
    assert new.status is S.FAILED and not live_attempts(new)  # the newest attempt says how it ended
    assert step.user_delta is not None and step.user_delta.delta_open == -1
    assert new.next_check_at is None


def test_an_unknown_attempt_is_ignored_unless_it_was_paid() -> None:
    other = "abcdefghijkl0zzzzzzz"
    assert decide(_deposit(ATM_A), _oc(OutcomeKind.FAILED, other), NOW, merchant_id=MERCHANT) == Skip(
        "ignored", "ignored:unknown_attempt"
    )
    paid = _change(decide(_deposit(ATM_A), _oc(OutcomeKind.PAID, other), NOW, merchant_id=MERCHANT))
    assert paid.puts[0].new.status is S.PAID and paid.puts[0].new.merchant_trade_no == other


def test_a_record_from_before_attempts_were_kept_has_one_attempt() -> None:
    legacy = Transaction(
        transaction_id="abcdefghijkl",
        user_id="u1",
        transaction_type=TransactionType.DEPOSIT,
        amount=2000,
        status=S.AWAITING_OFFLINE_PAYMENT,
        version=2,
        created_at=NOW,
        updated_at=NOW,
        payment_method=PaymentMethod.CVS,
        merchant_trade_no=A,
        payment_info={"payment_no": "X"},
    )
    (only,) = attempts_of(legacy)
    assert (only.merchant_trade_no, only.state, only.payment_info["payment_no"]) == (
        A,
        AS.AWAITING_OFFLINE_PAYMENT,
        "X",
    )


def test_attempts_survive_their_json_codec() -> None:
    attempts = (ATM_A, CARD_B._replace(trade_no="T1"))
    assert attempts_from_json(attempts_to_json(attempts)) == attempts
    with pytest.raises(ValueError):
        attempts_from_json([{"merchant_trade_no": A}])


def test_reconciliation_backs_off_and_checks_an_expiring_code_on_time() -> None:
    grace = timedelta(minutes=15)
    txn = _deposit(CARD_B)
    due, count = next_check(txn, NOW, grace)
    assert (due, count) == (NOW + grace, 1)
    later, count = next_check(txn._replace(check_count=3), NOW, grace)
    assert later == NOW + grace * 8 and count == 4
    capped, _ = next_check(txn._replace(check_count=40), NOW, grace)
    assert capped == NOW + MAX_BACKOFF
    soon = ATM_A._replace(expires_at=NOW + timedelta(minutes=5))
    due, _ = next_check(_deposit(soon)._replace(check_count=5), NOW, grace)
    assert due == NOW + timedelta(minutes=6)
