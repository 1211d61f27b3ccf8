"""Card capture states and the DoAction rules ECPay applies to them (protocol §7.5, §13.1).

The model the sandbox keeps for a paid card trade:

- **AUTHORISED** (已授權) from the payment until the first daily close (20:15 Asia/Taipei) strictly
  after it. That close moves it to **TO_BE_CLOSED** (要關帳: capture requested); the next daily close
  after that moves it to **CLOSED** (已關帳: captured by the bank). **CANCELLED** (已取消) is final.
- DoAction ``C`` moves AUTHORISED to TO_BE_CLOSED at once; ``E`` moves TO_BE_CLOSED back to
  AUTHORISED; ``N`` abandons an AUTHORISED trade (CANCELLED, the whole amount released); ``R``
  refunds part (TO_BE_CLOSED, CLOSED) or all (CLOSED) of what remains. A state change restarts the
  count of daily closes from the moment it happened.
- The state is stored with the moment it was entered; the daily closes that passed since are applied
  when the trade is next looked at, each with its own 20:15 time (so the record reads as if the
  sandbox had been running at 20:15).
- No DoAction while the daily close runs, 20:15 to 20:30 Taipei.
- Installment (CreditInstallment) and bonus-point (Redeem=Y) trades are refunded in full only.

Pure functions: the engine holds the lock, the clock and the trade.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import NamedTuple

from ...ecpay.timezone import TAIPEI


class CardState(StrEnum):
    """Where a paid card trade is in ECPay's capture cycle."""

    AUTHORISED = "authorised"
    TO_BE_CLOSED = "to_be_closed"
    CLOSED = "closed"
    CANCELLED = "cancelled"


# What ECPay writes for each state (QueryTrade/V2 ``status`` and ``close_data[].status``).
STATUS_TEXT: dict[CardState, str] = {
    CardState.AUTHORISED: "已授權",
    CardState.TO_BE_CLOSED: "要關帳",
    CardState.CLOSED: "已關帳",
    CardState.CANCELLED: "已取消",
}
REFUND_TEXT = "退刷"  # close_data status of an R
FORWARD = (CardState.AUTHORISED, CardState.TO_BE_CLOSED, CardState.CLOSED)
DAILY_CLOSE_HOUR, DAILY_CLOSE_MINUTE = 20, 15
CLOSE_WINDOW = timedelta(minutes=15)  # 20:15 to 20:30: DoAction refused

# DoAction refusals: ECPay publishes no list of DoAction codes, so besides the documented ones
# (10100050 parameter error, 10200047 trade not found, 10200050 amount) these are the sandbox's own,
# picked from a range no documented ECPay code uses. (code, RtnMsg); RtnMsg carries no & = + %
# so the answer reads the same through a raw and a form parser.
DO_ACTION_ERRORS: dict[str, tuple[str, str]] = {
    "bad_action": ("10100050", "Parameter Error. Action"),
    "bad_amount": ("10100050", "Parameter Error. TotalAmount"),
    "not_found": ("10200047", "Cant not find the trade data."),
    "not_credit": ("10100050", "Only credit card trades can use DoAction"),
    "not_paid": ("10100050", "Trade is not paid"),
    "over_amount": ("10200050", "Amount exceeds what remains of the trade"),
    "close_window": ("10200170", "Daily close in progress (20:15 to 20:30 Taipei): try again after 20:30"),
    "cancelled": ("10200171", "Trade is cancelled (已取消): no further action"),
    "not_in_state": ("10200172", "Action {action} is not allowed while the trade is {status}"),
    "abandon_full": ("10200173", "Action N abandons the whole authorised amount only"),
    "capture_full": ("10200174", "Action C captures the whole authorised amount only"),
    "cancel_full": ("10200175", "Action E cancels the whole capture request only"),
    "refund_full_closing": ("10200176", "Trade is 要關帳: a full refund is E then N, R is for part only"),
    "full_only": ("10200177", "Installment and bonus-point trades are refunded in full only"),
}


class Ruling(NamedTuple):
    """What a DoAction does: an error key, or the state after it and the amount it refunds."""

    error: str | None
    state: CardState
    refund: int = 0


def status_text(state: CardState) -> str:
    """ECPay's words for ``state`` (已授權, 要關帳, 已關帳, 已取消)."""
    return STATUS_TEXT[state]


def next_close_after(moment: datetime) -> datetime:
    """The first daily close (20:15 Taipei) strictly after ``moment``, in UTC."""
    local = moment.astimezone(TAIPEI)
    close = local.replace(hour=DAILY_CLOSE_HOUR, minute=DAILY_CLOSE_MINUTE, second=0, microsecond=0)
    if close <= local:
        close += timedelta(days=1)
    return close.astimezone(UTC)


def in_close_window(moment: datetime) -> bool:
    """True from 20:15 (inclusive) to 20:30 (exclusive) Taipei time."""
    local = moment.astimezone(TAIPEI)
    start = local.replace(hour=DAILY_CLOSE_HOUR, minute=DAILY_CLOSE_MINUTE, second=0, microsecond=0)
    return start <= local < start + CLOSE_WINDOW


def closes_due(state: CardState, since: datetime, now: datetime) -> list[tuple[CardState, datetime]]:
    """The (new state, close time) steps the daily closes in (since, now] take ``state`` through."""
    steps: list[tuple[CardState, datetime]] = []
    while state in (CardState.AUTHORISED, CardState.TO_BE_CLOSED):
        close = next_close_after(since)
        if close > now:
            break
        state = FORWARD[FORWARD.index(state) + 1]
        since = close
        steps.append((state, close))
    return steps


def rule(action: str, amount: int, state: CardState, remaining: int, *, full_only: bool) -> Ruling:
    """What ECPay does with DoAction ``action`` for ``amount`` on a trade in ``state``.

    ``remaining`` is the amount not yet refunded; ``full_only`` marks installment and bonus-point
    trades. The caller has already refused the daily close window and non-card or unpaid trades.
    """
    if state is CardState.CANCELLED:
        return Ruling("cancelled", state)
    allowed = {
        CardState.AUTHORISED: ("N", "C"),
        CardState.TO_BE_CLOSED: ("E", "R"),
        CardState.CLOSED: ("R",),
    }[state]
    if action not in allowed:
        return Ruling("not_in_state", state)
    if amount > remaining:
        return Ruling("over_amount", state)
    if action == "N":
        if amount != remaining:
            return Ruling("abandon_full", state)
        return Ruling(None, CardState.CANCELLED, remaining)
    if action == "C":
        return Ruling(None, CardState.TO_BE_CLOSED) if amount == remaining else Ruling("capture_full", state)
    if action == "E":
        return Ruling(None, CardState.AUTHORISED) if amount == remaining else Ruling("cancel_full", state)
    # R: part of what remains; in TO_BE_CLOSED never all of it (ECPay wants E then N there).
    if full_only and amount != remaining:
        return Ruling("full_only", state)
    if state is CardState.TO_BE_CLOSED and amount == remaining:
        return Ruling("refund_full_closing", state)
    return Ruling(None, state, amount)


def error_answer(key: str, **details: str) -> tuple[str, str]:
    """(RtnCode, RtnMsg) for a refusal key of :data:`DO_ACTION_ERRORS`."""
    code, text = DO_ACTION_ERRORS[key]
    return code, text.format(**details) if details else text
