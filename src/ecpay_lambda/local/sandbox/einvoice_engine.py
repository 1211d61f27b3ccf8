"""The offline e-invoice sandbox: ECPay's B2C invoice API (einvoice-stage.ecpay.com.tw) on a laptop.

It opens the AES-JSON envelope as ECPay does and answers in kind:

- the envelope (``TransCode``, answered in clear with an empty ``Data``): JSON that is not an object,
  an unknown MerchantID, ``RqHeader.Timestamp`` missing or more than 10 minutes from the sandbox's
  real clock, a ``Data`` that does not decrypt with the merchant's HashKey/HashIV;
- the request (``RtnCode`` inside an encrypted ``Data``): the library's validation rules
  (``ecpay.einvoice.models``: buyer, carrier, donation, tax ID, print, items and sums), a
  RelateNumber used before, unknown barcodes / love codes, voids outside the filing period,
  allowances above what remains.

ECPay keeps its full RtnCode list in the merchant back office ("錯誤代碼一直在新增", developers ?p=13853),
not in a public table, so apart from 1 (success) and 1600003 (no such invoice, as Rytass' ECPay
adapter names it) the codes below are the sandbox's own: stable, documented in
docs/einvoice-sandbox.md, and always with a message saying what is wrong. The duplicate RelateNumber
message is the one ECPay sends ("B2C開立發票 自訂編號重覆，請重新設定").

Time: invoice dates, filing periods and allowance dates follow the AIO sandbox's business clock
(its ``clock_offset_seconds`` moves them); the Timestamp check uses the real clock, as for AIO.
"""

from __future__ import annotations

import json
import secrets
import weakref
from collections.abc import Callable, Mapping
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from ...ecpay.einvoice.client import format_invoice_datetime
from ...ecpay.einvoice.envelope import TIMESTAMP_WINDOW_SECONDS, as_int, decrypt_data, encrypt_data
from ...ecpay.einvoice.errors import InvoiceEnvelopeError, InvoiceRuleError
from ...ecpay.einvoice.models import (
    INVOICE_NO,
    LOVE_CODE,
    MAX_REASON,
    MOBILE_BARCODE,
    InvoiceCredentials,
    issue_request_from_payload,
    items_from_payload,
    validate_items,
)
from ...ecpay.einvoice.periods import can_void, filing_period, taipei_date
from ...ecpay.timezone import TAIPEI
from .einvoice_book import Allowance, Invoice, InvoiceBook
from .engine import Sandbox

ENDPOINTS = ("Issue", "GetIssue", "Invalid", "Allowance", "AllowanceInvalid", "CheckBarcode", "CheckLoveCode")
STATE_FILE = "einvoice.json"
TRANS_ERROR = 9999  # the sandbox's TransCode for every refused envelope (TransMsg says which check)
# Known to exist, except these documented "unknown" values (a person or test can use them on purpose).
UNKNOWN_BARCODES = frozenset({"/0000000"})
UNKNOWN_LOVE_CODES = frozenset({"000", "0000", "00000", "000000", "0000000"})

