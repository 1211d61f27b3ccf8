"""Card capture states (已授權 → 要關帳 → 已關帳, 已取消) on the sandbox's clock, and DoAction by state
(protocol §7.5, §13.1). The engine runs on an injected clock; the HTTP tests move time with
``clock_offset_seconds``."""

from __future__ import annotations

import urllib.request
from datetime import UTC, datetime, timedelta

import pytest
from tests.support.clock import daytime_offset

from ecpay_lambda.ecpay.checkmac import check_mac_value
from ecpay_lambda.ecpay.client import EcpayClient, parse_raw_pairs
from ecpay_lambda.ecpay.timezone import TAIPEI
from ecpay_lambda.local.sandbox import ActionError, Sandbox, SandboxSettings, Trade
from ecpay_lambda.local.sandbox.capture import CardState, closes_due, in_close_window, next_close_after
from ecpay_lambda.local.sandbox.client import SandboxError

from .conftest import STAGE, CheckoutFactory

RETURN_URL = "http://127.0.0.1:9/return"


def taipei(day: int, hour: int, minute: int = 0, second: int = 0) -> datetime:
    """A UTC moment given as Taipei wall-clock time in March 2026."""
    return datetime(2026, 3, day, hour, minute, second, tzinfo=TAIPEI).astimezone(UTC)


class Clock:
    """A settable clock for the engine."""

    def __init__(self, at: datetime) -> None:
        self.at = at

    def __call__(self) -> datetime:
        return self.at


@pytest.fixture
def clock() -> Clock:
    return Clock(taipei(2, 10))


@pytest.fixture
def sandbox(clock: Clock) -> Sandbox:
    box = Sandbox(clock=clock, send=lambda url, fields, timeout: (200, b"1|OK"))
    yield box
    box.close()


@pytest.fixture
def paid(sandbox: Sandbox, checkout_form: CheckoutFactory):  # type: ignore[no-untyped-def]
    """``paid(**checkout overrides)``: a card trade paid now, TotalAmount 1000."""

    def make(**overrides: str) -> Trade:
        form = checkout_form(RETURN_URL, **{"TotalAmount": "1000", **overrides})
        sandbox.checkout(form)
        return sandbox.pay(form["MerchantTradeNo"])

    return make


def do_action(sandbox: Sandbox, trade: Trade, action: str, amount: int) -> tuple[str, str]:
    """DoAction as a merchant sends it (signed, TimeStamp-free): (RtnCode, RtnMsg)."""
    fields = {
        "MerchantID": STAGE.merchant_id,
        "MerchantTradeNo": trade.merchant_trade_no,
        "TradeNo": trade.trade_no,
        "Action": action,
        "TotalAmount": str(amount),
    }
    fields["CheckMacValue"] = check_mac_value(fields, STAGE.hash_key, STAGE.hash_iv)
    status, body = sandbox.do_action(fields)
    assert status == 200
    answer = parse_raw_pairs(body)
    assert answer["TradeNo"] == trade.trade_no
    return answer["RtnCode"], answer["RtnMsg"]


def state(sandbox: Sandbox, trade: Trade) -> str:
    with sandbox.book.lock:
        return str(sandbox.card_state(trade))


# --- the clock ---------------------------------------------------------------------------------


def test_daily_close_arithmetic() -> None:
    assert next_close_after(taipei(2, 10)) == taipei(2, 20, 15)
    assert next_close_after(taipei(2, 20, 15)) == taipei(3, 20, 15)  # strictly after
    assert next_close_after(taipei(2, 23, 59)) == taipei(3, 20, 15)
    assert not in_close_window(taipei(2, 20, 14, 59))
    assert in_close_window(taipei(2, 20, 15)) and in_close_window(taipei(2, 20, 29, 59))
    assert not in_close_window(taipei(2, 20, 30))
    assert closes_due(CardState.AUTHORISED, taipei(2, 10), taipei(9, 10)) == [
        (CardState.TO_BE_CLOSED, taipei(2, 20, 15)),
        (CardState.CLOSED, taipei(3, 20, 15)),
    ]
    assert closes_due(CardState.CANCELLED, taipei(2, 10), taipei(9, 10)) == []


