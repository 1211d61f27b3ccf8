"""Parse and verify what ECPay POSTs to ReturnURL, PaymentInfoURL, PeriodReturnURL and OrderResultURL.

Must stay free of pydantic and any heavy import: the notification Lambda imports this module.
"""

# Annotations evaluated, not postponed: the cold-start rule (docs/performance.md).

import base64
import binascii
import re
import urllib.parse
from collections.abc import Mapping
from datetime import UTC, datetime
from enum import StrEnum
from types import MappingProxyType
from typing import NamedTuple

from .checkmac import MD5, SHA256, verify_check_mac_value
from .credentials import MerchantCredentials
from .errors import CheckMacValueError, NotificationCheck, NotificationError
from .records import repr_without
from .timezone import ECPAY_DATE_FORMAT, TAIPEI, parse_ecpay_datetime, parse_naive

MAX_BODY_BYTES = 64 * 1024
MAX_FIELDS = 256
# Base64 grows 4/3; allow for that before decoding so an oversized body is refused unread.
_MAX_BASE64_BYTES = (MAX_BODY_BYTES * 4) // 3 + 4
_INTEGER = re.compile(r"[0-9]+")


class NotificationKind(StrEnum):
    """Which ECPay callback a body belongs to."""

    PAYMENT_RESULT = "payment_result"  # ReturnURL / OrderResultURL
    PAYMENT_INFO = "payment_info"  # PaymentInfoURL / ClientRedirectURL (ATM, CVS, BARCODE, BNPL)
    PERIOD_RESULT = "period_result"  # PeriodReturnURL


# NeedExtraPaidInfo=Y fields (protocol page §5.4) and their attribute names on ExtraPaidInfo.
_EXTRA_PAID_INFO_FIELDS: Mapping[str, str] = MappingProxyType(
    {
        "WebATMAccBank": "webatm_acc_bank",
        "WebATMAccNo": "webatm_acc_no",
        "WebATMBankName": "webatm_bank_name",
        "ATMAccBank": "atm_acc_bank",
        "ATMAccNo": "atm_acc_no",
        "PaymentNo": "payment_no",
        "PayFrom": "pay_from",
        "TWQRTradeNo": "twqr_trade_no",
        "gwsr": "gwsr",
        "process_date": "process_date",
        "auth_code": "auth_code",
        "amount": "amount",
        "stage": "stage",
        "stast": "stast",
        "staed": "staed",
        "eci": "eci",
        "card4no": "card4no",
        "card6no": "card6no",
        "red_dan": "red_dan",
        "red_de_amt": "red_de_amt",
        "red_ok_amt": "red_ok_amt",
        "red_yet": "red_yet",
        "PeriodType": "period_type",
        "Frequency": "frequency",
        "ExecTimes": "exec_times",
        "PeriodAmount": "period_amount",
        "TotalSuccessTimes": "total_success_times",
        "TotalSuccessAmount": "total_success_amount",
    }
)


# The records below are NamedTuples, not dataclasses: this module is on the notification Lambda's
# import path, where a dataclass costs ~1 ms to define (see ``records``).


class ExtraPaidInfo(NamedTuple):
    """The NeedExtraPaidInfo=Y fields, exactly as received (blank when absent or sent blank)."""

    present: bool = False  # True when at least one of these fields was received
    webatm_acc_bank: str = ""
    webatm_acc_no: str = ""
    webatm_bank_name: str = ""
    atm_acc_bank: str = ""
    atm_acc_no: str = ""
    payment_no: str = ""
    pay_from: str = ""
    twqr_trade_no: str = ""
    gwsr: str = ""  # card authorisation serial (= CreditRefundId of CreditDetail/QueryTrade/V2)
    process_date: str = ""
    auth_code: str = ""
    amount: str = ""
    stage: str = ""
    stast: str = ""
    staed: str = ""
    eci: str = ""
    card4no: str = ""
    card6no: str = ""
    red_dan: str = ""
    red_de_amt: str = ""
    red_ok_amt: str = ""
    red_yet: str = ""
    period_type: str = ""
    frequency: str = ""
    exec_times: str = ""
    period_amount: str = ""
    total_success_times: str = ""
    total_success_amount: str = ""

    @classmethod
    def from_fields(cls, fields: Mapping[str, str]) -> "ExtraPaidInfo":
        """Pick the extra-paid-info fields out of a verified field set."""
        values = {attr: fields[name] for name, attr in _EXTRA_PAID_INFO_FIELDS.items() if name in fields}
        return cls(present=bool(values), **values)


