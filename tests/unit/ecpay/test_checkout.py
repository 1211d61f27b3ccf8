"""AioCheckOut/V5: request validation, signing, endpoints and the auto-submitting HTML form."""

from __future__ import annotations

import html.parser
from datetime import UTC, datetime
from typing import Any

import pydantic
import pytest
from hypothesis import given
from hypothesis import strategies as st

from ecpay_lambda.ecpay import (
    CheckoutForm,
    CheckoutRequest,
    EcpayValidationError,
    MerchantCredentials,
    build_checkout_form,
    merchant_trade_date,
    verify_check_mac_value,
)
from ecpay_lambda.ecpay.environments import Endpoints

STAGE = Endpoints.for_environment("stage")
PRODUCTION = Endpoints.for_environment("production")
SANDBOX = Endpoints.for_environment("sandbox", "http://127.0.0.1:8123/ecpay/")
CREDS = MerchantCredentials.stage_test_merchant()
DROP = object()
PERIODIC = {"PeriodAmount": 500, "PeriodType": "M", "Frequency": 1, "ExecTimes": 12}

BASE: dict[str, Any] = {
    "MerchantTradeNo": "tx42abc12345",
    "MerchantTradeDate": "2024/05/01 12:00:00",
    "TotalAmount": 500,
    "TradeDesc": "Wallet deposit",
    "ItemName": "Points x 500",
    "ReturnURL": "https://api.example.com/users/u1/transactions/t1/return",
    "ChoosePayment": "Credit",
}


def request(**overrides: Any) -> CheckoutRequest:
    data = {**BASE, **overrides}
    return CheckoutRequest(**{k: v for k, v in data.items() if v is not DROP})


def invalid(field: str, **overrides: Any) -> EcpayValidationError:
    with pytest.raises(EcpayValidationError) as caught:
        request(**overrides)
    assert caught.value.field == field, caught.value
    assert str(caught.value).startswith(f"{field}: ")
    return caught.value


# --- valid requests for every method ------------------------------------------------------------

VALID: dict[str, dict[str, Any]] = {
    "credit one-time": {},
    "credit redeem": {"Redeem": "Y"},
    "credit unionpay only": {"UnionPay": 1},
    "credit unionpay hidden": {"UnionPay": 2, "CreditInstallment": "3,6"},
    "credit binding card": {"BindingCard": 1, "MerchantMemberID": "3002607member1"},
    "credit installments": {"CreditInstallment": "3,6,12,18,24,30N"},
    "credit periodic": {
        "PeriodAmount": 500,
        "PeriodType": "M",
        "Frequency": 1,
        "ExecTimes": 12,
        "PeriodReturnURL": "https://api.example.com/period",
    },
    "credit english": {"Language": "ENG", "NeedExtraPaidInfo": "Y"},
    "atm": {
        "ChoosePayment": "ATM",
        "ExpireDate": 7,
        "PaymentInfoURL": "https://api.example.com/info",
        "ClientRedirectURL": "https://app.example.com/back",
    },
    "cvs": {
        "ChoosePayment": "CVS",
        "StoreExpireDate": 4320,
        "Desc_1": "第一行",
        "Desc_2": "",
        "Desc_3": "line 3",
        "Desc_4": "line 4",
        "PaymentInfoURL": "https://api.example.com/info",
        "ChooseSubPayment": "FAMILY",
    },
    "barcode": {"ChoosePayment": "BARCODE", "StoreExpireDate": 5, "Desc_1": "x"},
    "webatm": {"ChoosePayment": "WebATM", "ChooseSubPayment": "ESUN"},
    "applepay": {"ChoosePayment": "ApplePay"},
    "twqr": {"ChoosePayment": "TWQR"},
    "bnpl": {"ChoosePayment": "BNPL", "TotalAmount": 3000, "PaymentInfoURL": "https://api.example.com/i"},
    "weixin": {"ChoosePayment": "WeiXin"},
    "digital payment": {"ChoosePayment": "DigitalPayment"},
    "all with ignore": {
        "ChoosePayment": "ALL",
        "IgnorePayment": "WebATM#BNPL#ApplePay",
        "ExpireDate": 3,
        "StoreExpireDate": 10080,
        "BindingCard": 0,
    },
    "general optionals": {
        "StoreID": "store01",
        "ClientBackURL": "https://app.example.com/",
        "ItemURL": "https://app.example.com/item",
        "Remark": "remark",
        "OrderResultURL": "https://api.example.com/clientReturn",
        "DeviceSource": "",
        "PlatformID": "",
        "InvoiceMark": "N",
        "CustomField1": "user:u1, tx:t1 (#1) [a]",
        "CustomField2": "",
        "CustomField3": "3f2b-11ee_x",
        "CustomField4": "$100 {ok}; 50% off? @shop & x<>y!",
    },
    "sandbox urls on loopback ports": {"ReturnURL": "http://127.0.0.1:8123/return"},
}


