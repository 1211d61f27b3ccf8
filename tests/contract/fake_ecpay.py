"""A fake ECPay for wallet tests: a Transport that answers QueryTradeInfo, DoAction and
CreditDetail/QueryTrade/V2 as ECPay does (signed raw ``k=v`` answers, unsigned error answers, JSON for
the card trade), plus builders of signed notification bodies.

The wallet talks to it through the real ``EcpayClient``, so signing and verification are exercised.
"""

from __future__ import annotations

import json
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
    action_error: Exception | None = None  # raised by DoAction before ECPay acts (it never arrived)
    answer_lost: Exception | None = None  # raised by DoAction after ECPay acted (the answer was lost)
    action_rtn_code: str = "1"  # DoAction's RtnCode
    # The card trade's capture state as CreditDetail/QueryTrade/V2 reports it (已關帳: R refunds).
    card_status: str = "已關帳"
    card_refunded: list[int] = field(default_factory=list)  # amounts ECPay refunded (R), in order
    card_abandoned: bool = False  # N was accepted: the authorisation is released
    card_queries: list[dict[str, str]] = field(default_factory=list)
    card_query_error: Exception | None = None
    period_actions: list[dict[str, str]] = field(default_factory=list)  # CreditCardPeriodAction calls
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def post_form(self, url: str, fields: Mapping[str, str], *, timeout: float) -> HttpResponse:
        """Answer like ECPay's QueryTradeInfo/V5 and CreditDetail/DoAction."""
        if not verify_check_mac_value(fields, CREDENTIALS.hash_key, CREDENTIALS.hash_iv):
            return _answer("TradeStatus=10200073&RtnMsg=CheckMacValue verify fail")
        mtn = fields.get("MerchantTradeNo", "")
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
                answer = self._action(fields)
                if self.answer_lost is not None:
                    raise self.answer_lost
                return answer
        if url.endswith("/CreditCardPeriodAction"):
            with self._lock:
                self.period_actions.append(dict(fields))
                return _answer(
                    urllib.parse.urlencode(
                        {
                            "MerchantID": CREDENTIALS.merchant_id,
                            "MerchantTradeNo": mtn,
                            "RtnCode": "1",
                            "RtnMsg": "OK",
                        }
                    )
                )
        if url.endswith("/CreditDetail/QueryTrade/V2"):
            with self._lock:
                self.card_queries.append(dict(fields))
                if self.card_query_error is not None:
                    raise self.card_query_error
                return self._card_trade(fields)
        raise TransportError(f"fake ECPay has no {url}")

    def _card_trade(self, fields: Mapping[str, str]) -> HttpResponse:
        close_data = [
            {"status": "退刷", "sno": str(i + 1), "amount": amount, "datetime": "2026/11/27 21:00:00"}
            for i, amount in enumerate(self.card_refunded)
        ]
        value = {
            "TradeID": fields["CreditRefundId"],
            "amount": int(fields["CreditAmount"]),
            "clsamt": int(fields["CreditAmount"]),
            "authtime": "2026/11/27 12:00:00",
            "status": "已取消" if self.card_abandoned else self.card_status,
            "close_data": close_data,
        }
        return _answer(json.dumps({"RtnMsg": "", "RtnValue": value}, ensure_ascii=False))

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
        if self.action_rtn_code == "1":
            if fields["Action"] == "R":
                self.card_refunded.append(int(fields["TotalAmount"]))
            elif fields["Action"] == "N":
                self.card_abandoned = True
            elif fields["Action"] == "E":
                self.card_status = "已授權"
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
