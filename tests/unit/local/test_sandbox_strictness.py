"""What ECPay refuses and the sandbox must refuse too (protocol §13.2-§13.4): unknown parameters,
card option values, periodic limits, StoreExpireDate ranges, per-method amounts, bad TimeStamps."""

from __future__ import annotations

import time
import urllib.parse
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta

import pytest

from ecpay_lambda.ecpay.checkmac import check_mac_value
from ecpay_lambda.ecpay.checkout import CheckoutRequest
from ecpay_lambda.local.sandbox import ActionError, Sandbox, Trade
from ecpay_lambda.local.sandbox.client import SandboxError
from ecpay_lambda.local.sandbox.validation import (
    CHECKOUT_PARAMETERS,
    MAX_LENGTHS,
    REQUIRED,
    CheckoutError,
    offered_methods,
)

from .conftest import STAGE, CheckoutFactory

RETURN_URL = "http://127.0.0.1:9/return"
PERIODIC = {"PeriodAmount": "500", "PeriodType": "M", "Frequency": "1", "ExecTimes": "12"}


@pytest.fixture
def sandbox() -> Sandbox:
    box = Sandbox(send=lambda url, fields, timeout: (200, b"1|OK"))
    yield box
    box.close()


def _refused(result: Trade | CheckoutError) -> CheckoutError:
    assert isinstance(result, CheckoutError), result
    return result


# --- parameters in and out of the spec ---------------------------------------------------------


def test_an_unknown_parameter_is_not_in_spec(sandbox: Sandbox, checkout_form: CheckoutFactory) -> None:
    error = _refused(sandbox.checkout(checkout_form(RETURN_URL, ActionType="CreateAuth")))
    assert (error.code, error.message) == ("10100050", "Parameter Error. ActionType Not In Spec")
    # Names are exact: ECPay's are case-sensitive.
    error = _refused(sandbox.checkout(checkout_form(RETURN_URL, itemurl="http://127.0.0.1/x")))
    assert error.message == "Parameter Error. itemurl Not In Spec"


def test_documented_legacy_parameters_are_in_spec(sandbox: Sandbox, checkout_form: CheckoutFactory) -> None:
    form = checkout_form(RETURN_URL, DeviceSource="", InstallmentAmount="0", InvoiceMark="", Remark="r")
    assert isinstance(sandbox.checkout(form), Trade)


def test_the_parameter_table_covers_every_checked_and_every_built_field() -> None:
    assert set(REQUIRED) <= CHECKOUT_PARAMETERS
    assert set(MAX_LENGTHS) <= CHECKOUT_PARAMETERS
    # The project's own checkout builder never sends a parameter the sandbox would refuse.
    built = set(CheckoutRequest.model_fields) | {"MerchantID", "PaymentType", "EncryptType", "CheckMacValue"}
    assert built <= CHECKOUT_PARAMETERS, built - CHECKOUT_PARAMETERS