@pytest.mark.parametrize("overrides", VALID.values(), ids=VALID.keys())
def test_valid_requests_sign_and_verify(overrides: dict[str, Any]) -> None:
    form = build_checkout_form(request(**overrides), CREDS, SANDBOX)
    assert verify_check_mac_value(form.fields, CREDS.hash_key, CREDS.hash_iv)
    for name, value in {**BASE, **overrides}.items():
        assert form.fields[name] == str(value)


def test_builder_fills_merchant_payment_type_and_encrypt_type() -> None:
    form = build_checkout_form(request(), CREDS, STAGE)
    assert form.fields["MerchantID"] == "3002607"
    assert form.fields["PaymentType"] == "aio"
    assert form.fields["EncryptType"] == "1"
    assert len(form.fields["CheckMacValue"]) == 64
    assert set(form.fields) == {*BASE, "MerchantID", "PaymentType", "EncryptType", "CheckMacValue"}


def test_unset_optionals_are_not_sent_but_blank_ones_are() -> None:
    form = build_checkout_form(request(CustomField1=""), CREDS, STAGE)
    assert form.fields["CustomField1"] == ""
    assert "CustomField2" not in form.fields


def test_same_request_same_signature_and_any_change_breaks_it() -> None:
    form = build_checkout_form(request(), CREDS, STAGE)
    assert form == build_checkout_form(request(), CREDS, STAGE)
    tampered = {**form.fields, "TotalAmount": "5"}
    assert not verify_check_mac_value(tampered, CREDS.hash_key, CREDS.hash_iv)


def test_endpoints_per_environment() -> None:
    assert build_checkout_form(request(), CREDS, STAGE).action == (
        "https://payment-stage.ecpay.com.tw/Cashier/AioCheckOut/V5"
    )
    assert build_checkout_form(request(), CREDS, PRODUCTION).action == (
        "https://payment.ecpay.com.tw/Cashier/AioCheckOut/V5"
    )
    assert build_checkout_form(request(), CREDS, SANDBOX).action == (
        "http://127.0.0.1:8123/ecpay/Cashier/AioCheckOut/V5"
    )


def test_official_hosts_only_call_back_on_ports_80_and_443() -> None:
    odd_port = request(ReturnURL="https://api.example.com:8443/return")
    with pytest.raises(EcpayValidationError) as caught:
        build_checkout_form(odd_port, CREDS, STAGE)
    assert caught.value.field == "ReturnURL"
    assert build_checkout_form(odd_port, CREDS, SANDBOX).fields["ReturnURL"].endswith(":8443/return")
    assert build_checkout_form(request(ReturnURL="https://api.example.com:443/r"), CREDS, PRODUCTION)
    for name, extra in (("PaymentInfoURL", {"ChoosePayment": "ATM"}), ("PeriodReturnURL", PERIODIC)):
        with pytest.raises(EcpayValidationError) as caught:
            build_checkout_form(
                request(**extra, **{name: "http://api.example.com:8080/x"}), CREDS, PRODUCTION
            )
        assert caught.value.field == name
    # Browser redirects are not ECPay server calls: any port will do.
    browser = request(ClientBackURL="http://localhost:5173/", OrderResultURL="http://localhost:5173/r")
    assert build_checkout_form(browser, CREDS, STAGE).fields["ClientBackURL"] == "http://localhost:5173/"


