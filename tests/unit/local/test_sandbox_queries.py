"""QueryTradeInfo, QueryPaymentInfo and DoAction answered from the sandbox's own record of trades.

Driven through the project's own ECPay client (``ecpay.client``), which verifies every signature.
"""

from __future__ import annotations

import time
import urllib.parse
import urllib.request

import pytest
from tests.support.clock import daytime_offset

from ecpay_lambda.ecpay.checkmac import check_mac_value, verify_check_mac_value
from ecpay_lambda.ecpay.client import EcpayClient, parse_raw_pairs
from ecpay_lambda.ecpay.credentials import MerchantCredentials
from ecpay_lambda.ecpay.errors import RateLimitedError, RejectedError

from .conftest import STAGE, CheckoutFactory


@pytest.fixture
def client(ecpay_sandbox) -> EcpayClient:  # type: ignore[no-untyped-def]
    return EcpayClient(STAGE, ecpay_sandbox.endpoints, timeout=5)


def _open(ecpay_sandbox, merchant_endpoint, checkout_form: CheckoutFactory, **overrides: str) -> str:  # type: ignore[no-untyped-def]
    form = checkout_form(merchant_endpoint.url("/return"), **overrides)
    ecpay_sandbox.checkout(form)
    return form["MerchantTradeNo"]


def _raw_post(ecpay_sandbox, path: str, fields: dict[str, str]) -> str:  # type: ignore[no-untyped-def]
    status, body = ecpay_sandbox.post_form(path, fields)
    assert status == 200
    return body


def test_query_trade_info_follows_the_trade(ecpay_sandbox, merchant_endpoint, checkout_form, client) -> None:  # type: ignore[no-untyped-def]
    mtn = _open(ecpay_sandbox, merchant_endpoint, checkout_form, ItemName="A+B plan #2", CustomField1="c1")
    info = client.query_trade_info(mtn)
    assert info.trade_status == "0" and not info.is_paid and info.trade_amt == 500
    assert info.item_name == "A+B plan #2"  # raw: the + is a plus
    ecpay_sandbox.pay(mtn)
    info = client.query_trade_info(mtn)
    assert info.is_paid and info.payment_date is not None and info.payment_type == "Credit_CreditCard"
    assert info.trade_no == ecpay_sandbox.trade(mtn)["trade_no"]
    assert info.custom_fields[0] == "c1"


def test_query_answer_is_raw_not_url_encoded(ecpay_sandbox, merchant_endpoint, checkout_form) -> None:  # type: ignore[no-untyped-def]
    mtn = _open(ecpay_sandbox, merchant_endpoint, checkout_form, ItemName="x+y z")
    fields = ecpay_sandbox.sign(
        {"MerchantID": STAGE.merchant_id, "MerchantTradeNo": mtn, "TimeStamp": str(int(time.time()))}
    )
    body = _raw_post(ecpay_sandbox, "/Cashier/QueryTradeInfo/V5", fields)
    assert "ItemName=x+y z&" in body
    answer = parse_raw_pairs(body)
    assert verify_check_mac_value(answer, STAGE.hash_key, STAGE.hash_iv)
    # A form parser would turn the + into a space and break the MAC (the SDK bug ECPay had to fix).
    decoded = dict(urllib.parse.parse_qsl(body, keep_blank_values=True))
    assert not verify_check_mac_value(decoded, STAGE.hash_key, STAGE.hash_iv)


def test_failed_and_abandoned_trades(ecpay_sandbox, merchant_endpoint, checkout_form, client) -> None:  # type: ignore[no-untyped-def]
    failed = _open(ecpay_sandbox, merchant_endpoint, checkout_form)
    ecpay_sandbox.fail(failed)
    assert client.query_trade_info(failed).trade_status == "10200095"
    abandoned = _open(ecpay_sandbox, merchant_endpoint, checkout_form)
    ecpay_sandbox.expire(abandoned)
    assert client.query_trade_info(abandoned).trade_status == "10200095"
    expired_code = _open(ecpay_sandbox, merchant_endpoint, checkout_form, ChoosePayment="ATM")
    ecpay_sandbox.issue_code(expired_code)
    ecpay_sandbox.expire(expired_code)
    assert client.query_trade_info(expired_code).trade_status == "0"  # unpaid; the deadline tells


