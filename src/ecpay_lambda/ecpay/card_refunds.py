"""Which DoAction a credit-card refund needs, from the card trade's capture state (protocol §7.5, §13.1).

A card trade moves 已授權 (authorised) -> 要關帳 (capture requested; ECPay's daily auto close at
20:15 Asia/Taipei does this) -> 已關帳 (captured by the bank). What a refund may do depends on where
it is: authorised -> ``N`` (abandon, full amount only); capture requested -> full = ``E`` then ``N``,
partial = ``R``; captured -> ``R``. No DoAction between 20:15 and 20:30 Taipei. Installment and
Redeem (bonus point) trades are refunded in full only. CreditDetail/QueryTrade/V2 (§7.6,
``EcpayClient.query_credit_trade``) tells the state; everything here is pure.
"""

# Annotations evaluated, not postponed: the cold-start rule (docs/performance.md).

import re
from collections.abc import Mapping
from datetime import UTC, datetime, time, timedelta
from enum import StrEnum
from types import MappingProxyType
from typing import NamedTuple

from .client import CreditTradeDetail
from .errors import ResponseError
from .timezone import TAIPEI


class CardTradeState(StrEnum):
    """A card trade's capture state, as far as a refund cares."""

    AUTHORISED = "authorised"  # 已授權: not captured yet (same day, before the close)
    TO_BE_CLOSED = "to_be_closed"  # 要關帳: capture requested, the bank has not settled it
    CLOSED = "closed"  # 已關帳: captured
    CANCELLED = "cancelled"  # abandoned / voided: nothing left to refund
    UNKNOWN = "unknown"  # a status this table does not know: refuse to guess


# ECPay's `status` strings -> state. The exact strings are NOT in the stored sources beyond the ones
# third-party transcriptions of QueryTrade/V2 show (已授權, 要關帳, 已關帳, 要退款, 已退款); the
# cancelled spellings follow DoAction's wording (E 取消, N 放棄). This is the one place to adjust
# after seeing real answers.
CARD_TRADE_STATUSES: Mapping[str, CardTradeState] = MappingProxyType(
    {
        "已授權": CardTradeState.AUTHORISED,
        "要關帳": CardTradeState.TO_BE_CLOSED,
        "已關帳": CardTradeState.CLOSED,
        # A refund exists only on a captured trade, so a trade showing one is closed as far as
        # further refunds go (R only); how much is left comes from close_data.
        "要退款": CardTradeState.CLOSED,
        "已退款": CardTradeState.CLOSED,
        "已取消": CardTradeState.CANCELLED,
        "取消": CardTradeState.CANCELLED,
        "放棄": CardTradeState.CANCELLED,
        "已放棄": CardTradeState.CANCELLED,
    }
)
# close_data entries whose status contains this character are refunds (退刷, 要退款, 已退款).
REFUND_MARK = "退"

_AMOUNT = re.compile(r"-?(?:[0-9]{1,3}(?:,[0-9]{3})+|[0-9]+)(?:\.0+)?")

# ECPay's daily auto close: no DoAction from 20:15 to 20:30 Taipei (start inclusive, end exclusive).
CLOSE_STARTS = time(20, 15)
CLOSE_ENDS = time(20, 30)


def card_trade_state(detail: CreditTradeDetail) -> CardTradeState:
    """The capture state of a QueryTrade/V2 answer (UNKNOWN for any status not in the table)."""
    return CARD_TRADE_STATUSES.get(detail.status.strip(), CardTradeState.UNKNOWN)


def _whole_twd(value: object, what: str) -> int:
    # Amounts are whole TWD; an integral float or "1,000" / "100.00" text is accepted, a fraction is
    # not (money is never rounded here). The sign is dropped: only the size of a refund matters,
    # and the stored sources do not say whether ECPay writes refunds as negative amounts.
    if isinstance(value, bool):
        raise ResponseError(f"CreditDetail/QueryTrade/V2: {what} is not an amount")
    if isinstance(value, int):
        return abs(value)
    if isinstance(value, float) and value.is_integer():
        return abs(int(value))
    text = str(value).strip() if isinstance(value, str) else ""
    if not _AMOUNT.fullmatch(text):
        raise ResponseError(
            f"CreditDetail/QueryTrade/V2: {what} is not a whole TWD amount: {str(value)[:20]!r}"
        )
    return abs(int(text.split(".", 1)[0].replace(",", "")))


def refunded_by_ecpay(detail: CreditTradeDetail) -> int:
    """What ECPay has refunded on this trade: all of it when CANCELLED, else the refund entries' sum.

    Raises ``ResponseError`` when an amount it needs is missing or not a whole number of TWD.
    """
    if card_trade_state(detail) is CardTradeState.CANCELLED:
        if detail.amount is None:
            raise ResponseError("CreditDetail/QueryTrade/V2: a cancelled trade without its amount")
        return detail.amount
    total = 0
    for entry in detail.close_data:
        if REFUND_MARK in str(entry.get("status", "")):
            total += _whole_twd(entry.get("amount"), "a close_data amount")
    return total


# --- planning -----------------------------------------------------------------------------------


class RefundReason(StrEnum):
    """Stable machine codes of :class:`RefundPlan` (what was planned, or why nothing can be)."""

    ABANDON = "abandon"  # N: release the whole authorisation
    CANCEL_CLOSE_AND_ABANDON = "cancel_close_and_abandon"  # E then N
    REFUND = "refund"  # R
    PARTIAL_BEFORE_CLOSE = "partial_before_close"
    REST_AFTER_CLOSE = "rest_after_close"
    ALREADY_CANCELLED = "already_cancelled"
    UNKNOWN_STATE = "unknown_state"
    FULL_ONLY = "full_only"
    EXCEEDS_REMAINING = "exceeds_remaining"
    INVALID_AMOUNT = "invalid_amount"
    CLOSE_WINDOW = "close_window"