def test_bad_merchant_id_is_refused() -> None:
    with pytest.raises(EcpayValidationError) as caught:
        build_checkout_form(request(), MerchantCredentials("30026 07", "k", "i"), STAGE)
    assert caught.value.field == "MerchantID"


def test_merchant_trade_date_defaults_to_now_in_taipei() -> None:
    made = request(MerchantTradeDate=DROP)
    parsed = datetime.strptime(made.MerchantTradeDate, "%Y/%m/%d %H:%M:%S")
    assert parsed.year >= 2024
    assert merchant_trade_date(datetime(2024, 2, 29, 23, 0, tzinfo=UTC)) == "2024/03/01 07:00:00"


def test_request_is_frozen() -> None:
    made = request()
    with pytest.raises(pydantic.ValidationError):
        made.TotalAmount = 1


# --- validation: one typed error naming the field -----------------------------------------------

INVALID: list[tuple[str, dict[str, Any]]] = [
    # required / types
    ("MerchantTradeNo", {"MerchantTradeNo": DROP}),
    ("TotalAmount", {"TotalAmount": "500"}),
    ("TotalAmount", {"TotalAmount": 500.0}),
    ("TotalAmount", {"TotalAmount": True}),
    ("TradeDesc", {"TradeDesc": ""}),
    ("ItemName", {"ItemName": ""}),
    ("ReturnURL", {"ReturnURL": ""}),
    ("ChoosePayment", {"ChoosePayment": DROP}),
    ("Remark", {"Remark": 5}),
    # the builder's fields and unknown ones
    ("MerchantID", {"MerchantID": "3002607"}),
    ("PaymentType", {"PaymentType": "aio"}),
    ("EncryptType", {"EncryptType": 1}),
    ("CheckMacValue", {"CheckMacValue": "X"}),
    ("ItemPrice", {"ItemPrice": 5}),
    # lengths and character sets
    ("MerchantTradeNo", {"MerchantTradeNo": "a" * 21}),
    ("MerchantTradeNo", {"MerchantTradeNo": "tx-42"}),
    ("MerchantTradeNo", {"MerchantTradeNo": "tx_42"}),
    ("MerchantTradeNo", {"MerchantTradeNo": "交易42"}),
    ("MerchantTradeNo", {"MerchantTradeNo": ""}),
    ("MerchantTradeDate", {"MerchantTradeDate": "2024-05-01 12:00:00"}),
    ("MerchantTradeDate", {"MerchantTradeDate": "2024/5/1 12:00:00"}),
    ("MerchantTradeDate", {"MerchantTradeDate": "2024/02/30 12:00:00"}),
    ("TotalAmount", {"TotalAmount": 0}),
    ("TotalAmount", {"TotalAmount": -5}),
    ("TotalAmount", {"TotalAmount": 2**31}),
    ("TradeDesc", {"TradeDesc": "x" * 201}),
    ("ItemName", {"ItemName": "品" * 401}),
    ("ItemName", {"ItemName": "a\nb"}),
    ("ItemName", {"ItemName": "tab\there"}),
    ("ItemName", {"ItemName": "<script>alert(1)</script>"}),
    ("ItemName", {"ItemName": "a </b> c"}),
    ("TradeDesc", {"TradeDesc": "a%26b"}),
    ("TradeDesc", {"TradeDesc": "a%3cb"}),
    ("TradeDesc", {"TradeDesc": "bad \ud800 surrogate"}),
    ("ReturnURL", {"ReturnURL": "ftp://example.com/x"}),
    ("ReturnURL", {"ReturnURL": "/relative/path"}),
    ("ReturnURL", {"ReturnURL": "https://example.com/a b"}),
    ("ReturnURL", {"ReturnURL": "https://example.com/a;b"}),
    ("ReturnURL", {"ReturnURL": "https://example.com/a|b"}),
    ("ReturnURL", {"ReturnURL": "https://例子.tw/r"}),
    ("ReturnURL", {"ReturnURL": "https://example.com:99999/r"}),
    ("ReturnURL", {"ReturnURL": "https://example.com/" + "a" * 200}),
    ("ClientBackURL", {"ClientBackURL": "javascript:alert(1)"}),
    ("ChoosePayment", {"ChoosePayment": "credit"}),
    ("ChoosePayment", {"ChoosePayment": "GooglePay"}),
    ("StoreID", {"StoreID": "store 1"}),
    ("StoreID", {"StoreID": "s" * 21}),
    ("Remark", {"Remark": "r" * 101}),
    ("ChooseSubPayment", {"ChooseSubPayment": "FAMILY MART"}),
    ("NeedExtraPaidInfo", {"NeedExtraPaidInfo": "yes"}),
    ("DeviceSource", {"DeviceSource": "P"}),
    ("PlatformID", {"PlatformID": "p" * 11}),
    ("InvoiceMark", {"InvoiceMark": "Y"}),
    ("CustomField1", {"CustomField1": "c" * 51}),
    ("CustomField2", {"CustomField2": "quote's"}),
    ("CustomField3", {"CustomField3": 'say "hi"'}),
    ("CustomField4", {"CustomField4": "a=b"}),
    ("CustomField1", {"CustomField1": "a+b"}),
    ("Language", {"Language": "FRA"}),
    ("OrderResultURL", {"OrderResultURL": BASE["ReturnURL"]}),
    # method combinations
    ("ExpireDate", {"ExpireDate": 3}),
    ("StoreExpireDate", {"StoreExpireDate": 3}),
    ("Desc_1", {"Desc_1": "x"}),
    ("PaymentInfoURL", {"PaymentInfoURL": "https://api.example.com/info"}),
    ("ClientRedirectURL", {"ClientRedirectURL": "https://app.example.com/b"}),
    ("IgnorePayment", {"IgnorePayment": "ATM"}),
    ("Redeem", {"ChoosePayment": "ATM", "Redeem": "Y"}),
    ("CreditInstallment", {"ChoosePayment": "CVS", "CreditInstallment": "3"}),
    ("PeriodAmount", {"ChoosePayment": "WebATM", "PeriodAmount": 500}),
    ("BindingCard", {"ChoosePayment": "TWQR", "BindingCard": 1}),
    ("UnionPay", {"ChoosePayment": "ApplePay", "UnionPay": 0}),
    ("ChooseSubPayment", {"ChoosePayment": "ALL", "ChooseSubPayment": "ESUN"}),
    ("OrderResultURL", {"ChoosePayment": "ATM", "OrderResultURL": "https://app.example.com/r"}),
    ("OrderResultURL", {"ChoosePayment": "CVS", "OrderResultURL": "https://app.example.com/r"}),
    ("OrderResultURL", {"ChoosePayment": "BARCODE", "OrderResultURL": "https://app.example.com/r"}),
    ("OrderResultURL", {"UnionPay": 1, "OrderResultURL": "https://app.example.com/r"}),
    ("TotalAmount", {"ChoosePayment": "BNPL", "TotalAmount": 2999}),
    # ranges
    ("ExpireDate", {"ChoosePayment": "ATM", "ExpireDate": 0}),
    ("ExpireDate", {"ChoosePayment": "ATM", "ExpireDate": 61}),
    ("StoreExpireDate", {"ChoosePayment": "CVS", "StoreExpireDate": 0}),
    ("StoreExpireDate", {"ChoosePayment": "CVS", "StoreExpireDate": 43201}),
    ("StoreExpireDate", {"ChoosePayment": "BARCODE", "StoreExpireDate": 31}),
    ("Desc_2", {"ChoosePayment": "CVS", "Desc_2": "d" * 21}),
    ("IgnorePayment", {"ChoosePayment": "ALL", "IgnorePayment": "ATM#DigitalPayment"}),
    ("IgnorePayment", {"ChoosePayment": "ALL", "IgnorePayment": "ATM#ATM"}),
    ("IgnorePayment", {"ChoosePayment": "ALL", "IgnorePayment": "ATM,CVS"}),
    # credit card rules
    ("BindingCard", {"BindingCard": 2}),
    ("MerchantMemberID", {"BindingCard": 1}),
    ("MerchantMemberID", {"MerchantMemberID": "m1"}),
    ("MerchantMemberID", {"BindingCard": 1, "MerchantMemberID": "m" * 31}),
    ("Redeem", {"Redeem": "y"}),
    ("UnionPay", {"UnionPay": 3}),
    ("CreditInstallment", {"CreditInstallment": ""}),
    ("CreditInstallment", {"CreditInstallment": "3,7"}),
    ("CreditInstallment", {"CreditInstallment": "3, 6"}),
    ("CreditInstallment", {"CreditInstallment": "3,3"}),
    ("PeriodType", {"PeriodAmount": 500, "Frequency": 1, "ExecTimes": 12}),
    ("ExecTimes", {"PeriodAmount": 500, "PeriodType": "M", "Frequency": 1}),
    ("PeriodAmount", {"PeriodAmount": 499, "PeriodType": "M", "Frequency": 1, "ExecTimes": 12}),
    ("PeriodType", {"PeriodAmount": 500, "PeriodType": "W", "Frequency": 1, "ExecTimes": 12}),
    ("Frequency", {"PeriodAmount": 500, "PeriodType": "D", "Frequency": 366, "ExecTimes": 12}),
    ("Frequency", {"PeriodAmount": 500, "PeriodType": "M", "Frequency": 13, "ExecTimes": 12}),
    ("Frequency", {"PeriodAmount": 500, "PeriodType": "Y", "Frequency": 2, "ExecTimes": 2}),
    ("Frequency", {"PeriodAmount": 500, "PeriodType": "M", "Frequency": 0, "ExecTimes": 12}),
    ("ExecTimes", {"PeriodAmount": 500, "PeriodType": "M", "Frequency": 1, "ExecTimes": 1}),
    ("ExecTimes", {"PeriodAmount": 500, "PeriodType": "D", "Frequency": 1, "ExecTimes": 1000}),
    ("ExecTimes", {"PeriodAmount": 500, "PeriodType": "M", "Frequency": 1, "ExecTimes": 1000}),
    ("ExecTimes", {"PeriodAmount": 500, "PeriodType": "Y", "Frequency": 1, "ExecTimes": 100}),
    ("ExecTimes", {"PeriodAmount": 500, "PeriodType": "Y", "Frequency": 1, "ExecTimes": 1}),
    ("ExecTimes", {"PeriodAmount": 500, "PeriodType": "D", "Frequency": 1, "ExecTimes": 0}),
    ("PeriodReturnURL", {"PeriodReturnURL": "https://api.example.com/period"}),
    (
        "CreditInstallment",
        {"CreditInstallment": "3", "PeriodAmount": 500, "PeriodType": "M", "Frequency": 1, "ExecTimes": 2},
    ),
    ("Redeem", {"Redeem": "Y", "CreditInstallment": "3"}),
    ("Redeem", {"Redeem": "Y", "PeriodAmount": 500, "PeriodType": "M", "Frequency": 1, "ExecTimes": 2}),
    ("UnionPay", {"UnionPay": 1, "CreditInstallment": "3"}),
    ("UnionPay", {"UnionPay": 1, "Redeem": "Y"}),
    ("UnionPay", {"UnionPay": 1, "BindingCard": 1, "MerchantMemberID": "m1"}),
    ("UnionPay", {"UnionPay": 1, "PeriodAmount": 500, "PeriodType": "M", "Frequency": 1, "ExecTimes": 2}),
]


