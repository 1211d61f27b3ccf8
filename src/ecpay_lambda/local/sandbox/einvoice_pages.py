"""The e-invoice sandbox's pages: every invoice issued, and one invoice with its request and allowances.

Same look and formats as the trade pages (``pages``): amounts as ``NT$1,500``, Taipei times, labels
in 繁體中文 and English.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from html import escape

from ...ecpay.einvoice.client import format_invoice_datetime
from .einvoice_book import Invoice
from .pages import _money, _page, _rows

STATUS_LABELS = {"issued": "已開立 Issued", "voided": "已作廢 Voided"}
CARRIER_LABELS = {
    "": "無載具 None",
    "1": "綠界會員載具 ECPay member carrier",
    "2": "自然人憑證 Citizen certificate",
    "3": "手機條碼 Mobile barcode",
}


def _state(status: str) -> str:
    css = "paid" if status == "issued" else "failed"
    return f'<span class="state state-{css}">{escape(STATUS_LABELS.get(status, status))}</span>'


def _destination(request: dict[str, object]) -> str:
    """Where the invoice went, in words: donation, company tax ID, carrier, print."""
    parts = []
    if str(request.get("Donation")) == "1":
        parts.append(f"捐贈 Donated (love code {request.get('LoveCode', '')})")
    if request.get("CustomerIdentifier"):
        parts.append(f"統編 Company tax ID {request.get('CustomerIdentifier')}")
    carrier = str(request.get("CarrierType") or "")
    if carrier:
        number = str(request.get("CarrierNum") or "")
        parts.append(CARRIER_LABELS.get(carrier, carrier) + (f" {number}" if number else ""))
    if str(request.get("Print")) == "1":
        parts.append("列印 Printed")
    return ", ".join(parts) or CARRIER_LABELS[""]


def invoices_page(invoices: Sequence[Invoice], now: datetime) -> str:
    """Every invoice, newest first (at most 200)."""
    rows = "".join(
        f'<tr data-invoice="{escape(i.invoice_no)}"><td><a href="/sandbox/invoices/{escape(i.invoice_no)}">'
        f"{escape(i.invoice_no)}</a></td><td>{escape(i.relate_number)}</td>"
        f'<td class="num">{_money(i.sales_amount)}</td><td>{_state(i.status)}</td>'
        f'<td class="num">{_money(i.allowed_amount)}</td>'
        f"<td>{escape(format_invoice_datetime(i.invoice_date))}</td></tr>"
        for i in invoices[:200]
    )
    body = (
        f'<div class="card"><b>Sandbox time (Taiwan)</b> <code>{escape(format_invoice_datetime(now))}</code>'
        '<p class="note">作廢僅限發票當期（雙月）；之後請開立折讓。 An invoice can be voided within its '
        "bimonthly filing period only; afterwards, issue an allowance.</p></div>"
        '<div class="card" id="invoices"><h2>電子發票 E-invoices</h2><div class="scroll"><table class="list">'
        '<tr><th>發票號碼 Invoice</th><th>自訂編號 RelateNumber</th><th class="num">金額 Amount</th>'
        '<th>狀態 Status</th><th class="num">折讓 Allowances</th><th>開立時間 Issued (Taipei)</th></tr>'
        f"{rows}</table></div>"
        + ("" if invoices else '<p class="note">尚無發票 No invoice yet.</p>')
        + '<p class="note">JSON control API: <code>/sandbox/api/invoices</code>, '
        "<code>/sandbox/api/invoices/{InvoiceNo}</code></p></div>"
        '<p class="note"><a href="/sandbox/">交易 Sandbox trades</a></p>'
    )
    return _page("E-invoices", body)


def invoice_page(invoice: Invoice) -> str:
    """One invoice: numbers, buyer's choice, state, allowances and the decrypted request."""
    request = invoice.request
    summary = _rows(
        [
            ("發票號碼 Invoice number", invoice.invoice_no),
            ("隨機碼 Random number", invoice.random_number),
            ("自訂編號 RelateNumber", invoice.relate_number),
            ("開立時間 Issued (Taipei)", format_invoice_datetime(invoice.invoice_date)),
            ("金額 Sales amount", _money(invoice.sales_amount)),
            ("可折讓餘額 Remaining for allowances", _money(invoice.remaining_amount)),
            ("開立方式 Destination", _destination(request)),
            (
                "買受人 Buyer e-mail / phone",
                f"{request.get('CustomerEmail', '')} {request.get('CustomerPhone', '')}",
            ),
        ]
    )
    state = f"<tr><th>狀態 Status</th><td>{_state(invoice.status)}</td></tr>"
    if invoice.voided:
        state += _rows([("作廢原因 Void reason", invoice.void_reason)])
    allowances = "".join(
        f'<tr><td>{escape(a.allowance_no)}</td><td class="num">{_money(a.amount)}</td>'
        f"<td>{escape(format_invoice_datetime(a.date))}</td>"
        f"<td>{_state('voided' if a.voided else 'issued')}</td></tr>"
        for a in invoice.allowances
    )
    body = (
        f'<div class="card" id="invoice" data-status="{escape(invoice.status)}"><table class="kv">'
        f"{summary}{state}</table></div>"
        '<div class="card"><h3>折讓 Allowances</h3><div class="scroll"><table class="list"><tr>'
        '<th>折讓編號 Allowance</th><th class="num">金額 Amount</th><th>時間 At (Taipei)</th>'
        f"<th>狀態 Status</th></tr>{allowances}</table></div></div>"
        '<div class="card"><h3>收到的請求（已解密） Request received (decrypted)</h3>'
        f"<pre>{escape(json.dumps(request, ensure_ascii=False, indent=1))}</pre></div>"
        '<p class="note"><a href="/sandbox/invoices">所有發票 All e-invoices</a></p>'
    )
    return _page(f"Invoice {invoice.invoice_no}", body)


def missing_page(invoice_no: str) -> str:
    """404: no such invoice."""
    body = (
        f'<div class="card error"><h2>查無發票 No such invoice</h2><p><code>{escape(invoice_no)}</code></p>'
        '<p><a href="/sandbox/invoices">所有發票 All e-invoices</a></p></div>'
    )
    return _page("No such invoice", body)
