"""The B2C e-invoice client: Issue, GetIssue, Invalid, Allowance (and its void), CheckBarcode, CheckLoveCode.

Requests are validated before sending (``InvoiceRuleError``), sent through an injectable JSON
transport, and answered as typed values. Failures, by what the caller must do:

- ``TransportError`` (``RateLimitedError`` for HTTP 403): no answer, or an HTTP error. ECPay may or may
  not have acted: after an Issue, ask GetIssue by RelateNumber, never issue again blindly.
- ``InvoiceTransportError``: ECPay refused the envelope (TransCode); nothing was done.
- ``InvoiceRejected``: ECPay refused the request (RtnCode, its message); nothing was done.
- ``ResponseError``: an answer that cannot be read.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, date, datetime
from types import MappingProxyType

from ..errors import RateLimitedError, ResponseError, TransportError
from ..timezone import TAIPEI
from ..transport import JsonTransport, UrllibTransport
from .envelope import as_int, build_request, open_response
from .errors import InvoiceRejected, InvoiceRuleError
from .models import (
    INVOICE_NO,
    LOVE_CODE,
    MAX_REASON,
    MOBILE_BARCODE,
    RANDOM_NUMBER,
    AllowanceResult,
    InvoiceCredentials,
    InvoiceRecord,
    IssuedInvoice,
    IssueRequest,
    Item,
    validate_items,
)
from .periods import taipei_date

# GetIssue's RtnCode for "no invoice with this RelateNumber" (Rytass' ECPay adapter names it
# ECPAY_INVOICE_NOT_FOUND). Any other refusal raises: a wallet that cannot tell then retries later
# instead of issuing a second invoice.
NOT_FOUND_CODES = frozenset({1600003})
ALLOWANCE_NO = re.compile(r"[0-9A-Za-z]{1,20}")
_DATETIME = re.compile(r"([0-9]{4})[-/]([0-9]{2})[-/]([0-9]{2})[ +T]([0-9]{2}):([0-9]{2}):([0-9]{2})")
PATHS = {
    "Issue": "/B2CInvoice/Issue",
    "GetIssue": "/B2CInvoice/GetIssue",
    "Invalid": "/B2CInvoice/Invalid",
    "Allowance": "/B2CInvoice/Allowance",
    "AllowanceInvalid": "/B2CInvoice/AllowanceInvalid",
    "CheckBarcode": "/B2CInvoice/CheckBarcode",
    "CheckLoveCode": "/B2CInvoice/CheckLoveCode",
}


def parse_invoice_datetime(text: str) -> datetime:
    """ECPay's e-invoice time (``yyyy-MM-dd HH:mm:ss`` Taipei; ``+`` or ``/`` spellings too) as aware UTC."""
    match = _DATETIME.fullmatch(text.strip())
    if match is None:
        raise ValueError(f"not an e-invoice time: {text[:40]!r}")
    year, month, day, hour, minute, second = (int(group) for group in match.groups())
    return datetime(year, month, day, hour, minute, second, tzinfo=TAIPEI).astimezone(UTC)


def format_invoice_datetime(moment: datetime) -> str:
    """An aware datetime as ECPay's ``yyyy-MM-dd HH:mm:ss`` in Taipei time."""
    if moment.tzinfo is None:
        raise ValueError("naive datetime: pass an aware datetime (UTC recommended)")
    return moment.astimezone(TAIPEI).strftime("%Y-%m-%d %H:%M:%S")


def format_invoice_date(day: date | datetime) -> str:
    """InvoiceDate as Invalid and Allowance take it: ``yyyy-MM-dd`` (Taipei date)."""
    return taipei_date(day).isoformat()


def _reason(reason: str) -> str:
    if not isinstance(reason, str) or not reason.strip() or len(reason) > MAX_REASON:
        raise InvoiceRuleError("reason_length", f"Reason is 1 to {MAX_REASON} characters", "Reason")
    return reason


def _invoice_no(invoice_no: str) -> str:
    if not isinstance(invoice_no, str) or not INVOICE_NO.fullmatch(invoice_no):
        raise InvoiceRuleError(
            "invoice_no_format", "InvoiceNo is 2 capital letters and 8 digits", "InvoiceNo"
        )
    return invoice_no