NO_EXTRA_PAID_INFO = ExtraPaidInfo()  # immutable, so one shared default serves every record
# Left out of the records' reprs (and so of logs): the raw field set and the extra-paid-info block.
_HIDDEN = frozenset({"fields", "extra"})


class PaymentResult(NamedTuple):
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
    simulate_paid: bool  # True unless SimulatePaid is exactly "0" (see simulate_paid_flag)
    fields: Mapping[str, str]  # every received field, blank ones kept (left out of repr)
    store_id: str = ""
    platform_id: str = ""
    payment_type_charge_fee: str = ""  # may be a decimal ("25.00"); kept as sent
    custom_fields: tuple[str, str, str, str] = ("", "", "", "")
    extra: ExtraPaidInfo = NO_EXTRA_PAID_INFO  # left out of repr

    @property
    def is_paid(self) -> bool:
        """RtnCode 1 means paid."""
        return self.rtn_code == "1"

    def __repr__(self) -> str:
        return repr_without(self, _HIDDEN)


class PaymentInfoNotice(NamedTuple):
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
    fields: Mapping[str, str]  # left out of repr
    store_id: str = ""
    custom_fields: tuple[str, str, str, str] = ("", "", "", "")
    bnpl_trade_no: str = ""
    bnpl_installment: str = ""

    @property
    def is_code_issued(self) -> bool:
        """ATM/BNPL RtnCode 2, CVS/BARCODE RtnCode 10100073."""
        return self.rtn_code in ("2", "10100073")

    def __repr__(self) -> str:
        return repr_without(self, _HIDDEN)


class PeriodResult(NamedTuple):
    """A verified PeriodReturnURL notification (charge #2..n of a periodic credit order)."""

    merchant_id: str
    merchant_trade_no: str
    rtn_code: str
    rtn_msg: str
    amount: int
    total_success_times: int
    simulate_paid: bool
    fields: Mapping[str, str]  # left out of repr
    period_type: str = ""
    frequency: int | None = None
    exec_times: int | None = None
    first_auth_amount: int | None = None
    gwsr: str = ""  # ECPay spells it "Gwsr" here; either spelling is read
    auth_code: str = ""
    process_date: datetime | None = None  # UTC
    store_id: str = ""
    custom_fields: tuple[str, str, str, str] = ("", "", "", "")

    @property
    def is_paid(self) -> bool:
        """RtnCode 1 means this charge succeeded."""
        return self.rtn_code == "1"

    def __repr__(self) -> str:
        return repr_without(self, _HIDDEN)


# --- decoding -----------------------------------------------------------------------------------


def _short(text: str, limit: int = 40) -> str:
    # Untrusted text goes into error messages (and so into logs): bounded and repr-escaped.
    return repr(text if len(text) <= limit else text[:limit] + "...")


def _body_bytes(body: bytes | str, is_base64: bool) -> bytes:
    if isinstance(body, str):
        try:
            data = body.encode("ascii" if is_base64 else "utf-8")
        except UnicodeEncodeError:
            what = "base64 body has non-ASCII characters" if is_base64 else "body is not valid Unicode"
            raise NotificationError(NotificationCheck.ENCODING, what) from None
    else:
        data = bytes(body)
    if not is_base64:
        if len(data) > MAX_BODY_BYTES:
            raise NotificationError(
                NotificationCheck.TOO_LARGE, f"body is larger than {MAX_BODY_BYTES} bytes"
            )
        return data
    if len(data) > _MAX_BASE64_BYTES:
        raise NotificationError(NotificationCheck.TOO_LARGE, f"body is larger than {MAX_BODY_BYTES} bytes")
    try:
        decoded = base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        raise NotificationError(NotificationCheck.MALFORMED, "body is not valid base64") from None
    if len(decoded) > MAX_BODY_BYTES:
        raise NotificationError(NotificationCheck.TOO_LARGE, f"body is larger than {MAX_BODY_BYTES} bytes")
    return decoded


