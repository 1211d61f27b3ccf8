"""Recurring top-ups, the pure step: what one later charge (PeriodReturnURL or QueryCreditCardPeriodInfo)
does to a plan's deposit and to the wallet."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from ecpay_lambda.wallet import errors
from ecpay_lambda.wallet.errors import InvalidPlan
from ecpay_lambda.wallet.invoice_state import InvoiceState, InvoiceStatus
from ecpay_lambda.wallet.models import (
    Attempt,
    AttemptState,
    PaymentMethod,
    Plan,
    PlanState,
    Transaction,
    TransactionStatus,
    TransactionType,
)
from ecpay_lambda.wallet.outcomes import Change, Skip
from ecpay_lambda.wallet.periodic import (
    PeriodCharge,
    charge_transaction_id,
    charges_done,
    decide_period,
    plan_from_json,
    plan_state,
    plan_to_json,
)
from ecpay_lambda.wallet.recurring import plan_from_request

NOW = datetime(2026, 11, 27, 4, 0, tzinfo=UTC)
MTN = "abcdefghijkl1234ABCD"
MERCHANT = "3002607"


def _plan_deposit(**changes: object) -> Transaction:
    txn = Transaction(
        transaction_id="abcdefghijkl",
        user_id="u1",
        transaction_type=TransactionType.DEPOSIT,
        amount=500,
        status=TransactionStatus.PAID,
        version=3,
        created_at=NOW,
        updated_at=NOW,
        payment_method=PaymentMethod.CREDIT,
        merchant_trade_no=MTN,
        attempts=(Attempt(MTN, PaymentMethod.CREDIT, AttemptState.PAID, NOW, trade_no="T1"),),
        plan=Plan("M", 1, 12),
    )
    return txn._replace(**changes)  # type: ignore[arg-type]


def _charge(period: int = 2, **changes: object) -> PeriodCharge:
    charge = PeriodCharge(
        transaction_id="abcdefghijkl",
        merchant_trade_no=MTN,
        merchant_id=MERCHANT,
        paid=True,
        amount=500,
        period=period,
        rtn_code="1",
        gwsr="123456",
        process_date=NOW - timedelta(minutes=1),
    )
    return charge._replace(**changes)  # type: ignore[arg-type]


def _decide(txn: Transaction, charge: PeriodCharge, **kwargs: bool) -> Skip | Change:
    return decide_period(txn, charge, NOW, merchant_id=MERCHANT, **kwargs)


def test_a_charge_creates_its_own_paid_deposit_and_credits_it() -> None:
    step = _decide(_plan_deposit(), _charge(2))
    assert isinstance(step, Change) and step.status == "applied" and step.credits_money
    child, plan = (put.new for put in step.puts)
    assert [put.expected_version for put in step.puts] == [0, 3]  # child must not exist; plan CAS
    assert child.transaction_id == charge_transaction_id("abcdefghijkl", MTN, 2) != "abcdefghijkl"
    assert (child.status, child.amount, child.merchant_trade_no) == (TransactionStatus.PAID, 500, MTN)
    assert child.payment_info["plan_transaction_id"] == "abcdefghijkl"
    assert child.payment_info["period"] == "2" and child.paid_at == NOW - timedelta(minutes=1)
    assert plan.plan is not None and plan.plan.charged == ((MTN, 2),) and plan.version == 4
    assert step.user_delta is not None and step.user_delta.delta_balance == 500
    [entry] = step.ledger
    assert (entry.transaction_id, entry.kind, entry.delta_balance) == (
        child.transaction_id,
        "deposit_paid",
        500,
    )
    assert _charge(2).dedupe_key == f"{MTN}:paid:2"


def test_each_charge_of_an_invoiced_plan_gets_an_invoice_of_its_own() -> None:
    buyer = {"kind": "donation", "love_code": "168001"}
    issued = InvoiceState(InvoiceStatus.ISSUED, buyer, number="AB12345678")
    step = _decide(_plan_deposit(invoice=issued), _charge(2))
    assert isinstance(step, Change)
    child, plan = (put.new for put in step.puts)
    assert child.invoice == InvoiceState(InvoiceStatus.PENDING, buyer)  # the job issues it after the credit
    assert plan.invoice == issued  # the plan's own invoice is left as it is
    uninvoiced = _decide(_plan_deposit(), _charge(2))
    assert isinstance(uninvoiced, Change) and uninvoiced.puts[0].new.invoice is None


def test_the_same_period_twice_is_a_duplicate() -> None:
    step = _decide(_plan_deposit(), _charge(2))
    assert isinstance(step, Change)
    after = step.puts[1].new
    assert _decide(after, _charge(2)) == Skip("duplicate", "duplicate")
    assert isinstance(_decide(after, _charge(3)), Change)


@pytest.mark.parametrize(
    ("charge", "label"),
    [
        (_charge(2, merchant_id="2000132"), "rejected:merchant_id"),
        (_charge(2, amount=499), "rejected:amount"),
        (_charge(2, simulate_paid=True), "ignored:simulate_paid"),
        (_charge(1), "ignored:first_charge"),
        (_charge(13), "rejected:period"),
        (_charge(2, merchant_trade_no="zzzzzzzzzzzz1234ABCD"), "ignored:unknown_attempt"),
    ],
)
def test_checks_as_for_return_url(charge: PeriodCharge, label: str) -> None:
    step = _decide(_plan_deposit(), charge)
    assert isinstance(step, Skip) and step.label == label


def test_a_deposit_without_a_plan_takes_no_period_charge() -> None:
    step = _decide(_plan_deposit(plan=None), _charge(2))
    assert step == Skip("ignored", "ignored:not_periodic")


def test_a_declined_charge_is_recorded_once_and_credits_nothing() -> None:
    declined = _charge(1, paid=False, rtn_code="10200058", rtn_msg="declined")
    step = _decide(_plan_deposit(), declined)
    assert isinstance(step, Change) and not step.credits_money and step.user_delta is None
    [put] = step.puts
    assert put.new.plan is not None
    [failure] = put.new.plan.failures
    assert (failure.period, failure.rtn_code) == (2, "10200058")
    assert _decide(put.new, declined) == Skip("duplicate", "duplicate")
    assert declined.dedupe_key.startswith(f"{MTN}:period_failed:1:")


def test_a_charge_after_cancel_is_credited_and_flagged() -> None:
    cancelled = _plan_deposit(plan=Plan("M", 1, 12, cancelled_at=NOW))
    step = _decide(cancelled, _charge(2))
    assert isinstance(step, Change) and step.label == "flagged:paid_after_cancel"
    assert "paid_after_cancel" in step.puts[0].new.flags


def test_plan_state_and_counts() -> None:
    txn = _plan_deposit(plan=Plan("M", 1, 3))
    assert (plan_state(txn), charges_done(txn)) == (PlanState.ACTIVE, 1)
    assert plan_state(_plan_deposit(status=TransactionStatus.AWAITING_PAYMENT)) is PlanState.ACTIVE
    assert charges_done(_plan_deposit(status=TransactionStatus.AWAITING_PAYMENT)) == 0
    done = txn._replace(plan=Plan("M", 1, 3, charged=((MTN, 2), (MTN, 3))))
    assert (plan_state(done), charges_done(done)) == (PlanState.FINISHED, 3)
    stopped = txn._replace(plan=Plan("M", 1, 3, cancelled_at=NOW))
    assert plan_state(stopped) is PlanState.CANCELLED
    assert plan_state(_plan_deposit(plan=None)) is None


def test_plan_codec_round_trips() -> None:
    step = _decide(_plan_deposit(), _charge(1, paid=False, rtn_code="10200058", rtn_msg="declined"))
    assert isinstance(step, Change)
    plan = step.puts[0].new.plan
    assert plan is not None
    plan = plan._replace(charged=((MTN, 2),), cancelled_at=NOW)
    assert plan_from_json(plan_to_json(plan)) == plan


def test_plan_requests_follow_ecpays_limits() -> None:
    assert plan_from_request({"period_type": "M", "frequency": 1, "exec_times": 12}, None) == Plan("M", 1, 12)
    assert plan_from_request({"period_type": "Y", "frequency": 1, "exec_times": 99}, PaymentMethod.CREDIT)
    for bad in (
        {"period_type": "M", "frequency": 1, "exec_times": 1000},
        {"period_type": "Y", "frequency": 1, "exec_times": 100},
        {"period_type": "Y", "frequency": 2, "exec_times": 2},
        {"period_type": "D", "frequency": 366, "exec_times": 2},
        {"period_type": "M", "frequency": 1, "exec_times": 1},
        {"period_type": "W", "frequency": 1, "exec_times": 2},
        {"period_type": "M", "frequency": True, "exec_times": 2},
        {"period_type": "M", "frequency": 1, "exec_times": 2, "extra": 1},
        "monthly",
    ):
        with pytest.raises(InvalidPlan) as refused:
            plan_from_request(bad, None)
        assert refused.value.code == "invalid_recurring_plan"
    with pytest.raises(errors.InvalidRequest, match="card only"):
        plan_from_request({"period_type": "M", "frequency": 1, "exec_times": 2}, PaymentMethod.ATM)


def test_query_executions_are_numbered_as_period_return_url_numbers_them() -> None:
    from ecpay_lambda.ecpay.client import PeriodExecution, PeriodInfo  # noqa: PLC0415
    from ecpay_lambda.wallet.recurring import charges_from_info  # noqa: PLC0415

    def execution(code: str) -> PeriodExecution:
        return PeriodExecution(code, 500, "1" if code == "1" else "", NOW, "", "T1", {})

    codes = ["1", "1", "10200058", "1", "1"]  # charge 1, charge 2, declined, charge 3, charge 4
    info = PeriodInfo(MTN, "T1", "1", "1", "M", 1, 12, 500, 4, 2000, tuple(map(execution, codes)), {})
    charges = charges_from_info(_plan_deposit(), info, MERCHANT)
    assert [(c.paid, c.period) for c in charges] == [(True, 2), (False, 2), (True, 3), (True, 4)]
    assert all(c.merchant_trade_no == MTN and c.transaction_id == "abcdefghijkl" for c in charges)
    failure = _decide(_plan_deposit(), charges[1])
    assert isinstance(failure, Change) and failure.puts[0].new.plan is not None
    assert failure.puts[0].new.plan.failures[0].period == 3  # the charge that was attempted


def test_a_decline_reported_by_the_notification_and_by_a_query_is_one_failure() -> None:
    notified = _charge(3, paid=False, rtn_code="10200058", rtn_msg="Authorization failed")
    step = _decide(_plan_deposit(), notified)
    assert isinstance(step, Change)
    queried = notified._replace(rtn_msg="declined (QueryCreditCardPeriodInfo)")
    assert _decide(step.puts[0].new, queried) == Skip("duplicate", "duplicate")
