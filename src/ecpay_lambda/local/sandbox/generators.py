"""Numbers and codes the sandbox makes up the way ECPay formats them (trade numbers, accounts, codes)."""

from __future__ import annotations

import secrets
from datetime import datetime

from ...ecpay.timezone import TAIPEI

# ChooseSubPayment -> ATM bank code (the three digits Taiwanese banks use).
ATM_BANKS: dict[str, str] = {
    "TAISHIN": "812",
    "ESUN": "808",
    "BOT": "004",
    "FUBON": "012",
    "CHINATRUST": "822",
    "FIRST": "007",
    "LAND": "005",
    "CATHAY": "013",
    "TACHONG": "803",
    "PANHSIN": "118",
    "KGI": "809",
}
CVS_SUBS = ("CVS", "OK", "FAMILY", "HILIFE", "IBON")
WEBATM_BANKS = (
    "TAISHIN",
    "ESUN",
    "BOT",
    "FUBON",
    "CHINATRUST",
    "FIRST",
    "CATHAY",
    "MEGA",
    "LAND",
    "TACHONG",
    "SINOPAC",
)
OFFLINE_METHODS = frozenset({"ATM", "CVS", "BARCODE"})
# Methods a shopper can pay with here (ALL lets the shopper choose one of them).
PAYABLE_METHODS = (
    "Credit",
    "ATM",
    "CVS",
    "BARCODE",
    "WebATM",
    "TWQR",
    "ApplePay",
    "BNPL",
    "WeiXin",
    "DigitalPayment",
)
CHOOSE_PAYMENTS = frozenset({*PAYABLE_METHODS, "ALL", "GooglePay"})


def _digits(count: int) -> str:
    return "".join(secrets.choice("0123456789") for _ in range(count))


def new_trade_no(now: datetime) -> str:
    """A 20-digit ECPay TradeNo: Taiwan yymmddHHMMSS then 8 random digits."""
    return now.astimezone(TAIPEI).strftime("%y%m%d%H%M%S") + _digits(8)


def payment_type_for(method: str, sub_payment: str = "") -> str:
    """The reply PaymentType ECPay reports for a method and ChooseSubPayment."""
    sub = sub_payment.upper()
    if method == "Credit":
        return "Credit_CreditCard"
    if method == "ATM":
        return f"ATM_{sub if sub in ATM_BANKS else 'TAISHIN'}"
    if method == "CVS":
        return f"CVS_{sub if sub in CVS_SUBS else 'CVS'}"
    if method == "BARCODE":
        return "BARCODE_BARCODE"
    if method == "WebATM":
        return f"WebATM_{sub if sub in WEBATM_BANKS else 'TAISHIN'}"
    if method == "TWQR":
        return "TWQR_OPAY"
    if method == "BNPL":
        return "BNPL_ZINGALA"
    if method == "DigitalPayment":
        return "DigitalPayment_Jkopay"
    return method  # ApplePay, WeiXin


def charge_fee(method: str, amount: int) -> str:
    """A plausible channel fee (whole TWD) for the fee fields; the sandbox charges nothing."""
    if method == "Credit":
        return str(max(1, round(amount * 0.0275)))
    if method in OFFLINE_METHODS:
        return {"ATM": "10", "CVS": "25", "BARCODE": "20"}[method]
    return str(max(1, round(amount * 0.02)))


def atm_account(payment_type: str) -> tuple[str, str]:
    """(BankCode, vAccount) for an ATM reply type."""
    bank = payment_type.split("_", 1)[1] if "_" in payment_type else "TAISHIN"
    return ATM_BANKS.get(bank, "812"), "9103" + _digits(10)


def cvs_code() -> str:
    """A 14-character CVS payment code (stage codes start with LLL)."""
    return "LLL" + _digits(11)


def barcodes(expire: datetime) -> tuple[str, str, str]:
    """Three Code39 text segments like ECPay's (first one carries the due date)."""
    local = expire.astimezone(TAIPEI)
    return (local.strftime("%y%m%d") + "6EA", "8" + _digits(15), local.strftime("%m%d") + "0" + _digits(10))


def gwsr() -> str:
    """A card authorisation serial."""
    return str(10_000_000 + secrets.randbelow(89_999_999))


def auth_code() -> str:
    """A 6-digit authorisation code."""
    return _digits(6)
