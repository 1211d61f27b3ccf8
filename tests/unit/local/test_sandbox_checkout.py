"""AioCheckOut/V5 in the sandbox: what ECPay checks and the pages it answers with."""

from __future__ import annotations

import re
import urllib.error
import urllib.request

import pytest

from ecpay_lambda.ecpay.checkmac import check_mac_value
from ecpay_lambda.ecpay.credentials import MerchantCredentials
from ecpay_lambda.local.sandbox import Sandbox, Trade, TradeStatus
from ecpay_lambda.local.sandbox.validation import CheckoutError

from .conftest import STAGE, CheckoutFactory

RETURN_URL = "http://127.0.0.1:9/return"


@pytest.fixture
def sandbox() -> Sandbox:
    box = Sandbox()
    yield box
    box.close()


def _code(result: object) -> str:
    assert isinstance(result, CheckoutError), result
    return result.code


def test_valid_checkout_opens_a_trade(sandbox: Sandbox, checkout_form: CheckoutFactory) -> None:
    form = checkout_form(RETURN_URL, ChoosePayment="ATM", ChooseSubPayment="ESUN", TotalAmount="1200")
    trade = sandbox.checkout(form)
    assert isinstance(trade, Trade)
    assert trade.status is TradeStatus.CREATED
    assert trade.amount == 1200
    assert trade.method == "ATM" and trade.payment_type == "ATM_ESUN"
    assert re.fullmatch(r"\d{20}", trade.trade_no)
    assert "CheckMacValue" not in trade.params


@pytest.mark.parametrize(
    "missing", ["MerchantTradeNo", "ItemName", "ReturnURL", "CheckMacValue", "TradeDesc"]
)
def test_required_fields(sandbox: Sandbox, checkout_form: CheckoutFactory, missing: str) -> None:
    result = sandbox.checkout(checkout_form(RETURN_URL, drop=(missing,)))
    assert _code(result) == "10100050"
    assert missing in result.message  # type: ignore[union-attr]


def test_wrong_check_mac_value(sandbox: Sandbox, checkout_form: CheckoutFactory) -> None:
    form = checkout_form(RETURN_URL)
    form["TotalAmount"] = "501"  # changed after signing
    assert _code(sandbox.checkout(form)) == "10200073"


def test_other_merchant_keys_are_refused(sandbox: Sandbox, checkout_form: CheckoutFactory) -> None:
    form = checkout_form(RETURN_URL, sign=False)
    form["CheckMacValue"] = check_mac_value(form, "AAAAAAAAAAAAAAAA", "BBBBBBBBBBBBBBBB")
    assert _code(sandbox.checkout(form)) == "10200073"


def test_unknown_merchant(sandbox: Sandbox, checkout_form: CheckoutFactory) -> None:
    assert _code(sandbox.checkout(checkout_form(RETURN_URL, MerchantID="2000132"))) == "10200141"


def test_configured_merchant_is_used() -> None:
    own = MerchantCredentials("3000001", "k" * 16, "v" * 16)
    box = Sandbox(own)
    try:
        fields = {
            "MerchantID": "3000001",
            "MerchantTradeNo": "OWN1",
            "MerchantTradeDate": "2024/11/27 15:50:00",
            "PaymentType": "aio",
            "TotalAmount": "10",
            "TradeDesc": "d",
            "ItemName": "i",
            "ReturnURL": RETURN_URL,
            "ChoosePayment": "Credit",
            "EncryptType": "1",
        }
        fields["CheckMacValue"] = check_mac_value(fields, own.hash_key, own.hash_iv)
        assert isinstance(box.checkout(fields), Trade)
    finally:
        box.close()


def test_reused_merchant_trade_no(sandbox: Sandbox, checkout_form: CheckoutFactory) -> None:
    form = checkout_form(RETURN_URL)
    assert isinstance(sandbox.checkout(form), Trade)
    assert _code(sandbox.checkout(form)) == "10200047"


