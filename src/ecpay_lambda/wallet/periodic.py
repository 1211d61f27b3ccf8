"""Recurring top-ups: ECPay periodic (定期定額) card orders, each later charge credited exactly once.

A deposit created with a plan checks out as a periodic order. Charge #1 is that deposit, paid through
ReturnURL like any card payment. Charges #2..n arrive on PeriodReturnURL (or are found by
QueryCreditCardPeriodInfo when a notification was lost); each becomes a deposit of its own, created
already paid in the same atomic write that credits it, records it on the plan and keeps the
notification. Three guards make that write happen once per (MerchantTradeNo, period): the
notification's dedupe key ``{MerchantTradeNo}:paid:{period}`` (design §2), the charge's deposit id
derived from the plan and the period (a second create is refused), and the plan deposit's
compare-and-set. A declined charge is recorded on the plan and credits nothing.

Pure decisions (:func:`decide_period`) plus one apply loop (:func:`apply_period_charge`), kept apart
from ``outcomes`` so the one-time payment path stays as it is. NamedTuples, no dataclasses: this
module is on the notification Lambda's import path (see ``ecpay.records``).
"""

# Annotations are evaluated, not postponed (no ``from __future__ import annotations``): typing.NamedTuple
# would otherwise compile each field's string annotation at import (cold start, see ``ecpay.records``).

import hashlib
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any, NamedTuple

from .attempts import attempts_of, find_attempt
from .ids import TRANSACTION_ID_LENGTH, new_entry_id
from .invoice_state import for_charge as invoice_for_charge
from .models import (
    Attempt,
    AttemptState,
    LedgerEntry,
    PaymentMethod,
    PeriodFailure,
    Plan,
    PlanState,
    Transaction,
    TransactionStatus,
    TransactionType,
)
from .outcomes import (
    FLAG_CLOSED_USER_CREDIT,
    FLAG_PAID_AFTER_CANCEL,
    PAID_FAMILY,
    Change,
    Delivery,
    OutcomeResult,
    Skip,
    apply_change,
)
from .port import Reads, Snapshot, TransactionPut, UserDelta, WalletStore

# A plan keeps its latest declined charges (ECPay cancels a schedule after six anyway, §4.5).
MAX_FAILURES_KEPT = 20
PERIOD_KEY = "period"  # a charge deposit's payment_info: its charge number (2..n)
PLAN_KEY = "plan_transaction_id"  # a charge deposit's payment_info: the plan's (first) deposit
_ALPHABET = "0123456789abcdefghijklmnopqrstuvwxyz"


class PeriodCharge(NamedTuple):
    """One charge #2..n of a periodic order, as ECPay reported it (verified notification or query).

    ``period`` is ECPay's TotalSuccessTimes: for a successful charge its own number, for a declined
    one the successful charges before it.
    """

    transaction_id: str  # the plan's deposit
    merchant_trade_no: str
    merchant_id: str
    paid: bool
    amount: int
    period: int
    rtn_code: str = ""
    rtn_msg: str = ""
    trade_no: str = ""
    gwsr: str = ""
    auth_code: str = ""
    process_date: datetime | None = None  # UTC
    simulate_paid: bool = False

    @property
    def dedupe_key(self) -> str:
        """(MerchantTradeNo, kind, period) as design §2; a declined charge adds its process time."""
        if self.paid:
            return f"{self.merchant_trade_no}:paid:{self.period}"
        at = self.process_date.strftime("%Y%m%d%H%M%S") if self.process_date else "-"
        return f"{self.merchant_trade_no}:period_failed:{self.period}:{at}"


# --- the plan's derived state --------------------------------------------------------------------


def charges_done(txn: Transaction) -> int:
    """Successful charges credited so far: the deposit itself once paid, plus each later charge."""
    if txn.plan is None:
        return 0
    return int(txn.status in PAID_FAMILY) + len(txn.plan.charged)


def plan_state(txn: Transaction) -> PlanState | None:
    """Active, cancelled or finished (every planned charge credited); None without a plan."""
    plan = txn.plan
    if plan is None:
        return None
    if charges_done(txn) >= plan.exec_times:
        return PlanState.FINISHED
    if plan.cancelled_at is not None or txn.status is TransactionStatus.CANCELLED:
        return PlanState.CANCELLED
    return PlanState.ACTIVE


def charge_transaction_id(plan_transaction_id: str, merchant_trade_no: str, period: int) -> str:
    """The id of the deposit of one later charge: derived, so a second create of it is refused."""
    digest = hashlib.sha256(f"{plan_transaction_id}:{merchant_trade_no}:{period}".encode()).digest()
    value = int.from_bytes(digest[:16], "big")
    out = []
    for _ in range(TRANSACTION_ID_LENGTH):
        value, rem = divmod(value, 36)
        out.append(_ALPHABET[rem])
    return "".join(out)


