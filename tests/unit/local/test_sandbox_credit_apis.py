"""CreditDetail/QueryTrade/V2, QueryCreditCardPeriodInfo and CreditCardPeriodAction, answered by the
sandbox and read by the project's own client (``ecpay.client``) through an in-process transport that
hands each request to the sandbox app, as the HTTP server would."""

from __future__ import annotations

import urllib.parse
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from ecpay_lambda.ecpay.client import EcpayClient
from ecpay_lambda.ecpay.credentials import MerchantCredentials
from ecpay_lambda.ecpay.environments import Endpoints
from ecpay_lambda.ecpay.errors import RejectedError
from ecpay_lambda.ecpay.notifications import parse_payment_result
from ecpay_lambda.ecpay.timezone import TAIPEI
from ecpay_lambda.local.sandbox import Sandbox, SandboxApp, SandboxTransport, Trade

from .conftest import STAGE, CheckoutFactory

BASE = "http://sandbox.invalid"
RETURN_URL = "http://127.0.0.1:9/return"
PERIODIC = {"PeriodAmount": "500", "PeriodType": "M", "Frequency": "1", "ExecTimes": "3"}
CHECK_CODE = 12345678


class Recorder:
    """The merchant's ReturnURL: records what the sandbox posts, answers 1|OK."""

    def __init__(self) -> None:
        self.posts: list[dict[str, str]] = []

    def __call__(self, url: str, fields: dict[str, str], timeout: float) -> tuple[int, bytes]:
        self.posts.append(fields)
        return 200, b"1|OK"


@pytest.fixture
def received() -> Recorder:
    return Recorder()


@pytest.fixture
def sandbox(received: Recorder) -> Iterator[Sandbox]:
    # 10:00 Taipei: far from the 20:15 daily close, whenever the test runs.
    moment = datetime(2026, 3, 2, 10, 0, tzinfo=TAIPEI).astimezone(UTC)
    box = Sandbox(clock=lambda: moment, send=received)
    yield box
    box.close()


@pytest.fixture
def transport(sandbox: Sandbox) -> SandboxTransport:
    return SandboxTransport(SandboxApp(sandbox))


@pytest.fixture
def client(sandbox: Sandbox, transport: SandboxTransport) -> EcpayClient:
    # The client's TimeStamp must match the sandbox's (injected) clock.
    return EcpayClient(
        STAGE,
        Endpoints(BASE),
        transport=transport,
        clock=lambda: sandbox.now().timestamp(),
    )


def _paid(sandbox: Sandbox, checkout_form: CheckoutFactory, **overrides: str) -> Trade:
    form = checkout_form(RETURN_URL, **{"TotalAmount": "1000", "NeedExtraPaidInfo": "Y", **overrides})
    assert isinstance(sandbox.checkout(form), Trade)
    return sandbox.pay(form["MerchantTradeNo"])


# --- CreditDetail/QueryTrade/V2 -----------------------------------------------------------------


def test_the_gwsr_sent_to_the_merchant_finds_the_card_trade(
    sandbox: Sandbox, client: EcpayClient, received: Recorder, checkout_form: CheckoutFactory
) -> None:
    trade = _paid(sandbox, checkout_form)
    notice = parse_payment_result(urllib.parse.urlencode(received.posts[0]).encode(), STAGE)
    gwsr = notice.extra.gwsr
    assert gwsr and gwsr == trade.gwsr == trade.payment_info["gwsr"]
    assert client.query_trade_info(trade.merchant_trade_no).extra.gwsr == gwsr
    detail = client.query_credit_trade(int(gwsr), 1000, CHECK_CODE)
    assert detail.rtn_msg == ""
    assert (detail.trade_id, detail.amount, detail.clsamt, detail.status) == (gwsr, 1000, 0, "已授權")
    assert detail.authtime == "2026/03/02 10:00:00" and detail.close_data == ()