@pytest.mark.parametrize(
    ("field", "overrides"), INVALID, ids=[f"{f}-{i}" for i, (f, _) in enumerate(INVALID)]
)
def test_invalid_requests_name_the_field(field: str, overrides: dict[str, Any]) -> None:
    error = invalid(field, **overrides)
    assert isinstance(error, ValueError)  # callers that catch ValueError still catch it


def test_periodic_limits_accept_the_edges() -> None:
    # Protocol page §13.3: M up to 999 and Y up to 99 (the older doc's 99 / 9 were too strict).
    edges = (("D", 365, 999), ("M", 12, 999), ("Y", 1, 99), ("D", 1, 2), ("M", 1, 2), ("Y", 1, 2))
    for period_type, frequency, exec_times in edges:
        made = request(PeriodAmount=500, PeriodType=period_type, Frequency=frequency, ExecTimes=exec_times)
        assert made.ExecTimes == exec_times


def test_validation_error_is_raised_before_anything_is_signed() -> None:
    with pytest.raises(EcpayValidationError):
        request(TotalAmount=0)
    # model_validate (the dict path) goes through the same validator.
    with pytest.raises(pydantic.ValidationError):
        CheckoutRequest.model_validate({**BASE, "TotalAmount": 0})


# --- the HTML form ------------------------------------------------------------------------------


