"""A deposit's B2C e-invoice as the wallet records it, and when it has work to do (issue 13).

This module is on the notification Lambda's import path (``models`` and ``outcomes`` use it): standard
library only, NamedTuples (see ``ecpay.records``). The decisions that talk to ECPay's e-invoice service
live in :mod:`.invoices`, which the notification path never imports.

Lifecycle of ``InvoiceState.status``::

    requested --deposit paid (same atomic write as the credit)--> pending
    pending --Issue (or GetIssue after a timeout) ok--> issued
    pending --ECPay refuses the request--> failed                 (flagged; audit reports it)
    issued --refund confirmed, in full, within the filing period--> voided
    issued/allowance --refund confirmed otherwise--> allowance    (one per refunded amount)

The durable marker is the deposit itself: ``pending`` is written with the credit, and a confirmed refund
is visible as ``refunded_amount`` above what the invoice already credited back. :func:`invoice_due`
derives from both when the job should look at a deposit; the stores index that time.
"""

# Annotations are evaluated, not postponed (see ``wallet.models``): NamedTuples on the cold-start path.

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from enum import StrEnum
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, NamedTuple

if TYPE_CHECKING:
    from .models import Transaction


class InvoiceStatus(StrEnum):
    """Where a deposit's e-invoice stands."""

    REQUESTED = "requested"  # invoicing was on when the deposit was made: issue one once paid
    PENDING = "pending"  # paid; the invoice is to be issued by the job
    ISSUED = "issued"
    VOIDED = "voided"  # a full refund within the filing period
    ALLOWANCE = "allowance"  # one or more allowances (折讓) credit refunds back
    FAILED = "failed"  # ECPay refused a request: an operator must look (audit reports it)


NO_BUYER: Mapping[str, str] = MappingProxyType({})


class InvoiceAllowance(NamedTuple):
    """One allowance (折讓) issued against the invoice for a refunded amount."""

    allowance_no: str
    amount: int
    date: datetime


class InvoiceState(NamedTuple):
    """The e-invoice of one deposit. ``buyer`` is the per-deposit override (empty: the user's settings)."""

    status: InvoiceStatus
    buyer: Mapping[str, str] = NO_BUYER
    number: str | None = None  # ECPay's InvoiceNo: two letters + 8 digits
    date: datetime | None = None  # InvoiceDate (UTC)
    random_number: str | None = None  # 4 digits
    allowances: tuple[InvoiceAllowance, ...] = ()
    tries: int = 0  # failed attempts of the current action (drives the backoff)
    next_attempt_at: datetime | None = None  # when the job may try again after a failure
    error: str | None = None  # the last failure, e.g. "timeout" or "rejected:<code> <message>"
    amount: int | None = None  # SalesAmount of the issued invoice (ECPay's GetIssue when recovered)

    def credited(self, amount: int) -> int:
        """How much of an invoice for ``amount`` was credited back (void = all, else its allowances)."""
        if self.status is InvoiceStatus.VOIDED:
            return amount
        return sum(a.amount for a in self.allowances)


def requested(buyer: Mapping[str, str] | None = None) -> InvoiceState:
    """The state of a new deposit made while invoicing is on."""
    return InvoiceState(InvoiceStatus.REQUESTED, MappingProxyType(dict(buyer)) if buyer else NO_BUYER)


def on_paid(invoice: InvoiceState | None) -> InvoiceState | None:
    """The invoice state written with the credit: ``requested`` becomes ``pending``, else unchanged."""
    if invoice is None or invoice.status is not InvoiceStatus.REQUESTED:
        return invoice
    return invoice._replace(status=InvoiceStatus.PENDING, tries=0, next_attempt_at=None, error=None)


def for_charge(plan_invoice: InvoiceState | None) -> InvoiceState | None:
    """The invoice of a recurring plan's later charge: one of its own, pending from its credit, for the
    buyer the plan's deposit was invoiced to (None when the plan's deposit is not invoiced)."""
    if plan_invoice is None:
        return None
    return InvoiceState(InvoiceStatus.PENDING, plan_invoice.buyer)


def refund_owed(txn: "Transaction") -> int:
    """The confirmed refunds of a deposit its invoice has not credited back yet (0 when none).

    A refund still being settled with ECPay (``related_transaction_id``) is not confirmed: wait.
    """
    inv = txn.invoice
    if inv is None or inv.status not in (InvoiceStatus.ISSUED, InvoiceStatus.ALLOWANCE):
        return 0
    if txn.related_transaction_id is not None:
        return 0
    return max(txn.refunded_amount - inv.credited(txn.amount), 0)


def invoice_due(txn: "Transaction") -> datetime | None:
    """When the invoice job should next look at ``txn`` (None: nothing to do)."""
    inv = txn.invoice
    if inv is None:
        return None
    if inv.status is InvoiceStatus.PENDING or refund_owed(txn) > 0:
        return inv.next_attempt_at or txn.updated_at
    return None


# --- audit (wallet/audit.py) -----------------------------------------------------------------------

PAID_LIKE = frozenset({"paid", "partially_refunded", "refunded"})