def _form_unquote(text: str) -> str:
    try:
        return urllib.parse.unquote_plus(text, encoding="utf-8", errors="strict")
    except UnicodeDecodeError:
        raise NotificationError(
            NotificationCheck.ENCODING, "a percent-encoded value is not valid UTF-8"
        ) from None


def parse_form_body(body: bytes | str, *, is_base64: bool = False) -> dict[str, str]:
    """Decode an x-www-form-urlencoded body (optionally base64) to fields, keeping blank values.

    Raises ``NotificationError`` (``TOO_LARGE``, ``MALFORMED``, ``DUPLICATE_FIELD`` or ``ENCODING``).
    """
    data = _body_bytes(body, is_base64)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise NotificationError(NotificationCheck.ENCODING, "body is not valid UTF-8") from None
    fields: dict[str, str] = {}
    folded: set[str] = set()
    for piece in text.split("&"):
        if not piece:
            continue  # "a=1&&b=2" or a trailing "&": no field there, as in every form parser
        if "=" not in piece:
            raise NotificationError(NotificationCheck.MALFORMED, f"a field has no '=': {_short(piece)}")
        raw_name, raw_value = piece.split("=", 1)
        name = _form_unquote(raw_name)
        if not name:
            raise NotificationError(NotificationCheck.MALFORMED, "a field has an empty name")
        if name.lower() in folded:
            # Two values for one name make the signed set ambiguous: refuse rather than pick one. So do
            # two names differing only by case, which CheckMacValue orders by the lower-cased name.
            raise NotificationError(
                NotificationCheck.DUPLICATE_FIELD, f"field {_short(name)} appears more than once"
            )
        folded.add(name.lower())
        fields[name] = _form_unquote(raw_value)
        if len(fields) > MAX_FIELDS:
            raise NotificationError(NotificationCheck.MALFORMED, f"more than {MAX_FIELDS} fields")
    if not fields:
        raise NotificationError(NotificationCheck.MALFORMED, "body has no fields")
    return fields


# --- verification -------------------------------------------------------------------------------


def verify_fields(
    fields: Mapping[str, str], credentials: MerchantCredentials, *, encrypt_type: int = 1
) -> None:
    """Check CheckMacValue (constant time) and MerchantID; raise ``NotificationError`` naming the check."""
    if encrypt_type not in (SHA256, MD5):
        raise ValueError("encrypt_type must be 1 (SHA256) or 0 (MD5)")
    received = fields.get("CheckMacValue")
    if not received:
        raise CheckMacValueError("CheckMacValue is missing")
    if not verify_check_mac_value(fields, credentials.hash_key, credentials.hash_iv, encrypt_type):
        expected_length = 64 if encrypt_type == SHA256 else 32
        detail = ""
        if len(received) != expected_length:
            algorithm = "SHA256" if encrypt_type == SHA256 else "MD5"
            detail = f" (it has {len(received)} characters; {algorithm} values have {expected_length})"
        raise CheckMacValueError("CheckMacValue does not match" + detail)
    merchant_id = fields.get("MerchantID")
    if merchant_id is None:
        raise NotificationError(NotificationCheck.MISSING_FIELD, "MerchantID is missing")
    if merchant_id != credentials.merchant_id:
        raise NotificationError(
            NotificationCheck.MERCHANT_ID, f"MerchantID {_short(merchant_id)} is not this merchant's"
        )


# --- typed views --------------------------------------------------------------------------------


def _require(fields: Mapping[str, str], names: tuple[str, ...]) -> None:
    for name in names:
        if name not in fields:
            raise NotificationError(NotificationCheck.MISSING_FIELD, f"{name} is missing")


def _int(fields: Mapping[str, str], name: str) -> int:
    value = fields.get(name, "")
    if not _INTEGER.fullmatch(value):
        raise NotificationError(
            NotificationCheck.INVALID_FIELD, f"{name} is not a non-negative integer: {_short(value)}"
        )
    return int(value)


def _optional_int(fields: Mapping[str, str], name: str) -> int | None:
    return _int(fields, name) if fields.get(name, "").strip() else None


def _datetime(fields: Mapping[str, str], name: str) -> datetime | None:
    value = fields.get(name, "").strip()
    if not value:
        return None
    try:
        return parse_ecpay_datetime(value)
    except ValueError:
        raise NotificationError(
            NotificationCheck.INVALID_FIELD, f"{name} is not a date: {_short(value)}"
        ) from None