def charge_transaction_ids(txn: Transaction) -> list[str]:
    """The deposit ids of the plan's credited later charges, in period order."""
    if txn.plan is None:
        return []
    return [
        charge_transaction_id(txn.transaction_id, mtn, period)
        for mtn, period in sorted(txn.plan.charged, key=lambda item: (item[1], item[0]))
    ]


def paid_schedules(txn: Transaction) -> list[str]:
    """MerchantTradeNos of the deposit's paid attempts: each one is a running periodic order at ECPay."""
    return [a.merchant_trade_no for a in attempts_of(txn) if a.state is AttemptState.PAID]


def periodic_checkout_fields(txn: Transaction, period_return_url: str | None) -> dict[str, Any]:
    """AioCheckOut's periodic extras (§4.5) for a recurring deposit; empty for any other."""
    plan = txn.plan
    if plan is None:
        return {}
    return {
        "PeriodAmount": txn.amount,
        "PeriodType": plan.period_type,
        "Frequency": plan.frequency,
        "ExecTimes": plan.exec_times,
        "PeriodReturnURL": period_return_url,
    }


def periodic_fingerprint(base: str, plan: Plan) -> str:
    """An idempotency fingerprint that also covers the plan (the same key with another plan is refused)."""
    text = f"{base}:{plan.period_type}:{plan.frequency}:{plan.exec_times}"
    return hashlib.sha256(text.encode()).hexdigest()


# --- codec (the stores keep a plan as JSON) ------------------------------------------------------


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat()


def plan_to_json(plan: Plan) -> dict[str, Any]:
    """A JSON-ready dict of ``plan`` (the stores' representation)."""
    return {
        "period_type": plan.period_type,
        "frequency": plan.frequency,
        "exec_times": plan.exec_times,
        "cancelled_at": _iso(plan.cancelled_at),
        "charged": [[mtn, period] for mtn, period in plan.charged],
        "failures": [
            {
                "merchant_trade_no": f.merchant_trade_no,
                "period": f.period,
                "rtn_code": f.rtn_code,
                "rtn_msg": f.rtn_msg,
                "at": f.at.isoformat(),
            }
            for f in plan.failures
        ],
    }


def plan_from_json(data: Mapping[str, Any]) -> Plan:
    """Inverse of :func:`plan_to_json`; raises ValueError/KeyError/TypeError on a malformed record."""
    cancelled = data.get("cancelled_at")
    return Plan(
        period_type=str(data["period_type"]),
        frequency=int(data["frequency"]),
        exec_times=int(data["exec_times"]),
        cancelled_at=datetime.fromisoformat(cancelled) if cancelled else None,
        charged=tuple((str(mtn), int(period)) for mtn, period in data.get("charged") or ()),
        failures=tuple(
            PeriodFailure(
                merchant_trade_no=str(f["merchant_trade_no"]),
                period=int(f["period"]),
                rtn_code=str(f["rtn_code"]),
                rtn_msg=str(f["rtn_msg"]),
                at=datetime.fromisoformat(f["at"]),
            )
            for f in data.get("failures") or ()
        ),
    )


# --- the decision --------------------------------------------------------------------------------


def _charge_deposit(
    txn: Transaction, charge: PeriodCharge, now: datetime, flags: frozenset[str]
) -> Transaction:
    paid_at = charge.process_date or now
    info = {
        PLAN_KEY: txn.transaction_id,
        PERIOD_KEY: str(charge.period),
        "gwsr": charge.gwsr,
        "auth_code": charge.auth_code,
        "payment_type": "Credit_CreditCard",
    }
    info = {key: value for key, value in info.items() if value}
    attempt = Attempt(
        merchant_trade_no=charge.merchant_trade_no,
        payment_method=PaymentMethod.CREDIT,
        state=AttemptState.PAID,
        created_at=now,
        trade_no=charge.trade_no or None,
        payment_info=info,
    )
    return Transaction(
        transaction_id=charge_transaction_id(txn.transaction_id, charge.merchant_trade_no, charge.period),
        user_id=txn.user_id,
        transaction_type=TransactionType.DEPOSIT,
        amount=charge.amount,
        status=TransactionStatus.PAID,
        version=1,
        created_at=now,
        updated_at=now,
        payment_method=PaymentMethod.CREDIT,
        merchant_trade_no=charge.merchant_trade_no,
        trade_no=attempt.trade_no,
        payment_info=info,
        flags=flags,
        attempts=(attempt,),
        paid_at=paid_at,
        invoice=invoice_for_charge(txn.invoice),
    )