def invoice_problems(txn: "Transaction") -> list[str]:
    """What is wrong with a deposit's invoice whatever the time: refused, never marked, wrong amount."""
    inv = txn.invoice
    if inv is None or str(txn.status) not in PAID_LIKE:
        return []
    where = f"deposit {txn.transaction_id} of user {txn.user_id}: invoice"
    if inv.status is InvoiceStatus.REQUESTED:
        return [f"{where} still 'requested' although the deposit is paid (never queued)"]
    if inv.status is InvoiceStatus.FAILED:
        return [f"{where} failed ({inv.error or 'no reason'}): fix the buyer settings or issue it by hand"]
    if inv.amount is not None and inv.amount != txn.amount:
        return [f"{where} {inv.number} is for {inv.amount}, the deposit is {txn.amount}"]
    return []


def overdue_invoice(txn: "Transaction", cutoff: datetime) -> str | None:
    """A problem line when the deposit's invoice work has been due since before ``cutoff``."""
    due = invoice_due(txn)
    if due is None or txn.invoice is None:
        return None
    # Since the last write of the deposit: the credit that queued it, a confirmed refund, or a failed try.
    since = txn.updated_at
    if since > cutoff:
        return None
    what = "not issued" if txn.invoice.status is InvoiceStatus.PENDING else "refund not voided or allowed"
    last = f" (last error: {txn.invoice.error})" if txn.invoice.error else ""
    return (
        f"deposit {txn.transaction_id} of user {txn.user_id}: invoice {what} since {since.isoformat()}{last}"
    )


# --- JSON codec (the SQL adapter's column and the DynamoDB attribute share it) ---------------------


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.astimezone(UTC).isoformat()


def _parse(text: object) -> datetime | None:
    if text is None:
        return None
    if not isinstance(text, str):
        raise ValueError("invoice time must be an ISO-8601 string")
    return datetime.fromisoformat(text).astimezone(UTC)


def invoice_to_json(inv: InvoiceState) -> dict[str, Any]:
    """A JSON-ready object for the stores (every field, times ISO-8601 UTC)."""
    return {
        "status": str(inv.status),
        "buyer": dict(inv.buyer),
        "number": inv.number,
        "date": _iso(inv.date),
        "random_number": inv.random_number,
        "allowances": [
            {"allowance_no": a.allowance_no, "amount": a.amount, "date": _iso(a.date)} for a in inv.allowances
        ],
        "tries": inv.tries,
        "next_attempt_at": _iso(inv.next_attempt_at),
        "error": inv.error,
        "amount": inv.amount,
    }


def invoice_from_json(data: object) -> InvoiceState:
    """Inverse of :func:`invoice_to_json`; raises ValueError on a malformed object."""
    if not isinstance(data, Mapping):
        raise ValueError("invoice must be an object")
    try:
        buyer = data.get("buyer") or {}
        if not isinstance(buyer, Mapping) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in buyer.items()
        ):
            raise ValueError("invoice buyer must map strings to strings")
        allowances = tuple(
            InvoiceAllowance(str(a["allowance_no"]), int(a["amount"]), _parse(a["date"]) or _missing())
            for a in data.get("allowances") or ()
        )
        return InvoiceState(
            status=InvoiceStatus(data["status"]),
            buyer=MappingProxyType(dict(buyer)) if buyer else NO_BUYER,
            number=data.get("number"),
            date=_parse(data.get("date")),
            random_number=data.get("random_number"),
            allowances=allowances,
            tries=int(data.get("tries") or 0),
            next_attempt_at=_parse(data.get("next_attempt_at")),
            error=data.get("error"),
            amount=None if data.get("amount") is None else int(data["amount"]),
        )
    except (KeyError, TypeError) as exc:
        raise ValueError(f"malformed invoice: {exc}") from exc


def _missing() -> datetime:
    raise ValueError("allowance date is missing")


def dumps_invoice(inv: InvoiceState | None) -> str | None:
    """The stored text of an invoice state (None stays None)."""
    return None if inv is None else json.dumps(invoice_to_json(inv), sort_keys=True, ensure_ascii=False)


def loads_invoice(text: str | None) -> InvoiceState | None:
    """Inverse of :func:`dumps_invoice`."""
    return None if not text else invoice_from_json(json.loads(text))


def public_invoice(inv: InvoiceState | None) -> dict[str, Any] | None:
    """The ``invoice`` object of the transaction JSON: ``{number, date, random_number, status, ...}``."""
    if inv is None:
        return None
    return {
        "number": inv.number,
        "date": _iso(inv.date),
        "random_number": inv.random_number,
        "status": str(inv.status),
        "amount": inv.amount,
        "allowances": [
            {"allowance_no": a.allowance_no, "amount": a.amount, "date": _iso(a.date)} for a in inv.allowances
        ],
        "error": inv.error,
        "next_attempt_at": _iso(inv.next_attempt_at),
    }


def settings_dumps(settings: Mapping[str, str]) -> str | None:
    """The stored text of a user's invoice settings (None when there are none)."""
    return json.dumps(dict(settings), sort_keys=True, ensure_ascii=False) if settings else None


def settings_loads(text: str | None) -> Mapping[str, str]:
    """Inverse of :func:`settings_dumps`."""
    if not text:
        return NO_BUYER
    data = json.loads(text)
    if not isinstance(data, dict) or not all(isinstance(v, str) for v in data.values()):
        raise ValueError("invoice settings must map strings to strings")
    return MappingProxyType(data)
