"""The sandbox's pages read like the dashboard: one amount format, states and payment types in words,
Taiwan times, a way from the payment page's address to the trade, and a pointer for CheckMacValue errors."""

from __future__ import annotations

import re
import urllib.error
import urllib.request

import pytest

from ecpay_lambda.local.sandbox import pages
from ecpay_lambda.local.sandbox.validation import CHECK_MAC_ERROR, CheckoutError

from .conftest import CheckoutFactory


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None


def test_amounts_read_as_on_the_dashboard() -> None:
    assert pages._money(500) == "NT$500"
    assert pages._money(199_999) == "NT$199,999"


def test_payment_types_and_states_read_in_words() -> None:
    assert pages._payment("Credit_CreditCard") == pages.METHOD_LABELS["Credit"]
    assert pages._payment("ATM_TAISHIN") == f"{pages.METHOD_LABELS['ATM']} (TAISHIN)"
    assert pages._payment("CVS") == pages.METHOD_LABELS["CVS"]
    assert pages._payment("Mystery_X") == "Mystery_X"  # unknown: shown as ECPay sent it
    assert "已付款" in pages._status("paid") and 'class="state state-paid"' in pages._status("paid")
    assert ">closing<" in pages._status("closing")  # a state this module does not know yet


def test_times_are_taiwan_wall_clock() -> None:
    assert pages._taipei("2026-11-28T06:57:04.123456+00:00") == "2026/11/28 14:57:04"
    assert pages._taipei("not a time") == "not a time"


def test_the_checkmac_error_page_points_at_the_explain_command() -> None:
    page = pages.error_page(CheckoutError(CHECK_MAC_ERROR, "CheckMacValue Error"))
    assert "ecpay-lambda checkmac --explain" in page
    assert "checkmac --explain" not in pages.error_page(CheckoutError("10200052", "MerchantTradeNo Error"))


def test_pages_show_the_dashboard_amount_format_and_taiwan_times(  # type: ignore[no-untyped-def]
    ecpay_sandbox, merchant_endpoint, checkout_form: CheckoutFactory
) -> None:
    form = checkout_form(merchant_endpoint.url("/return"), TotalAmount="1500")
    _, page = ecpay_sandbox.checkout(form)
    assert "NT$1,500" in page and "NT$ " not in page
    ecpay_sandbox.pay(form["MerchantTradeNo"])
    with urllib.request.urlopen(
        f"{ecpay_sandbox.base_url}/sandbox/trades/{form['MerchantTradeNo']}", timeout=5
    ) as response:
        record = response.read().decode()
    assert "NT$1,500" in record and "NT$ " not in record
    assert not re.search(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}", record), "ISO times left on the page"
    assert "已付款 Paid" in record


def test_the_payment_page_address_opened_again_goes_to_the_trade(  # type: ignore[no-untyped-def]
    ecpay_sandbox, merchant_endpoint, checkout_form: CheckoutFactory
) -> None:
    form = checkout_form(merchant_endpoint.url("/return"))
    ecpay_sandbox.checkout(form)
    opener = urllib.request.build_opener(_NoRedirect())
    with pytest.raises(urllib.error.HTTPError) as answer:
        opener.open(f"{ecpay_sandbox.base_url}/sandbox/checkout/{form['MerchantTradeNo']}", timeout=5)
    assert answer.value.code in (302, 303)
    assert answer.value.headers["Location"] == f"/sandbox/trades/{form['MerchantTradeNo']}"
