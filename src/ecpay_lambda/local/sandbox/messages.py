"""The field sets ECPay sends: ReturnURL/OrderResultURL, PaymentInfoURL, and query/action answers."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from ...ecpay.checkmac import check_mac_value
from ...ecpay.credentials import MerchantCredentials
from ...ecpay.timezone import ECPAY_DATE_FORMAT, TAIPEI, format_ecpay_datetime
from .capture import STATUS_TEXT, CardState
from .generators import OFFLINE_METHODS, auth_code, charge_fee
from .trades import Trade, TradeStatus

CUSTOM_FIELDS = ("CustomField1", "CustomField2", "CustomField3", "CustomField4")


def sign(fields: Mapping[str, str], credentials: MerchantCredentials) -> dict[str, str]:
    """``fields`` plus their CheckMacValue (SHA256), as ECPay signs what it sends."""
    signed = {k: v for k, v in fields.items() if k != "CheckMacValue"}
    signed["CheckMacValue"] = check_mac_value(signed, credentials.hash_key, credentials.hash_iv)
    return signed


def _common(trade: Trade) -> dict[str, str]:
    fields = {
        "MerchantID": trade.merchant_id,
        "MerchantTradeNo": trade.merchant_trade_no,
        "StoreID": trade.params.get("StoreID", ""),
    }
    return fields


def _customs(trade: Trade) -> dict[str, str]:
    return {name: trade.params.get(name, "") for name in CUSTOM_FIELDS}


def _extra_paid_info(trade: Trade, paid: bool) -> dict[str, str]:
    """NeedExtraPaidInfo=Y fields (§5.4); the ones unrelated to the method are present and blank."""
    method = trade.method or ""
    credit = paid and method == "Credit"
    # The shopper took the first installment term offered (30N: 30 periods); bonus points pay up to 10.
    terms = [t for t in trade.params.get("CreditInstallment", "").split(",") if t]
    periods = int(terms[0].rstrip("N")) if terms else 0
    each = trade.amount // periods if periods else 0
    redeemed = min(trade.amount, 10) if trade.params.get("Redeem") == "Y" else 0
    extra = {
        "WebATMAccBank": "812" if paid and method == "WebATM" else "",
        "WebATMAccNo": "12345" if paid and method == "WebATM" else "",
        "WebATMBankName": "TAISHIN" if paid and method == "WebATM" else "",
        "ATMAccBank": "812" if paid and method == "ATM" else "",
        "ATMAccNo": "54321" if paid and method == "ATM" else "",
        "PaymentNo": trade.payment_info.get("PaymentNo", "") if method == "CVS" else "",
        "PayFrom": "family" if paid and method in ("CVS", "BARCODE") else "",
        "TWQRTradeNo": trade.trade_no if paid and method == "TWQR" else "",
        "gwsr": trade.payment_info.get("gwsr", "") if credit else "",
        "process_date": format_ecpay_datetime(trade.payment_date) if credit and trade.payment_date else "",
        "auth_code": trade.payment_info.get("auth_code", "") if credit else "",
        "amount": str(trade.amount) if credit else "",
        "stage": str(periods) if credit else "",
        "stast": str(trade.amount - each * (periods - 1)) if credit and periods else ("0" if credit else ""),
        "staed": str(each) if credit else "",
        "eci": "5" if credit else "",
        "card4no": "2222" if credit else "",
        "card6no": "431195" if credit else "",
        "red_dan": str(redeemed * 10) if credit else "",
        "red_de_amt": str(redeemed) if credit else "",
        "red_ok_amt": str(trade.amount - redeemed) if credit else "",
        "red_yet": "0" if credit else "",
    }
    return extra


def credit_details(serial: str) -> dict[str, str]:
    """Authorisation details recorded when a card payment succeeds (``serial``: a fresh gwsr)."""
    return {"gwsr": serial, "auth_code": auth_code()}


def credit_trade_detail(trade: Trade) -> dict[str, Any]:
    """CreditDetail/QueryTrade/V2's ``RtnValue`` (§7.6) for a paid card trade.

    ``clsamt`` is what is being or was captured: the unrefunded amount while 要關帳, the amount the
    daily close captured once 已關帳, 0 while 已授權 or 已取消.
    """
    state = trade.card_state or CardState.AUTHORISED
    clsamt = {CardState.TO_BE_CLOSED: trade.remaining_amount, CardState.CLOSED: trade.captured_amount}
    return {
        "TradeID": int(trade.gwsr),
        "amount": trade.amount,
        "clsamt": clsamt.get(state, 0),
        "authtime": format_ecpay_datetime(trade.payment_date) if trade.payment_date else "",
        "status": STATUS_TEXT[state],
        "close_data": [dict(entry) for entry in trade.close_data],
    }


def payment_result(
    trade: Trade,
    *,
    rtn_code: str,
    rtn_msg: str,
    simulate_paid: bool = False,
    payment_date: datetime | None = None,
) -> dict[str, str]:
    """ReturnURL / OrderResultURL fields (§5.1), unsigned."""
    paid = rtn_code == "1"
    paid_at = payment_date or trade.payment_date
    fields = _common(trade)
    fields.update(
        {
            "RtnCode": rtn_code,
            "RtnMsg": rtn_msg,
            "TradeNo": trade.trade_no,
            "TradeAmt": str(trade.amount),
            "PaymentDate": format_ecpay_datetime(paid_at) if paid and paid_at else "",
            "PaymentType": trade.payment_type,
            "PaymentTypeChargeFee": charge_fee(trade.method or "", trade.amount) if paid else "0",
            "TradeDate": format_ecpay_datetime(trade.trade_date),
            "SimulatePaid": "1" if simulate_paid else "0",
        }
    )
    fields.update(_customs(trade))
    if trade.params.get("NeedExtraPaidInfo") == "Y":
        fields.update(_extra_paid_info(trade, paid and not simulate_paid))
    return fields


def payment_info(trade: Trade, *, rtn_code: str, rtn_msg: str) -> dict[str, str]:
    """PaymentInfoURL / ClientRedirectURL fields (§5.3), unsigned."""
    fields = _common(trade)
    fields.update(
        {
            "RtnCode": rtn_code,
            "RtnMsg": rtn_msg,
            "TradeNo": trade.trade_no,
            "TradeAmt": str(trade.amount),
            "PaymentType": trade.payment_type,
            "TradeDate": format_ecpay_datetime(trade.trade_date),
        }
    )
    fields.update(_customs(trade))
    fields.update(code_fields(trade))
    return fields


def code_fields(trade: Trade) -> dict[str, str]:
    """The method's code fields: ATM BankCode/vAccount/ExpireDate; CVS, BARCODE PaymentNo/ExpireDate/codes."""
    info = trade.payment_info
    if trade.method == "ATM":
        expire = trade.expire_at.astimezone(TAIPEI).strftime(ECPAY_DATE_FORMAT) if trade.expire_at else ""
        return {
            "BankCode": info.get("BankCode", ""),
            "vAccount": info.get("vAccount", ""),
            "ExpireDate": expire,
        }
    if trade.method in ("CVS", "BARCODE"):
        return {
            "PaymentNo": info.get("PaymentNo", ""),
            "ExpireDate": format_ecpay_datetime(trade.expire_at) if trade.expire_at else "",
            "Barcode1": info.get("Barcode1", ""),
            "Barcode2": info.get("Barcode2", ""),
            "Barcode3": info.get("Barcode3", ""),
        }
    return {}


