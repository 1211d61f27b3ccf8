"""A stand-in for ECPay's server-to-server APIs (QueryTradeInfo, DoAction) as an injected Transport."""

from __future__ import annotations

import json
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, field

from tests.unit.api.apitest import MERCHANT

from ecpay_lambda.ecpay.checkmac import check_mac_value, verify_check_mac_value
from ecpay_lambda.ecpay.errors import TransportError
from ecpay_lambda.ecpay.transport import HttpResponse


@dataclass
class FakeEcpay:
    """Answers like ECPay: ``paid`` maps MerchantTradeNo -> amount ECPay says was paid."""

    paid: dict[str, int] = field(default_factory=dict)
    queries: list[str] = field(default_factory=list)
    actions: list[dict[str, str]] = field(default_factory=list)
    refunded: list[int] = field(default_factory=list)  # DoAction R amounts; the card trade is closed

    def post_form(self, url: str, fields: Mapping[str, str], *, timeout: float) -> HttpResponse:
        """QueryTradeInfo/V5 (signed answer) and CreditDetail/DoAction (RtnCode 1)."""
        if not verify_check_mac_value(fields, MERCHANT.hash_key, MERCHANT.hash_iv):
            return _answer("TradeStatus=10200073&RtnMsg=CheckMacValue verify fail")
        mtn = fields.get("MerchantTradeNo", "")
        if url.endswith("/CreditDetail/QueryTrade/V2"):
            refunds = [{"status": "退刷", "sno": str(i), "amount": a} for i, a in enumerate(self.refunded)]
            value = {"TradeID": fields["CreditRefundId"], "amount": int(fields["CreditAmount"])}
            value |= {"status": "已關帳", "close_data": refunds}
            return _answer(json.dumps({"RtnMsg": "", "RtnValue": value}, ensure_ascii=False))
        if url.endswith("/QueryTradeInfo/V5"):
            self.queries.append(mtn)
            amount = self.paid.get(mtn)
            answer = {
                "MerchantID": MERCHANT.merchant_id,
                "MerchantTradeNo": mtn,
                "StoreID": "",
                "TradeNo": "2611271200000009",
                "TradeAmt": str(amount or 0),
                "PaymentDate": "2026/11/27 12:00:00" if amount else "",
                "PaymentType": "Credit_CreditCard",
                "HandlingCharge": "0",
                "PaymentTypeChargeFee": "0",
                "TradeDate": "2026/11/27 11:59:00",
                "TradeStatus": "1" if amount else "0",
                "ItemName": "Wallet points",
                "CustomField1": "",
            }
            answer["CheckMacValue"] = check_mac_value(answer, MERCHANT.hash_key, MERCHANT.hash_iv)
            return _answer("&".join(f"{k}={v}" for k, v in answer.items()))
        if url.endswith("/DoAction"):
            self.actions.append(dict(fields))
            if fields["Action"] == "R":
                self.refunded.append(int(fields["TotalAmount"]))
            return _answer(
                urllib.parse.urlencode(
                    {
                        "MerchantID": MERCHANT.merchant_id,
                        "MerchantTradeNo": mtn,
                        "TradeNo": fields.get("TradeNo", ""),
                        "RtnCode": "1",
                        "RtnMsg": "OK",
                    }
                )
            )
        raise TransportError(f"the fake has no {url}")


def _answer(body: str) -> HttpResponse:
    return HttpResponse(status=200, body=body.encode("utf-8"), headers={"Content-Type": "text/html"})