def test_simulated_payment_is_not_paid_for_queries(
    ecpay_sandbox, merchant_endpoint, checkout_form, client
) -> None:  # type: ignore[no-untyped-def]
    mtn = _open(ecpay_sandbox, merchant_endpoint, checkout_form, ChoosePayment="CVS")
    ecpay_sandbox.issue_code(mtn)
    ecpay_sandbox.simulate_paid(mtn)
    assert client.query_trade_info(mtn).trade_status == "0"


def test_unknown_trade(client) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(RejectedError) as info:
        client.query_trade_info("NOSUCHTRADE1")
    assert info.value.code == "10200047"


def test_wrong_keys_and_stale_timestamp(ecpay_sandbox, merchant_endpoint, checkout_form) -> None:  # type: ignore[no-untyped-def]
    mtn = _open(ecpay_sandbox, merchant_endpoint, checkout_form)
    other = MerchantCredentials(STAGE.merchant_id, "A" * 16, "B" * 16)
    with pytest.raises(RejectedError) as info:
        EcpayClient(other, ecpay_sandbox.endpoints).query_trade_info(mtn)
    assert info.value.code == "10200073"
    stale = EcpayClient(STAGE, ecpay_sandbox.endpoints, clock=lambda: time.time() - 181)
    with pytest.raises(RejectedError) as info:
        stale.query_trade_info(mtn)
    assert "TimeStamp" in info.value.rtn_msg
    early = EcpayClient(STAGE, ecpay_sandbox.endpoints, clock=lambda: time.time() + 120)
    assert early.query_trade_info(mtn).trade_status == "0"  # the Node SDK's now+120 s is accepted


def test_rate_limit_switch(ecpay_sandbox, merchant_endpoint, checkout_form, client) -> None:  # type: ignore[no-untyped-def]
    mtn = _open(ecpay_sandbox, merchant_endpoint, checkout_form)
    ecpay_sandbox.settings(query_status_override=403)
    with pytest.raises(RateLimitedError):
        client.query_trade_info(mtn)
    ecpay_sandbox.settings(query_status_override=None)
    assert client.query_trade_info(mtn).trade_status == "0"


def test_query_payment_info(ecpay_sandbox, merchant_endpoint, checkout_form, client) -> None:  # type: ignore[no-untyped-def]
    mtn = _open(ecpay_sandbox, merchant_endpoint, checkout_form, ChoosePayment="ATM", ExpireDate="5")
    with pytest.raises(RejectedError):
        client.query_payment_info(mtn)  # no code yet
    trade = ecpay_sandbox.issue_code(mtn)
    notice = client.query_payment_info(mtn)
    assert notice.v_account == trade["payment_info"]["vAccount"]
    assert notice.bank_code == "812" and notice.expire_at is not None
    ecpay_sandbox.pay(mtn)
    with pytest.raises(RejectedError):
        client.query_payment_info(mtn)  # paid: use QueryTradeInfo


