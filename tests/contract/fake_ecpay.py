"""A fake ECPay for wallet tests: a Transport that answers QueryTradeInfo and DoAction as ECPay does
(signed raw ``k=v`` answers, unsigned error answers), plus builders of signed notification bodies.

The wallet talks to it through the real ``EcpayClient``, so signing and verification are exercised.
"""

from __future__ import annotations

import threading
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, field

from ecpay_lambda.ecpay.checkmac import check_mac_value, verify_check_mac_value
from ecpay_lambda.ecpay.client import EcpayClient
from ecpay_lambda.ecpay.credentials import MerchantCredentials
from ecpay_lambda.ecpay.environments import Endpoints
from ecpay_lambda.ecpay.errors import TransportError
from ecpay_lambda.ecpay.transport import HttpResponse

CREDENTIALS = MerchantCredentials.stage_test_merchant()
OTHER_MERCHANT = MerchantCredentials("2000132", "5294y06JbISpM5x9", "v77hoKGq4kWxNNIS")
ENDPOINTS = Endpoints("http://ecpay.test.invalid")


@dataclass
class Trade:
    """What the fake ECPay knows about one MerchantTradeNo."""

    amount: int
    status: str = "0"  # TradeStatus
    trade_no: str = "2411270000000001"
    payment_type: str = "Credit_CreditCard"
    simulate_paid: bool = False


@dataclass
class FakeEcpay:
    """The Transport: records every call; behaviour is set by the test."""

    trades: dict[str, Trade] = field(default_factory=dict)
    queries: list[str] = field(default_factory=list)
    actions: list[dict[str, str]] = field(default_factory=list)
    query_error: Exception | None = None  # raised by the next queries (e.g. TransportError)
    action_error: Exception | None = None  # raised by DoAction
    action_rtn_code: str = "1"  # DoAction's RtnCode
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def post_form(self, url: str, fields: Mapping[str, str], *, timeout: float) -> HttpResponse:
        """Answer like ECPay's QueryTradeInfo/V5 and CreditDetail/DoAction."""
        if not verify_check_mac_value(fields, CREDENTIALS.hash_key, CREDENTIALS.hash_iv):
            return _answer("TradeStatus=10200073&RtnMsg=CheckMacValue verify fail")
        mtn = fields["MerchantTradeNo"]
        with self._lock:
            if url.endswith("/QueryTradeInfo/V5"):
                self.queries.append(mtn)
                if self.query_error is not None:
                    raise self.query_error
                return self._query(mtn)
            if url.endswith("/DoAction"):
                self.actions.append(dict(fields))
                if self.action_error is not None:
                    raise self.action_error
                return self._action(fields)
        raise TransportError(f"fake ECPay has no {url}")

    def _query(self, mtn: str) -> HttpResponse:
        trade = self.trades.get(mtn)
        if trade is None:
            return _answer("TradeStatus=10200047&RtnMsg=Cant not find the trade data")
        answer = {
            "CustomField1": "",
            "HandlingCharge": "0",
            "ItemName": "Wallet points",
            "MerchantID": CREDENTIALS.merchant_id,
            "MerchantTradeNo": mtn,
            "PaymentDate": "2026/11/27 12:00:00" if trade.status == "1" else "",
            "PaymentType": trade.payment_type,
            "PaymentTypeChargeFee": "0",
            "StoreID": "",
            "TradeAmt": str(trade.amount),
            "TradeDate": "2026/11/27 11:59:00",
            "TradeNo": trade.trade_no,
            "TradeStatus": trade.status,
        }
        if trade.simulate_paid:
            answer["SimulatePaid"] = "1"
        answer["CheckMacValue"] = check_mac_value(answer, CREDENTIALS.hash_key, CREDENTIALS.hash_iv)
        return _answer("&".join(f"{k}={v}" for k, v in answer.items()))

    def _action(self, fields: Mapping[str, str]) -> HttpResponse:
        msg = "OK" if self.action_rtn_code == "1" else "error_overDate"
        return _answer(
            urllib.parse.urlencode(
                {
                    "MerchantID": CREDENTIALS.merchant_id,
                    "MerchantTradeNo": fields["MerchantTradeNo"],
                    "TradeNo": fields["TradeNo"],
                    "RtnCode": self.action_rtn_code,
                    "RtnMsg": msg,
                }
            )
        )


def _answer(body: str) -> HttpResponse:
    return HttpResponse(status=200, body=body.encode("utf-8"), headers={"Content-Type": "text/html"})


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
) -> dict[str, str]:
    """The fields of a ReturnURL notification."""
    return {
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
