"""AioCheckOut/V5 request checks, in ECPay's order: presence, merchant, CheckMacValue, formats, reuse."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from ...ecpay.checkmac import verify_check_mac_value
from ...ecpay.credentials import MerchantCredentials
from ...ecpay.limits import DEFAULT_AMOUNT_LIMITS, MAX_INT
from ...ecpay.limits import PERIOD_LIMITS as LIBRARY_PERIOD_LIMITS
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
# Every AioCheckOut/V5 parameter ECPay documents (protocol §4.1-§4.9). Anything else is refused
# with "Parameter Error. <name> Not In Spec", as ECPay's stage does (§13.4).
CHECKOUT_PARAMETERS = frozenset(
    {
        # §4.1 common: the required ones, then the optional
        *REQUIRED,
        "StoreID",
        "ClientBackURL",
        "ItemURL",
        "Remark",
        "ChooseSubPayment",
        "OrderResultURL",
        "NeedExtraPaidInfo",
        "DeviceSource",
        "IgnorePayment",
        "PlatformID",
        "InvoiceMark",
        "CustomField1",
        "CustomField2",
        "CustomField3",
        "CustomField4",
        "Language",
        # §4.2 card extras, §4.3 one-time, §4.4 installment (InstallmentAmount: legacy SDKs send it)
        "BindingCard",
        "MerchantMemberID",
        "Redeem",
        "UnionPay",
        "CreditInstallment",
        "InstallmentAmount",
        # §4.5 periodic
        "PeriodAmount",
        "PeriodType",
        "Frequency",
        "ExecTimes",
        "PeriodReturnURL",
        # §4.6 ATM, §4.7 CVS / BARCODE
        "ExpireDate",
        "PaymentInfoURL",
        "ClientRedirectURL",
        "StoreExpireDate",
        "Desc_1",
        "Desc_2",
        "Desc_3",
        "Desc_4",
        # §4.9 e-invoice with the payment (InvoiceMark=Y)
        "RelateNumber",
        "CustomerID",
        "CustomerIdentifier",
        "CustomerName",
        "CustomerAddr",
        "CustomerPhone",
        "CustomerEmail",
        "ClearanceMark",
        "TaxType",
        "CarruerType",
        "CarruerNum",
        "Donation",
        "LoveCode",
        "Print",
        "InvoiceItemName",
        "InvoiceItemCount",
        "InvoiceItemWord",
        "InvoiceItemPrice",
        "InvoiceItemTaxType",
        "InvoiceRemark",
        "DelayDay",
        "InvType",
    }
)
# Single-order amount limits per method: ECPay's defaults (protocol §13.2), the library's table.
AMOUNT_LIMITS = DEFAULT_AMOUNT_LIMITS
# Installment terms a (non-gateway) merchant can open (§4.4); 30N is SinoPac's 30 periods.
INSTALLMENT_TERMS = frozenset({"3", "6", "12", "18", "24", "30N"})
# Periodic limits (§13.3): PeriodType -> (max Frequency, max ExecTimes, ExecTimes error code).
# ECPay's stage answers 10100227 (M) and 10100228 (Y); no code was found for D, so the generic one.
_EXEC_TIMES_CODES = {"D": "10100050", "M": "10100227", "Y": "10100228"}
PERIOD_LIMITS: dict[str, tuple[int, int, str]] = {
    kind: (frequency, exec_times, _EXEC_TIMES_CODES[kind])
    for kind, (frequency, exec_times) in LIBRARY_PERIOD_LIMITS.items()
}
# StoreExpireDate per method (§4.7, §11.2): CVS in minutes, BARCODE in days.
STORE_EXPIRE_LIMITS: dict[str, tuple[int, int, str]] = {
    "CVS": (1, 43_200, "minutes"),
    "BARCODE": (1, 30, "days"),
}
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


def _limits(method: str) -> tuple[int, int]:
    try:
        return AMOUNT_LIMITS.range_for(method)
    except ValueError:
        return (1, MAX_INT)  # a method without documented limits


def amount_fits(method: str, amount: int) -> bool:
    """True if ``amount`` is within ``method``'s single-order limits (methods without limits: any)."""
    low, high = _limits(method)
    return low <= amount <= high


def amount_limit_text(method: str) -> str:
    """``method``'s limits for people, e.g. ``Credit accepts 5 to 199999``."""
    low, high = _limits(method)
    return f"{method} accepts {low} to {high}" if high < MAX_INT else f"{method} accepts {low} or more"