class InvoiceClient:
    """Calls ECPay's B2C e-invoice API for one merchant."""

    def __init__(
        self,
        credentials: InvoiceCredentials,
        *,
        base_url: str,
        transport: JsonTransport | None = None,
        timeout: float = 10.0,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        if not timeout > 0:
            raise ValueError("timeout must be positive")
        self.credentials = credentials
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self._transport: JsonTransport = transport if transport is not None else UrllibTransport()
        self._clock: Callable[[], datetime] = clock if clock is not None else (lambda: datetime.now(UTC))

    def __repr__(self) -> str:
        return f"InvoiceClient(merchant_id={self.credentials.merchant_id!r}, base_url={self.base_url!r})"

    # --- plumbing ---------------------------------------------------------------------------

    def _call(self, endpoint: str, payload: Mapping[str, object]) -> dict[str, object]:
        credentials = self.credentials
        request = build_request(
            credentials.merchant_id,
            credentials.hash_key,
            credentials.hash_iv,
            {"MerchantID": credentials.merchant_id, **payload},
            timestamp=int(self._clock().timestamp()),
        )
        body = json.dumps(request, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        response = self._transport.post_json(f"{self.base_url}{PATHS[endpoint]}", body, timeout=self.timeout)
        if response.status == 403:
            raise RateLimitedError(
                f"{endpoint}: ECPay answered HTTP 403 (rate limit; back off about 30 minutes)"
            )
        if response.status != 200:
            raise TransportError(f"{endpoint}: ECPay answered HTTP {response.status}")
        answer = open_response(response.body, credentials.hash_key, credentials.hash_iv, endpoint)
        merchant_id = answer.get("MerchantID")
        if merchant_id not in (None, "") and str(merchant_id) != credentials.merchant_id:
            raise ResponseError(f"{endpoint}: the answer is for another MerchantID")
        return answer

    @staticmethod
    def _field(answer: Mapping[str, object], name: str, endpoint: str) -> str:
        value = answer.get(name)
        if value is None or isinstance(value, bool) or not isinstance(value, str | int | float):
            raise ResponseError(f"{endpoint}: answer has no {name}")
        return str(value).strip()

    @classmethod
    def _time(cls, answer: Mapping[str, object], name: str, endpoint: str) -> datetime:
        try:
            return parse_invoice_datetime(cls._field(answer, name, endpoint))
        except ValueError:
            raise ResponseError(f"{endpoint}: {name} is not a time") from None

    @classmethod
    def _number(cls, answer: Mapping[str, object], name: str, endpoint: str) -> int:
        value = as_int(answer.get(name))
        if value is None:
            raise ResponseError(f"{endpoint}: {name} is not an integer")
        return value

    # --- endpoints --------------------------------------------------------------------------

    def issue(self, request: IssueRequest) -> IssuedInvoice:
        """Issue one B2C invoice. A timeout (``TransportError``) is resolved with :meth:`get_issue`."""
        request.validate()
        endpoint = "Issue"
        answer = self._call(endpoint, request.to_payload(self.credentials.merchant_id))
        invoice_no = self._field(answer, "InvoiceNo", endpoint)
        random_number = self._field(answer, "RandomNumber", endpoint)
        if not INVOICE_NO.fullmatch(invoice_no) or not RANDOM_NUMBER.fullmatch(random_number):
            raise ResponseError(f"{endpoint}: InvoiceNo or RandomNumber is malformed")
        return IssuedInvoice(invoice_no, self._time(answer, "InvoiceDate", endpoint), random_number)

    def get_issue(self, *, relate_number: str) -> InvoiceRecord | None:
        """What ECPay holds for ``relate_number``; None when it has no such invoice."""
        if not isinstance(relate_number, str) or not relate_number or len(relate_number) > 30:
            raise InvoiceRuleError(
                "relate_number_format", "RelateNumber is 1 to 30 characters", "RelateNumber"
            )
        endpoint = "GetIssue"
        try:
            answer = self._call(endpoint, {"RelateNumber": relate_number})
        except InvoiceRejected as error:
            if error.rtn_code in NOT_FOUND_CODES:
                return None
            raise
        invoice_no = str(answer.get("IIS_Number") or "").strip()
        if not invoice_no:
            return None
        if not INVOICE_NO.fullmatch(invoice_no):
            raise ResponseError(f"{endpoint}: IIS_Number is malformed")
        answered_relate = str(answer.get("IIS_Relate_Number") or relate_number).strip()
        if answered_relate != relate_number:
            raise ResponseError(f"{endpoint}: the answer is for another RelateNumber")
        remaining = as_int(answer.get("IIS_Remain_Allowance_Amt"))
        return InvoiceRecord(
            invoice_no=invoice_no,
            invoice_date=self._time(answer, "IIS_Create_Date", endpoint),
            random_number=self._field(answer, "IIS_Random_Number", endpoint),
            relate_number=answered_relate,
            sales_amount=self._number(answer, "IIS_Sales_Amount", endpoint),
            voided=str(answer.get("IIS_Invalid_Status") or "0").strip() == "1",
            remaining_allowance_amount=remaining,
            fields=MappingProxyType(answer),
        )

    def invalid(self, invoice_no: str, invoice_date: date | datetime, reason: str) -> None:
        """Void (作廢) an invoice; only within its filing period (see ``periods.can_void``)."""
        endpoint = "Invalid"
        answer = self._call(
            endpoint,
            {
                "InvoiceNo": _invoice_no(invoice_no),
                "InvoiceDate": format_invoice_date(invoice_date),
                "Reason": _reason(reason),
            },
        )
        answered = str(answer.get("InvoiceNo") or invoice_no)
        if answered != invoice_no:
            raise ResponseError(f"{endpoint}: the answer is for another InvoiceNo")

    def allowance(
        self,
        invoice_no: str,
        invoice_date: date | datetime,
        amount: int,
        items: Sequence[Item],
        *,
        buyer_email: str,
    ) -> AllowanceResult:
        """Issue an allowance (折讓, a credit note) of ``amount`` against an invoice.

        ECPay e-mails the buyer the notice when ``buyer_email`` is given (AllowanceNotify E),
        otherwise it sends none (N).
        """
        _invoice_no(invoice_no)
        validate_items(items, amount, "AllowanceAmount")
        endpoint = "Allowance"
        answer = self._call(
            endpoint,
            {
                "InvoiceNo": invoice_no,
                "InvoiceDate": format_invoice_date(invoice_date),
                "AllowanceNotify": "E" if buyer_email else "N",
                "CustomerName": "",
                "NotifyMail": buyer_email,
                "NotifyPhone": "",
                "AllowanceAmount": amount,
                "Items": [item.to_payload(seq) for seq, item in enumerate(items, start=1)],
            },
        )
        allowance_no = self._field(answer, "IA_Allow_No", endpoint)
        if not ALLOWANCE_NO.fullmatch(allowance_no):
            raise ResponseError(f"{endpoint}: IA_Allow_No is malformed")
        answered = str(answer.get("IA_Invoice_No") or invoice_no)
        if answered != invoice_no:
            raise ResponseError(f"{endpoint}: the answer is for another InvoiceNo")
        return AllowanceResult(
            allowance_no=allowance_no,
            invoice_no=invoice_no,
            date=self._time(answer, "IA_Date", endpoint),
            remaining_amount=self._number(answer, "IA_Remain_Allowance_Amt", endpoint),
        )

    def invalid_allowance(self, invoice_no: str, allowance_no: str, reason: str) -> None:
        """Void an allowance (作廢折讓)."""
        if not isinstance(allowance_no, str) or not ALLOWANCE_NO.fullmatch(allowance_no):
            raise InvoiceRuleError(
                "allowance_no_format", "AllowanceNo is 1 to 20 letters or digits", "AllowanceNo"
            )
        self._call(
            "AllowanceInvalid",
            {"InvoiceNo": _invoice_no(invoice_no), "AllowanceNo": allowance_no, "Reason": _reason(reason)},
        )

    def check_barcode(self, barcode: str) -> bool:
        """True when ECPay knows the mobile barcode (手機條碼); a malformed one is False unasked."""
        if not isinstance(barcode, str) or not MOBILE_BARCODE.fullmatch(barcode):
            return False
        answer = self._call("CheckBarcode", {"BarCode": barcode})
        return str(answer.get("IsExist") or "").strip().upper() == "Y"

    def check_love_code(self, code: str) -> bool:
        """True when the love code (捐贈碼) is a registered charity's; a malformed one is False unasked."""
        if not isinstance(code, str) or not LOVE_CODE.fullmatch(code):
            return False
        answer = self._call("CheckLoveCode", {"LoveCode": code})
        return str(answer.get("IsExist") or "").strip().upper() == "Y"