REFUND_REASON_MESSAGES: Mapping[str, str] = MappingProxyType(
    {
        RefundReason.ABANDON: "abandon the authorisation (DoAction N) for the full amount",
        RefundReason.CANCEL_CLOSE_AND_ABANDON: "cancel the capture request (E), then abandon (N)",
        RefundReason.REFUND: "refund the amount (DoAction R)",
        RefundReason.PARTIAL_BEFORE_CLOSE: (
            "the card trade is only authorised (before today's 20:15 close): it can only be abandoned "
            "in full; a partial refund is possible after the close"
        ),
        RefundReason.REST_AFTER_CLOSE: (
            "the card trade is being closed and was partly refunded: E then N would undo that refund and R "
            "may not take the whole rest, so the rest can be refunded once the trade is closed"
        ),
        RefundReason.ALREADY_CANCELLED: "the card trade is already cancelled: nothing is left to refund",
        RefundReason.UNKNOWN_STATE: "ECPay reports an unknown card trade state; refusing to guess",
        RefundReason.FULL_ONLY: "installment and bonus-point (Redeem) trades can only be refunded in full",
        RefundReason.EXCEEDS_REMAINING: "the amount is more than what is left to refund",
        RefundReason.INVALID_AMOUNT: "the refund amount must be a positive whole number of TWD",
        RefundReason.CLOSE_WINDOW: "ECPay accepts no DoAction between 20:15 and 20:30 Taipei time",
    }
)


class RefundPlan(NamedTuple):
    """The DoAction calls to make, in order (empty when nothing may be sent), and why."""

    actions: tuple[str, ...]
    reason: str  # a RefundReason value

    @property
    def possible(self) -> bool:
        """True when there is something to send."""
        return bool(self.actions)

    @property
    def message(self) -> str:
        """A human sentence for ``reason``."""
        return REFUND_REASON_MESSAGES.get(self.reason, self.reason)


def _plan(actions: tuple[str, ...], reason: RefundReason) -> RefundPlan:
    return RefundPlan(actions, reason.value)


def plan_refund(
    state: CardTradeState,
    *,
    amount: int,
    paid_amount: int,
    refunded_so_far: int,
    full_only: bool,
    now: datetime | None = None,
) -> RefundPlan:
    """The DoAction sequence that refunds ``amount`` of a card trade in ``state`` (§13.1).

    ``paid_amount`` is the authorised amount, ``refunded_so_far`` what is already refunded;
    ``full_only`` for installment and Redeem trades. With ``now``, the 20:15-20:30 close window
    is refused too. A refused plan has no actions and a reason code saying why.
    """
    if isinstance(amount, bool) or not isinstance(amount, int) or amount < 1:
        return _plan((), RefundReason.INVALID_AMOUNT)
    if state is CardTradeState.CANCELLED:
        return _plan((), RefundReason.ALREADY_CANCELLED)
    if state is CardTradeState.UNKNOWN:
        return _plan((), RefundReason.UNKNOWN_STATE)
    remaining = paid_amount - refunded_so_far
    if amount > remaining:
        return _plan((), RefundReason.EXCEEDS_REMAINING)
    # "Full" is the whole authorisation with nothing refunded before: only then may N abandon it.
    full = refunded_so_far == 0 and amount == paid_amount
    if full_only and not full:
        return _plan((), RefundReason.FULL_ONLY)
    if now is not None and in_close_window(now):
        return _plan((), RefundReason.CLOSE_WINDOW)
    if state is CardTradeState.AUTHORISED:
        if not full:
            return _plan((), RefundReason.PARTIAL_BEFORE_CLOSE)
        return _plan(("N",), RefundReason.ABANDON)
    if state is CardTradeState.TO_BE_CLOSED and full:
        return _plan(("E", "N"), RefundReason.CANCEL_CLOSE_AND_ABANDON)
    if state is CardTradeState.TO_BE_CLOSED and amount == remaining:
        # ECPay takes R for part of a trade being closed; the whole rest after a partial R is neither
        # a partial R nor a whole-trade E+N (which would abandon what was already refunded).
        return _plan((), RefundReason.REST_AFTER_CLOSE)
    return _plan(("R",), RefundReason.REFUND)


# --- the daily close ----------------------------------------------------------------------------


def _taipei(now: datetime) -> datetime:
    if now.tzinfo is None:
        raise ValueError("naive datetime: pass an aware datetime (UTC recommended)")
    return now.astimezone(TAIPEI)


def in_close_window(now: datetime) -> bool:
    """True from 20:15 (inclusive) to 20:30 (exclusive) Taipei time, when ECPay refuses DoAction."""
    local = _taipei(now).time()
    return CLOSE_STARTS <= local < CLOSE_ENDS


def next_close(now: datetime) -> datetime:
    """The next daily close (20:15 Taipei) strictly after ``now``, as an aware UTC datetime."""
    local = _taipei(now)
    close = local.replace(hour=CLOSE_STARTS.hour, minute=CLOSE_STARTS.minute, second=0, microsecond=0)
    if close <= local:
        close += timedelta(days=1)
    return close.astimezone(UTC)


def close_window_ends(now: datetime) -> datetime:
    """When the current or next close window ends (20:30 Taipei), as an aware UTC datetime."""
    local = _taipei(now)
    end = local.replace(hour=CLOSE_ENDS.hour, minute=CLOSE_ENDS.minute, second=0, microsecond=0)
    if end <= local:
        end += timedelta(days=1)
    return end.astimezone(UTC)