def _expiry(fields: Mapping[str, str]) -> datetime | None:
    value = fields.get("ExpireDate", "").strip()
    if not value:
        return None
    try:
        if " " in value:
            return parse_ecpay_datetime(value)
        # ATM deadlines are dates: the account can be paid until the end of that Taiwan day.
        day = parse_naive(value, ECPAY_DATE_FORMAT)
        return day.replace(hour=23, minute=59, second=59, tzinfo=TAIPEI).astimezone(UTC)
    except ValueError:
        raise NotificationError(
            NotificationCheck.INVALID_FIELD, f"ExpireDate is not a date: {_short(value)}"
        ) from None


def _custom_fields(fields: Mapping[str, str]) -> tuple[str, str, str, str]:
    return (
        fields.get("CustomField1", ""),
        fields.get("CustomField2", ""),
        fields.get("CustomField3", ""),
        fields.get("CustomField4", ""),
    )


def simulate_paid_flag(fields: Mapping[str, str], *, required: bool) -> bool:
    """Whether ``SimulatePaid`` marks a simulated payment (模擬付款), which must never count as real money.

    Only exactly ``"0"`` is a real payment: ``"1"``, ``"2"``, ``" 0"``, ``""``, ``"abc"`` are all
    simulated (ECPay sends 0 or 1; anything else is not ECPay saying "real"). A missing field
    counts as simulated when ``required`` (ReturnURL: protocol page §5.1 lists SimulatePaid as
    always sent, so a ReturnURL without it proves nothing; reconciliation's QueryTradeInfo then
    decides), and as real where ECPay sends it only for simulations (PeriodReturnURL §5.5) or
    only on request (QueryTradeInfo with NeedExtraPaidInfo).
    """
    value = fields.get("SimulatePaid")
    if value is None:
        return required
    return value != "0"


def _get_any_case(fields: Mapping[str, str], name: str) -> str:
    if name in fields:
        return fields[name]
    lowered = name.lower()
    return next((value for key, value in fields.items() if key.lower() == lowered), "")


_PAYMENT_RESULT_REQUIRED = ("MerchantID", "MerchantTradeNo", "RtnCode", "RtnMsg", "TradeNo", "TradeAmt")
_PAYMENT_INFO_REQUIRED = ("MerchantID", "MerchantTradeNo", "RtnCode", "RtnMsg", "TradeNo", "TradeAmt")
_PERIOD_RESULT_REQUIRED = (
    "MerchantID",
    "MerchantTradeNo",
    "RtnCode",
    "RtnMsg",
    "Amount",
    "TotalSuccessTimes",
)


def payment_result_from_fields(
    fields: Mapping[str, str], *, simulate_paid_required: bool = True
) -> PaymentResult:
    """Build a PaymentResult from fields that were already verified (see ``parse_payment_result``).

    ``simulate_paid_required=False`` reads a body with no SimulatePaid as real (for an
    OrderResultURL page, which is display-only); see :func:`simulate_paid_flag`.
    """
    _require(fields, _PAYMENT_RESULT_REQUIRED)
    return PaymentResult(
        merchant_id=fields["MerchantID"],
        merchant_trade_no=fields["MerchantTradeNo"],
        rtn_code=fields["RtnCode"].strip(),
        rtn_msg=fields["RtnMsg"],
        trade_no=fields["TradeNo"],
        trade_amt=_int(fields, "TradeAmt"),
        payment_type=fields.get("PaymentType", ""),
        payment_date=_datetime(fields, "PaymentDate"),
        trade_date=_datetime(fields, "TradeDate"),
        simulate_paid=simulate_paid_flag(fields, required=simulate_paid_required),
        fields=MappingProxyType(dict(fields)),
        store_id=fields.get("StoreID", ""),
        platform_id=fields.get("PlatformID", ""),
        payment_type_charge_fee=fields.get("PaymentTypeChargeFee", ""),
        custom_fields=_custom_fields(fields),
        extra=ExtraPaidInfo.from_fields(fields),
    )


