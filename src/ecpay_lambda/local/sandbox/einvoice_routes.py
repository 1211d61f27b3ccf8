"""HTTP face of the e-invoice sandbox: ``/B2CInvoice/*``, its control API and its pages.

Owns ``/B2CInvoice/``, ``/sandbox/api/invoices`` and ``/sandbox/invoices``; None for every other path.
"""

from __future__ import annotations

import re

from ..http import Request, Response, html_response, json_response, text_response
from . import einvoice_pages
from .einvoice_engine import ENDPOINTS, InvoiceSandbox

ECPAY_PREFIX = "/B2CInvoice/"
_API = "/sandbox/api/invoices"
_PAGES = "/sandbox/invoices"
_ONE_API = re.compile(r"^/sandbox/api/invoices/([A-Za-z0-9]+)$")
_ONE_PAGE = re.compile(r"^/sandbox/invoices/([A-Za-z0-9]+)$")


def _error(status: int, code: str, message: str) -> Response:
    return json_response(status, {"error": {"code": code, "message": message}})


def _owns(path: str) -> bool:
    return path.startswith(ECPAY_PREFIX) or any(
        path == base or path.startswith(f"{base}/") for base in (_API, _PAGES)
    )


def handle(invoices: InvoiceSandbox, request: Request) -> Response | None:
    """Answer the e-invoice paths; None for the rest."""
    path = request.path
    if not _owns(path):
        return None
    if path.startswith(ECPAY_PREFIX):
        name = path[len(ECPAY_PREFIX) :]
        if name not in ENDPOINTS:
            return text_response(404, "Not Found (this e-invoice endpoint is not simulated by the sandbox)")
        if request.method != "POST":
            return text_response(405, "Method Not Allowed")
        return json_response(200, invoices.handle(name, request.body))
    if path.startswith(_API):
        return _control(invoices, request, path)
    return _page(invoices, request, path)


def _control(invoices: InvoiceSandbox, request: Request, path: str) -> Response:
    if path == _API and request.method == "GET":
        return json_response(200, {"invoices": invoices.listing()})
    if path == f"{_API}/reset" and request.method == "POST":
        invoices.book.clear()
        return json_response(200, {"invoices": 0})
    match = _ONE_API.match(path)
    if match and request.method == "GET":
        record = invoices.snapshot(match.group(1))
        if record is None:
            return _error(404, "not_found", f"no invoice {match.group(1)}")
        return json_response(200, record)
    return _error(404, "not_found", "no such sandbox API route")


def _page(invoices: InvoiceSandbox, request: Request, path: str) -> Response:
    if request.method not in ("GET", "HEAD"):
        return text_response(405, "Method Not Allowed")
    if path in (_PAGES, f"{_PAGES}/"):
        with invoices.book.lock:
            return html_response(200, einvoice_pages.invoices_page(invoices.book.all(), invoices.now()))
    match = _ONE_PAGE.match(path)
    if match:
        with invoices.book.lock:
            invoice = invoices.book.get(match.group(1))
            if invoice is None:
                return html_response(404, einvoice_pages.missing_page(match.group(1)))
            return html_response(200, einvoice_pages.invoice_page(invoice))
    return text_response(404, "Not Found")
