"""The merchant trade file (對帳媒體檔, PaymentMedia/TradeNoAio, protocol §7.7 and §13.5): parse and render.

ECPay's own records are the truth about what was paid; this file lists every trade of a date range.

Layout this module reads (and :func:`render_statement` writes):

- Bytes in Big5 (cp950, what ECPay's SDKs decode), UTF-8 with a BOM, or plain UTF-8.
- CSV with one header line, then one trade per line. Lines before the header (a title, the query
  period) and blank lines are skipped; the header is the first line naming a MerchantTradeNo column.
- Columns are found by header name through :data:`HEADER_ALIASES` (Chinese and English spellings);
  their order does not matter and unknown columns are kept in ``StatementRow.fields`` only.
  Required: the merchant trade number, the amount, and the payment status or the payment time.
- A line without a MerchantTradeNo (such as a closing total line) is not a trade: it is skipped
  and counted in ``StatementFile.skipped_lines``.
- Amounts are whole TWD, thousands separators allowed (``1,200``; ``1200.00``); fractions refused.
- Times are Taipei wall clock (``yyyy/MM/dd HH:mm:ss``, ``-`` separators and missing seconds
  accepted), returned as aware UTC.
- Payment status ``已付款``/``1`` = paid, ``未付款``/``0`` = unpaid, ``付款失敗``/``2`` = failed
  (:data:`STATUS_ALIASES`); without a status column a row with a payment time is paid.
- 模擬付款 / SimulatePaid: only an explicit no (``0``, ``否``, ``N``) is a real payment; any other
  value, blank included, is simulated and must never be credited.

The exact layout of ECPay's real file is NOT in the stored sources (the ECPay API Skill names only
the main fields). Check it against a real file; the alias tables below are the place to adjust.
"""

# Annotations evaluated, not postponed: the cold-start rule (docs/performance.md).

import csv
import io
import re
from collections.abc import Iterable, Mapping
from datetime import date, datetime
from types import MappingProxyType
from typing import NamedTuple

from .errors import EcpayValidationError, ResponseError
from .records import repr_without
from .timezone import format_ecpay_datetime, parse_ecpay_datetime

# ECPay serves at most 7 days per request (inclusive of both ends) and one file per minute.
MAX_TRADE_FILE_DAYS = 7
# TradeNoAio's DateType: what BeginDate/EndDate select on ("5" is accepted by ECPay's SDK validators
# but its meaning is not documented).
DATE_TYPES: Mapping[str, str] = MappingProxyType(
    {"2": "payment date", "4": "disbursement date", "5": "undocumented", "6": "order date"}
)
PAYMENT_STATUSES = frozenset({"0", "1", "2"})  # TradeNoAio's PaymentStatus filter: unpaid, paid, failed


def _key(header: str) -> str:
    # Header comparison ignores case, spaces, underscores and a BOM.
    return re.sub(r"[\s_\ufeff]+", "", header).casefold()


# Header spelling -> canonical field. THE table to adjust after seeing a real file.
HEADER_ALIASES: Mapping[str, str] = MappingProxyType(
    {
        _key(name): field
        for field, names in {
            "merchant_trade_no": ("特店訂單編號", "MerchantTradeNo"),
            "trade_no": ("綠界訂單編號", "綠界交易編號", "TradeNo"),
            "trade_date": ("訂單成立時間", "交易時間", "TradeDate"),
            "payment_date": ("付款時間", "PaymentDate"),
            "amount": ("交易金額", "訂單金額", "TradeAmt"),
            "payment_type": ("付款方式", "PaymentType"),
            "payment_status": ("付款狀態", "交易狀態", "PaymentStatus", "TradeStatus"),
            "handling_charge": ("手續費", "HandlingCharge"),
            "simulate_paid": ("模擬付款", "SimulatePaid"),
        }.items()
        for name in names
    }
)
REQUIRED_COLUMNS = ("merchant_trade_no", "amount")

# Payment status cell -> status (compared case-insensitively, spaces ignored).
STATUS_ALIASES: Mapping[str, str] = MappingProxyType(
    {
        "已付款": "paid",
        "1": "paid",
        "paid": "paid",
        "未付款": "unpaid",
        "0": "unpaid",
        "unpaid": "unpaid",
        "付款失敗": "failed",
        "2": "failed",
        "failed": "failed",
    }
)
# Only these SimulatePaid cells mean "a real payment"; anything else (blank too) is simulated.
NOT_SIMULATED = frozenset({"0", "否", "n", "no"})

