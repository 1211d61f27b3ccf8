"""PaymentMedia/TradeNoAio in the sandbox: the merchant trade file, from the sandbox's own trades.

Checks the request as ECPay does (required fields, CheckMacValue, dates, at most 7 days, one file
per minute per merchant, else HTTP 403 like ECPay's lock) and answers a CSV in the layout that
``ecpay.statement`` documents (Chinese headers, Big5). Errors are one ``RtnCode=...&RtnMsg=...``
line. HTTP-free like the engine; ``app.py`` routes POST ``/PaymentMedia/TradeNoAio`` here.
"""

from __future__ import annotations

import re
import threading
import weakref
from collections.abc import Mapping
from datetime import date, datetime, timedelta

from ...ecpay.checkmac import verify_check_mac_value
from ...ecpay.errors import EcpayValidationError
from ...ecpay.statement import (
    DATE_TYPES,
    PAYMENT_STATUSES,
    StatementRow,
    check_trade_file_range,
    render_statement,
)
from ...ecpay.timezone import TAIPEI, parse_ecpay_datetime
from . import messages as msg
from .engine import Sandbox
from .trades import Trade, TradeStatus

REQUIRED = ("MerchantID", "DateType", "BeginDate", "EndDate", "MediaFormated", "CheckMacValue")
# DateTypes the sandbox can answer: it keeps payment and order times, not disbursements.
SIMULATED_DATE_TYPES = frozenset({"2", "6"})
# TradeNoAio's PaymentType filter -> the sandbox's method (the codes it has no method for match nothing).
PAYMENT_TYPE_FILTER = {"01": "Credit", "02": "WebATM", "03": "ATM", "04": "CVS", "05": "BARCODE"}
MIN_INTERVAL = timedelta(minutes=1)
CSV_TYPE = "text/csv; charset=big5"
ERROR_TYPE = "text/plain; charset=utf-8"
_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")

# When each merchant last got a file, per sandbox (weak: a closed sandbox's record goes with it).
_last_served: weakref.WeakKeyDictionary[Sandbox, dict[str, datetime]] = weakref.WeakKeyDictionary()
_lock = threading.Lock()


def reset_rate_limit(sandbox: Sandbox) -> None:
    """Forget when files were served, so the next request is not refused (tests, the control page)."""
    with _lock:
        _last_served.pop(sandbox, None)


def _error(code: str, message: str) -> tuple[int, str | bytes, str]:
    return 200, msg.raw_kv({"RtnCode": code, "RtnMsg": message}), ERROR_TYPE


def _parse_date(text: str) -> date | None:
    if not _DATE.fullmatch(text):
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        return None


def _status(trade: Trade) -> str:
    if trade.status is TradeStatus.PAID:
        return "paid"
    if trade.status is TradeStatus.FAILED:
        return "failed"
    return "unpaid"  # on the payment page, code issued, or expired unpaid


def row_for(trade: Trade) -> StatementRow:
    """The trade file's line for one sandbox trade."""
    paid = trade.status is TradeStatus.PAID
    return StatementRow(
        merchant_trade_no=trade.merchant_trade_no,
        trade_no=trade.trade_no,
        amount=trade.amount,
        payment_type=trade.payment_type,
        status=_status(trade),
        trade_date=trade.trade_date,
        payment_date=trade.payment_date if paid else None,
        # The sandbox's simulated payments (模擬付款) leave the trade unpaid; the flag says one was sent.
        simulate_paid=trade.simulated_notices > 0 and not paid,
        fields={},
        handling_charge="0",
    )


