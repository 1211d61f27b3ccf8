"""ECPay's B2C e-invoice API (電子發票), pure and typed: the AES-JSON envelope, models and a client.

A separate service from AIO payments, with its own host and merchant keys (protocol page §8, §13.6).
Never imported on the notification Lambda's path: invoices are issued after the credit commits.
"""

from .client import InvoiceClient, format_invoice_date, parse_invoice_datetime
from .envelope import build_request, decrypt_data, encrypt_data, open_response
from .errors import InvoiceEnvelopeError, InvoiceRejected, InvoiceRuleError, InvoiceTransportError
from .models import (
    AllowanceResult,
    Buyer,
    CarrierType,
    InvoiceCredentials,
    InvoiceRecord,
    IssuedInvoice,
    IssueRequest,
    Item,
)
from .periods import can_void, filing_period, void_deadline
from .tax_id import is_valid_tax_id

__all__ = [
    "AllowanceResult",
    "Buyer",
    "CarrierType",
    "InvoiceClient",
    "InvoiceCredentials",
    "InvoiceEnvelopeError",
    "InvoiceRecord",
    "InvoiceRejected",
    "InvoiceRuleError",
    "InvoiceTransportError",
    "IssueRequest",
    "IssuedInvoice",
    "Item",
    "build_request",
    "can_void",
    "decrypt_data",
    "encrypt_data",
    "filing_period",
    "format_invoice_date",
    "is_valid_tax_id",
    "open_response",
    "parse_invoice_datetime",
    "void_deadline",
]
