"""ECPay's RtnCode / TradeStatus values as data (protocol page §6), with a lookup function."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from types import MappingProxyType


class CodeContext(StrEnum):
    """Where a code appears."""

    RTN_CODE = "RtnCode"
    TRADE_STATUS = "TradeStatus"
    PAYMENT_INFO = "RtnCode (PaymentInfoURL)"
    CHECKOUT = "checkout error page"
    PERIOD_ACTION = "CreditCardPeriodAction"
    WAF = "HTTP / WAF"


@dataclass(frozen=True)
class ReturnCode:
    """One documented code: its value, where it appears, and what it means."""

    code: str
    contexts: tuple[CodeContext, ...]
    meaning: str
    paid: bool = False  # the only "money arrived" answers are RtnCode 1 and TradeStatus 1


_C = CodeContext

_TABLE: tuple[ReturnCode, ...] = (
    ReturnCode("1", (_C.RTN_CODE, _C.TRADE_STATUS), "success / paid", paid=True),
    ReturnCode("0", (_C.TRADE_STATUS,), "order exists, not paid yet (BNPL: application accepted)"),
    ReturnCode("2", (_C.PAYMENT_INFO,), "ATM virtual account issued / BNPL application in progress"),
    ReturnCode("10100073", (_C.PAYMENT_INFO,), "CVS / BARCODE payment code issued"),
    ReturnCode(
        "10200095",
        (_C.TRADE_STATUS,),
        "order created but the shopper never chose or completed a payment method: failed",
    ),
    ReturnCode(
        "10200047",
        (_C.TRADE_STATUS, _C.RTN_CODE),
        "trade data not found (some sources: MerchantTradeNo duplicated); not paid either way",
    ),
    ReturnCode("10200163", (_C.TRADE_STATUS,), "BNPL application failed"),
    ReturnCode("10200073", (_C.RTN_CODE, _C.TRADE_STATUS), "CheckMacValue verification failed"),
    ReturnCode("10200043", (_C.RTN_CODE,), "3-D Secure failed"),
    ReturnCode("10200050", (_C.RTN_CODE,), "amount out of range / mismatch"),
    ReturnCode("10200058", (_C.RTN_CODE,), "card authorisation failed"),
    ReturnCode("10200115", (_C.RTN_CODE,), "card authorisation timed out"),
    ReturnCode("10200009", (_C.RTN_CODE,), "order expired"),
    ReturnCode("10200105", (_C.RTN_CODE,), "BNPL amount below 3000"),
    ReturnCode("10200094", (_C.CHECKOUT,), "stage MerchantID used in production"),
    ReturnCode(
        "10200141",
        (_C.CHECKOUT,),
        "merchant has no active payment service (or stage/production keys mixed up)",
    ),
    ReturnCode("10100058", (_C.RTN_CODE,), "ATM payment deadline passed"),
    ReturnCode("10100001", (_C.RTN_CODE,), "CVS payment code invalid"),
    ReturnCode("10300006", (_C.RTN_CODE,), "CVS payment deadline passed"),
    ReturnCode(
        "10300028",
        (_C.CHECKOUT,),
        "checkout page re-entered with a reused MerchantTradeNo (unofficial source)",
    ),
    ReturnCode(
        "10300029",
        (_C.CHECKOUT,),
        "checkout form submitted again by hand (unofficial source)",
    ),
    ReturnCode(
        "10400011",
        (_C.WAF,),
        "request blocked by ECPay's WAF keyword filter (shell-like words in ItemName/TradeDesc)",
    ),
    ReturnCode("90100150", (_C.PERIOD_ACTION,), "order does not exist (unofficial source)"),
)

RETURN_CODES: Mapping[str, ReturnCode] = MappingProxyType({entry.code: entry for entry in _TABLE})


def lookup_code(code: str | int) -> ReturnCode | None:
    """The documented entry for an RtnCode / TradeStatus value, or None when ECPay never documented it."""
    return RETURN_CODES.get(str(code).strip())


def describe_code(code: str | int) -> str:
    """A one-line human description of a code, including unknown ones."""
    entry = lookup_code(code)
    if entry is None:
        return f"{code}: undocumented code (treat as a failure and show RtnMsg)"
    return f"{entry.code}: {entry.meaning}"