def trade_status_code(trade: Trade) -> str:
    """QueryTradeInfo TradeStatus: 0 unpaid, 1 paid, 10200095 failed or never completed.

    An issued ATM/CVS/BARCODE code that expired stays "0" (unpaid): ECPay sends nothing on expiry,
    the merchant judges by the code's ExpireDate. A page abandoned before any method was completed
    reads 10200095, as ECPay reports an order whose shopper never chose a method.
    """
    if trade.status is TradeStatus.PAID:
        return "1"
    if trade.status is TradeStatus.FAILED:
        return "10200095"
    if trade.status is TradeStatus.EXPIRED and not trade.code_issued:
        return "10200095"
    return "0"


def trade_info(trade: Trade) -> dict[str, str]:
    """QueryTradeInfo/V5 answer fields (§7.1), unsigned; values raw."""
    paid = trade.status is TradeStatus.PAID
    fields = {
        **_customs(trade),
        "HandlingCharge": charge_fee(trade.method or "", trade.amount) if paid else "0",
        "ItemName": trade.params.get("ItemName", ""),
        "MerchantID": trade.merchant_id,
        "MerchantTradeNo": trade.merchant_trade_no,
        "PaymentDate": format_ecpay_datetime(trade.payment_date) if paid and trade.payment_date else "",
        "PaymentType": trade.payment_type,
        "PaymentTypeChargeFee": charge_fee(trade.method or "", trade.amount) if paid else "0",
        "StoreID": trade.params.get("StoreID", ""),
        "TradeAmt": str(trade.amount),
        "TradeDate": format_ecpay_datetime(trade.trade_date),
        "TradeNo": trade.trade_no,
        "TradeStatus": trade_status_code(trade),
    }
    if trade.params.get("NeedExtraPaidInfo") == "Y":
        fields.update(_extra_paid_info(trade, paid))
    return fields


def payment_info_query(trade: Trade) -> dict[str, str]:
    """QueryPaymentInfo answer fields (§7.2), unsigned."""
    fields = {
        **_customs(trade),
        "MerchantID": trade.merchant_id,
        "MerchantTradeNo": trade.merchant_trade_no,
        "PaymentType": trade.payment_type,
        "RtnCode": "1",
        "RtnMsg": "Success",
        "StoreID": trade.params.get("StoreID", ""),
        "TradeAmt": str(trade.amount),
        "TradeDate": format_ecpay_datetime(trade.trade_date),
        "TradeNo": trade.trade_no,
    }
    fields.update(code_fields(trade))
    return fields


def raw_kv(fields: Mapping[str, str]) -> str:
    """ECPay's query answer format: ``k=v&k=v`` with raw (not URL-encoded) values."""
    return "&".join(f"{k}={v}" for k, v in fields.items())


def is_offline(method: str | None) -> bool:
    """ATM, CVS and BARCODE issue a code first and are paid later."""
    return method in OFFLINE_METHODS