def test_json_answers_are_labelled_json(transport: SandboxTransport) -> None:
    response = transport.post_form(BASE + "/CreditDetail/QueryTrade/V2", {"MerchantID": "1"}, timeout=1)
    assert response.headers["Content-Type"].startswith("application/json")
    assert response.body.startswith(b'{"RtnMsg": "Parameter Error. CreditRefundId is required"')
    response = transport.post_form(
        BASE + "/Cashier/QueryCreditCardPeriodInfo", {"MerchantID": "1"}, timeout=1
    )
    assert response.headers["Content-Type"].startswith("text/html")  # its errors are k=v


def test_query_trade_follows_captures_and_refunds(
    sandbox: Sandbox, client: EcpayClient, checkout_form: CheckoutFactory
) -> None:
    trade = _paid(sandbox, checkout_form)
    mtn, gwsr = trade.merchant_trade_no, int(trade.gwsr)
    assert client.do_action(mtn, trade.trade_no, "C", 1000).ok
    detail = client.query_credit_trade(gwsr, 1000, CHECK_CODE)
    assert (detail.status, detail.clsamt) == ("要關帳", 1000)
    assert client.do_action(mtn, trade.trade_no, "R", 200).ok
    detail = client.query_credit_trade(gwsr, 1000, CHECK_CODE)
    assert (detail.status, detail.clsamt) == ("要關帳", 800)
    sandbox.close_trade(mtn)
    assert client.do_action(mtn, trade.trade_no, "R", 300).ok
    detail = client.query_credit_trade(gwsr, 1000, CHECK_CODE)
    assert (detail.status, detail.amount, detail.clsamt) == ("已關帳", 1000, 800)
    assert [dict(entry) for entry in detail.close_data] == [
        {"status": "要關帳", "sno": "1", "amount": 1000, "datetime": "2026/03/02 10:00:00"},
        {"status": "退刷", "sno": "2", "amount": 200, "datetime": "2026/03/02 10:00:00"},
        {"status": "已關帳", "sno": "3", "amount": 800, "datetime": "2026/03/02 10:00:00"},
        {"status": "退刷", "sno": "4", "amount": 300, "datetime": "2026/03/02 10:00:00"},
    ]


def test_query_trade_of_an_abandoned_trade(
    sandbox: Sandbox, client: EcpayClient, checkout_form: CheckoutFactory
) -> None:
    trade = _paid(sandbox, checkout_form)
    assert client.do_action(trade.merchant_trade_no, trade.trade_no, "N", 1000).ok
    detail = client.query_credit_trade(int(trade.gwsr), 1000, CHECK_CODE)
    assert (detail.status, detail.clsamt) == ("已取消", 0)
    assert [(e["status"], e["amount"]) for e in detail.close_data] == [("已取消", 1000)]


def test_query_trade_refusals(
    sandbox: Sandbox, client: EcpayClient, transport: SandboxTransport, checkout_form: CheckoutFactory
) -> None:
    trade = _paid(sandbox, checkout_form)
    gwsr = int(trade.gwsr)
    for query in (
        lambda: client.query_credit_trade(gwsr + 1, 1000, CHECK_CODE),  # unknown serial
        lambda: client.query_credit_trade(gwsr, 999, CHECK_CODE),  # not the authorised amount
    ):
        detail = query()
        assert (detail.rtn_msg, detail.trade_id, detail.fields["RtnValue"]) == ("error_nopay", "", None)
    assert client.query_credit_trade(gwsr, 1000, 87654321).rtn_msg == "CreditCheckCode Error"
    sandbox.settings = sandbox.settings.updated({"credit_check_code": "87654321"})
    assert client.query_credit_trade(gwsr, 1000, 87654321).status == "已授權"
    other = MerchantCredentials(STAGE.merchant_id, "A" * 16, "B" * 16)
    forged = EcpayClient(other, Endpoints(BASE), transport=transport)
    assert forged.query_credit_trade(gwsr, 1000, 87654321).rtn_msg == "CheckMacValue verify fail"


def test_credit_check_code_setting_is_digits() -> None:
    box = Sandbox()
    try:
        with pytest.raises(ValueError, match="credit_check_code"):
            box.settings.updated({"credit_check_code": "12ab"})
        assert box.settings.credit_check_code == "12345678"
    finally:
        box.close()