def test_a_paid_card_trade_closes_at_the_daily_closes(sandbox: Sandbox, clock: Clock, paid) -> None:  # type: ignore[no-untyped-def]
    trade = paid()
    assert state(sandbox, trade) == "authorised"
    clock.at = taipei(2, 20, 14, 59)
    assert state(sandbox, trade) == "authorised"
    clock.at = taipei(2, 20, 15)
    assert state(sandbox, trade) == "to_be_closed"
    clock.at = taipei(3, 20, 14, 59)
    assert state(sandbox, trade) == "to_be_closed"
    clock.at = taipei(3, 20, 15)
    assert state(sandbox, trade) == "closed"
    assert trade.close_data == [
        {"status": "要關帳", "sno": "1", "amount": 1000, "datetime": "2026/03/02 20:15:00"},
        {"status": "已關帳", "sno": "2", "amount": 1000, "datetime": "2026/03/03 20:15:00"},
    ]
    assert trade.captured_amount == 1000
    snapshot = sandbox.snapshot(trade.merchant_trade_no)
    assert snapshot["card_state"] == "closed" and snapshot["card_status"] == "已關帳"


def test_a_payment_after_the_close_waits_for_the_next_day(sandbox: Sandbox, clock: Clock, paid) -> None:  # type: ignore[no-untyped-def]
    clock.at = taipei(2, 20, 20)
    trade = paid()
    clock.at = taipei(3, 20, 14)
    assert state(sandbox, trade) == "authorised"
    clock.at = taipei(30, 0, 0)  # weeks later, looked at once: both closes, each at its own time
    assert state(sandbox, trade) == "closed"
    assert [c["datetime"] for c in trade.close_data] == ["2026/03/03 20:15:00", "2026/03/04 20:15:00"]


def test_non_card_and_unpaid_trades_have_no_capture_state(
    sandbox: Sandbox, checkout_form: CheckoutFactory
) -> None:
    atm = checkout_form(RETURN_URL, ChoosePayment="ATM")
    sandbox.checkout(atm)
    unpaid = checkout_form(RETURN_URL)
    sandbox.checkout(unpaid)
    assert state(sandbox, sandbox.pay(atm["MerchantTradeNo"])) == "None"
    assert state(sandbox, sandbox.trade(unpaid["MerchantTradeNo"])) == "None"


# --- DoAction by state -------------------------------------------------------------------------


def _in_state(sandbox: Sandbox, trade: Trade, wanted: str) -> None:
    if wanted == "to_be_closed":
        assert do_action(sandbox, trade, "C", 1000)[0] == "1"
    elif wanted == "closed":
        sandbox.close_trade(trade.merchant_trade_no)
    elif wanted == "cancelled":
        assert do_action(sandbox, trade, "N", 1000)[0] == "1"
    assert state(sandbox, trade) == wanted


@pytest.mark.parametrize(
    ("start", "action", "amount", "code", "after", "refunded"),
    [
        ("authorised", "N", 1000, "1", "cancelled", 1000),
        ("authorised", "N", 400, "10200173", "authorised", 0),
        ("authorised", "C", 1000, "1", "to_be_closed", 0),
        ("authorised", "C", 999, "10200174", "authorised", 0),
        ("authorised", "R", 400, "10200172", "authorised", 0),
        ("authorised", "R", 1000, "10200172", "authorised", 0),
        ("authorised", "E", 1000, "10200172", "authorised", 0),
        ("to_be_closed", "E", 1000, "1", "authorised", 0),
        ("to_be_closed", "R", 400, "1", "to_be_closed", 400),
        ("to_be_closed", "R", 1000, "10200176", "to_be_closed", 0),
        ("to_be_closed", "N", 1000, "10200172", "to_be_closed", 0),
        ("to_be_closed", "C", 1000, "10200172", "to_be_closed", 0),
        ("closed", "R", 400, "1", "closed", 400),
        ("closed", "R", 1000, "1", "closed", 1000),
        ("closed", "R", 1001, "10200050", "closed", 0),
        ("closed", "E", 1000, "10200172", "closed", 0),
        ("closed", "N", 1000, "10200172", "closed", 0),
        ("closed", "C", 1000, "10200172", "closed", 0),
        ("cancelled", "R", 1, "10200171", "cancelled", 1000),
        ("cancelled", "N", 1000, "10200171", "cancelled", 1000),
        ("cancelled", "C", 1000, "10200171", "cancelled", 1000),
    ],
)
def test_do_action_follows_the_capture_state(  # type: ignore[no-untyped-def]
    sandbox: Sandbox, paid, start: str, action: str, amount: int, code: str, after: str, refunded: int
) -> None:
    trade = paid()
    _in_state(sandbox, trade, start)
    got_code, text = do_action(sandbox, trade, action, amount)
    assert got_code == code, text
    assert state(sandbox, trade) == after
    assert trade.refunded_amount == refunded
    last = trade.actions[-1]
    assert (last["action"], last["amount"], last["state_before"], last["state_after"]) == (
        action,
        amount,
        start,
        after,
    )
    assert last["ok"] is (code == "1") and last["at"] == taipei(2, 10).isoformat()