class _FormReader(html.parser.HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.action = ""
        self.fields: dict[str, str] = {}
        self.scripts: list[dict[str, str | None]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag == "form":
            self.action = values.get("action") or ""
        elif tag == "input" and values.get("type") == "hidden":
            self.fields[values["name"] or ""] = values["value"] or ""
        elif tag == "script":
            self.scripts.append(values)


def test_html_round_trips_every_value_and_escapes_it() -> None:
    nasty = 'Joe\'s "A&B" > C # 1 ~ 50%!'
    form = build_checkout_form(request(ItemName=nasty, TradeDesc="a & b < c"), CREDS, STAGE)
    page = form.html()
    reader = _FormReader()
    reader.feed(page)
    assert reader.action == form.action
    assert reader.fields == form.fields
    assert nasty not in page  # present only escaped
    assert "Joe&#x27;s &quot;A&amp;B&quot; &gt; C" in page
    assert "a &amp; b &lt; c" in page
    assert 'document.getElementById("ecpay-checkout").submit()' in page
    assert "<noscript>" in page


def test_html_escapes_the_action_and_takes_a_csp_nonce() -> None:
    form = CheckoutForm(action='https://x.test/a?b=1&c="2"', fields={"A": "1"})
    page = form.html(nonce='abc"123')
    reader = _FormReader()
    reader.feed(page)
    assert reader.action == 'https://x.test/a?b=1&c="2"'
    assert reader.scripts == [{"nonce": 'abc"123'}]
    assert form.html().count("nonce") == 0


@given(st.text(alphabet=st.characters(blacklist_categories=["Cs", "Cc"]), min_size=1, max_size=60))
def test_any_printable_item_name_round_trips_through_the_page(item_name: str) -> None:
    try:
        made = request(ItemName=item_name)
    except EcpayValidationError:
        return  # e.g. something that looks like an HTML tag; refusal is tested above
    form = build_checkout_form(made, CREDS, STAGE)
    reader = _FormReader()
    reader.feed(form.html())
    assert reader.fields["ItemName"] == item_name
    assert verify_check_mac_value(reader.fields, CREDS.hash_key, CREDS.hash_iv)
