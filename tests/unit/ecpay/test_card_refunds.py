"""Card trade capture state, what ECPay already refunded, the refund plan, and the daily close window."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta, timezone
from types import MappingProxyType

import pytest

from ecpay_lambda.ecpay.card_refunds import (
    CARD_TRADE_STATUSES,
    REFUND_REASON_MESSAGES,
    CardTradeState,
    RefundPlan,
    RefundReason,
    card_trade_state,
    close_window_ends,
    in_close_window,
    next_close,
    plan_refund,
    refunded_by_ecpay,
)
from ecpay_lambda.ecpay.client import CreditTradeDetail
from ecpay_lambda.ecpay.errors import ResponseError

S = CardTradeState


def detail(
    status: str, amount: int | None = 1000, close_data: tuple[Mapping[str, object], ...] = ()
) -> CreditTradeDetail:
    return CreditTradeDetail(
        rtn_msg="",
        trade_id="16000001",
        amount=amount,
        clsamt=None,
        authtime="2026/11/27 12:00:00",
        status=status,
        close_data=tuple(MappingProxyType(dict(entry)) for entry in close_data),
        fields=MappingProxyType({}),
    )


@pytest.mark.parametrize(
    ("status", "state"),
    [
        ("已授權", S.AUTHORISED),
        (" 要關帳 ", S.TO_BE_CLOSED),
        ("已關帳", S.CLOSED),
        ("已退款", S.CLOSED),
        ("已取消", S.CANCELLED),
        ("放棄", S.CANCELLED),
        ("已放棄", S.CANCELLED),
        ("", S.UNKNOWN),
        ("authorised", S.UNKNOWN),
        ("已授", S.UNKNOWN),
    ],
)
def test_card_trade_state_from_ecpay_status(status: str, state: CardTradeState) -> None:
    assert card_trade_state(detail(status)) is state


def test_status_table_covers_the_brief() -> None:
    assert {CARD_TRADE_STATUSES[s] for s in ("已授權", "要關帳", "已關帳", "已取消", "放棄", "已放棄")} == {
        S.AUTHORISED,
        S.TO_BE_CLOSED,
        S.CLOSED,
        S.CANCELLED,
    }


def test_refunded_by_ecpay_sums_refund_entries_only() -> None:
    entries = (
        {"status": "已關帳", "sno": "1", "amount": 1000, "datetime": "2026/11/27 20:15:00"},
        {"status": "退刷", "sno": "2", "amount": 200, "datetime": "2026/11/28 10:00:00"},
        {"status": "要退款", "sno": "3", "amount": "100.00", "datetime": ""},
        {"status": "已退款", "sno": "4", "amount": 50.0, "datetime": ""},
        {"status": "已退款", "sno": "5", "amount": "-25", "datetime": ""},
    )
    assert refunded_by_ecpay(detail("已關帳", close_data=entries)) == 200 + 100 + 50 + 25
    assert refunded_by_ecpay(detail("已關帳")) == 0
    assert refunded_by_ecpay(detail("已關帳", close_data=({"status": "已退款", "amount": "1,200"},))) == 1200


def test_a_cancelled_trade_is_refunded_in_full() -> None:
    assert refunded_by_ecpay(detail("已取消", amount=1000)) == 1000
    with pytest.raises(ResponseError, match="without its amount"):
        refunded_by_ecpay(detail("放棄", amount=None))


@pytest.mark.parametrize("amount", [10.5, "10.5", "abc", "", None, True, "1,0,0", "12,34"])
def test_refund_amounts_must_be_whole_twd(amount: object) -> None:
    with pytest.raises(ResponseError, match="amount"):
        refunded_by_ecpay(detail("已關帳", close_data=({"status": "退刷", "amount": amount},)))


# --- plan_refund (protocol §13.1) ---------------------------------------------------------------


def plan(state: CardTradeState, amount: int, *, refunded: int = 0, full_only: bool = False) -> RefundPlan:
    return plan_refund(state, amount=amount, paid_amount=1000, refunded_so_far=refunded, full_only=full_only)


@pytest.mark.parametrize(
    ("state", "amount", "refunded", "full_only", "actions", "reason"),
    [
        (S.AUTHORISED, 1000, 0, False, ("N",), "abandon"),
        (S.AUTHORISED, 400, 0, False, (), "partial_before_close"),
        (S.AUTHORISED, 1000, 0, True, ("N",), "abandon"),
        (S.TO_BE_CLOSED, 1000, 0, False, ("E", "N"), "cancel_close_and_abandon"),
        (S.TO_BE_CLOSED, 400, 0, False, ("R",), "refund"),
        (S.TO_BE_CLOSED, 600, 400, False, (), "rest_after_close"),  # after a partial: never E+N
        (S.TO_BE_CLOSED, 300, 400, False, ("R",), "refund"),  # another part is still an R
        (S.CLOSED, 1000, 0, False, ("R",), "refund"),
        (S.CLOSED, 400, 0, False, ("R",), "refund"),
        (S.CLOSED, 1000, 0, True, ("R",), "refund"),
        (S.CLOSED, 400, 0, True, (), "full_only"),
        (S.TO_BE_CLOSED, 400, 0, True, (), "full_only"),
        (S.CLOSED, 500, 600, False, (), "exceeds_remaining"),
        (S.CLOSED, 1001, 0, False, (), "exceeds_remaining"),
        (S.CANCELLED, 1000, 0, False, (), "already_cancelled"),
        (S.UNKNOWN, 1000, 0, False, (), "unknown_state"),
        (S.CLOSED, 0, 0, False, (), "invalid_amount"),
        (S.CLOSED, -5, 0, False, (), "invalid_amount"),
    ],
)
def test_plan_refund_follows_the_capture_state(
    state: CardTradeState,
    amount: int,
    refunded: int,
    full_only: bool,
    actions: tuple[str, ...],
    reason: str,
) -> None:
    result = plan(state, amount, refunded=refunded, full_only=full_only)
    assert result == RefundPlan(actions, reason)
    assert result.possible is bool(actions)
    assert result.message == REFUND_REASON_MESSAGES[reason]


def test_every_reason_has_a_message() -> None:
    assert set(REFUND_REASON_MESSAGES) == {reason.value for reason in RefundReason}
    assert all(message.strip() for message in REFUND_REASON_MESSAGES.values())


def test_plan_refund_refuses_the_close_window_when_given_now() -> None:
    inside = datetime(2026, 11, 27, 12, 20, tzinfo=UTC)  # 20:20 Taipei
    outside = datetime(2026, 11, 27, 12, 30, tzinfo=UTC)  # 20:30 Taipei
    args = {"amount": 1000, "paid_amount": 1000, "refunded_so_far": 0, "full_only": False}
    assert plan_refund(S.CLOSED, now=inside, **args).reason == "close_window"  # type: ignore[arg-type]
    assert plan_refund(S.CLOSED, now=outside, **args).actions == ("R",)  # type: ignore[arg-type]


# --- the daily close ----------------------------------------------------------------------------

TAIPEI_CLOCK = timezone(timedelta(hours=8))


def taipei(hour: int, minute: int, second: int = 0, day: int = 27) -> datetime:
    return datetime(2026, 11, day, hour, minute, second, tzinfo=TAIPEI_CLOCK)


@pytest.mark.parametrize(
    ("moment", "inside"),
    [
        (taipei(20, 14, 59), False),
        (taipei(20, 15), True),
        (taipei(20, 29, 59), True),
        (taipei(20, 30), False),
        (taipei(8, 15), False),
        (datetime(2026, 11, 27, 12, 15, tzinfo=UTC), True),  # 20:15 Taipei given in UTC
        (datetime(2026, 11, 27, 20, 15, tzinfo=UTC), False),  # 20:15 UTC is 04:15 Taipei
    ],
)
def test_in_close_window(moment: datetime, inside: bool) -> None:
    assert in_close_window(moment) is inside


def test_next_close_is_the_next_2015_taipei_in_utc() -> None:
    assert next_close(taipei(9, 0)) == datetime(2026, 11, 27, 12, 15, tzinfo=UTC)
    assert next_close(taipei(20, 15)) == datetime(2026, 11, 28, 12, 15, tzinfo=UTC)
    assert next_close(taipei(23, 59)) == datetime(2026, 11, 28, 12, 15, tzinfo=UTC)
    assert next_close(taipei(20, 15)).tzinfo is UTC
    assert close_window_ends(taipei(20, 20)) == datetime(2026, 11, 27, 12, 30, tzinfo=UTC)
    assert close_window_ends(taipei(20, 30)) == datetime(2026, 11, 28, 12, 30, tzinfo=UTC)


def test_naive_datetimes_are_refused() -> None:
    with pytest.raises(ValueError, match="naive"):
        in_close_window(datetime(2026, 11, 27, 20, 20))
    with pytest.raises(ValueError, match="naive"):
        next_close(datetime(2026, 11, 27, 20, 20))