def test_the_refusal_names_the_state(sandbox: Sandbox, paid) -> None:  # type: ignore[no-untyped-def]
    trade = paid()
    assert do_action(sandbox, trade, "R", 100) == (
        "10200172",
        "Action R is not allowed while the trade is 已授權",
    )


def test_full_refund_while_closing_is_e_then_n(sandbox: Sandbox, paid) -> None:  # type: ignore[no-untyped-def]
    trade = paid()
    _in_state(sandbox, trade, "to_be_closed")
    assert do_action(sandbox, trade, "R", 300)[0] == "1"  # a part is fine: 700 remain to close
    assert do_action(sandbox, trade, "E", 700)[0] == "1"
    assert do_action(sandbox, trade, "N", 700)[0] == "1"
    assert trade.refunded_amount == 1000 and state(sandbox, trade) == "cancelled"
    assert [(c["status"], c["amount"]) for c in trade.close_data] == [
        ("要關帳", 1000),
        ("退刷", 300),
        ("已取消", 700),
        ("已取消", 700),
    ]


def test_a_refund_while_closing_does_not_delay_the_close(sandbox: Sandbox, clock: Clock, paid) -> None:  # type: ignore[no-untyped-def]
    trade = paid()
    _in_state(sandbox, trade, "to_be_closed")
    clock.at = taipei(2, 18)
    assert do_action(sandbox, trade, "R", 250)[0] == "1"
    clock.at = taipei(2, 20, 15)
    assert state(sandbox, trade) == "closed"
    assert trade.captured_amount == 750 and trade.close_data[-1]["status"] == "已關帳"


def test_abandon_of_an_e_cancelled_capture_restarts_the_day(sandbox: Sandbox, clock: Clock, paid) -> None:  # type: ignore[no-untyped-def]
    trade = paid()
    _in_state(sandbox, trade, "to_be_closed")
    clock.at = taipei(2, 12)
    assert do_action(sandbox, trade, "E", 1000)[0] == "1"
    clock.at = taipei(2, 20, 15)  # the daily close takes an authorised trade again
    assert state(sandbox, trade) == "to_be_closed"


@pytest.mark.parametrize("moment", [taipei(2, 20, 15), taipei(2, 20, 22), taipei(2, 20, 29, 59)])
def test_no_do_action_during_the_daily_close(sandbox: Sandbox, clock: Clock, paid, moment: datetime) -> None:  # type: ignore[no-untyped-def]
    trade = paid()
    clock.at = moment
    for action, amount in (("R", 100), ("E", 1000), ("N", 1000), ("C", 1000)):
        code, text = do_action(sandbox, trade, action, amount)
        assert code == "10200170" and "20:30" in text
    clock.at = taipei(2, 20, 30)
    assert do_action(sandbox, trade, "R", 100)[0] == "1"  # 要關帳 since 20:15: a part may go back


