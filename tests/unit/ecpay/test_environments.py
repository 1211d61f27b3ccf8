"""Endpoints per environment, and credentials that keep their secrets out of reprs."""

from __future__ import annotations

import pytest

from ecpay_lambda.ecpay import MerchantCredentials
from ecpay_lambda.ecpay.environments import Endpoints


def test_stage_and_production_hosts() -> None:
    stage = Endpoints.for_environment("stage")
    production = Endpoints.for_environment("production")
    assert stage.query_trade_info == "https://payment-stage.ecpay.com.tw/Cashier/QueryTradeInfo/V5"
    assert production.do_action == "https://payment.ecpay.com.tw/CreditDetail/DoAction"


def test_an_explicit_base_url_wins_and_loses_its_trailing_slash() -> None:
    sandbox = Endpoints.for_environment("sandbox", "http://127.0.0.1:9000/")
    assert sandbox.base_url == "http://127.0.0.1:9000"
    assert {
        sandbox.checkout,
        sandbox.query_trade_info,
        sandbox.query_payment_info,
        sandbox.query_credit_card_period_info,
        sandbox.credit_card_period_action,
        sandbox.do_action,
        sandbox.query_credit_trade,
    } == {
        "http://127.0.0.1:9000/Cashier/AioCheckOut/V5",
        "http://127.0.0.1:9000/Cashier/QueryTradeInfo/V5",
        "http://127.0.0.1:9000/Cashier/QueryPaymentInfo",
        "http://127.0.0.1:9000/Cashier/QueryCreditCardPeriodInfo",
        "http://127.0.0.1:9000/Cashier/CreditCardPeriodAction",
        "http://127.0.0.1:9000/CreditDetail/DoAction",
        "http://127.0.0.1:9000/CreditDetail/QueryTrade/V2",
    }


def test_sandbox_needs_a_base_url() -> None:
    with pytest.raises(ValueError, match="base_url"):
        Endpoints.for_environment("sandbox")


def test_credentials_repr_hides_key_and_iv() -> None:
    creds = MerchantCredentials("1234567", "SeCrEtKeY0123456", "SeCrEtIv01234567")
    assert "SeCrEt" not in repr(creds) and "SeCrEt" not in str(creds)
    assert not creds.is_public_test_merchant
    assert MerchantCredentials.stage_test_merchant().is_public_test_merchant


def test_trade_file_lives_on_the_vendor_host() -> None:
    assert (
        Endpoints.for_environment("stage").trade_no_aio
        == "https://vendor-stage.ecpay.com.tw/PaymentMedia/TradeNoAio"
    )
    assert (
        Endpoints.for_environment("production").trade_no_aio
        == "https://vendor.ecpay.com.tw/PaymentMedia/TradeNoAio"
    )
    # The offline sandbox serves the trade file on its own base URL.
    sandbox = Endpoints.for_environment("sandbox", "http://127.0.0.1:9000/")
    assert sandbox.trade_no_aio == "http://127.0.0.1:9000/PaymentMedia/TradeNoAio"
    assert Endpoints("https://payment.ecpay.com.tw").vendor_url == "https://vendor.ecpay.com.tw"
    explicit = Endpoints("http://127.0.0.1:9000", vendor_base_url="http://127.0.0.1:9001/")
    assert explicit.trade_no_aio == "http://127.0.0.1:9001/PaymentMedia/TradeNoAio"
    assert explicit.checkout == "http://127.0.0.1:9000/Cashier/AioCheckOut/V5"