# What render_statement writes: Chinese headers, in this order.
RENDER_HEADERS = (
    ("merchant_trade_no", "特店訂單編號"),
    ("trade_no", "綠界訂單編號"),
    ("trade_date", "訂單成立時間"),
    ("payment_date", "付款時間"),
    ("payment_type", "付款方式"),
    ("amount", "交易金額"),
    ("handling_charge", "手續費"),
    ("payment_status", "付款狀態"),
    ("simulate_paid", "模擬付款"),
)
_RENDER_STATUS = MappingProxyType({"paid": "已付款", "unpaid": "未付款", "failed": "付款失敗"})

_AMOUNT = re.compile(r"(?:[0-9]{1,3}(?:,[0-9]{3})+|[0-9]+)(?:\.0+)?")
_EXCEL_TEXT = re.compile(r'="(.*)"')  # ="00123": a spreadsheet's keep-as-text wrapping
_TIME = re.compile(
    r"([0-9]{4})[/-]([0-9]{1,2})[/-]([0-9]{1,2})(?:[ T]([0-9]{1,2}):([0-9]{2})(?::([0-9]{2}))?)?"
)


class StatementError(ResponseError):
    """The trade file cannot be read: wrong encoding, missing columns, or a bad cell (line given)."""


class StatementRow(NamedTuple):
    """One trade of the file."""

    merchant_trade_no: str
    trade_no: str
    amount: int
    payment_type: str
    status: str  # "paid" | "unpaid" | "failed"
    trade_date: datetime | None  # aware UTC
    payment_date: datetime | None  # aware UTC
    simulate_paid: bool
    fields: Mapping[str, str]  # the raw cells by header as written (left out of repr)
    handling_charge: str = ""  # as written (may be a decimal)

    @property
    def is_paid(self) -> bool:
        """Paid and not simulated: the only rows that are real money."""
        return self.status == "paid" and not self.simulate_paid

    def __repr__(self) -> str:
        return repr_without(self, frozenset({"fields"}))


class StatementFile(NamedTuple):
    """A parsed trade file: its trades, how many non-trade lines were skipped, and the encoding read."""

    rows: tuple[StatementRow, ...]
    skipped_lines: int
    encoding: str  # "utf-8-sig", "utf-8" or "cp950"


# --- parsing ------------------------------------------------------------------------------------


def decode_statement(body: bytes) -> tuple[str, str]:
    """(text, encoding): UTF-8 with a BOM, else UTF-8, else Big5 (cp950); StatementError if none fits."""
    if body.startswith(b"\xef\xbb\xbf"):
        try:
            return body.decode("utf-8-sig"), "utf-8-sig"
        except UnicodeDecodeError:
            raise StatementError("trade file starts with a UTF-8 BOM but is not UTF-8") from None
    for encoding in ("utf-8", "cp950"):
        try:
            return body.decode(encoding), encoding
        except UnicodeDecodeError:
            continue
    raise StatementError("trade file is neither UTF-8 nor Big5")


def _cell(value: str) -> str:
    value = value.strip()
    match = _EXCEL_TEXT.fullmatch(value)
    return match.group(1).strip() if match else value


def _columns(header: list[str]) -> dict[str, int]:
    columns: dict[str, int] = {}
    for index, name in enumerate(header):
        field = HEADER_ALIASES.get(_key(_cell(name)))
        if field is not None and field not in columns:  # the first column of a kind wins
            columns[field] = index
    return columns


def _find_header(lines: list[list[str]]) -> int:
    for number, cells in enumerate(lines):
        if "merchant_trade_no" in _columns(cells):
            return number
    raise StatementError("trade file has no header naming a MerchantTradeNo column (特店訂單編號)")


def _amount(text: str, line: int) -> int:
    if not _AMOUNT.fullmatch(text):
        raise StatementError(f"trade file line {line}: amount {text[:20]!r} is not a whole TWD amount")
    return int(text.split(".", 1)[0].replace(",", ""))


def _time(text: str, line: int, what: str) -> datetime | None:
    if not text:
        return None
    match = _TIME.fullmatch(text)
    if match is None:
        raise StatementError(f"trade file line {line}: {what} {text[:30]!r} is not a date and time")
    year, month, day, hour, minute, second = match.groups()
    normalised = f"{year}/{int(month):02d}/{int(day):02d}"
    if hour is not None:
        normalised += f" {int(hour):02d}:{minute}:{second or '00'}"
    else:
        normalised += " 00:00:00"
    try:
        return parse_ecpay_datetime(normalised)
    except ValueError:
        raise StatementError(f"trade file line {line}: {what} {text[:30]!r} is not a real date") from None