@pytest.mark.parametrize("overrides", [{"CreditInstallment": "3,6"}, {"Redeem": "Y"}])
def test_installment_and_bonus_trades_refund_in_full_only(
    sandbox: Sandbox, paid, overrides: dict[str, str]
) -> None:  # type: ignore[no-untyped-def]
    trade = paid(**overrides)
    _in_state(sandbox, trade, "to_be_closed")
    assert do_action(sandbox, trade, "R", 400)[0] == "10200177"
    assert do_action(sandbox, trade, "R", 1000)[0] == "10200176"  # full while closing: E then N
    sandbox.close_trade(trade.merchant_trade_no)
    assert do_action(sandbox, trade, "R", 400) == (
        "10200177",
        "Installment and bonus-point trades are refunded in full only",
    )
    assert do_action(sandbox, trade, "R", 1000)[0] == "1"
    assert trade.remaining_amount == 0


def test_do_action_on_other_trades(sandbox: Sandbox, checkout_form: CheckoutFactory) -> None:
    atm = checkout_form(RETURN_URL, ChoosePayment="ATM")
    sandbox.checkout(atm)
    atm_trade = sandbox.pay(atm["MerchantTradeNo"])
    assert do_action(sandbox, atm_trade, "R", 100) == ("10100050", "Only credit card trades can use DoAction")
    card = checkout_form(RETURN_URL)
    sandbox.checkout(card)
    unpaid = sandbox.trade(card["MerchantTradeNo"])
    assert do_action(sandbox, unpaid, "N", 500) == ("10100050", "Trade is not paid")
    assert unpaid.actions[-1]["state_before"] is None and unpaid.actions[-1]["ok"] is False
    ghost = Trade(STAGE.merchant_id, "NOSUCH1", "1" * 20, 1, "Credit", {}, taipei(2, 10))
    assert do_action(sandbox, ghost, "R", 1)[0] == "10200047"


# --- the close control action ------------------------------------------------------------------


def test_close_moves_forward_only(
    sandbox: Sandbox, clock: Clock, paid, checkout_form: CheckoutFactory
) -> None:  # type: ignore[no-untyped-def]
    trade = paid()
    mtn = trade.merchant_trade_no
    clock.at = taipei(2, 11)
    sandbox.close_trade(mtn, "to_be_closed")
    assert state(sandbox, trade) == "to_be_closed"
    for target in ("to_be_closed", "authorised"):
        with pytest.raises(ActionError) as info:
            sandbox.close_trade(mtn, target)
        assert info.value.status in (400, 409)
    sandbox.close_trade(mtn)
    assert state(sandbox, trade) == "closed"
    assert [c["datetime"] for c in trade.close_data] == ["2026/03/02 11:00:00", "2026/03/02 11:00:00"]
    with pytest.raises(ActionError) as info:
        sandbox.close_trade(mtn)
    assert (info.value.status, info.value.code) == (409, "not_forward")
    cancelled = paid()
    do_action(sandbox, cancelled, "N", 1000)
    with pytest.raises(ActionError) as info:
        sandbox.close_trade(cancelled.merchant_trade_no)
    assert info.value.code == "not_forward"
    atm = checkout_form(RETURN_URL, ChoosePayment="ATM")
    sandbox.checkout(atm)
    sandbox.pay(atm["MerchantTradeNo"])
    with pytest.raises(ActionError) as info:
        sandbox.close_trade(atm["MerchantTradeNo"])
    assert (info.value.status, info.value.code) == (409, "not_card")
    unpaid = checkout_form(RETURN_URL)
    sandbox.checkout(unpaid)
    with pytest.raises(ActionError) as info:
        sandbox.close_trade(unpaid["MerchantTradeNo"])
    assert (info.value.status, info.value.code) == (409, "invalid_state")