# --- periodic orders ---------------------------------------------------------------------------


def test_period_info_of_a_running_order(
    sandbox: Sandbox, client: EcpayClient, checkout_form: CheckoutFactory
) -> None:
    trade = _paid(sandbox, checkout_form, TotalAmount="500", **PERIODIC)
    info = client.query_credit_card_period_info(trade.merchant_trade_no)
    assert (info.rtn_code, info.exec_status, info.trade_no) == ("1", "1", trade.trade_no)
    assert (info.period_type, info.frequency, info.exec_times, info.period_amount) == ("M", 1, 3, 500)
    assert (info.total_success_times, info.total_success_amount) == (1, 500)
    [first] = info.executions
    assert first.ok and first.gwsr == trade.gwsr and first.amount == 500
    assert first.process_date == sandbox.now().replace(microsecond=0)
    assert info.fields["card4no"] == "2222"


def test_period_cancel_and_reauth(
    sandbox: Sandbox, client: EcpayClient, checkout_form: CheckoutFactory
) -> None:
    trade = _paid(sandbox, checkout_form, TotalAmount="500", **PERIODIC)
    mtn = trade.merchant_trade_no
    reauth = client.credit_card_period_action(mtn, "ReAuth")
    assert (reauth.rtn_code, reauth.rtn_msg) == ("90100152", "ReAuth is only for a failed charge")
    cancel = client.credit_card_period_action(mtn, "Cancel")
    assert cancel.ok and cancel.merchant_trade_no == mtn
    assert client.query_credit_card_period_info(mtn).exec_status == "0"
    again = client.credit_card_period_action(mtn, "Cancel")
    assert again.rtn_code == "90100151" and "ExecStatus 0" in again.rtn_msg


def test_a_failed_first_charge(sandbox: Sandbox, client: EcpayClient, checkout_form: CheckoutFactory) -> None:
    form = checkout_form(RETURN_URL, TotalAmount="500", **PERIODIC)
    sandbox.checkout(form)
    mtn = form["MerchantTradeNo"]
    unpaid = client.query_credit_card_period_info(mtn)
    assert (unpaid.rtn_code, unpaid.exec_status, unpaid.executions) == ("0", "0", ())
    sandbox.fail(mtn)
    info = client.query_credit_card_period_info(mtn)
    assert info.rtn_code == "10200058" and info.exec_status == "0"
    assert not info.executions[0].ok and info.total_success_times == 0
    reauth = client.credit_card_period_action(mtn, "ReAuth")
    assert (reauth.rtn_code, reauth.rtn_msg) == ("90100153", "ReAuth cannot be exercised on stage")
    assert client.credit_card_period_action(mtn, "Cancel").rtn_code == "90100151"


def test_period_apis_for_unknown_and_one_time_orders(
    sandbox: Sandbox, client: EcpayClient, checkout_form: CheckoutFactory
) -> None:
    one_time = _paid(sandbox, checkout_form).merchant_trade_no
    for mtn in ("NOSUCHORDER1", one_time):
        with pytest.raises(RejectedError) as info:
            client.query_credit_card_period_info(mtn)
        assert (info.value.code, info.value.rtn_msg) == ("90100150", "不存在的訂單")
        result = client.credit_card_period_action(mtn, "Cancel")
        assert (result.rtn_code, result.rtn_msg, result.merchant_trade_no) == (
            "90100150",
            "不存在的訂單",
            mtn,
        )


def test_period_endpoints_honour_the_rate_limit_switch(sandbox: Sandbox, transport: SandboxTransport) -> None:
    sandbox.settings = sandbox.settings.updated({"query_status_override": 403})
    for path in (
        "/Cashier/QueryCreditCardPeriodInfo",
        "/Cashier/CreditCardPeriodAction",
        "/CreditDetail/QueryTrade/V2",
    ):
        assert transport.post_form(BASE + path, {}, timeout=1).status == 403
