"""Signed notification bodies as ECPay posts them, and the client the contract tests wire to ECPay's
stand-in (``ecpay_lambda.ecpay.testing.FakeEcpay``, through the real client: signing and verification
are exercised).
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Mapping

from ecpay_lambda.ecpay.checkmac import check_mac_value
from ecpay_lambda.ecpay.client import EcpayClient
from ecpay_lambda.ecpay.credentials import MerchantCredentials
from ecpay_lambda.ecpay.environments import Endpoints
from ecpay_lambda.ecpay.testing import FakeEcpay

CREDENTIALS = MerchantCredentials.stage_test_merchant()
OTHER_MERCHANT = MerchantCredentials("2000132", "5294y06JbISpM5x9", "v77hoKGq4kWxNNIS")
ENDPOINTS = Endpoints("http://ecpay.test.invalid")


def make_client(fake: FakeEcpay) -> EcpayClient:
    """The real client wired to the fake."""
    return EcpayClient(CREDENTIALS, ENDPOINTS, transport=fake)


def signed_body(fields: Mapping[str, str], credentials: MerchantCredentials = CREDENTIALS) -> bytes:
    """Form-encode ``fields`` with a CheckMacValue, as ECPay posts them."""
    signed = dict(fields)
    signed["CheckMacValue"] = check_mac_value(signed, credentials.hash_key, credentials.hash_iv)
    return urllib.parse.urlencode(signed).encode("utf-8")


def return_fields(
    mtn: str,
    amount: int,
    *,
    rtn_code: str = "1",
    rtn_msg: str = "交易成功",
    simulate_paid: str = "0",
    trade_no: str = "2411270000000001",
    payment_type: str = "Credit_CreditCard",
    merchant_id: str = CREDENTIALS.merchant_id,
    gwsr: str = "11304112",
) -> dict[str, str]:
    """The fields of a ReturnURL notification (with NeedExtraPaidInfo=Y's ``gwsr`` when given)."""
    extra = {"gwsr": gwsr} if gwsr else {}
    return {
        **extra,
        "CustomField1": "",
        "CustomField2": "",
        "CustomField3": "",
        "CustomField4": "",
        "MerchantID": merchant_id,
        "MerchantTradeNo": mtn,
        "PaymentDate": "2026/11/27 12:00:00",
        "PaymentType": payment_type,
        "PaymentTypeChargeFee": "0",
        "RtnCode": rtn_code,
        "RtnMsg": rtn_msg,
        "SimulatePaid": simulate_paid,
        "StoreID": "",
        "TradeAmt": str(amount),
        "TradeDate": "2026/11/27 11:59:00",
        "TradeNo": trade_no,
    }


def return_body(mtn: str, amount: int, **kwargs: str) -> bytes:
    """A signed ReturnURL body."""
    return signed_body(return_fields(mtn, amount, **kwargs))


def atm_info_body(mtn: str, amount: int, *, rtn_code: str = "2", expire_date: str = "2026/12/01") -> bytes:
    """A signed PaymentInfoURL body for an ATM virtual account."""
    return signed_body(
        {
            "BankCode": "812",
            "CustomField1": "",
            "CustomField2": "",
            "CustomField3": "",
            "CustomField4": "",
            "ExpireDate": expire_date,
            "MerchantID": CREDENTIALS.merchant_id,
            "MerchantTradeNo": mtn,
            "PaymentType": "ATM_TAISHIN",
            "RtnCode": rtn_code,
            "RtnMsg": "Get VirtualAccount Succeeded",
            "StoreID": "",
            "TradeAmt": str(amount),
            "TradeDate": "2026/11/27 11:59:00",
            "TradeNo": "2411270000000002",
            "vAccount": "9103522175887271",
        }
    )