# --- card options ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "overrides",
    [
        {"CreditInstallment": "3,6,12,18,24"},
        {"CreditInstallment": "30N"},
        {"Redeem": "Y"},
        {"Redeem": "N"},
        {"Redeem": ""},
        {"UnionPay": "0"},
        {"UnionPay": "1"},
        {"UnionPay": "2"},
        {"ChoosePayment": "ALL", "CreditInstallment": "3"},
    ],
)
def test_card_options_within_their_sets(
    sandbox: Sandbox, checkout_form: CheckoutFactory, overrides: dict[str, str]
) -> None:
    assert isinstance(sandbox.checkout(checkout_form(RETURN_URL, **overrides)), Trade)


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"CreditInstallment": "3,7"}, "CreditInstallment"),
        ({"CreditInstallment": "5"}, "CreditInstallment"),  # gateway merchants only
        ({"CreditInstallment": "3,3"}, "CreditInstallment"),
        ({"CreditInstallment": "3, 6"}, "CreditInstallment"),
        ({"CreditInstallment": "3,"}, "CreditInstallment"),
        ({"CreditInstallment": "30n"}, "CreditInstallment"),
        ({"Redeem": "y"}, "Redeem"),
        ({"Redeem": "1"}, "Redeem"),
        ({"UnionPay": "3"}, "UnionPay"),
        ({"UnionPay": "Y"}, "UnionPay"),
        ({**PERIODIC, "CreditInstallment": "3"}, "CreditInstallment"),
        ({**PERIODIC, "Redeem": "Y"}, "Redeem"),
        ({"UnionPay": "1", "CreditInstallment": "3"}, "UnionPay"),
        ({"UnionPay": "1", "Redeem": "Y"}, "UnionPay"),
        ({**PERIODIC, "UnionPay": "1"}, "UnionPay"),
    ],
)
def test_card_options_outside_their_sets_are_refused(
    sandbox: Sandbox, checkout_form: CheckoutFactory, overrides: dict[str, str], field: str
) -> None:
    error = _refused(sandbox.checkout(checkout_form(RETURN_URL, **overrides)))
    assert error.code == "10100050" and error.message.startswith(f"{field} Error")


# --- periodic limits (§13.3) -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("period_type", "frequency", "exec_times"),
    [("D", "365", "999"), ("D", "1", "2"), ("M", "12", "999"), ("M", "1", "2"), ("Y", "1", "99")],
)
def test_periodic_orders_at_the_limits_are_accepted(
    sandbox: Sandbox, checkout_form: CheckoutFactory, period_type: str, frequency: str, exec_times: str
) -> None:
    form = checkout_form(
        RETURN_URL, PeriodAmount="500", PeriodType=period_type, Frequency=frequency, ExecTimes=exec_times
    )
    assert isinstance(sandbox.checkout(form), Trade)


@pytest.mark.parametrize(
    ("period_type", "frequency", "exec_times", "code", "message"),
    [
        ("M", "1", "1000", "10100227", "ExecTimes Error, PeriodType equal M, ExecTimes between 2 and 999"),
        ("M", "1", "1", "10100227", "ExecTimes Error, PeriodType equal M, ExecTimes between 2 and 999"),
        ("Y", "1", "100", "10100228", "ExecTimes Error, PeriodType equal Y, ExecTimes between 2 and 99"),
        ("D", "1", "1000", "10100050", "ExecTimes Error, PeriodType equal D, ExecTimes between 2 and 999"),
        ("D", "366", "2", "10100050", "Frequency Error, PeriodType equal D, Frequency between 1 and 365"),
        ("M", "13", "2", "10100050", "Frequency Error, PeriodType equal M, Frequency between 1 and 12"),
        ("Y", "2", "2", "10100050", "Frequency Error, PeriodType equal Y, Frequency between 1 and 1"),
        ("M", "0", "2", "10100050", "Frequency Error, PeriodType equal M, Frequency between 1 and 12"),
    ],
)
def test_periodic_limits_answer_ecpays_texts(
    sandbox: Sandbox,
    checkout_form: CheckoutFactory,
    period_type: str,
    frequency: str,
    exec_times: str,
    code: str,
    message: str,
) -> None:
    form = checkout_form(
        RETURN_URL, PeriodAmount="500", PeriodType=period_type, Frequency=frequency, ExecTimes=exec_times
    )
    error = _refused(sandbox.checkout(form))
    assert (error.code, error.message) == (code, message)


# --- StoreExpireDate (§4.7) --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("choose", "value", "ok"),
    [
        ("CVS", "1", True),
        ("CVS", "43200", True),
        ("CVS", "43201", False),
        ("CVS", "0", False),
        ("BARCODE", "30", True),
        ("BARCODE", "31", False),
        ("ALL", "43200", True),
        ("ALL", "43201", False),
        ("CVS", "-1", False),
    ],
)
def test_store_expire_date_ranges_per_method(
    sandbox: Sandbox, checkout_form: CheckoutFactory, choose: str, value: str, ok: bool
) -> None:
    result = sandbox.checkout(checkout_form(RETURN_URL, ChoosePayment=choose, StoreExpireDate=value))
    if ok:
        assert isinstance(result, Trade)
    else:
        assert _refused(result).message.startswith("StoreExpireDate Error")


