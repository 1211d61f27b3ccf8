"""Recurring top-ups' use cases: the plan of a new deposit, cancel, ReAuth, and reconciliation.

The charges themselves are decided in :mod:`.periodic` (on the notification path); this module holds
what the management API, the statement run and ``sync`` need: asking ECPay about a plan
(QueryCreditCardPeriodInfo, §7.3) and acting on it (CreditCardPeriodAction, §7.4).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime
from typing import Any

from ..ecpay.client import EcpayClient, PeriodInfo
from ..ecpay.errors import EcpayError, EcpayValidationError
from ..ecpay.limits import check_period
from . import errors
from .ids import new_notification_id
from .models import PaymentMethod, Plan, PlanState, Transaction, TransactionType
from .outcomes import Delivery, OutcomeResult
from .periodic import (
    PeriodCharge,
    apply_period_charge,
    charge_transaction_ids,
    charges_done,
    paid_schedules,
    plan_state,
)
from .port import AtomicWrite, Decision, Reads, TransactionPut, WalletStore
from .retry import retry_on_conflict

# CreditCardPeriodAction's "not running" answer (the sandbox's code next to ECPay's 90100150): the
# order is cancelled or finished at ECPay already, so a Cancel has nothing left to stop.
NOT_RUNNING = "90100151"


def plan_from_request(data: object, payment_method: PaymentMethod | None) -> Plan:
    """The plan of ``{"period_type", "frequency", "exec_times"}``; ``InvalidPlan`` if ECPay would refuse."""
    if not isinstance(data, dict):
        raise errors.InvalidPlan("recurring must be an object {period_type, frequency, exec_times}")
    unknown = set(data) - {"period_type", "frequency", "exec_times"}
    if unknown:
        raise errors.InvalidPlan(f"recurring: unknown field(s) {', '.join(sorted(map(str, unknown)))}")
    if payment_method not in (None, PaymentMethod.CREDIT):
        raise errors.InvalidPlan("recurring top-ups are paid by card only (payment_method Credit)")
    period_type, frequency, exec_times = (
        data.get("period_type"),
        data.get("frequency"),
        data.get("exec_times"),
    )
    if not isinstance(period_type, str):
        raise errors.InvalidPlan("recurring.period_type must be D (day), M (month) or Y (year)")
    for name, value in (("frequency", frequency), ("exec_times", exec_times)):
        if type(value) is not int:
            raise errors.InvalidPlan(f"recurring.{name} must be a whole number")
    assert isinstance(frequency, int) and isinstance(exec_times, int)
    try:
        check_period(period_type, frequency, exec_times)
    except EcpayValidationError as exc:
        field = {"PeriodType": "period_type", "Frequency": "frequency", "ExecTimes": "exec_times"}
        raise errors.InvalidPlan(f"recurring.{field.get(exc.field, exc.field)} {exc.reason}") from None
    return Plan(period_type=period_type, frequency=frequency, exec_times=exec_times)


def plan_view(txn: Transaction) -> dict[str, Any] | None:
    """The plan as the API shows it (state, charges done / planned, each charge's deposit, failures)."""
    plan = txn.plan
    if plan is None:
        return None
    state = plan_state(txn)
    return {
        "period_type": plan.period_type,
        "frequency": plan.frequency,
        "exec_times": plan.exec_times,
        "state": str(state),
        "charges_done": charges_done(txn),
        "charges_planned": plan.exec_times,
        "charge_transaction_ids": charge_transaction_ids(txn),
        "failed_charges": [
            {"period": f.period, "rtn_code": f.rtn_code, "rtn_msg": f.rtn_msg, "at": f.at.isoformat()}
            for f in plan.failures
        ],
        "cancelled_at": None if plan.cancelled_at is None else plan.cancelled_at.isoformat(),
    }


def charges_from_info(txn: Transaction, info: PeriodInfo, merchant_id: str) -> list[PeriodCharge]:
    """Every later charge in QueryCreditCardPeriodInfo's ExecLog, numbered as PeriodReturnURL numbers them.

    The k-th successful execution is charge k (TotalSuccessTimes after it); a declined one carries the
    successes before it. Execution 1 is the deposit itself (ReturnURL, QueryTradeInfo).
    """
    charges: list[PeriodCharge] = []
    successes = 0
    for index, execution in enumerate(info.executions):
        if execution.ok:
            successes += 1
        if index == 0:
            continue
        charges.append(
            PeriodCharge(
                transaction_id=txn.transaction_id,
                merchant_trade_no=info.merchant_trade_no,
                merchant_id=merchant_id,
                paid=execution.ok,
                amount=execution.amount if execution.amount is not None else -1,
                period=successes,
                rtn_code=execution.rtn_code,
                rtn_msg="" if execution.ok else "declined (QueryCreditCardPeriodInfo)",
                trade_no=execution.trade_no,
                gwsr=execution.gwsr,
                auth_code=execution.auth_code,
                process_date=execution.process_date,
            )
        )
    return charges


class RecurringPlans:
    """Plans of recurring deposits: reconcile with ECPay, cancel, ReAuth."""

    def __init__(
        self, store: WalletStore, client: EcpayClient, *, merchant_id: str, clock: Callable[[], datetime]
    ) -> None:
        self.store = store
        self.client = client
        self.merchant_id = merchant_id
        self.clock = clock

    def _plan_deposit(self, user_id: str, transaction_id: str) -> Transaction:
        txn = self.store.get_transaction(transaction_id)
        if txn is None or txn.user_id != user_id:
            raise errors.NotFound(f"transaction {transaction_id} not found")
        if txn.transaction_type is not TransactionType.DEPOSIT or txn.plan is None:
            raise errors.InvalidState(f"transaction {transaction_id} has no recurring plan")
        return txn

    def reconcile(self, txn: Transaction) -> list[OutcomeResult]:
        """Ask ECPay about every schedule of ``txn`` and apply each charge it reports (once).

        A schedule ECPay reports cancelled (ExecStatus 0 after six declines, or cancelled in its
        back office) cancels the plan. Raises ``EcpayError`` when ECPay cannot be asked.
        """
        results: list[OutcomeResult] = []
        for mtn in paid_schedules(txn):
            info = self.client.query_credit_card_period_info(mtn)
            for charge in charges_from_info(txn, info, self.merchant_id):
                raw = json.dumps(
                    {"MerchantTradeNo": mtn, "period": charge.period, **dict(charge_fields(charge))},
                    ensure_ascii=False,
                )
                delivery = Delivery(new_notification_id(), "reconcile", raw, self.clock())
                results.append(
                    apply_period_charge(
                        self.store, charge, delivery, merchant_id=self.merchant_id, clock=self.clock
                    )
                )
            if info.exec_status == "0":
                self._mark_cancelled(txn.transaction_id)
        return results

    def _mark_cancelled(self, transaction_id: str) -> Transaction:
        def step() -> Transaction:
            now = self.clock()
            return self.store.run(
                Reads((transaction_id,)),
                lambda snap: decide_plan_cancelled(
                    snap.transactions.get(transaction_id), transaction_id, now
                ),
            )

        def kept_changing() -> Transaction:
            raise errors.Conflict(f"transaction {transaction_id} keeps changing; retry")

        return retry_on_conflict(step, kept_changing)

    def cancel(self, user_id: str, transaction_id: str) -> Transaction:
        """CreditCardPeriodAction Cancel on every schedule of the plan, then mark it cancelled.

        Charges ECPay made before the cancel still arrive and are credited; later ones are refused.
        """
        txn = self._plan_deposit(user_id, transaction_id)
        state = plan_state(txn)
        if state is not PlanState.ACTIVE:
            raise errors.InvalidState(f"the recurring plan of {transaction_id} is {state}")
        for mtn in paid_schedules(txn):
            try:
                result = self.client.credit_card_period_action(mtn, "Cancel")
            except EcpayError as exc:
                raise errors.PaymentGatewayError(
                    f"ECPay could not be asked to cancel the plan ({type(exc).__name__}); nothing changed"
                ) from None
            if not result.ok and result.rtn_code != NOT_RUNNING:
                raise errors.PeriodActionRefused(
                    f"ECPay refused to cancel {mtn}: {result.rtn_code} {result.rtn_msg}",
                    details={"rtn_code": result.rtn_code, "rtn_msg": result.rtn_msg},
                )
        return self._mark_cancelled(transaction_id)

    def reauth(self, user_id: str, transaction_id: str) -> dict[str, str]:
        """CreditCardPeriodAction ReAuth (an operator's retry of a declined charge): ECPay's answer.

        A successful retry is reported to PeriodReturnURL like any charge.
        """
        txn = self._plan_deposit(user_id, transaction_id)
        schedules = paid_schedules(txn)
        if not schedules:
            raise errors.InvalidState(f"the plan of {transaction_id} has no running ECPay schedule")
        try:
            result = self.client.credit_card_period_action(schedules[-1], "ReAuth")
        except EcpayError as exc:
            raise errors.PaymentGatewayError(f"ECPay could not be asked ({type(exc).__name__})") from None
        if not result.ok:
            raise errors.PeriodActionRefused(
                f"ECPay refused ReAuth: {result.rtn_code} {result.rtn_msg}",
                details={"rtn_code": result.rtn_code, "rtn_msg": result.rtn_msg},
            )
        return {"rtn_code": result.rtn_code, "rtn_msg": result.rtn_msg}


def charge_fields(charge: PeriodCharge) -> dict[str, str]:
    """What a reconciled charge's record keeps (the ExecLog entry's facts, no card data)."""
    return {
        "RtnCode": charge.rtn_code,
        "amount": str(charge.amount),
        "gwsr": charge.gwsr,
        "process_date": charge.process_date.isoformat() if charge.process_date else "",
    }


def decide_plan_cancelled(
    txn: Transaction | None, transaction_id: str, now: datetime
) -> Decision[Transaction]:
    """Mark a plan cancelled (once; a finished or already cancelled plan is left as it is)."""
    if txn is None or txn.plan is None:
        raise errors.NotFound(f"transaction {transaction_id} not found")
    if txn.plan.cancelled_at is not None or plan_state(txn) is PlanState.FINISHED:
        return Decision(txn)
    new = txn._replace(version=txn.version + 1, updated_at=now, plan=txn.plan._replace(cancelled_at=now))
    return Decision(new, AtomicWrite(transactions=(TransactionPut(new, txn.version),)))
