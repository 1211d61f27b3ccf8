"""DynamoDB items of the e-invoice work (issue 13): the due-work queue and the buyer settings.

``gsi1`` already places a paid deposit in its ``PAID#<day>`` partition, and an item has one ``gsi1``
key, so the invoice job's queue is its own small partition instead of a second index: one marker item
per deposit with invoice work due (``INVOICE_DUE`` / ``<transaction id>``, its due time an attribute),
put or deleted in the SAME ``TransactWriteItems`` as the deposit (so the queue never disagrees with the
deposit), read with one key query. Only deposits with work pending have a marker: the partition stays
as small as the backlog of invoices to issue, void or allow.
"""

from __future__ import annotations

from datetime import datetime
from typing import Final

from ..wallet.invoice_state import InvoiceStatus, invoice_due, settings_dumps, settings_loads
from ..wallet.models import Transaction, TransactionType
from .dynamodb_items import Item, StoredItem, get_opt_s, iso, key, parse_iso, s

INVOICE_QUEUE_PK: Final = "INVOICE_DUE"
INVOICE_SETTINGS_ATTRIBUTE: Final = "invoice_settings"


def invoice_marker_key(transaction_id: str) -> Item:
    """The queue marker of one deposit."""
    return key(INVOICE_QUEUE_PK, transaction_id)


def invoice_marker(txn: Transaction) -> tuple[str, Item] | None:
    """What a write of ``txn`` does to its queue marker: ("put", item), ("delete", key) or None.

    None for transactions that never have invoice work (no invoice, or one still ``requested``), so a
    write of such a deposit costs no extra item.
    """
    if txn.transaction_type is not TransactionType.DEPOSIT or txn.invoice is None:
        return None
    if txn.invoice.status is InvoiceStatus.REQUESTED:
        return None
    due = invoice_due(txn)
    if due is None:
        return "delete", invoice_marker_key(txn.transaction_id)
    item = {
        **invoice_marker_key(txn.transaction_id),
        "entity": s("invoice_due"),
        "transaction_id": s(txn.transaction_id),
        "due_at": s(iso(due)),
    }
    return "put", item


def marker_due(item: StoredItem) -> tuple[datetime, str] | None:
    """(due time, transaction id) of a marker item, None when malformed."""
    due = get_opt_s(item, "due_at")
    tid = get_opt_s(item, "transaction_id")
    if due is None or tid is None:
        return None
    return parse_iso(due), tid


def encode_invoice_settings(settings: dict[str, str]) -> str | None:
    """The user's ``invoice_settings`` attribute text (None: remove the attribute)."""
    return settings_dumps(settings)


def decode_invoice_settings(item: StoredItem) -> dict[str, str]:
    """The settings of a user item (empty when none)."""
    return dict(settings_loads(get_opt_s(item, INVOICE_SETTINGS_ATTRIBUTE)))