def period_rows(trade: Trade, form: Mapping[str, str], begin: date, end: date) -> list[StatementRow]:
    """A periodic order's later charges (#2..n), one paid line each on the day it was charged.

    ECPay's stored sources do not show how its file lists them; the sandbox writes each charge as a
    line of the order's MerchantTradeNo, which is what the wallet's statement run expects.
    """
    if (
        not trade.is_periodic
        or trade.merchant_id != form["MerchantID"]
        or form.get("PaymentStatus", "") not in ("", "1")
        or form.get("PaymentType", "") not in ("", "01")
    ):
        return []
    rows = []
    for execution in trade.period_executions[1:]:
        if execution["RtnCode"] != 1:
            continue
        charged = parse_ecpay_datetime(str(execution["process_date"]))
        if not begin <= charged.astimezone(TAIPEI).date() <= end:
            continue
        rows.append(
            StatementRow(
                merchant_trade_no=trade.merchant_trade_no,
                trade_no=trade.trade_no,
                amount=int(execution["amount"]),
                payment_type=trade.payment_type,
                status="paid",
                trade_date=charged,
                payment_date=charged,
                simulate_paid=False,
                fields={},
                handling_charge="0",
            )
        )
    return rows


def _selected(trade: Trade, form: Mapping[str, str], begin: date, end: date) -> bool:
    if trade.merchant_id != form["MerchantID"]:
        return False
    moment = trade.payment_date if form["DateType"] == "2" else trade.trade_date
    if form["DateType"] == "2" and trade.status is not TradeStatus.PAID:
        return False
    if moment is None or not begin <= moment.astimezone(TAIPEI).date() <= end:
        return False
    status = form.get("PaymentStatus", "")
    if status and {"0": "unpaid", "1": "paid", "2": "failed"}[status] != _status(trade):
        return False
    payment_type = form.get("PaymentType", "")
    return not payment_type or PAYMENT_TYPE_FILTER.get(payment_type) == trade.method


def trade_no_aio(sandbox: Sandbox, form: Mapping[str, str]) -> tuple[int, str | bytes, str]:
    """Answer a TradeNoAio request: (HTTP status, body, content type); the file is Big5 CSV bytes."""
    if sandbox.settings.query_status_override:
        return sandbox.settings.query_status_override, "Forbidden", ERROR_TYPE
    for name in REQUIRED:
        if not form.get(name, "").strip():
            return _error("10100050", f"Parameter Error. {name} is required")
    credentials = sandbox.merchants.get(form["MerchantID"])
    if credentials is None or not verify_check_mac_value(form, credentials.hash_key, credentials.hash_iv):
        return _error("10200073", "CheckMacValue verify fail")
    if form["DateType"] not in DATE_TYPES:
        return _error("10100050", "Parameter Error. DateType")
    if form["DateType"] not in SIMULATED_DATE_TYPES:
        return _error("10100050", f"DateType {form['DateType']} is not simulated (use 2 or 6)")
    begin, end = _parse_date(form["BeginDate"]), _parse_date(form["EndDate"])
    if begin is None or end is None:
        return _error("10100050", "Parameter Error. BeginDate/EndDate must be yyyy-MM-dd")
    try:
        check_trade_file_range(begin, end)
    except EcpayValidationError as exc:
        return _error("10100050", f"Parameter Error. {exc.field} {exc.reason}")
    if form.get("PaymentStatus", "") not in ("", *PAYMENT_STATUSES):
        return _error("10100050", "Parameter Error. PaymentStatus")
    if form["MediaFormated"] not in ("0", "1"):
        return _error("10100050", "Parameter Error. MediaFormated")
    now = sandbox.now()
    with _lock:
        served = _last_served.setdefault(sandbox, {})
        last = served.get(form["MerchantID"])
        if last is not None and now - last < MIN_INTERVAL:
            # ECPay serves one file per minute; more and it locks the merchant out (HTTP 403).
            return 403, "Forbidden", ERROR_TYPE
        served[form["MerchantID"]] = now
    with sandbox.book.lock:
        trades = [t for t in reversed(sandbox.book.all()) if _selected(t, form, begin, end)]
        rows = [row_for(t) for t in trades]
        for trade in reversed(sandbox.book.all()):
            rows.extend(period_rows(trade, form, begin, end))
    return 200, render_statement(rows), CSV_TYPE