def _status(text: str, payment_date: datetime | None, has_column: bool, line: int) -> str:
    if not has_column:
        return "paid" if payment_date is not None else "unpaid"
    status = STATUS_ALIASES.get(_key(text))
    if status is None:
        raise StatementError(f"trade file line {line}: payment status {text[:20]!r} is not known")
    return status


def parse_statement(body: bytes) -> StatementFile:
    """Read a trade file (layout in the module docstring); ``StatementError`` names what is wrong."""
    text, encoding = decode_statement(body)
    lines = list(csv.reader(io.StringIO(text, newline="")))
    header_at = _find_header(lines)
    columns = _columns(lines[header_at])
    for field in REQUIRED_COLUMNS:
        if field not in columns:
            raise StatementError(f"trade file has no {field} column (see HEADER_ALIASES)")
    if "payment_status" not in columns and "payment_date" not in columns:
        raise StatementError("trade file has neither a payment_status nor a payment_date column")
    header = [_cell(name) for name in lines[header_at]]
    skipped = header_at
    rows: list[StatementRow] = []
    for number, cells in enumerate(lines[header_at + 1 :], start=header_at + 2):
        values = [_cell(value) for value in cells]

        def get(field: str, values: list[str] = values) -> str:
            index = columns.get(field)
            return values[index] if index is not None and index < len(values) else ""

        merchant_trade_no = get("merchant_trade_no")
        if not merchant_trade_no:
            skipped += 1  # blank line, total line, footnote: not a trade
            continue
        payment_date = _time(get("payment_date"), number, "payment time")
        simulate_cell = get("simulate_paid")
        rows.append(
            StatementRow(
                merchant_trade_no=merchant_trade_no,
                trade_no=get("trade_no"),
                amount=_amount(get("amount"), number),
                payment_type=get("payment_type"),
                status=_status(get("payment_status"), payment_date, "payment_status" in columns, number),
                trade_date=_time(get("trade_date"), number, "trade time"),
                payment_date=payment_date,
                simulate_paid="simulate_paid" in columns and simulate_cell.casefold() not in NOT_SIMULATED,
                fields=MappingProxyType(dict(zip(header, values, strict=False))),
                handling_charge=get("handling_charge"),
            )
        )
    return StatementFile(rows=tuple(rows), skipped_lines=skipped, encoding=encoding)


# --- rendering (the sandbox's file) --------------------------------------------------------------


def _render_value(row: StatementRow, field: str) -> str:
    if field in ("trade_date", "payment_date"):
        moment: datetime | None = getattr(row, field)
        return format_ecpay_datetime(moment) if moment is not None else ""
    if field == "payment_status":
        return _RENDER_STATUS[row.status]
    if field == "simulate_paid":
        return "1" if row.simulate_paid else "0"
    return str(getattr(row, field))


def render_statement(
    rows: Iterable[StatementRow], *, encoding: str = "big5", total_line: bool = True
) -> bytes:
    """The trade file in the layout :func:`parse_statement` documents (Chinese headers, Big5, CRLF).

    ``total_line`` appends a line without a MerchantTradeNo holding the count and the amount total,
    as reports often end (the parser skips it).
    """
    out = io.StringIO(newline="")
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow([title for _, title in RENDER_HEADERS])
    count = total = 0
    for row in rows:
        if row.status not in _RENDER_STATUS:
            raise ValueError(f"status must be paid, unpaid or failed, not {row.status!r}")
        writer.writerow([_render_value(row, field) for field, _ in RENDER_HEADERS])
        count += 1
        total += row.amount
    if total_line:
        closing = {"trade_no": f"合計 {count} 筆", "amount": str(total)}
        writer.writerow([closing.get(field, "") for field, _ in RENDER_HEADERS])
    return out.getvalue().encode(encoding)


def check_trade_file_range(begin: date, end: date) -> None:
    """Raise ``EcpayValidationError`` unless ``begin <= end`` and the range spans at most 7 days.

    Both ends count: 2026-11-01 to 2026-11-07 is 7 days, the most ECPay serves per request.
    """
    if end < begin:
        raise EcpayValidationError("EndDate", "is before BeginDate")
    if (end - begin).days + 1 > MAX_TRADE_FILE_DAYS:
        raise EcpayValidationError(
            "EndDate", f"at most {MAX_TRADE_FILE_DAYS} days per request (both ends counted)"
        )