@pytest.mark.parametrize(
    ("overrides", "code"),
    [
        ({"MerchantTradeNo": "A" * 21}, "10200052"),
        ({"MerchantTradeNo": "ab_cd"}, "10200052"),
        ({"MerchantTradeDate": "2024-11-27 15:50:00"}, "10100050"),
        ({"MerchantTradeDate": "2024/13/27 15:50:00"}, "10100050"),
        ({"PaymentType": "AIO"}, "10100050"),
        ({"TotalAmount": "0"}, "10200050"),
        ({"TotalAmount": "10.5"}, "10200050"),
        ({"ChoosePayment": "Bitcoin"}, "10100050"),
        ({"EncryptType": "0"}, "10100050"),
        ({"TradeDesc": "x" * 201}, "10100050"),
        ({"ReturnURL": "ftp://example.com/x"}, "10100050"),
        ({"ReturnURL": "http://127.0.0.1/a;b"}, "10100050"),
        ({"ClientBackURL": "http://127.0.0.1/" + "x" * 200}, "10100050"),
        ({"OrderResultURL": RETURN_URL}, "10100050"),
        ({"CustomField1": "x" * 51}, "10100050"),
        ({"ChoosePayment": "ATM", "ChooseSubPayment": "NOPE"}, "10100050"),
        ({"ChoosePayment": "ATM", "ExpireDate": "61"}, "10100050"),
        ({"ChoosePayment": "BNPL", "TotalAmount": "2999"}, "10200105"),
        ({"ChoosePayment": "ALL", "IgnorePayment": "Crypto"}, "10100050"),
        ({"PlatformID": "3002599"}, "10100050"),
        ({"PeriodAmount": "400", "PeriodType": "M", "Frequency": "1", "ExecTimes": "12"}, "10100050"),
        ({"PeriodAmount": "500", "PeriodType": "Y", "Frequency": "2", "ExecTimes": "3"}, "10100050"),
        ({"BindingCard": "1"}, "10100050"),
    ],
)
def test_format_errors(
    sandbox: Sandbox, checkout_form: CheckoutFactory, overrides: dict[str, str], code: str
) -> None:
    assert _code(sandbox.checkout(checkout_form(RETURN_URL, **overrides))) == code


def test_periodic_order_within_limits_is_accepted(sandbox: Sandbox, checkout_form: CheckoutFactory) -> None:
    form = checkout_form(RETURN_URL, PeriodAmount="500", PeriodType="M", Frequency="1", ExecTimes="12")
    assert isinstance(sandbox.checkout(form), Trade)


def test_item_name_over_400_is_truncated_before_the_mac_check(
    sandbox: Sandbox, checkout_form: CheckoutFactory
) -> None:
    # ECPay cuts ItemName at 400 characters and then recomputes the MAC: the order is refused.
    result = sandbox.checkout(checkout_form(RETURN_URL, ItemName="品" * 401))
    assert _code(result) == "10200073"
    assert "400" in result.message  # type: ignore[union-attr]
    assert isinstance(sandbox.checkout(checkout_form(RETURN_URL, ItemName="品" * 400)), Trade)


def test_blank_optional_fields_take_part_in_the_mac(sandbox: Sandbox, checkout_form: CheckoutFactory) -> None:
    form = checkout_form(RETURN_URL, CustomField1="", Remark="", ItemName="Joe's ~Café~ (A+B) 50%!")
    assert isinstance(sandbox.checkout(form), Trade)
    form = checkout_form(RETURN_URL, CustomField1="")
    form.pop("CustomField1")  # signed with it, sent without it
    assert _code(sandbox.checkout(form)) == "10200073"


def test_error_page_over_http(ecpay_sandbox, checkout_form: CheckoutFactory) -> None:  # type: ignore[no-untyped-def]
    form = checkout_form(RETURN_URL)
    form["CheckMacValue"] = "0" * 64
    status, page = ecpay_sandbox.checkout(form)
    assert status == 200  # ECPay shows its error page with 200
    assert 'data-rtn-code="10200073"' in page
    assert "CheckMacValue Error" in page
    assert STAGE.hash_key not in page


def test_payment_page_over_http(ecpay_sandbox, checkout_form: CheckoutFactory) -> None:  # type: ignore[no-untyped-def]
    status, page = ecpay_sandbox.checkout(
        checkout_form(RETURN_URL, ChoosePayment="ALL", IgnorePayment="ATM#CVS")
    )
    assert status == 200
    assert 'data-status="created"' in page
    assert 'value="BARCODE"' in page and 'value="Credit"' in page
    assert 'value="ATM"' not in page and 'value="CVS"' not in page


def test_get_is_refused(ecpay_sandbox) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(ecpay_sandbox.base_url + "/Cashier/AioCheckOut/V5", timeout=5)
    assert info.value.code == 405
