"""The e-invoice sandbox's record of every invoice it issued, with its allowances and voids."""

from __future__ import annotations

import json
import logging
import threading
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from .trades import write_atomically

log = logging.getLogger(__name__)

MAX_INVOICES = 10_000  # oldest invoices are forgotten past this (a local tool, not an archive)


@dataclass
class Allowance:
    """One allowance (折讓) against an invoice, as the sandbox issued it."""

    allowance_no: str
    amount: int
    date: datetime
    request: dict[str, Any]  # the decrypted Allowance payload
    voided: bool = False
    void_reason: str = ""
    voided_at: datetime | None = None

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready view."""
        data = asdict(self)
        data["date"] = self.date.isoformat()
        data["voided_at"] = self.voided_at.isoformat() if self.voided_at else None
        data["status"] = "voided" if self.voided else "issued"
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Allowance:
        """Inverse of :meth:`to_json`."""
        data = dict(data)
        data.pop("status", None)
        data["date"] = datetime.fromisoformat(data["date"])
        data["voided_at"] = datetime.fromisoformat(data["voided_at"]) if data.get("voided_at") else None
        return cls(**data)


@dataclass
class Invoice:
    """One issued B2C invoice: what the merchant sent (decrypted) and what happened to it."""

    merchant_id: str
    invoice_no: str
    relate_number: str
    invoice_date: datetime  # aware UTC (the sandbox's business time at issue)
    random_number: str
    sales_amount: int
    request: dict[str, Any]  # the decrypted Issue payload, as received
    voided: bool = False
    void_reason: str = ""
    voided_at: datetime | None = None
    allowances: list[Allowance] = field(default_factory=list)

    @property
    def status(self) -> str:
        """``issued`` or ``voided``."""
        return "voided" if self.voided else "issued"

    @property
    def allowed_amount(self) -> int:
        """The total of the allowances still in force."""
        return sum(a.amount for a in self.allowances if not a.voided)

    @property
    def remaining_amount(self) -> int:
        """What an allowance may still take back."""
        return self.sales_amount - self.allowed_amount

    def summary(self) -> dict[str, Any]:
        """The control API's list entry."""
        return {
            "merchant_id": self.merchant_id,
            "invoice_no": self.invoice_no,
            "relate_number": self.relate_number,
            "invoice_date": self.invoice_date.isoformat(),
            "random_number": self.random_number,
            "sales_amount": self.sales_amount,
            "status": self.status,
            "remaining_amount": self.remaining_amount,
            "allowances": len(self.allowances),
        }

    def to_json(self) -> dict[str, Any]:
        """The full record (the control API's answer and the file's entry)."""
        return {
            **self.summary(),
            "request": self.request,
            "void_reason": self.void_reason,
            "voided_at": self.voided_at.isoformat() if self.voided_at else None,
            "allowances": [a.to_json() for a in self.allowances],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Invoice:
        """Inverse of :meth:`to_json`."""
        return cls(
            merchant_id=data["merchant_id"],
            invoice_no=data["invoice_no"],
            relate_number=data["relate_number"],
            invoice_date=datetime.fromisoformat(data["invoice_date"]),
            random_number=data["random_number"],
            sales_amount=int(data["sales_amount"]),
            request=dict(data.get("request") or {}),
            voided=data.get("status") == "voided",
            void_reason=data.get("void_reason", ""),
            voided_at=datetime.fromisoformat(data["voided_at"]) if data.get("voided_at") else None,
            allowances=[Allowance.from_json(a) for a in data.get("allowances", [])],
        )


class InvoiceBook:
    """Thread-safe invoices by number, findable by (MerchantID, RelateNumber); optionally in a JSON file.

    Callers mutate invoices while holding :attr:`lock` and then call :meth:`save`.
    """

    def __init__(self, path: Path | None = None) -> None:
        self.path = path
        self.lock = threading.RLock()
        self._invoices: dict[str, Invoice] = {}
        self._by_relate: dict[tuple[str, str], str] = {}
        self.sequences: dict[str, int] = {}  # "MerchantID:YYYY-MM" (period start) -> last number used
        if path is not None and path.exists():
            self._load(path)

    def _load(self, path: Path) -> None:
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
            for entry in raw.get("invoices", []):
                self._put(Invoice.from_json(entry))
            self.sequences = {str(k): int(v) for k, v in raw.get("sequences", {}).items()}
        except (OSError, ValueError, KeyError, TypeError) as exc:
            log.warning("ignoring unreadable e-invoice sandbox state %s: %s", path, exc)
            self._invoices.clear()
            self._by_relate.clear()

    def _put(self, invoice: Invoice) -> None:
        self._invoices[invoice.invoice_no] = invoice
        self._by_relate[(invoice.merchant_id, invoice.relate_number)] = invoice.invoice_no

    def add(self, invoice: Invoice) -> bool:
        """Keep a new invoice; False when its RelateNumber is already used by the merchant."""
        with self.lock:
            if (invoice.merchant_id, invoice.relate_number) in self._by_relate:
                return False
            self._put(invoice)
            while len(self._invoices) > MAX_INVOICES:
                oldest = next(iter(self._invoices.values()))
                del self._invoices[oldest.invoice_no]
                self._by_relate.pop((oldest.merchant_id, oldest.relate_number), None)
            self.save()
            return True

    def get(self, invoice_no: str) -> Invoice | None:
        """The invoice with this number."""
        with self.lock:
            return self._invoices.get(invoice_no)

    def by_relate_number(self, merchant_id: str, relate_number: str) -> Invoice | None:
        """The merchant's invoice with this RelateNumber."""
        with self.lock:
            number = self._by_relate.get((merchant_id, relate_number))
            return self._invoices.get(number) if number else None

    def all(self) -> list[Invoice]:
        """Every invoice, newest first."""
        with self.lock:
            return list(reversed(self._invoices.values()))

    def next_number(self, key: str) -> int:
        """The next sequence number under ``key`` (call with the lock held; saved with the invoice)."""
        with self.lock:
            value = self.sequences.get(key, 0) + 1
            self.sequences[key] = value
            return value

    def clear(self) -> None:
        """Forget every invoice."""
        with self.lock:
            self._invoices.clear()
            self._by_relate.clear()
            self.sequences.clear()
            self.save()

    def save(self) -> None:
        """Write the file atomically (no-op without a path)."""
        if self.path is None:
            return
        with self.lock:
            payload = json.dumps(
                {"invoices": [i.to_json() for i in self._invoices.values()], "sequences": self.sequences},
                ensure_ascii=False,
            )
            write_atomically(self.path, payload, prefix=".einvoice-")