def test_an_all_orders_barcode_deadline_is_capped_in_days(checkout_form: CheckoutFactory) -> None:
    moment = datetime(2026, 3, 2, 2, 0, tzinfo=UTC)
    box = Sandbox(clock=lambda: moment, send=lambda url, fields, timeout: (200, b"1|OK"))
    try:
        form = checkout_form(RETURN_URL, ChoosePayment="ALL", StoreExpireDate="10080")
        box.checkout(form)
        trade = box.issue_code(form["MerchantTradeNo"], "BARCODE")
        assert trade.expire_at == moment + timedelta(days=30)
    finally:
        box.close()


# --- amount limits (§13.2) ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "low", "high"),
    [
        ("Credit", 5, 199_999),
        ("ATM", 11, 49_999),
        ("WebATM", 11, 49_999),
        ("CVS", 33, 6_000),
        ("BARCODE", 17, 20_000),
        ("BNPL", 3_000, 200_000),  # the upper bound is the library's assumption (ecpay.limits)
    ],
)
def test_amount_limits_per_method(
    sandbox: Sandbox, checkout_form: CheckoutFactory, method: str, low: int, high: int | None
) -> None:
    def attempt(amount: int) -> Trade | CheckoutError:
        return sandbox.checkout(checkout_form(RETURN_URL, ChoosePayment=method, TotalAmount=str(amount)))

    assert isinstance(attempt(low), Trade)
    assert _refused(attempt(low - 1)).code == ("10200105" if method == "BNPL" else "10200050")
    if high is not None:
        assert isinstance(attempt(high), Trade)
        error = _refused(attempt(high + 1))
        assert error.code == ("10200105" if method == "BNPL" else "10200050")
    else:
        assert isinstance(attempt(1_000_000), Trade)


def test_all_offers_only_the_methods_the_amount_fits() -> None:
    assert "CVS" not in offered_methods("ALL", 6_001) and "BARCODE" in offered_methods("ALL", 6_001)
    assert set(offered_methods("ALL", 10)) & {"Credit", "ATM", "CVS", "BARCODE", "BNPL"} == {"Credit"}
    assert offered_methods("ALL", 200_000, "TWQR#ApplePay#WeiXin#DigitalPayment") == ["BNPL"]
    assert offered_methods("ATM", 50_000) == []


def test_all_refuses_an_order_no_method_accepts(sandbox: Sandbox, checkout_form: CheckoutFactory) -> None:
    form = checkout_form(
        RETURN_URL, ChoosePayment="ALL", TotalAmount="4", IgnorePayment="TWQR#ApplePay#WeiXin#DigitalPayment"
    )
    error = _refused(sandbox.checkout(form))
    assert error.code == "10200050" and "4" in error.message


def test_a_method_the_amount_does_not_fit_cannot_be_chosen_or_paid(
    sandbox: Sandbox, checkout_form: CheckoutFactory
) -> None:
    form = checkout_form(RETURN_URL, ChoosePayment="ALL", TotalAmount="8000")
    mtn = form["MerchantTradeNo"]
    trade = sandbox.checkout(form)
    assert isinstance(trade, Trade)
    assert "CVS" not in sandbox.allowed_methods(trade) and "BARCODE" in sandbox.allowed_methods(trade)
    for attempt in (lambda: sandbox.choose(mtn, "CVS"), lambda: sandbox.pay(mtn, "CVS")):
        with pytest.raises(ActionError) as info:
            attempt()
        assert (info.value.status, info.value.code) == (409, "amount_out_of_range")
        assert "CVS accepts 33 to 6000" in info.value.message
    assert sandbox.pay(mtn, "ATM").method == "ATM"


