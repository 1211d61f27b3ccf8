"""Reconciliation against ECPay's trade file (TradeNoAio): ECPay's records are the truth.

Every trade in ECPay's file for a range of payment dates is matched with the wallet. A paid trade the
wallet has not credited is confirmed with QueryTradeInfo (signed) and credited through the same
:func:`~ecpay_lambda.wallet.outcomes.apply_outcome` as a notification (the file itself is not signed, so
it never credits on its own); a second paid attempt of a paid deposit is flagged as a duplicate payment.
What cannot be resolved is reported: paid at ECPay but not credited, credited but not paid at ECPay,
amount mismatches, MerchantTradeNos the wallet does not know. ``apply=False`` only compares
(``audit --external``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from datetime import time as day_time
from typing import TYPE_CHECKING

from ..ecpay.client import EcpayClient
from ..ecpay.errors import EcpayError, EcpayValidationError, RateLimitedError
from ..ecpay.merchant_trade_no import reference_of
from ..ecpay.timezone import TAIPEI
from .attempts import attempts_of, find_attempt
from .ids import new_notification_id
from .models import Attempt, AttemptState, Transaction, TransactionType
from .outcomes import FLAG_DUPLICATE_PAYMENT, PAID_FAMILY, Delivery, apply_outcome
from .port import WalletStore
from .reconcile import outcome_from_query
from .recurring import RecurringPlans

if TYPE_CHECKING:
    from ..ecpay.statement import StatementRow

MAX_DAYS_PER_FILE = 7  # ECPay: ask for at most 7 days per request
SECONDS_BETWEEN_FILES = 61.0  # ECPay: at most one file per minute, else a ~30-minute lock


@dataclass
class StatementReport:
    """What comparing the wallet with ECPay's trade file found (and, when applying, fixed)."""

    begin: date
    end: date
    trades: int = 0  # rows in ECPay's file(s)
    paid_trades: int = 0
    matched: int = 0  # paid at ECPay and credited in the wallet
    credited: list[str] = field(default_factory=list)  # paid trades credited by this run (resolved)
    discrepancies: list[str] = field(default_factory=list)  # unresolved: exit non-zero
    notes: list[str] = field(default_factory=list)  # simulated payments, skipped lines

    @property
    def clean(self) -> bool:
        """Nothing left unresolved."""
        return not self.discrepancies


def day_bounds(begin: date, end: date) -> tuple[datetime, datetime]:
    """[start of ``begin``, start of the day after ``end``) in Taipei wall-clock days, as UTC."""
    start = datetime.combine(begin, day_time(0), TAIPEI).astimezone(UTC)
    stop = datetime.combine(end + timedelta(days=1), day_time(0), TAIPEI).astimezone(UTC)
    return start, stop


def chunks(begin: date, end: date) -> list[tuple[date, date]]:
    """The range split into requests of at most ``MAX_DAYS_PER_FILE`` days."""
    out: list[tuple[date, date]] = []
    start = begin
    while start <= end:
        stop = min(end, start + timedelta(days=MAX_DAYS_PER_FILE - 1))
        out.append((start, stop))
        start = stop + timedelta(days=1)
    return out


