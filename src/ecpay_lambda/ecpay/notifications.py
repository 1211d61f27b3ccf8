"""Parse and verify what ECPay POSTs to ReturnURL, PaymentInfoURL, PeriodReturnURL and OrderResultURL.

Must stay free of pydantic and any heavy import: the notification Lambda imports this module.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from .credentials import MerchantCredentials


class NotificationKind(StrEnum):
    """Which ECPay callback a body belongs to."""

    PAYMENT_RESULT = "payment_result"  # ReturnURL / OrderResultURL
    PAYMENT_INFO = "payment_info"  # PaymentInfoURL / ClientRedirectURL (ATM, CVS, BARCODE, BNPL)
    PERIOD_RESULT = "period_result"  # PeriodReturnURL


@dataclass(frozen=True)
class PaymentResult:
    """A verified ReturnURL (or OrderResultURL) notification."""

    merchant_id: str
    merchant_trade_no: str
    rtn_code: str
    rtn_msg: str
    trade_no: str
    trade_amt: int
    payment_type: str
    payment_date: datetime | None  # UTC; None when ECPay sent it blank
    trade_date: datetime | None  # UTC
    simulate_paid: bool
    fields: Mapping[str, str] = field(repr=False)  # every received field, blank ones kept

    @property
    def is_paid(self) -> bool:
        """RtnCode 1 means paid."""
        return self.rtn_code == "1"


@dataclass(frozen=True)
class PaymentInfoNotice:
    """A verified PaymentInfoURL notification: an ATM account or CVS/BARCODE code was issued (or not)."""

    merchant_id: str
    merchant_trade_no: str
    rtn_code: str
    rtn_msg: str
    trade_no: str
    trade_amt: int
    payment_type: str
    trade_date: datetime | None
    bank_code: str
    v_account: str
    payment_no: str
    barcode1: str
    barcode2: str
    barcode3: str
    expire_at: datetime | None  # UTC (ATM dates mean the end of that Taiwan day)
    fields: Mapping[str, str] = field(repr=False)

    @property
    def is_code_issued(self) -> bool:
        """ATM/BNPL RtnCode 2, CVS/BARCODE RtnCode 10100073."""
        return self.rtn_code in ("2", "10100073")


@dataclass(frozen=True)
class PeriodResult:
    """A verified PeriodReturnURL notification (charge #2..n of a periodic credit order)."""

    merchant_id: str
    merchant_trade_no: str
    rtn_code: str
    rtn_msg: str
    amount: int
    total_success_times: int
    simulate_paid: bool
    fields: Mapping[str, str] = field(repr=False)


def parse_form_body(body: bytes | str, *, is_base64: bool = False) -> dict[str, str]:
    """Decode an x-www-form-urlencoded body (optionally base64) to fields, keeping blank values.

    Raises ``NotificationError("malformed" | "duplicate_field" | "encoding", ...)``.
    """
    raise NotImplementedError


def verify_fields(
    fields: Mapping[str, str], credentials: MerchantCredentials, *, encrypt_type: int = 1
) -> None:
    """Check CheckMacValue (constant time) and MerchantID; raise ``NotificationError`` naming the check."""
    raise NotImplementedError


def parse_payment_result(
    body: bytes | str, credentials: MerchantCredentials, *, is_base64: bool = False
) -> PaymentResult:
    """Parse and verify a ReturnURL / OrderResultURL body."""
    raise NotImplementedError


def parse_payment_info(
    body: bytes | str, credentials: MerchantCredentials, *, is_base64: bool = False
) -> PaymentInfoNotice:
    """Parse and verify a PaymentInfoURL / ClientRedirectURL body."""
    raise NotImplementedError


def parse_period_result(
    body: bytes | str, credentials: MerchantCredentials, *, is_base64: bool = False
) -> PeriodResult:
    """Parse and verify a PeriodReturnURL body."""
    raise NotImplementedError
