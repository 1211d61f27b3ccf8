"""Notifications from the sandbox: field sets, signatures, retries until exactly 1|OK, dropping."""

from __future__ import annotations

import re
import socket
from datetime import UTC, datetime, timedelta

import pytest

from ecpay_lambda.ecpay.checkmac import verify_check_mac_value
from ecpay_lambda.ecpay.notifications import parse_payment_info, parse_payment_result
from ecpay_lambda.ecpay.timezone import TAIPEI
from ecpay_lambda.local.sandbox.client import SandboxError

from .conftest import STAGE, CheckoutFactory

RETURN_FIELDS = {
    "MerchantID",
    "MerchantTradeNo",
    "StoreID",
    "RtnCode",
    "RtnMsg",
    "TradeNo",
    "TradeAmt",
    "PaymentDate",
    "PaymentType",
    "PaymentTypeChargeFee",
    "TradeDate",
    "SimulatePaid",
    "CustomField1",
    "CustomField2",
    "CustomField3",
    "CustomField4",
    "CheckMacValue",
}
DATETIME = re.compile(r"\d{4}/\d{2}/\d{2} \d{2}:\d{2}:\d{2}")


def _open(ecpay_sandbox, merchant_endpoint, checkout_form: CheckoutFactory, **overrides: str) -> str:  # type: ignore[no-untyped-def]
    form = checkout_form(
        merchant_endpoint.url("/return"), PaymentInfoURL=merchant_endpoint.url("/info"), **overrides
    )
    status, page = ecpay_sandbox.checkout(form)
    assert status == 200 and 'data-status="created"' in page, page[:500]
    return form["MerchantTradeNo"]


def test_credit_payment_calls_return_url_signed(ecpay_sandbox, merchant_endpoint, checkout_form) -> None:  # type: ignore[no-untyped-def]
    mtn = _open(ecpay_sandbox, merchant_endpoint, checkout_form, CustomField2="tx-42", StoreID="S1")
    trade = ecpay_sandbox.pay(mtn)
    assert trade["status"] == "paid"
    [post] = merchant_endpoint.posts("/return")
    assert post.headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert set(post.fields) == RETURN_FIELDS
    assert verify_check_mac_value(post.fields, STAGE.hash_key, STAGE.hash_iv)
    assert post.fields["RtnCode"] == "1" and post.fields["RtnMsg"] == "交易成功"
    assert post.fields["SimulatePaid"] == "0"
    assert post.fields["PaymentType"] == "Credit_CreditCard"
    assert post.fields["TradeAmt"] == "500" and post.fields["CustomField2"] == "tx-42"
    assert post.fields["StoreID"] == "S1" and post.fields["CustomField1"] == ""
    assert re.fullmatch(r"\d{20}", post.fields["TradeNo"])
    assert DATETIME.fullmatch(post.fields["PaymentDate"]) and DATETIME.fullmatch(post.fields["TradeDate"])
    # Dates are Taiwan wall-clock time whatever the machine's zone.
    paid_at = datetime.strptime(post.fields["PaymentDate"], "%Y/%m/%d %H:%M:%S").replace(tzinfo=TAIPEI)
    assert abs(paid_at - datetime.now(UTC)) < timedelta(minutes=5)
    # The project's own notification parser accepts it, body bytes as they arrived.
    result = parse_payment_result(post.body, STAGE)
    assert result.is_paid and not result.simulate_paid and result.trade_amt == 500
    [attempt] = trade["callbacks"]
    assert (
        attempt["ok"] and attempt["status"] == 200 and attempt["body"] == "1|OK" and attempt["attempt"] == 1
    )
    assert attempt["fields"] == post.fields


def test_retries_until_exactly_1_ok_with_rtn_msg_paid(
    ecpay_sandbox, merchant_endpoint, checkout_form
) -> None:  # type: ignore[no-untyped-def]
    merchant_endpoint.answers.extend([(500, b"oops"), (200, b"0|busy"), (200, b"1|OK\n")])
    mtn = _open(ecpay_sandbox, merchant_endpoint, checkout_form)
    ecpay_sandbox.pay(mtn)
    attempts = ecpay_sandbox.wait_for_callbacks(mtn, 4, kind="return")
    assert [a["attempt"] for a in attempts] == [1, 2, 3, 4]
    assert [a["ok"] for a in attempts] == [False, False, False, True]
    assert [a["status"] for a in attempts] == [500, 200, 200, 200]
    posts = merchant_endpoint.posts("/return")
    assert [p.fields["RtnMsg"] for p in posts] == ["交易成功", "paid", "paid", "paid"]
    assert all(verify_check_mac_value(p.fields, STAGE.hash_key, STAGE.hash_iv) for p in posts)
    assert len({p.fields["CheckMacValue"] for p in posts}) == 2  # re-signed once RtnMsg changed
    assert ecpay_sandbox.engine.dispatcher.pending() == 0


