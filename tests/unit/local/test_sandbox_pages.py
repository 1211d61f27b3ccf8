"""The sandbox's browser pages (pay, fail, codes, the way back to the shop) and its control API."""

from __future__ import annotations

import html
import json
import re
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from ecpay_lambda.ecpay.checkmac import verify_check_mac_value
from ecpay_lambda.local.sandbox import Sandbox, TradeBook, TradeStatus
from ecpay_lambda.local.sandbox.client import SandboxError

from .conftest import STAGE, CheckoutFactory


def _hidden_fields(page: str) -> dict[str, str]:
    return {
        html.unescape(name): html.unescape(value)
        for name, value in re.findall(r'<input type="hidden" name="([^"]*)" value="([^"]*)">', page)
    }


def _form_action(page: str) -> str:
    match = re.search(r'<form id="autopost" method="post" action="([^"]*)">', page)
    assert match, page[:800]
    return html.unescape(match.group(1))


def _page_action(ecpay_sandbox, mtn: str, **fields: str) -> tuple[int, str]:  # type: ignore[no-untyped-def]
    return ecpay_sandbox.post_form(f"/sandbox/checkout/{mtn}", fields)


def test_card_payment_posts_the_result_back_to_order_result_url(  # type: ignore[no-untyped-def]
    ecpay_sandbox, merchant_endpoint, checkout_form: CheckoutFactory
) -> None:
    form = checkout_form(merchant_endpoint.url("/return"), OrderResultURL=merchant_endpoint.url("/back"))
    _, page = ecpay_sandbox.checkout(form)
    assert "4311-9522-2222-2222" in page
    status, page = _page_action(ecpay_sandbox, form["MerchantTradeNo"], action="pay")
    assert status == 200
    assert _form_action(page) == merchant_endpoint.url("/back")
    fields = _hidden_fields(page)
    assert fields["RtnMsg"] == "Succeeded" and fields["RtnCode"] == "1"
    assert verify_check_mac_value(fields, STAGE.hash_key, STAGE.hash_iv)
    # The server-to-server notification went first.
    assert len(merchant_endpoint.posts("/return")) == 1


def test_declined_card_without_order_result_url_shows_the_shop_link(  # type: ignore[no-untyped-def]
    ecpay_sandbox, merchant_endpoint, checkout_form: CheckoutFactory
) -> None:
    form = checkout_form(merchant_endpoint.url("/return"), ClientBackURL="http://127.0.0.1:1/shop?a=1&b=2")
    ecpay_sandbox.checkout(form)
    status, page = _page_action(ecpay_sandbox, form["MerchantTradeNo"], action="fail")
    assert status == 200
    assert 'data-status="failed"' in page
    assert 'href="http://127.0.0.1:1/shop?a=1&amp;b=2"' in page
    assert merchant_endpoint.posts("/return")[0].fields["RtnCode"] == "10200058"


def test_all_then_atm_code_then_back_to_the_shop(  # type: ignore[no-untyped-def]
    ecpay_sandbox, merchant_endpoint, checkout_form: CheckoutFactory
) -> None:
    form = checkout_form(
        merchant_endpoint.url("/return"),
        ChoosePayment="ALL",
        PaymentInfoURL=merchant_endpoint.url("/info"),
        ClientRedirectURL=merchant_endpoint.url("/redirect"),
    )
    mtn = form["MerchantTradeNo"]
    ecpay_sandbox.checkout(form)
    _, page = _page_action(ecpay_sandbox, mtn, action="choose", method="ATM")
    assert "issue-code" in page
    _, page = _page_action(ecpay_sandbox, mtn, action="issue-code")
    account = ecpay_sandbox.trade(mtn)["payment_info"]["vAccount"]
    assert f'data-field="vAccount">{account}<' in page
    assert len(merchant_endpoint.posts("/info")) == 1
    _, page = _page_action(ecpay_sandbox, mtn, action="client-redirect")
    assert _form_action(page) == merchant_endpoint.url("/redirect")
    fields = _hidden_fields(page)
    assert fields["vAccount"] == account and fields["RtnCode"] == "2"
    assert verify_check_mac_value(fields, STAGE.hash_key, STAGE.hash_iv)
    # Later, the shopper pays at the ATM (from the sandbox's trade record page).
    status, page = _page_action(ecpay_sandbox, mtn, action="pay", **{"from": "record"})
    assert status == 200 and "Callbacks" in page  # urllib followed the 303 to the record page
    assert ecpay_sandbox.trade(mtn)["status"] == "paid"
    assert len(merchant_endpoint.posts("/return")) == 1


