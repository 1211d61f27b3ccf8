"""AioCheckOut/V5 request checks, in ECPay's order: presence, merchant, CheckMacValue, formats, reuse."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from ...ecpay.checkmac import verify_check_mac_value
from ...ecpay.credentials import MerchantCredentials
from .generators import ATM_BANKS, CHOOSE_PAYMENTS, CVS_SUBS, PAYABLE_METHODS, WEBATM_BANKS

REQUIRED = (
    "MerchantID",
    "MerchantTradeNo",
    "MerchantTradeDate",
    "PaymentType",
    "TotalAmount",
    "TradeDesc",
    "ItemName",
    "ReturnURL",
    "ChoosePayment",
    "EncryptType",
    "CheckMacValue",
)
# Maximum lengths in characters (ECPay's String(n)).
MAX_LENGTHS = {
    "MerchantID": 10,
    "MerchantTradeNo": 20,
    "MerchantTradeDate": 20,
    "PaymentType": 20,
    "TradeDesc": 200,
    "ReturnURL": 200,
    "ChoosePayment": 20,
    "StoreID": 20,
    "ClientBackURL": 200,
    "ItemURL": 200,
    "Remark": 100,
    "ChooseSubPayment": 20,
    "OrderResultURL": 200,
    "NeedExtraPaidInfo": 1,
    "IgnorePayment": 100,
    "PlatformID": 10,
    "CustomField1": 50,
    "CustomField2": 50,
    "CustomField3": 50,
    "CustomField4": 50,
    "Language": 3,
    "PaymentInfoURL": 200,
    "ClientRedirectURL": 200,
    "PeriodReturnURL": 200,
    "Desc_1": 20,
    "Desc_2": 20,
    "Desc_3": 20,
    "Desc_4": 20,
    "MerchantMemberID": 30,
}
URL_FIELDS = (
    "ReturnURL",
    "ClientBackURL",
    "OrderResultURL",
    "PaymentInfoURL",
    "ClientRedirectURL",
    "PeriodReturnURL",
)
ITEM_NAME_LIMIT = 400
_ALNUM = re.compile(r"[A-Za-z0-9]+")
_INT = re.compile(r"[0-9]+")
_DATE = re.compile(r"\d{4}/\d{2}/\d{2} \d{2}:\d{2}:\d{2}")
_FORBIDDEN_URL_CHARS = (";", "|", "`")

# Error codes (see ecpay-protocol.md §6): ECPay's documented ones where one exists, else the generic
# parameter error 10100050 with a message naming the field.
PARAMETER_ERROR = "10100050"
MERCHANT_TRADE_NO_ERROR = "10200052"
DUPLICATE_TRADE_NO = "10200047"
CHECK_MAC_ERROR = "10200073"
AMOUNT_ERROR = "10200050"
BNPL_AMOUNT_ERROR = "10200105"
NO_PAYMENT_SERVICE = "10200141"


@dataclass(frozen=True)
class CheckoutError:
    """An ECPay-style rejection of a checkout request."""

    code: str
    message: str


def _err(field: str, why: str = "") -> CheckoutError:
    return CheckoutError(PARAMETER_ERROR, f"{field} Error" + (f": {why}" if why else ""))


def _positive_int(text: str) -> int | None:
    if not _INT.fullmatch(text):
        return None
    value = int(text)
    return value if value > 0 else None


def validate_checkout(
    fields: Mapping[str, str], merchants: Mapping[str, MerchantCredentials]
) -> CheckoutError | None:
    """The first problem ECPay would report for these fields (the caller checks MerchantTradeNo reuse)."""
    for name in REQUIRED:
        if not fields.get(name, "").strip():
            return _err(name, "required")
    credentials = merchants.get(fields["MerchantID"])
    if credentials is None:
        # What ECPay's stage answers for a MerchantID it does not know (e.g. a production one).
        return CheckoutError(
            NO_PAYMENT_SERVICE, "商店尚未提供任何付款方式，請聯繫商店處理。(unknown MerchantID)"
        )
    if fields.get("EncryptType") != "1":
        return _err("EncryptType", "must be 1 (SHA256)")
    signed = dict(fields)
    if len(signed.get("ItemName", "")) > ITEM_NAME_LIMIT:
        # ECPay truncates ItemName to 400 characters before it recomputes the CheckMacValue.
        signed["ItemName"] = signed["ItemName"][:ITEM_NAME_LIMIT]
    if not verify_check_mac_value(signed, credentials.hash_key, credentials.hash_iv):
        note = " (ItemName over 400 characters is truncated before the check)" if signed != fields else ""
        return CheckoutError(CHECK_MAC_ERROR, "CheckMacValue Error" + note)
    return _validate_formats(fields)


def _validate_formats(fields: Mapping[str, str]) -> CheckoutError | None:
    for name, limit in MAX_LENGTHS.items():
        if len(fields.get(name, "")) > limit:
            if name == "MerchantTradeNo":
                return CheckoutError(MERCHANT_TRADE_NO_ERROR, "MerchantTradeNo Error")
            return _err(name, f"longer than {limit} characters")
    if not _ALNUM.fullmatch(fields["MerchantTradeNo"]):
        return CheckoutError(MERCHANT_TRADE_NO_ERROR, "MerchantTradeNo Error")
    date = fields["MerchantTradeDate"]
    if not _DATE.fullmatch(date):
        return _err("MerchantTradeDate", "format is yyyy/MM/dd HH:mm:ss")
    try:
        datetime.strptime(date, "%Y/%m/%d %H:%M:%S")
    except ValueError:
        return _err("MerchantTradeDate", "not a date")
    if fields["PaymentType"] != "aio":
        return _err("PaymentType", "must be aio")
    amount = _positive_int(fields["TotalAmount"])
    if amount is None:
        return CheckoutError(AMOUNT_ERROR, "TotalAmount Error: a positive whole number of TWD")
    choose = fields["ChoosePayment"]
    if choose not in CHOOSE_PAYMENTS or choose == "GooglePay":
        return _err("ChoosePayment")
    if choose == "BNPL" and amount < 3000:
        return CheckoutError(BNPL_AMOUNT_ERROR, "TotalAmount Error: BNPL needs at least 3000")
    for name in URL_FIELDS:
        value = fields.get(name, "")
        if value and (
            not value.startswith(("http://", "https://")) or any(c in value for c in _FORBIDDEN_URL_CHARS)
        ):
            return _err(name, "must be an http(s) URL without ; | `")
    if fields.get("OrderResultURL") and fields["OrderResultURL"] == fields["ReturnURL"]:
        return _err("OrderResultURL", "must differ from ReturnURL")
    if fields.get("PlatformID"):
        return _err("PlatformID", "platform merchants are not simulated")
    if fields.get("NeedExtraPaidInfo", "N") not in ("Y", "N", ""):
        return _err("NeedExtraPaidInfo", "Y or N")
    if fields.get("Language", "") not in ("", "ENG", "KOR", "JPN", "CHI", "CHT"):
        return _err("Language")
    ignore = [p for p in fields.get("IgnorePayment", "").split("#") if p]
    if any(p not in PAYABLE_METHODS for p in ignore):
        return _err("IgnorePayment")
    if choose == "ALL" and ignore and all(p in ignore for p in PAYABLE_METHODS):
        return _err("IgnorePayment", "every method ignored")
    sub = fields.get("ChooseSubPayment", "")
    if sub:
        allowed: tuple[str, ...] = {
            "ATM": tuple(ATM_BANKS),
            "CVS": CVS_SUBS,
            "BARCODE": ("BARCODE",),
            "WebATM": WEBATM_BANKS,
        }.get(choose, ())
        if sub not in allowed:
            return _err("ChooseSubPayment")
    expire = fields.get("ExpireDate", "")
    if expire and (_positive_int(expire) is None or int(expire) > 60):
        return _err("ExpireDate", "1 to 60 days")
    store_expire = fields.get("StoreExpireDate", "")
    if store_expire and _positive_int(store_expire) is None:
        return _err("StoreExpireDate", "a positive whole number")
    if fields.get("BindingCard") == "1" and not fields.get("MerchantMemberID"):
        return _err("MerchantMemberID", "required with BindingCard=1")
    return _validate_period(fields, amount)


def _validate_period(fields: Mapping[str, str], amount: int) -> CheckoutError | None:
    names = ("PeriodAmount", "PeriodType", "Frequency", "ExecTimes")
    if not any(fields.get(n) for n in names):
        return None
    if fields["ChoosePayment"] != "Credit":
        return _err("ChoosePayment", "periodic payments need Credit")
    if _positive_int(fields.get("PeriodAmount", "")) != amount:
        return _err("PeriodAmount", "must equal TotalAmount")
    period_type = fields.get("PeriodType", "")
    limits = {"D": (365, 999), "M": (12, 99), "Y": (1, 9)}
    if period_type not in limits:
        return _err("PeriodType", "D, M or Y")
    frequency = _positive_int(fields.get("Frequency", ""))
    if frequency is None or frequency > limits[period_type][0]:
        return _err("Frequency")
    exec_times = _positive_int(fields.get("ExecTimes", ""))
    if exec_times is None or not 2 <= exec_times <= limits[period_type][1]:
        return _err("ExecTimes")
    return None