def payment_info_from_fields(fields: Mapping[str, str]) -> PaymentInfoNotice:
    """Build a PaymentInfoNotice from fields that were already verified (notification or query)."""
    _require(fields, _PAYMENT_INFO_REQUIRED)
    return PaymentInfoNotice(
        merchant_id=fields["MerchantID"],
        merchant_trade_no=fields["MerchantTradeNo"],
        rtn_code=fields["RtnCode"].strip(),
        rtn_msg=fields["RtnMsg"],
        trade_no=fields["TradeNo"],
        trade_amt=_int(fields, "TradeAmt"),
        payment_type=fields.get("PaymentType", ""),
        trade_date=_datetime(fields, "TradeDate"),
        bank_code=fields.get("BankCode", ""),
        v_account=fields.get("vAccount", ""),
        payment_no=fields.get("PaymentNo", ""),
        barcode1=fields.get("Barcode1", ""),
        barcode2=fields.get("Barcode2", ""),
        barcode3=fields.get("Barcode3", ""),
        expire_at=_expiry(fields),
        fields=MappingProxyType(dict(fields)),
        store_id=fields.get("StoreID", ""),
        custom_fields=_custom_fields(fields),
        bnpl_trade_no=fields.get("BNPLTradeNo", ""),
        bnpl_installment=fields.get("BNPLInstallment", ""),
    )


def period_result_from_fields(fields: Mapping[str, str]) -> PeriodResult:
    """Build a PeriodResult from fields that were already verified (see ``parse_period_result``)."""
    _require(fields, _PERIOD_RESULT_REQUIRED)
    return PeriodResult(
        merchant_id=fields["MerchantID"],
        merchant_trade_no=fields["MerchantTradeNo"],
        rtn_code=fields["RtnCode"].strip(),
        rtn_msg=fields["RtnMsg"],
        amount=_int(fields, "Amount"),
        total_success_times=_int(fields, "TotalSuccessTimes"),
        simulate_paid=simulate_paid_flag(fields, required=False),
        fields=MappingProxyType(dict(fields)),
        period_type=fields.get("PeriodType", ""),
        frequency=_optional_int(fields, "Frequency"),
        exec_times=_optional_int(fields, "ExecTimes"),
        first_auth_amount=_optional_int(fields, "FirstAuthAmount"),
        gwsr=_get_any_case(fields, "Gwsr"),
        auth_code=fields.get("AuthCode", ""),
        process_date=_datetime(fields, "ProcessDate"),
        store_id=fields.get("StoreID", ""),
        custom_fields=_custom_fields(fields),
    )


def _parse_verified(body: bytes | str, credentials: MerchantCredentials, is_base64: bool) -> dict[str, str]:
    fields = parse_form_body(body, is_base64=is_base64)
    verify_fields(fields, credentials)
    return fields


def parse_payment_result(
    body: bytes | str,
    credentials: MerchantCredentials,
    *,
    is_base64: bool = False,
    simulate_paid_required: bool = True,
) -> PaymentResult:
    """Parse and verify a ReturnURL / OrderResultURL body (SimulatePaid: see :func:`simulate_paid_flag`)."""
    return payment_result_from_fields(
        _parse_verified(body, credentials, is_base64), simulate_paid_required=simulate_paid_required
    )


def parse_payment_info(
    body: bytes | str, credentials: MerchantCredentials, *, is_base64: bool = False
) -> PaymentInfoNotice:
    """Parse and verify a PaymentInfoURL / ClientRedirectURL body."""
    return payment_info_from_fields(_parse_verified(body, credentials, is_base64))


def parse_period_result(
    body: bytes | str, credentials: MerchantCredentials, *, is_base64: bool = False
) -> PeriodResult:
    """Parse and verify a PeriodReturnURL body."""
    return period_result_from_fields(_parse_verified(body, credentials, is_base64))


def parse_notification(
    kind: NotificationKind, body: bytes | str, credentials: MerchantCredentials, *, is_base64: bool = False
) -> PaymentResult | PaymentInfoNotice | PeriodResult:
    """Parse and verify a body of the given kind (dispatches to the three parsers above)."""
    if kind == NotificationKind.PAYMENT_RESULT:
        return parse_payment_result(body, credentials, is_base64=is_base64)
    if kind == NotificationKind.PAYMENT_INFO:
        return parse_payment_info(body, credentials, is_base64=is_base64)
    if kind == NotificationKind.PERIOD_RESULT:
        return parse_period_result(body, credentials, is_base64=is_base64)
    raise ValueError(f"unknown notification kind {kind!r}")