def _failure_of(charge: PeriodCharge, now: datetime) -> PeriodFailure:
    return PeriodFailure(
        merchant_trade_no=charge.merchant_trade_no,
        period=charge.period + 1,
        rtn_code=charge.rtn_code,
        rtn_msg=charge.rtn_msg[:200],
        at=charge.process_date or now,
    )


def decide_period(
    txn: Transaction, charge: PeriodCharge, now: datetime, *, merchant_id: str, user_closed: bool = False
) -> Skip | Change:
    """The pure step: what a later charge does to the plan's deposit ``txn`` (and the wallet).

    A successful charge creates its own paid deposit and credits it; a declined one is recorded on
    the plan. MerchantID, amount and SimulatePaid are checked as for ReturnURL (design §2).
    """
    if charge.merchant_id != merchant_id:
        return Skip("rejected", "rejected:merchant_id")
    plan = txn.plan
    if txn.transaction_type is not TransactionType.DEPOSIT or plan is None:
        return Skip("ignored", "ignored:not_periodic")
    if find_attempt(attempts_of(txn), charge.merchant_trade_no) is None:
        return Skip("ignored", "ignored:unknown_attempt")
    if charge.amount != txn.amount:
        return Skip("rejected", "rejected:amount")
    if charge.simulate_paid:
        return Skip("ignored", "ignored:simulate_paid")
    if not charge.paid:
        failure = _failure_of(charge, now)
        # The same decline as reported by PeriodReturnURL or by a query (whose RtnMsg differs).
        same = (failure.merchant_trade_no, failure.period, failure.at)
        if any((f.merchant_trade_no, f.period, f.at) == same for f in plan.failures):
            return Skip("duplicate", "duplicate")
        kept = (*plan.failures, failure)[-MAX_FAILURES_KEPT:]
        new = txn._replace(version=txn.version + 1, updated_at=now, plan=plan._replace(failures=kept))
        return Change("applied", "applied:period_failed", (TransactionPut(new, txn.version),))
    if charge.period < 2:
        # Charge #1 is the deposit itself, reported to ReturnURL.
        return Skip("ignored", "ignored:first_charge")
    if charge.period > plan.exec_times:
        return Skip("rejected", "rejected:period")
    if (charge.merchant_trade_no, charge.period) in plan.charged:
        return Skip("duplicate", "duplicate")
    flags: set[str] = set()
    if plan.cancelled_at is not None:
        flags.add(FLAG_PAID_AFTER_CANCEL)  # ECPay charged after our cancel: the money is real
    if user_closed:
        flags.add(FLAG_CLOSED_USER_CREDIT)
    deposit = _charge_deposit(txn, charge, now, frozenset(flags))
    charged = (*plan.charged, (charge.merchant_trade_no, charge.period))
    new = txn._replace(version=txn.version + 1, updated_at=now, plan=plan._replace(charged=charged))
    entry = LedgerEntry(
        entry_id=new_entry_id(),
        user_id=txn.user_id,
        transaction_id=deposit.transaction_id,
        kind="deposit_paid",
        delta_balance=charge.amount,
        delta_held=0,
        created_at=now,
    )
    label = "applied" if not flags else "flagged:" + ",".join(sorted(flags))
    return Change(
        "applied" if not flags else "flagged",
        label,
        (TransactionPut(deposit, 0), TransactionPut(new, txn.version)),
        UserDelta(txn.user_id, delta_balance=charge.amount, require_active=not user_closed),
        (entry,),
        credits_money=True,
    )


def apply_period_charge(
    store: WalletStore,
    charge: PeriodCharge,
    delivery: Delivery,
    *,
    merchant_id: str,
    clock: Callable[[], datetime],
    confirm: Callable[[PeriodCharge], str | None] | None = None,
) -> OutcomeResult:
    """Apply ``charge`` once: one atomic commit that also records ``delivery``, or a record alone.

    ``confirm`` runs before a credit (ECPay's own record, outside the sandbox): None to go on, or the
    label of the rejection. ``OutcomeResult.transaction`` is the new charge deposit when one was
    credited, else the plan's deposit.
    """

    def step(txn: Transaction, _snap: Snapshot, now: datetime, user_closed: bool) -> Skip | Change:
        return decide_period(txn, charge, now, merchant_id=merchant_id, user_closed=user_closed)

    return apply_change(
        store,
        Reads((charge.transaction_id,)),
        step,
        delivery,
        transaction_id=charge.transaction_id,
        merchant_trade_no=charge.merchant_trade_no,
        dedupe_key=charge.dedupe_key,
        confirm=None if confirm is None else (lambda _txn: confirm(charge)),
        clock=clock,
    )