NOT_FOUND = (1600003, "查無發票資料 (no such invoice)")
DUPLICATE_RELATE_NUMBER = (1500010, "B2C開立發票 自訂編號重覆，請重新設定 (RelateNumber already used)")
MERCHANT_MISMATCH = (1500030, "MerchantID 與加密資料不符 (Data.MerchantID differs from MerchantID)")
UNKNOWN_BARCODE = (1500027, "手機條碼不存在 (the mobile barcode is not registered)")
UNKNOWN_LOVE_CODE = (1500028, "捐贈碼不存在 (the love code is not registered)")
DATE_MISMATCH = (1600004, "發票開立日期不符 (InvoiceDate is not the invoice's date)")
ALREADY_VOIDED = (1600020, "發票已作廢 (the invoice is voided)")
VOID_PERIOD_OVER = (
    1600021,
    "已超過發票作廢期限，請開立折讓 (past the invoice's filing period: issue an allowance)",
)
HAS_ALLOWANCES = (1600022, "發票已有折讓，請先作廢折讓 (void the invoice's allowances first)")
ALLOWANCE_TOO_LARGE = (1600030, "折讓金額超過發票剩餘可折讓金額 (more than the invoice's remaining amount)")
ALLOWANCE_NOT_FOUND = (1600031, "查無折讓資料 (no such allowance)")
ALLOWANCE_VOIDED = (1600032, "折讓已作廢 (the allowance is voided)")
# The library's rule codes (InvoiceRuleError.code) as RtnCodes, with a Chinese heading.
RULE_CODES: dict[str, tuple[int, str]] = {
    "relate_number_format": (1500001, "自訂編號格式錯誤"),
    "contact_required": (1500002, "客戶電子信箱或手機號碼須擇一填寫"),
    "email_format": (1500003, "客戶電子信箱格式錯誤"),
    "phone_format": (1500004, "客戶手機號碼格式錯誤"),
    "tax_id_format": (1500005, "統一編號格式錯誤"),
    "tax_id_checksum": (1500006, "統一編號檢查碼錯誤"),
    "donation_with_tax_id": (1500007, "有統一編號時不可捐贈"),
    "tax_id_print": (1500008, "有統一編號且無載具時須列印"),
    "carrier_with_print": (1500009, "有載具時不可列印"),
    "donation_with_print": (1500011, "捐贈時不可列印"),
    "print_needs_name_address": (1500012, "列印時須填寫客戶名稱及地址"),
    "mobile_barcode_format": (1500013, "手機條碼格式錯誤"),
    "citizen_certificate_format": (1500014, "自然人憑證格式錯誤"),
    "member_carrier_num": (1500015, "綠界會員載具不須載具編號"),
    "carrier_num_without_type": (1500016, "載具類別為空時載具編號須為空"),
    "love_code_format": (1500017, "捐贈碼格式錯誤"),
    "items_required": (1500018, "商品明細不可為空"),
    "item_amount": (1500019, "商品小計須為數量乘以單價"),
    "items_sum": (1500020, "商品小計加總與金額不符"),
    "amount": (1500021, "金額須為正整數"),
    "tax_type": (1500022, "課稅類別錯誤"),
    "inv_type": (1500023, "字軌類別錯誤"),
    "field_length": (1500024, "欄位長度錯誤"),
    "field_type": (1500025, "欄位型別錯誤"),
    "field_value": (1500026, "欄位內容錯誤"),
    "invoice_no_format": (1600001, "發票號碼格式錯誤"),
    "reason_length": (1600002, "原因長度錯誤"),
    "allowance_no_format": (1600005, "折讓編號格式錯誤"),
}
_LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
_NOTIFY = frozenset({"S", "E", "A", "N"})


class _Refusal(Exception):
    """A request ECPay answers with an error RtnCode (inside the encrypted Data)."""

    def __init__(self, code: tuple[int, str]) -> None:
        super().__init__(code[1])
        self.rtn_code, self.rtn_msg = code


def _rule(error: InvoiceRuleError) -> _Refusal:
    number, heading = RULE_CODES.get(error.code, (1500099, "資料錯誤"))
    return _Refusal((number, f"{heading} ({error.field}: {error.message})"))


def _text(payload: Mapping[str, object], name: str) -> str:
    value = payload.get(name)
    if value is None:
        return ""
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise _rule(InvoiceRuleError("field_type", f"{name} must be a string", name))
    return str(value).strip()


def _invoice_no(payload: Mapping[str, object]) -> str:
    number = _text(payload, "InvoiceNo")
    if not INVOICE_NO.fullmatch(number):
        raise _rule(
            InvoiceRuleError("invoice_no_format", "InvoiceNo is 2 capital letters and 8 digits", "InvoiceNo")
        )
    return number