def test_refunds(ecpay_sandbox, merchant_endpoint, checkout_form, client) -> None:  # type: ignore[no-untyped-def]
    ecpay_sandbox.settings(clock_offset_seconds=daytime_offset())
    mtn = _open(ecpay_sandbox, merchant_endpoint, checkout_form, TotalAmount="1000")
    trade_no = ecpay_sandbox.trade(mtn)["trade_no"]
    assert not client.do_action(mtn, trade_no, "R", 100).ok  # not paid yet
    ecpay_sandbox.pay(mtn)
    assert ecpay_sandbox.close_trade(mtn)["card_state"] == "closed"  # R is for closed trades
    result = client.do_action(mtn, trade_no, "R", 300)
    assert result.ok and result.trade_no == trade_no
    assert ecpay_sandbox.trade(mtn)["refunded_amount"] == 300
    too_much = client.do_action(mtn, trade_no, "R", 701)
    assert not too_much.ok and too_much.rtn_code == "10200050"
    assert client.do_action(mtn, trade_no, "R", 700).ok
    assert ecpay_sandbox.trade(mtn)["remaining_amount"] == 0
    assert not client.do_action(mtn, trade_no, "R", 1).ok
    assert not client.do_action(mtn, "9" * 20, "R", 1).ok  # wrong TradeNo


def test_abandon_capture_and_cancel(ecpay_sandbox, merchant_endpoint, checkout_form, client) -> None:  # type: ignore[no-untyped-def]
    ecpay_sandbox.settings(clock_offset_seconds=daytime_offset())
    mtn = _open(ecpay_sandbox, merchant_endpoint, checkout_form)
    ecpay_sandbox.pay(mtn)
    trade_no = ecpay_sandbox.trade(mtn)["trade_no"]
    assert not client.do_action(mtn, trade_no, "E", 500).ok  # nothing captured
    assert client.do_action(mtn, trade_no, "C", 500).ok
    assert not client.do_action(mtn, trade_no, "N", 500).ok  # captured: abandon no longer applies
    assert client.do_action(mtn, trade_no, "E", 500).ok
    assert client.do_action(mtn, trade_no, "N", 500).ok
    trade = ecpay_sandbox.trade(mtn)
    assert trade["refunded_amount"] == 500 and trade["card_state"] == "cancelled"
    assert [(a["action"], a["ok"]) for a in trade["actions"]] == [
        ("E", False),
        ("C", True),
        ("N", False),
        ("E", True),
        ("N", True),
    ]


def test_refund_only_for_credit(ecpay_sandbox, merchant_endpoint, checkout_form, client) -> None:  # type: ignore[no-untyped-def]
    mtn = _open(ecpay_sandbox, merchant_endpoint, checkout_form, ChoosePayment="ATM")
    ecpay_sandbox.pay(mtn)
    result = client.do_action(mtn, ecpay_sandbox.trade(mtn)["trade_no"], "R", 100)
    assert not result.ok and "credit" in result.rtn_msg.lower()


def test_do_action_checks_the_mac(ecpay_sandbox, merchant_endpoint, checkout_form) -> None:  # type: ignore[no-untyped-def]
    mtn = _open(ecpay_sandbox, merchant_endpoint, checkout_form)
    ecpay_sandbox.pay(mtn)
    fields = {
        "MerchantID": STAGE.merchant_id,
        "MerchantTradeNo": mtn,
        "TradeNo": ecpay_sandbox.trade(mtn)["trade_no"],
        "Action": "R",
        "TotalAmount": "100",
    }
    fields["CheckMacValue"] = check_mac_value(fields, STAGE.hash_key, STAGE.hash_iv)
    fields["TotalAmount"] = "500"
    body = _raw_post(ecpay_sandbox, "/CreditDetail/DoAction", fields)
    assert "RtnCode=10200073" in body
    assert ecpay_sandbox.trade(mtn)["refunded_amount"] == 0


def test_unsimulated_endpoint(ecpay_sandbox) -> None:  # type: ignore[no-untyped-def]
    status, _ = ecpay_sandbox.post_form("/Cashier/Capture", {})
    assert status == 404


def test_response_error_type_is_text_html(ecpay_sandbox) -> None:  # type: ignore[no-untyped-def]
    request = urllib.request.Request(ecpay_sandbox.base_url + "/Cashier/QueryTradeInfo/V5", data=b"a=1")
    with urllib.request.urlopen(request, timeout=5) as response:
        assert response.headers["Content-Type"].startswith("text/html")
        assert response.read().startswith(b"TradeStatus=10100050")