def test_the_payment_page_offers_only_fitting_methods_over_http(  # type: ignore[no-untyped-def]
    ecpay_sandbox, checkout_form: CheckoutFactory
) -> None:
    form = checkout_form(RETURN_URL, ChoosePayment="ALL", TotalAmount="25000")
    status, page = ecpay_sandbox.checkout(form)
    assert status == 200 and 'value="Credit"' in page and 'value="ATM"' in page
    assert 'value="CVS"' not in page and 'value="BARCODE"' not in page
    with pytest.raises(SandboxError) as info:
        ecpay_sandbox.pay(form["MerchantTradeNo"], method="BARCODE")
    assert (info.value.status, info.value.code) == (409, "amount_out_of_range")
    status, page = ecpay_sandbox.post_form(
        f"/sandbox/checkout/{form['MerchantTradeNo']}", {"action": "choose", "method": "CVS"}
    )
    assert status == 409 and "CVS accepts 33 to 6000" in page


# --- TimeStamp: Unix seconds or ECPay's TimeStamp error, never a 500 ---------------------------

BAD_STAMPS = [
    str(int(time.time() * 1000)),  # milliseconds: the 500 this replaced (datetime cannot hold it)
    "-5",
    "9" * 40,
    "17326938OO",
    "",
    "１７３２６９３８００",  # full-width digits: str.isdigit() says yes, int() agrees, ECPay does not
    "²",  # isdigit() but not int()
    " 1732693800",
]
ENDPOINTS = {
    "/Cashier/QueryTradeInfo/V5": {"MerchantTradeNo": "T1"},
    "/Cashier/QueryPaymentInfo": {"MerchantTradeNo": "T1"},
    "/Cashier/QueryCreditCardPeriodInfo": {"MerchantTradeNo": "T1"},
    "/Cashier/CreditCardPeriodAction": {"MerchantTradeNo": "T1", "Action": "Cancel"},
    "/CreditDetail/DoAction": {"MerchantTradeNo": "T1", "TradeNo": "1", "Action": "R", "TotalAmount": "1"},
    "/CreditDetail/QueryTrade/V2": {"CreditRefundId": "1", "CreditAmount": "1", "CreditCheckCode": "1"},
}


@pytest.mark.parametrize("path", sorted(ENDPOINTS))
def test_a_timestamp_that_is_not_unix_seconds_is_a_timestamp_error(ecpay_sandbox, path: str) -> None:  # type: ignore[no-untyped-def]
    def answer(stamp: str) -> str:
        fields: Mapping[str, str] = {"MerchantID": STAGE.merchant_id, **ENDPOINTS[path], "TimeStamp": stamp}
        status, body = ecpay_sandbox.post_form(path, ecpay_sandbox.sign(fields))
        assert status == 200, (stamp, body)
        return urllib.parse.unquote_plus(body)  # the period endpoints answer form-encoded

    for stamp in BAD_STAMPS:
        body = answer(stamp)
        assert "TimeStamp Error" in body or "TimeStamp is required" in body, (stamp, body)
    assert "TimeStamp Error. it is valid for 3 minutes" in answer(str(int(time.time()) - 600))
    assert "TimeStamp" not in answer(str(int(time.time())))


def test_a_millisecond_timestamp_is_answered_by_the_engine(sandbox: Sandbox) -> None:
    fields = {
        "MerchantID": STAGE.merchant_id,
        "MerchantTradeNo": "T1",
        "TimeStamp": str(int(time.time() * 1000)),
    }
    fields["CheckMacValue"] = check_mac_value(fields, STAGE.hash_key, STAGE.hash_iv)
    assert sandbox.query_trade_info(fields) == (
        200,
        "TradeStatus=10100050&RtnMsg=TimeStamp Error. Unix time in seconds",
    )