def test_close_over_http(ecpay_sandbox, merchant_endpoint, checkout_form: CheckoutFactory) -> None:  # type: ignore[no-untyped-def]
    ecpay_sandbox.settings(clock_offset_seconds=daytime_offset())
    form = checkout_form(merchant_endpoint.url("/return"))
    mtn = form["MerchantTradeNo"]
    ecpay_sandbox.checkout(form)
    with pytest.raises(SandboxError) as info:
        ecpay_sandbox.close_trade(mtn)
    assert (info.value.status, info.value.code) == (409, "invalid_state")
    ecpay_sandbox.pay(mtn)
    assert ecpay_sandbox.trade(mtn)["card_state"] == "authorised"
    trade = ecpay_sandbox.close_trade(mtn, "to_be_closed")
    assert (trade["card_state"], trade["card_status"]) == ("to_be_closed", "要關帳")
    with pytest.raises(SandboxError) as info:
        ecpay_sandbox.close_trade(mtn, "authorised")
    assert info.value.status == 400
    assert ecpay_sandbox.close_trade(mtn)["card_state"] == "closed"  # default: closed
    with pytest.raises(SandboxError) as info:
        ecpay_sandbox.close_trade(mtn, "to_be_closed")
    assert (info.value.status, info.value.code) == (409, "not_forward")


def test_the_trade_page_shows_the_state_and_closes_now(  # type: ignore[no-untyped-def]
    ecpay_sandbox, merchant_endpoint, checkout_form: CheckoutFactory
) -> None:
    ecpay_sandbox.settings(clock_offset_seconds=daytime_offset())
    form = checkout_form(merchant_endpoint.url("/return"))
    mtn = form["MerchantTradeNo"]
    ecpay_sandbox.checkout(form)
    ecpay_sandbox.pay(mtn)
    with urllib.request.urlopen(f"{ecpay_sandbox.base_url}/sandbox/trades/{mtn}", timeout=5) as response:
        page = response.read().decode()
    assert 'data-card-state="authorised"' in page and "已授權" in page
    assert 'name="action" value="close"' in page and "Close now" in page
    status, page = ecpay_sandbox.post_form(
        f"/sandbox/checkout/{mtn}", {"action": "close", "state": "closed", "from": "record"}
    )
    assert status == 200 and 'data-card-state="closed"' in page  # followed the 303 to the record
    assert "Close now" not in page and "已關帳" in page


# --- the clock setting -------------------------------------------------------------------------


@pytest.mark.parametrize("value", [1e10, -1e10, "60", True, None, float("nan"), float("inf")])
def test_clock_offset_is_bounded(value: object) -> None:
    with pytest.raises(ValueError, match="clock_offset_seconds"):
        SandboxSettings().updated({"clock_offset_seconds": value})
    ten_years = 10 * 365 * 86_400.0
    assert SandboxSettings().updated({"clock_offset_seconds": -ten_years}).clock_offset_seconds == -ten_years


def test_moving_the_clock_over_http_closes_trades_but_keeps_timestamps_real(  # type: ignore[no-untyped-def]
    ecpay_sandbox, merchant_endpoint, checkout_form: CheckoutFactory
) -> None:
    offset = daytime_offset()
    ecpay_sandbox.settings(clock_offset_seconds=offset)
    form = checkout_form(merchant_endpoint.url("/return"))
    mtn = form["MerchantTradeNo"]
    ecpay_sandbox.checkout(form)
    ecpay_sandbox.pay(mtn)
    paid_at = datetime.fromisoformat(ecpay_sandbox.trade(mtn)["payment_date"]).astimezone(TAIPEI)
    assert paid_at.hour == 10  # the business time moved; the notification says so too
    assert merchant_endpoint.posts("/return")[0].fields["PaymentDate"].endswith(paid_at.strftime("%H:%M:%S"))
    ecpay_sandbox.settings(clock_offset_seconds=offset + 2 * 86_400)
    assert ecpay_sandbox.trade(mtn)["card_state"] == "closed"
    client = EcpayClient(STAGE, ecpay_sandbox.endpoints, timeout=5)  # signs with the real time
    assert client.query_trade_info(mtn).is_paid
    trade = ecpay_sandbox.trade(mtn)
    assert client.do_action(mtn, trade["trade_no"], "R", 100).ok
    with urllib.request.urlopen(ecpay_sandbox.base_url + "/sandbox/", timeout=5) as response:
        index = response.read().decode()
    expected_day = (paid_at + timedelta(days=2)).strftime("%Y/%m/%d")
    assert "Sandbox time (Taiwan)" in index and f">{expected_day} 10:0" in index