def test_at_most_five_deliveries(ecpay_sandbox, merchant_endpoint, checkout_form) -> None:  # type: ignore[no-untyped-def]
    merchant_endpoint.answers.extend([(503, b"down")] * 10)
    mtn = _open(ecpay_sandbox, merchant_endpoint, checkout_form)
    ecpay_sandbox.pay(mtn)
    attempts = ecpay_sandbox.wait_for_callbacks(mtn, 5, kind="return")
    assert [a["attempt"] for a in attempts] == [1, 2, 3, 4, 5]
    assert not any(a["ok"] for a in attempts)
    # The fifth attempt was the last one: nothing is scheduled after it.
    assert ecpay_sandbox.engine.dispatcher.pending() == 0
    assert len(ecpay_sandbox.callbacks(mtn)) == 5


def test_unreachable_return_url_is_recorded_and_retried(ecpay_sandbox, checkout_form) -> None:  # type: ignore[no-untyped-def]
    with socket.socket() as sock:  # a port that is certainly closed once this block ends
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    form = checkout_form(f"http://127.0.0.1:{port}/return")
    ecpay_sandbox.checkout(form)
    ecpay_sandbox.settings(max_deliveries=2)
    ecpay_sandbox.pay(form["MerchantTradeNo"])
    attempts = ecpay_sandbox.wait_for_callbacks(form["MerchantTradeNo"], 2)
    assert len(attempts) == 2
    assert all(a["error"] and a["status"] is None and not a["ok"] for a in attempts)


def test_dropped_callbacks_are_recorded_not_sent(ecpay_sandbox, merchant_endpoint, checkout_form) -> None:  # type: ignore[no-untyped-def]
    mtn = _open(ecpay_sandbox, merchant_endpoint, checkout_form)
    assert ecpay_sandbox.settings(drop_callbacks=True)["drop_callbacks"] is True
    trade = ecpay_sandbox.pay(mtn)
    assert trade["status"] == "paid"
    [attempt] = trade["callbacks"]
    assert attempt["dropped"] and not attempt["ok"]
    assert verify_check_mac_value(attempt["fields"], STAGE.hash_key, STAGE.hash_iv)
    assert merchant_endpoint.posts() == []
    assert ecpay_sandbox.engine.dispatcher.pending() == 0
    ecpay_sandbox.settings(drop_callbacks=False)


@pytest.mark.parametrize(
    ("method", "rtn_code", "code_fields"),
    [
        ("ATM", "2", {"BankCode", "vAccount", "ExpireDate"}),
        ("CVS", "10100073", {"PaymentNo", "ExpireDate", "Barcode1", "Barcode2", "Barcode3"}),
        ("BARCODE", "10100073", {"PaymentNo", "ExpireDate", "Barcode1", "Barcode2", "Barcode3"}),
    ],
)
def test_offline_code_then_payment(  # type: ignore[no-untyped-def]
    ecpay_sandbox, merchant_endpoint, checkout_form, method: str, rtn_code: str, code_fields: set[str]
) -> None:
    mtn = _open(ecpay_sandbox, merchant_endpoint, checkout_form, ChoosePayment=method)
    trade = ecpay_sandbox.issue_code(mtn)
    assert trade["status"] == "code_issued"
    [info] = merchant_endpoint.posts("/info")
    assert verify_check_mac_value(info.fields, STAGE.hash_key, STAGE.hash_iv)
    assert info.fields["RtnCode"] == rtn_code
    assert code_fields <= set(info.fields)
    notice = parse_payment_info(info.body, STAGE)
    assert notice.is_code_issued and notice.expire_at is not None
    if method == "ATM":
        assert re.fullmatch(r"\d{3}", info.fields["BankCode"]) and info.fields["vAccount"].isdigit()
        assert re.fullmatch(r"\d{4}/\d{2}/\d{2}", info.fields["ExpireDate"])
        assert info.fields["PaymentType"] == "ATM_TAISHIN"
    elif method == "CVS":
        assert info.fields["PaymentNo"] and not info.fields["Barcode1"]
        assert DATETIME.fullmatch(info.fields["ExpireDate"])
    else:
        assert not info.fields["PaymentNo"] and all(info.fields[f"Barcode{i}"] for i in (1, 2, 3))
    assert merchant_endpoint.posts("/return") == []  # nothing paid yet
    trade = ecpay_sandbox.pay(mtn)
    [paid] = merchant_endpoint.posts("/return")
    assert paid.fields["RtnCode"] == "1" and paid.fields["PaymentType"] == info.fields["PaymentType"]
    assert trade["status"] == "paid"