def offered_methods(choose: str, amount: int, ignore_payment: str = "") -> list[str]:
    """The methods the payment page offers: ChoosePayment's own, or for ALL every payable method
    not in IgnorePayment whose limits the amount fits."""
    if choose != "ALL":
        return [choose] if amount_fits(choose, amount) else []
    ignored = set(filter(None, ignore_payment.split("#")))
    return [m for m in PAYABLE_METHODS if m not in ignored and amount_fits(m, amount)]


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
    for name in fields:
        if name not in CHECKOUT_PARAMETERS:
            return CheckoutError(PARAMETER_ERROR, f"Parameter Error. {name[:50]} Not In Spec")
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
    if choose == "BNPL" and not amount_fits("BNPL", amount):
        return CheckoutError(BNPL_AMOUNT_ERROR, "TotalAmount Error: BNPL needs at least 3000")
    if choose != "ALL" and not amount_fits(choose, amount):
        return CheckoutError(AMOUNT_ERROR, f"TotalAmount Error: {amount_limit_text(choose)}")
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
    if choose == "ALL" and not offered_methods(choose, amount, fields.get("IgnorePayment", "")):
        return CheckoutError(AMOUNT_ERROR, f"TotalAmount Error: no payment method offered accepts {amount}")
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
    problem = _validate_store_expire(fields.get("StoreExpireDate", ""), choose)
    if problem is not None:
        return problem
    if fields.get("BindingCard") == "1" and not fields.get("MerchantMemberID"):
        return _err("MerchantMemberID", "required with BindingCard=1")
    return _validate_card_options(fields) or _validate_period(fields, amount)


def _validate_store_expire(value: str, choose: str) -> CheckoutError | None:
    if not value:
        return None
    number = _positive_int(value)
    # For ALL the unit follows the method the shopper picks: the wider (CVS) range applies here and
    # a BARCODE deadline is capped at its maximum when the code is issued.
    low, high, unit = STORE_EXPIRE_LIMITS["BARCODE" if choose == "BARCODE" else "CVS"]
    if number is None or not low <= number <= high:
        method = "BARCODE" if choose == "BARCODE" else "CVS"
        return _err("StoreExpireDate", f"{method}: {low} to {high} {unit}")
    return None


def _validate_card_options(fields: Mapping[str, str]) -> CheckoutError | None:
    """Redeem, UnionPay and CreditInstallment values, and the combinations ECPay refuses (§4.3-§4.5)."""
    redeem = fields.get("Redeem", "")
    if redeem not in ("", "Y", "N"):
        return _err("Redeem", "Y or N")
    union_pay = fields.get("UnionPay", "")
    if union_pay not in ("", "0", "1", "2"):
        return _err("UnionPay", "0, 1 or 2")
    installment = fields.get("CreditInstallment", "")
    periodic = any(fields.get(n) for n in ("PeriodAmount", "PeriodType", "Frequency", "ExecTimes"))
    if installment:
        terms = installment.split(",")
        if any(t not in INSTALLMENT_TERMS for t in terms) or len(set(terms)) != len(terms):
            allowed = ",".join(sorted(INSTALLMENT_TERMS, key=lambda t: int(t.rstrip("N"))))
            return _err("CreditInstallment", f"a comma list of {allowed}")
        if periodic:
            return _err("CreditInstallment", "cannot be combined with periodic (定期定額) parameters")
    if redeem == "Y" and periodic:
        return _err("Redeem", "cannot be combined with periodic (定期定額) parameters")
    if union_pay == "1" and (installment or periodic or redeem == "Y" or fields.get("BindingCard") == "1"):
        return _err("UnionPay", "UnionPay only (1) excludes installments, periodic, Redeem and BindingCard")
    return None


def _validate_period(fields: Mapping[str, str], amount: int) -> CheckoutError | None:
    names = ("PeriodAmount", "PeriodType", "Frequency", "ExecTimes")
    if not any(fields.get(n) for n in names):
        return None
    if fields["ChoosePayment"] != "Credit":
        return _err("ChoosePayment", "periodic payments need Credit")
    if _positive_int(fields.get("PeriodAmount", "")) != amount:
        return _err("PeriodAmount", "must equal TotalAmount")
    period_type = fields.get("PeriodType", "")
    if period_type not in PERIOD_LIMITS:
        return _err("PeriodType", "D, M or Y")
    max_frequency, max_exec_times, exec_times_code = PERIOD_LIMITS[period_type]
    frequency = _positive_int(fields.get("Frequency", ""))
    if frequency is None or frequency > max_frequency:
        return CheckoutError(
            PARAMETER_ERROR,
            f"Frequency Error, PeriodType equal {period_type}, Frequency between 1 and {max_frequency}",
        )
    exec_times = _positive_int(fields.get("ExecTimes", ""))
    if exec_times is None or not 2 <= exec_times <= max_exec_times:
        return CheckoutError(
            exec_times_code,
            f"ExecTimes Error, PeriodType equal {period_type}, ExecTimes between 2 and {max_exec_times}",
        )
    return None
