"""Test doubles for ECPay's server-to-server APIs, plugged into the client's injectable transport.

Like httpx's ``MockTransport``, nothing is monkeypatched: an :class:`~ecpay_lambda.ecpay.client.EcpayClient`
built with ``transport=`` one of these talks to it through the real signing and verification.

- :class:`MockTransport` calls your ``handler`` with each request (a :class:`MockRequest`) and returns
  its :class:`~ecpay_lambda.ecpay.transport.HttpResponse`; :func:`form_answer` builds ECPay's answers.
- :class:`FakeEcpay` answers QueryTradeInfo/V5, CreditDetail/DoAction and CreditDetail/QueryTrade/V2
  as ECPay does (signed ``k=v`` answers, unsigned error answers, JSON for the card trade), from trades
  the test sets up, and records every call; its fields also inject failures.

The offline sandbox's own transport (a whole emulated ECPay, payment pages included) is
``ecpay_lambda.local.sandbox.transport.SandboxTransport``: it lives with the sandbox, in local mode,
which may import this library but not the other way round.

Not imported by the Lambda handlers; it loads only the standard library and this package.
"""

from __future__ import annotations

import json
import threading
import urllib.parse
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Literal, NamedTuple

from .checkmac import check_mac_value, verify_check_mac_value
from .credentials import MerchantCredentials
from .errors import TransportError
from .transport import HttpResponse


class MockRequest(NamedTuple):
    """One form POST a client sent."""

    url: str
    fields: Mapping[str, str]
    timeout: float


class MockTransport:
    """A transport whose answers come from ``handler``; every request is kept in ``requests``."""

    def __init__(self, handler: Callable[[MockRequest], HttpResponse]) -> None:
        self.handler = handler
        self.requests: list[MockRequest] = []
        self._lock = threading.Lock()

    def post_form(self, url: str, fields: Mapping[str, str], *, timeout: float) -> HttpResponse:
        """Record the request and return the handler's answer (or raise what the handler raises)."""
        request = MockRequest(url, dict(fields), timeout)
        with self._lock:
            self.requests.append(request)
        return self.handler(request)


def form_answer(body: Mapping[str, str] | str, status: int = 200) -> HttpResponse:
    """An answer as ECPay sends it: ``text/html`` whose body is ``k=v&...`` (a mapping) or ``body``."""
    text = body if isinstance(body, str) else urllib.parse.urlencode(dict(body))
    return HttpResponse(status=status, body=text.encode("utf-8"), headers={"Content-Type": "text/html"})


@dataclass
class Trade:
    """What the fake ECPay knows about one MerchantTradeNo."""

    amount: int
    status: str = "0"  # TradeStatus: "1" paid
    trade_no: str = "2411270000000001"
    payment_type: str = "Credit_CreditCard"
    simulate_paid: bool = False


@dataclass
class FakeEcpay:
    """ECPay's query and refund APIs in memory, as a transport. Set its fields to shape its answers."""

    credentials: MerchantCredentials = field(default_factory=MerchantCredentials.stage_test_merchant)
    trades: dict[str, Trade] = field(default_factory=dict)
    # A MerchantTradeNo it has no trade for: ECPay's "no such trade" error (10200047), or, with
    # "unpaid", a trade the shopper opened and did not pay (TradeStatus 0, amount 0, signed).
    unknown_trades: Literal["not_found", "unpaid"] = "not_found"
    queries: list[str] = field(default_factory=list)  # MerchantTradeNo of each QueryTradeInfo
    actions: list[dict[str, str]] = field(default_factory=list)  # the fields of each DoAction
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
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def pay(self, merchant_trade_no: str, amount: int, payment_type: str = "Credit_CreditCard") -> Trade:
        """Make ECPay report ``merchant_trade_no`` paid for ``amount``."""
        paid = Trade(amount, "1", payment_type=payment_type)
        self.trades[merchant_trade_no] = paid
        return paid

    def post_form(self, url: str, fields: Mapping[str, str], *, timeout: float) -> HttpResponse:
        """Answer like ECPay's QueryTradeInfo/V5, CreditDetail/DoAction, CreditDetail/QueryTrade/V2 and
        CreditCardPeriodAction."""
        if not verify_check_mac_value(fields, self.credentials.hash_key, self.credentials.hash_iv):
            return form_answer("TradeStatus=10200073&RtnMsg=CheckMacValue verify fail")
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
                self.period_actions.append(dict(fields))
                return form_answer(
                    {
                        "MerchantID": self.credentials.merchant_id,
                        "MerchantTradeNo": mtn,
                        "RtnCode": "1",
                        "RtnMsg": "OK",
                    }
                )
            if url.endswith("/CreditDetail/QueryTrade/V2"):
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
        return form_answer(json.dumps({"RtnMsg": "", "RtnValue": value}, ensure_ascii=False))

    def _query(self, mtn: str) -> HttpResponse:
        trade = self.trades.get(mtn)
        if trade is None and self.unknown_trades == "unpaid":
            trade = Trade(0)
        if trade is None:
            return form_answer("TradeStatus=10200047&RtnMsg=Cant not find the trade data")
        answer = {
            "CustomField1": "",
            "HandlingCharge": "0",
            "ItemName": "Wallet points",
            "MerchantID": self.credentials.merchant_id,
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
        answer["CheckMacValue"] = check_mac_value(answer, self.credentials.hash_key, self.credentials.hash_iv)
        # Raw k=v, not form-encoded: ECPay's QueryTradeInfo answer is signed over the raw values.
        return form_answer("&".join(f"{k}={v}" for k, v in answer.items()))

    def _action(self, fields: Mapping[str, str]) -> HttpResponse:
        ok = self.action_rtn_code == "1"
        if ok:
            if fields["Action"] == "R":
                self.card_refunded.append(int(fields["TotalAmount"]))
            elif fields["Action"] == "N":
                self.card_abandoned = True
            elif fields["Action"] == "E":
                self.card_status = "已授權"
        return form_answer(
            {
                "MerchantID": self.credentials.merchant_id,
                "MerchantTradeNo": fields["MerchantTradeNo"],
                "TradeNo": fields.get("TradeNo", ""),
                "RtnCode": self.action_rtn_code,
                "RtnMsg": "OK" if ok else "error_overDate",
            }
        )