def test_page_errors_keep_the_shopper_on_the_page(  # type: ignore[no-untyped-def]
    ecpay_sandbox, merchant_endpoint, checkout_form: CheckoutFactory
) -> None:
    form = checkout_form(merchant_endpoint.url("/return"))
    ecpay_sandbox.checkout(form)
    _page_action(ecpay_sandbox, form["MerchantTradeNo"], action="pay")
    status, page = _page_action(ecpay_sandbox, form["MerchantTradeNo"], action="pay")
    assert status == 409 and 'data-status="paid"' in page
    status, _ = _page_action(ecpay_sandbox, form["MerchantTradeNo"], action="explode")
    assert status == 400
    status, _ = _page_action(ecpay_sandbox, "NOPE123", action="pay")
    assert status == 404


def test_index_and_trade_pages(ecpay_sandbox, merchant_endpoint, checkout_form: CheckoutFactory) -> None:  # type: ignore[no-untyped-def]
    form = checkout_form(merchant_endpoint.url("/return"))
    ecpay_sandbox.checkout(form)
    ecpay_sandbox.pay(form["MerchantTradeNo"])
    with urllib.request.urlopen(ecpay_sandbox.base_url + "/sandbox/", timeout=5) as response:
        index = response.read().decode()
    assert form["MerchantTradeNo"] in index
    with urllib.request.urlopen(
        f"{ecpay_sandbox.base_url}/sandbox/trades/{form['MerchantTradeNo']}", timeout=5
    ) as r:
        record = r.read().decode()
    assert 'data-status="paid"' in record and "1|OK" in record
    status, _ = ecpay_sandbox.post_form("/sandbox/settings", {"drop_callbacks": "true"})
    assert status == 200  # urllib followed the 303 back to the index
    assert ecpay_sandbox.settings()["drop_callbacks"] is True


def test_control_api_errors(ecpay_sandbox, merchant_endpoint, checkout_form: CheckoutFactory) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(SandboxError) as info:
        ecpay_sandbox.trade("UNKNOWN1")
    assert (info.value.status, info.value.code) == (404, "trade_not_found")
    form = checkout_form(merchant_endpoint.url("/return"))
    ecpay_sandbox.checkout(form)
    mtn = form["MerchantTradeNo"]
    with pytest.raises(SandboxError) as info:
        ecpay_sandbox._json("POST", f"/sandbox/api/trades/{mtn}/teleport")
    assert info.value.status == 404
    with pytest.raises(SandboxError) as info:
        ecpay_sandbox.issue_code(mtn)  # a Credit trade has no code
    assert info.value.status == 409
    with pytest.raises(SandboxError) as info:
        ecpay_sandbox.pay(mtn, method="ATM")  # the method was fixed at checkout
    assert info.value.code == "method_fixed"
    with pytest.raises(SandboxError) as info:
        ecpay_sandbox.settings(drop_callbacks="yes")
    assert info.value.code == "bad_setting"
    with pytest.raises(SandboxError):
        ecpay_sandbox.settings(colour="green")
    with pytest.raises(SandboxError):
        ecpay_sandbox.fail(mtn, rtn_code="1")
    request = urllib.request.Request(
        f"{ecpay_sandbox.base_url}/sandbox/api/trades/{mtn}/pay", data=b"[1", method="POST"
    )
    with pytest.raises(urllib.error.HTTPError) as http_error:
        urllib.request.urlopen(request, timeout=5)
    assert http_error.value.code == 400
    assert json.loads(http_error.value.read())["error"]["code"] == "bad_json"
    ecpay_sandbox.reset()
    assert ecpay_sandbox.trades() == []


def test_settings_round_trip(ecpay_sandbox) -> None:  # type: ignore[no-untyped-def]
    settings = ecpay_sandbox.settings(retry_delays=[0, 0.5], max_deliveries=3)
    assert settings["retry_delays"] == [0.0, 0.5] and settings["max_deliveries"] == 3
    assert ecpay_sandbox.settings()["max_deliveries"] == 3


def test_trades_survive_a_restart(tmp_path: Path, checkout_form: CheckoutFactory) -> None:
    state = tmp_path / "sandbox.json"
    first = Sandbox(book=TradeBook(state))
    form = checkout_form(
        "http://127.0.0.1:9/return", ChoosePayment="ATM", PaymentInfoURL="http://127.0.0.1:9/info"
    )
    try:
        first.checkout(form)
        first.settings = first.settings.updated({"drop_callbacks": True})
        first.issue_code(form["MerchantTradeNo"])
    finally:
        first.close()
    second = Sandbox(book=TradeBook(state))
    try:
        trade = second.trade(form["MerchantTradeNo"])
        assert trade.status is TradeStatus.CODE_ISSUED and trade.payment_info["vAccount"]
        assert trade.expire_at is not None and trade.callbacks[0].dropped
    finally:
        second.close()


def test_corrupt_state_file_starts_empty(tmp_path: Path) -> None:
    state = tmp_path / "sandbox.json"
    state.write_text("{not json", encoding="utf-8")
    assert TradeBook(state).all() == []