class StatementReconciler:
    """Compares (and optionally reconciles) the wallet with ECPay's trade file for a date range."""

    def __init__(
        self,
        store: WalletStore,
        client: EcpayClient,
        *,
        merchant_id: str,
        clock: Callable[[], datetime],
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.store = store
        self.client = client
        self.merchant_id = merchant_id
        self.clock = clock
        self.sleep = sleep

    def download(self, begin: date, end: date) -> tuple[list[StatementRow], int]:
        """Every row of ECPay's file(s) for the range (by payment date), and the lines it skipped."""
        rows: list[StatementRow] = []
        skipped = 0
        for index, (start, stop) in enumerate(chunks(begin, end)):
            if index:
                self.sleep(SECONDS_BETWEEN_FILES)
            statement = self.client.download_trade_file(start, stop)
            rows.extend(statement.rows)
            skipped += statement.skipped_lines
        return rows, skipped

    def run(self, begin: date, end: date, *, apply: bool) -> StatementReport:
        """Download, match, credit what ECPay confirms (when ``apply``) and report the rest."""
        if end < begin:
            raise ValueError("the statement range ends before it begins")
        report = StatementReport(begin=begin, end=end)
        rows, skipped = self.download(begin, end)
        if skipped:
            report.notes.append(f"{skipped} line(s) of the file were not trades (headers, totals)")
        report.trades = len(rows)
        paid_numbers: set[str] = set()
        # Recurring deposits: every charge is a line of the order's MerchantTradeNo, matched by count.
        plan_rows: dict[str, list[StatementRow]] = {}
        for row in rows:
            if row.status != "paid":
                continue
            if row.simulate_paid:
                report.notes.append(f"{row.merchant_trade_no}: simulated payment (never credited)")
                continue
            report.paid_trades += 1
            paid_numbers.add(row.merchant_trade_no)
            if self._plan_deposit(row.merchant_trade_no) is not None:
                plan_rows.setdefault(row.merchant_trade_no, []).append(row)
                continue
            self._match(row, report, apply=apply)
        start, stop = day_bounds(begin, end)
        credited_by_number: dict[str, int] = {}
        for deposit in self.store.iter_paid_deposits(paid_from=start, paid_to=stop):
            paid = [a for a in attempts_of(deposit) if a.state is AttemptState.PAID]
            numbers = [a.merchant_trade_no for a in paid] or [deposit.merchant_trade_no or ""]
            for number in numbers:
                credited_by_number[number] = credited_by_number.get(number, 0) + 1
            if not any(number in paid_numbers for number in numbers):
                report.discrepancies.append(
                    f"credited but not paid at ECPay: deposit {deposit.transaction_id} "
                    f"({', '.join(numbers)}, {deposit.amount} TWD) is not a paid trade in ECPay's file"
                )
        for mtn, charges in plan_rows.items():
            self._match_plan(mtn, charges, credited_by_number.get(mtn, 0), report, apply=apply)
        return report

    def _plan_deposit(self, mtn: str) -> Transaction | None:
        try:
            txn = self.store.get_transaction(reference_of(mtn))
        except EcpayValidationError:
            return None
        return txn if txn is not None and txn.plan is not None else None

    def _match_plan(
        self, mtn: str, charges: list[StatementRow], credited: int, report: StatementReport, *, apply: bool
    ) -> None:
        """A recurring deposit's charges in the file against its credited deposits (the first included)."""
        txn = self._plan_deposit(mtn)
        assert txn is not None
        if len(charges) <= credited:
            report.matched += len(charges)
            if len(charges) < credited:
                report.discrepancies.append(
                    f"credited but not paid at ECPay: {credited} charge(s) of recurring deposit "
                    f"{txn.transaction_id} ({mtn}) were credited, ECPay's file has {len(charges)}"
                )
            return
        if not apply:
            report.discrepancies.append(
                f"paid at ECPay but not credited: {len(charges) - credited} charge(s) of {mtn} "
                f"(recurring deposit {txn.transaction_id})"
            )
            return
        if txn.status not in PAID_FAMILY:
            self._match(charges[0], report, apply=True)  # charge #1 is the deposit itself
        plans = RecurringPlans(self.store, self.client, merchant_id=self.merchant_id, clock=self.clock)
        fresh = self.store.get_transaction(txn.transaction_id) or txn
        try:
            results = plans.reconcile(fresh)
        except EcpayError as exc:
            report.discrepancies.append(
                f"paid at ECPay but not credited: {mtn}: "
                f"QueryCreditCardPeriodInfo failed ({type(exc).__name__})"
            )
            return
        for result in results:
            credited_now = result.transaction
            if (
                result.status in ("applied", "flagged")
                and credited_now is not None
                and credited_now.transaction_id != txn.transaction_id
            ):
                report.credited.append(
                    f"{mtn}: credited charge deposit {credited_now.transaction_id} "
                    f"of recurring deposit {txn.transaction_id} ({credited_now.amount} TWD)"
                )
        report.matched += credited

    def _match(self, row: StatementRow, report: StatementReport, *, apply: bool) -> None:
        mtn = row.merchant_trade_no
        try:
            txn = self.store.get_transaction(reference_of(mtn))
        except EcpayValidationError:
            txn = None
        if txn is None or txn.transaction_type is not TransactionType.DEPOSIT:
            report.discrepancies.append(
                f"unknown MerchantTradeNo: {mtn} ({row.amount} TWD paid at ECPay) "
                "is no deposit of this wallet"
            )
            return
        if row.amount != txn.amount:
            report.discrepancies.append(
                f"amount mismatch: {mtn} paid {row.amount} TWD at ECPay, deposit {txn.transaction_id} "
                f"is for {txn.amount} TWD"
            )
            return
        attempts = attempts_of(txn)
        index = find_attempt(attempts, mtn)
        attempt = attempts[index] if index is not None else None
        if attempt is not None and attempt.state is AttemptState.PAID:
            if txn.status in PAID_FAMILY and self._first_paid(txn) == mtn:
                report.matched += 1
                return
            report.discrepancies.append(
                f"duplicate payment: {mtn} is a second paid attempt of deposit {txn.transaction_id} "
                "(flagged; refund it)"
            )
            return
        if not apply:
            report.discrepancies.append(
                f"paid at ECPay but not credited: {mtn} ({row.amount} TWD) of deposit {txn.transaction_id} "
                f"({txn.status})"
            )
            return
        self._credit(txn, attempt, row, report)

    @staticmethod
    def _first_paid(txn: Transaction) -> str | None:
        for attempt in attempts_of(txn):
            if attempt.state is AttemptState.PAID:
                return attempt.merchant_trade_no
        return txn.merchant_trade_no

    def _credit(
        self, txn: Transaction, attempt: Attempt | None, row: StatementRow, report: StatementReport
    ) -> None:
        mtn = row.merchant_trade_no
        probe = attempt or Attempt(mtn, txn.payment_method, AttemptState.AWAITING_PAYMENT, txn.created_at)
        try:
            answer = outcome_from_query(self.client, txn, probe, self.clock(), self.merchant_id)
        except RateLimitedError:
            report.discrepancies.append(
                f"paid at ECPay but not credited: {mtn}: ECPay rate-limited the query"
            )
            return
        except EcpayError as exc:
            report.discrepancies.append(
                f"paid at ECPay but not credited: {mtn}: QueryTradeInfo failed ({type(exc).__name__})"
            )
            return
        if answer is None or answer[0].kind != "paid" or answer[0].simulate_paid:
            report.discrepancies.append(
                f"paid at ECPay but not credited: {mtn}: the trade file says paid, QueryTradeInfo does not"
            )
            return
        oc, raw = answer
        delivery = Delivery(new_notification_id(), "statement", raw, self.clock())
        result = apply_outcome(self.store, oc, delivery, merchant_id=self.merchant_id, clock=self.clock)
        if result.status == "applied" or (
            result.status == "flagged" and FLAG_DUPLICATE_PAYMENT not in (result.outcome or "")
        ):
            report.credited.append(f"{mtn}: credited deposit {txn.transaction_id} ({txn.amount} TWD)")
        elif result.status == "flagged":
            report.discrepancies.append(
                f"duplicate payment: {mtn} is a second paid attempt of deposit {txn.transaction_id} "
                "(flagged; refund it)"
            )
        elif result.status == "duplicate":
            report.matched += 1
        else:
            report.discrepancies.append(f"paid at ECPay but not credited: {mtn}: {result.outcome}")