def _reason(payload: Mapping[str, object]) -> str:
    reason = _text(payload, "Reason")
    if not reason or len(reason) > MAX_REASON:
        raise _rule(InvoiceRuleError("reason_length", f"Reason is 1 to {MAX_REASON} characters", "Reason"))
    return reason


def _track(start: date) -> str:
    """Two letters naming a filing period's number track (distinct for 676 periods in a row)."""
    index = start.year * 6 + (start.month - 1) // 2
    return _LETTERS[(index // 26) % 26] + _LETTERS[index % 26]


class InvoiceSandbox:
    """ECPay's B2C e-invoice service, offline: issue, query, void, allowances, barcode/love-code checks."""

    def __init__(
        self,
        merchants: Mapping[str, InvoiceCredentials] | InvoiceCredentials | None = None,
        *,
        book: InvoiceBook | None = None,
        clock: Callable[[], datetime] | None = None,
        offset_seconds: Callable[[], float] = lambda: 0.0,
    ) -> None:
        if merchants is None:
            merchants = InvoiceCredentials.stage_test_merchant()
        if isinstance(merchants, InvoiceCredentials):
            merchants = {merchants.merchant_id: merchants}
        self.merchants: dict[str, InvoiceCredentials] = dict(merchants)
        self.book = book or InvoiceBook()
        self._clock = clock or (lambda: datetime.now(UTC))
        self._offset = offset_seconds

    def wall_now(self) -> datetime:
        """The real clock (the Timestamp check)."""
        return self._clock()

    def now(self) -> datetime:
        """The business clock: invoice dates, filing periods (moved with the AIO sandbox's clock)."""
        return self._clock() + timedelta(seconds=self._offset())

    # --- the envelope ---------------------------------------------------------------------------

    def _refuse_envelope(self, merchant_id: str, message: str) -> dict[str, object]:
        return {
            "PlatformID": "",
            "MerchantID": merchant_id,
            "RpHeader": {"Timestamp": int(self.wall_now().timestamp())},
            "TransCode": TRANS_ERROR,
            "TransMsg": message,
            "Data": "",
        }

    def handle(self, endpoint: str, body: bytes) -> dict[str, object]:
        """Answer one POST to ``/B2CInvoice/<endpoint>`` (always HTTP 200, as ECPay)."""
        try:
            envelope = json.loads(body)
        except (ValueError, UnicodeDecodeError):
            envelope = None
        if not isinstance(envelope, dict):
            return self._refuse_envelope("", "傳入資料格式錯誤 (the body is not a JSON object)")
        merchant_id = str(envelope.get("MerchantID") or "")
        credentials = self.merchants.get(merchant_id)
        if credentials is None:
            return self._refuse_envelope(merchant_id, "查無此特店編號 (unknown MerchantID)")
        header = envelope.get("RqHeader")
        timestamp = as_int(header.get("Timestamp")) if isinstance(header, dict) else None
        if timestamp is None:
            return self._refuse_envelope(merchant_id, "RqHeader.Timestamp 為必填 (Timestamp is required)")
        if abs(self.wall_now().timestamp() - timestamp) > TIMESTAMP_WINDOW_SECONDS:
            return self._refuse_envelope(merchant_id, "Timestamp 已逾時 (Timestamp is not within 10 minutes)")
        data = envelope.get("Data")
        try:
            payload = decrypt_data(
                data if isinstance(data, str) else "", credentials.hash_key, credentials.hash_iv
            )
        except InvoiceEnvelopeError:
            return self._refuse_envelope(
                merchant_id, "資料解密錯誤 (Data does not decrypt with this merchant's HashKey/HashIV)"
            )
        try:
            if str(payload.get("MerchantID") or "") != merchant_id:
                raise _Refusal(MERCHANT_MISMATCH)
            answer = self._dispatch(endpoint, merchant_id, payload)
        except _Refusal as refusal:
            answer = {"RtnCode": refusal.rtn_code, "RtnMsg": refusal.rtn_msg}
        except InvoiceRuleError as error:
            broken = _rule(error)
            answer = {"RtnCode": broken.rtn_code, "RtnMsg": broken.rtn_msg}
        return {
            "PlatformID": "",
            "MerchantID": merchant_id,
            "RpHeader": {"Timestamp": int(self.wall_now().timestamp())},
            "TransCode": 1,
            "TransMsg": "Success",
            "Data": encrypt_data(answer, credentials.hash_key, credentials.hash_iv),
        }

    def _dispatch(self, endpoint: str, merchant_id: str, payload: dict[str, Any]) -> dict[str, object]:
        handlers: dict[str, Callable[[str, dict[str, Any]], dict[str, object]]] = {
            "Issue": self.issue,
            "GetIssue": self.get_issue,
            "Invalid": self.invalid,
            "Allowance": self.allowance,
            "AllowanceInvalid": self.allowance_invalid,
            "CheckBarcode": self.check_barcode,
            "CheckLoveCode": self.check_love_code,
        }
        return handlers[endpoint](merchant_id, payload)

    # --- endpoints (payload already decrypted; raise _Refusal / InvoiceRuleError) -------------

    def issue(self, merchant_id: str, payload: dict[str, Any]) -> dict[str, object]:
        """Issue: validate as ECPay does, refuse a used RelateNumber, number the invoice."""
        request = issue_request_from_payload(payload)
        request.validate()
        buyer = request.buyer
        if buyer.carrier_num in UNKNOWN_BARCODES and buyer.carrier_type.value == "3":
            raise _Refusal(UNKNOWN_BARCODE)
        if buyer.love_code in UNKNOWN_LOVE_CODES:
            raise _Refusal(UNKNOWN_LOVE_CODE)
        with self.book.lock:
            if self.book.by_relate_number(merchant_id, request.relate_number) is not None:
                raise _Refusal(DUPLICATE_RELATE_NUMBER)
            now = self.now()
            start, _ = filing_period(now)
            number = f"{_track(start)}{self.book.next_number(f'invoice:{start.isoformat()}'):08d}"
            invoice = Invoice(
                merchant_id=merchant_id,
                invoice_no=number,
                relate_number=request.relate_number,
                invoice_date=now.replace(microsecond=0),
                random_number=f"{secrets.randbelow(10_000):04d}",
                sales_amount=request.sales_amount,
                request=dict(payload),
            )
            self.book.add(invoice)
        return {
            "RtnCode": 1,
            "RtnMsg": "開立發票成功",
            "InvoiceNo": invoice.invoice_no,
            "InvoiceDate": format_invoice_datetime(invoice.invoice_date),
            "RandomNumber": invoice.random_number,
        }

    def _find(self, merchant_id: str, invoice_no: str) -> Invoice:
        invoice = self.book.get(invoice_no)
        if invoice is None or invoice.merchant_id != merchant_id:
            raise _Refusal(NOT_FOUND)
        return invoice

    @staticmethod
    def _check_date(invoice: Invoice, payload: Mapping[str, object]) -> None:
        given = _text(payload, "InvoiceDate")[:10].replace("/", "-")
        if given != taipei_date(invoice.invoice_date).isoformat():
            raise _Refusal(DATE_MISMATCH)

    def get_issue(self, merchant_id: str, payload: dict[str, Any]) -> dict[str, object]:
        """GetIssue by RelateNumber, or by InvoiceNo + InvoiceDate."""
        relate_number = _text(payload, "RelateNumber")
        with self.book.lock:
            if relate_number:
                invoice = self.book.by_relate_number(merchant_id, relate_number)
                if invoice is None:
                    raise _Refusal(NOT_FOUND)
            else:
                invoice = self._find(merchant_id, _invoice_no(payload))
                self._check_date(invoice, payload)
            request = invoice.request
            return {
                "RtnCode": 1,
                "RtnMsg": "查詢發票成功",
                "IIS_Mer_ID": merchant_id,
                "IIS_Number": invoice.invoice_no,
                "IIS_Relate_Number": invoice.relate_number,
                "IIS_Create_Date": format_invoice_datetime(invoice.invoice_date),
                "IIS_Random_Number": invoice.random_number,
                "IIS_Sales_Amount": invoice.sales_amount,
                "IIS_Invalid_Status": "1" if invoice.voided else "0",
                "IIS_Issue_Status": "1",
                "IIS_Remain_Allowance_Amt": invoice.remaining_amount,
                "IIS_Tax_Type": request.get("TaxType", "1"),
                "IIS_Identifier": request.get("CustomerIdentifier") or "0000000000",
                "IIS_Customer_Name": request.get("CustomerName", ""),
                "IIS_Customer_Email": request.get("CustomerEmail", ""),
                "IIS_Customer_Phone": request.get("CustomerPhone", ""),
                "IIS_Carrier_Type": request.get("CarrierType", ""),
                "IIS_Carrier_Num": request.get("CarrierNum", ""),
                "IIS_Love_Code": request.get("LoveCode", ""),
                "IIS_Print_Flag": request.get("Print", "0"),
                "IIS_Award_Flag": "",
                "IIS_Award_Type": "0",
                "Items": request.get("Items", []),
            }

    def invalid(self, merchant_id: str, payload: dict[str, Any]) -> dict[str, object]:
        """Invalid: void an invoice in its filing period with no allowance in force."""
        number = _invoice_no(payload)
        reason = _reason(payload)
        with self.book.lock:
            invoice = self._find(merchant_id, number)
            self._check_date(invoice, payload)
            if invoice.voided:
                raise _Refusal(ALREADY_VOIDED)
            if invoice.allowed_amount:
                raise _Refusal(HAS_ALLOWANCES)
            now = self.now()
            if not can_void(invoice.invoice_date, now):
                raise _Refusal(VOID_PERIOD_OVER)
            invoice.voided, invoice.void_reason, invoice.voided_at = True, reason, now
            self.book.save()
        return {"RtnCode": 1, "RtnMsg": "作廢發票成功", "InvoiceNo": number}

    def allowance(self, merchant_id: str, payload: dict[str, Any]) -> dict[str, object]:
        """Allowance: a credit note of at most the invoice's remaining amount."""
        number = _invoice_no(payload)
        notify = _text(payload, "AllowanceNotify")
        if notify not in _NOTIFY:
            raise InvoiceRuleError("field_value", "AllowanceNotify must be S, E, A or N", "AllowanceNotify")
        if notify in ("E", "A") and not _text(payload, "NotifyMail"):
            raise InvoiceRuleError(
                "contact_required", "AllowanceNotify E or A needs NotifyMail", "NotifyMail"
            )
        if notify in ("S", "A") and not _text(payload, "NotifyPhone"):
            raise InvoiceRuleError(
                "contact_required", "AllowanceNotify S or A needs NotifyPhone", "NotifyPhone"
            )
        amount = as_int(payload.get("AllowanceAmount"))
        if amount is None:
            raise InvoiceRuleError("amount", "AllowanceAmount must be an integer (TWD)", "AllowanceAmount")
        validate_items(items_from_payload(payload.get("Items")), amount, "AllowanceAmount")
        with self.book.lock:
            invoice = self._find(merchant_id, number)
            self._check_date(invoice, payload)
            if invoice.voided:
                raise _Refusal(ALREADY_VOIDED)
            if amount > invoice.remaining_amount:
                raise _Refusal(ALLOWANCE_TOO_LARGE)
            now = self.now().replace(microsecond=0)
            day = now.astimezone(TAIPEI).strftime("%Y%m%d")
            allowance = Allowance(
                allowance_no=f"{day}{self.book.next_number(f'allowance:{day}'):08d}",
                amount=amount,
                date=now,
                request=dict(payload),
            )
            invoice.allowances.append(allowance)
            self.book.save()
            remaining = invoice.remaining_amount
        return {
            "RtnCode": 1,
            "RtnMsg": "開立折讓成功",
            "IA_Allow_No": allowance.allowance_no,
            "IA_Invoice_No": number,
            "IA_Date": format_invoice_datetime(allowance.date),
            "IA_Remain_Allowance_Amt": remaining,
        }

    def allowance_invalid(self, merchant_id: str, payload: dict[str, Any]) -> dict[str, object]:
        """AllowanceInvalid: void an allowance; its amount becomes available again."""
        number = _invoice_no(payload)
        allowance_no = _text(payload, "AllowanceNo")
        reason = _reason(payload)
        with self.book.lock:
            invoice = self._find(merchant_id, number)
            found = next((a for a in invoice.allowances if a.allowance_no == allowance_no), None)
            if found is None:
                raise _Refusal(ALLOWANCE_NOT_FOUND)
            if found.voided:
                raise _Refusal(ALLOWANCE_VOIDED)
            found.voided, found.void_reason, found.voided_at = True, reason, self.now()
            self.book.save()
        return {"RtnCode": 1, "RtnMsg": "作廢折讓成功", "IA_Invoice_No": number}

    def check_barcode(self, merchant_id: str, payload: dict[str, Any]) -> dict[str, object]:
        """CheckBarcode: every well-formed mobile barcode exists except ``UNKNOWN_BARCODES``."""
        barcode = _text(payload, "BarCode")
        if not MOBILE_BARCODE.fullmatch(barcode):
            raise InvoiceRuleError(
                "mobile_barcode_format",
                "a mobile barcode is '/' and 7 characters of 0-9, A-Z, '.', '+', '-'",
                "BarCode",
            )
        return {"RtnCode": 1, "RtnMsg": "執行成功", "IsExist": "N" if barcode in UNKNOWN_BARCODES else "Y"}

    def check_love_code(self, merchant_id: str, payload: dict[str, Any]) -> dict[str, object]:
        """CheckLoveCode: every 3-7 digit love code exists except all zeros."""
        code = _text(payload, "LoveCode")
        if not LOVE_CODE.fullmatch(code):
            raise InvoiceRuleError("love_code_format", "a love code (捐贈碼) is 3 to 7 digits", "LoveCode")
        return {"RtnCode": 1, "RtnMsg": "執行成功", "IsExist": "N" if code in UNKNOWN_LOVE_CODES else "Y"}

    # --- control API --------------------------------------------------------------------------

    def snapshot(self, invoice_no: str) -> dict[str, Any] | None:
        """One invoice's full record (decrypted request, state, allowances), or None."""
        with self.book.lock:
            invoice = self.book.get(invoice_no)
            return invoice.to_json() if invoice is not None else None

    def listing(self) -> list[dict[str, Any]]:
        """Every invoice's summary, newest first."""
        with self.book.lock:
            return [invoice.summary() for invoice in self.book.all()]


_FOR_SANDBOX: weakref.WeakKeyDictionary[Sandbox, InvoiceSandbox] = weakref.WeakKeyDictionary()


def invoices_for(sandbox: Sandbox) -> InvoiceSandbox:
    """The e-invoice sandbox beside an AIO sandbox: its clock offset, its data folder (``einvoice.json``).

    One per AIO sandbox, so every app serving that sandbox shares the same invoices.
    """
    found = _FOR_SANDBOX.get(sandbox)
    if found is None:
        trades_path = sandbox.book.path
        path = Path(trades_path).parent / STATE_FILE if trades_path is not None else None
        found = InvoiceSandbox(
            book=InvoiceBook(path),
            # The AIO sandbox's own clock (an injected test clock included), without its offset.
            clock=lambda: sandbox.now() - timedelta(seconds=sandbox.settings.clock_offset_seconds),
            offset_seconds=lambda: sandbox.settings.clock_offset_seconds,
        )
        _FOR_SANDBOX[sandbox] = found
    return found