def test_pay_without_a_code_issues_it_first(ecpay_sandbox, merchant_endpoint, checkout_form) -> None:  # type: ignore[no-untyped-def]
    mtn = _open(
        ecpay_sandbox, merchant_endpoint, checkout_form, ChoosePayment="CVS", ChooseSubPayment="FAMILY"
    )
    ecpay_sandbox.pay(mtn)
    assert [p.path for p in merchant_endpoint.posts()] == ["/info", "/return"]
    assert merchant_endpoint.posts("/return")[0].fields["PaymentType"] == "CVS_FAMILY"


def test_simulated_payment_leaves_the_trade_unpaid(ecpay_sandbox, merchant_endpoint, checkout_form) -> None:  # type: ignore[no-untyped-def]
    mtn = _open(ecpay_sandbox, merchant_endpoint, checkout_form, ChoosePayment="ATM")
    ecpay_sandbox.issue_code(mtn)
    trade = ecpay_sandbox.simulate_paid(mtn)
    assert trade["status"] == "code_issued" and trade["simulated_notices"] == 1
    [post] = merchant_endpoint.posts("/return")
    assert post.fields["SimulatePaid"] == "1" and post.fields["RtnCode"] == "1"
    assert verify_check_mac_value(post.fields, STAGE.hash_key, STAGE.hash_iv)
    assert parse_payment_result(post.body, STAGE).simulate_paid


def test_failure_notice(ecpay_sandbox, merchant_endpoint, checkout_form) -> None:  # type: ignore[no-untyped-def]
    mtn = _open(ecpay_sandbox, merchant_endpoint, checkout_form)
    trade = ecpay_sandbox.fail(mtn)
    assert trade["status"] == "failed"
    [post] = merchant_endpoint.posts("/return")
    assert post.fields["RtnCode"] == "10200058" and post.fields["PaymentDate"] == ""
    assert verify_check_mac_value(post.fields, STAGE.hash_key, STAGE.hash_iv)
    assert not parse_payment_result(post.body, STAGE).is_paid
    with pytest.raises(SandboxError) as info:
        ecpay_sandbox.pay(mtn)
    assert info.value.status == 409


def test_custom_failure_code(ecpay_sandbox, merchant_endpoint, checkout_form) -> None:  # type: ignore[no-untyped-def]
    mtn = _open(ecpay_sandbox, merchant_endpoint, checkout_form)
    ecpay_sandbox.fail(mtn, rtn_code="10200043", rtn_msg="3D failed")
    [post] = merchant_endpoint.posts("/return")
    assert (post.fields["RtnCode"], post.fields["RtnMsg"]) == ("10200043", "3D failed")


def test_resend_is_a_redelivery(ecpay_sandbox, merchant_endpoint, checkout_form) -> None:  # type: ignore[no-untyped-def]
    mtn = _open(ecpay_sandbox, merchant_endpoint, checkout_form)
    ecpay_sandbox.pay(mtn)
    trade = ecpay_sandbox.resend(mtn)
    first, again = merchant_endpoint.posts("/return")
    assert again.fields["RtnMsg"] == "paid" and again.fields["TradeNo"] == first.fields["TradeNo"]
    assert verify_check_mac_value(again.fields, STAGE.hash_key, STAGE.hash_iv)
    assert [a["attempt"] for a in trade["callbacks"]] == [1, 2]


def test_need_extra_paid_info(ecpay_sandbox, merchant_endpoint, checkout_form) -> None:  # type: ignore[no-untyped-def]
    mtn = _open(ecpay_sandbox, merchant_endpoint, checkout_form, NeedExtraPaidInfo="Y")
    ecpay_sandbox.pay(mtn)
    [post] = merchant_endpoint.posts("/return")
    assert post.fields["card4no"] == "2222" and post.fields["amount"] == "500"
    assert post.fields["ATMAccBank"] == ""  # unrelated extras present and blank
    assert verify_check_mac_value(post.fields, STAGE.hash_key, STAGE.hash_iv)
    assert parse_payment_result(post.body, STAGE).is_paid


def test_expired_code_cannot_be_paid(ecpay_sandbox, merchant_endpoint, checkout_form) -> None:  # type: ignore[no-untyped-def]
    mtn = _open(ecpay_sandbox, merchant_endpoint, checkout_form, ChoosePayment="ATM")
    ecpay_sandbox.issue_code(mtn)
    trade = ecpay_sandbox.expire(mtn)
    assert trade["status"] == "expired"
    with pytest.raises(SandboxError) as info:
        ecpay_sandbox.pay(mtn)
    assert info.value.status == 409 and info.value.code == "invalid_state"
    assert merchant_endpoint.posts("/return") == []
