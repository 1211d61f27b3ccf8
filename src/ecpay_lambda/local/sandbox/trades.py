"""The sandbox's own record of every trade, its payment codes, refunds and callback attempts."""

from __future__ import annotations

import json
import logging
import os
import tempfile
import threading
from dataclasses import asdict, dataclass, field
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

from .capture import STATUS_TEXT, CardState

log = logging.getLogger(__name__)

MAX_TRADES = 10_000  # oldest trades are forgotten past this (a local tool, not an archive)
_DATETIMES = ("trade_date", "payment_date", "expire_at", "card_state_since")


class TradeStatus(StrEnum):
    """Where a sandbox trade is: ECPay's view of the order, not the wallet's."""

    CREATED = "created"  # checkout accepted; the shopper is on the payment page
    CODE_ISSUED = "code_issued"  # ATM/CVS/BARCODE code issued, waiting for the shopper to pay
    PAID = "paid"
    FAILED = "failed"
    EXPIRED = "expired"


@dataclass
class CallbackAttempt:
    """One delivery (or dropped delivery) of a server-to-server notification, with the merchant's answer."""

    kind: str  # "return" (ReturnURL), "payment_info" (PaymentInfoURL), "period_return" (PeriodReturnURL)
    url: str
    attempt: int  # 1 = first delivery, 2..5 = retries
    at: str  # ISO-8601 UTC
    fields: dict[str, str]  # exactly what was (or would have been) posted, CheckMacValue included
    status: int | None = None
    body: str = ""
    ok: bool = False  # HTTP 200 with body exactly "1|OK"
    dropped: bool = False  # not sent: the drop_callbacks switch was on
    error: str | None = None  # connection error, if any
    series: int = 0  # attempts of one notification share a series number


@dataclass
class Trade:
    """One AioCheckOut order as ECPay keeps it."""

    merchant_id: str
    merchant_trade_no: str
    trade_no: str
    amount: int
    choose_payment: str  # as requested: Credit, ATM, CVS, BARCODE, ALL, ...
    params: dict[str, str]  # every received checkout field except CheckMacValue
    trade_date: datetime
    status: TradeStatus = TradeStatus.CREATED
    method: str | None = None  # the method in use (the chosen one for ALL)
    payment_type: str = ""  # reply type, e.g. Credit_CreditCard, ATM_TAISHIN
    payment_date: datetime | None = None
    payment_info: dict[str, str] = field(default_factory=dict)  # BankCode, vAccount, PaymentNo, ...
    expire_at: datetime | None = None
    code_issued: bool = False
    rtn_code: str = ""  # last result code (failure code when failed)
    rtn_msg: str = ""
    refunded_amount: int = 0
    actions: list[dict[str, Any]] = field(default_factory=list)  # every DoAction, refused ones too
    # Card trades once paid: the capture state, when it was entered (see ``capture``), what the
    # daily close captured, and QueryTrade/V2's close_data entries.
    card_state: CardState | None = None
    card_state_since: datetime | None = None
    captured_amount: int = 0
    close_data: list[dict[str, Any]] = field(default_factory=list)
    # Periodic (定期定額) trades: one entry per charge, in QueryCreditCardPeriodInfo's ExecLog shape.
    period_executions: list[dict[str, Any]] = field(default_factory=list)
    period_cancelled: bool = False
    events: list[dict[str, str]] = field(default_factory=list)  # what happened, for people
    callbacks: list[CallbackAttempt] = field(default_factory=list)
    simulated_notices: int = 0
    series_count: int = 0

    @property
    def key(self) -> tuple[str, str]:
        """(MerchantID, MerchantTradeNo): unique forever."""
        return (self.merchant_id, self.merchant_trade_no)

    @property
    def gwsr(self) -> str:
        """The card authorisation serial (empty until a card payment): QueryTrade/V2's CreditRefundId."""
        return self.payment_info.get("gwsr", "")

    @property
    def is_periodic(self) -> bool:
        """A 定期定額 order (checked out with PeriodType and friends)."""
        return bool(self.params.get("PeriodType"))

    @property
    def remaining_amount(self) -> int:
        """What is left to refund."""
        return self.amount - self.refunded_amount

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready view (the control API's answer)."""
        data = asdict(self)
        for name in _DATETIMES:
            value = getattr(self, name)
            data[name] = value.isoformat() if value else None
        data["status"] = str(self.status)
        data["card_state"] = str(self.card_state) if self.card_state else None
        data["card_status"] = STATUS_TEXT[self.card_state] if self.card_state else None
        data["remaining_amount"] = self.remaining_amount
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Trade:
        """Inverse of :meth:`to_json`."""
        data = dict(data)
        data.pop("remaining_amount", None)
        data.pop("card_status", None)
        for name in _DATETIMES:
            value = data.get(name)
            data[name] = datetime.fromisoformat(value) if value else None
        data["status"] = TradeStatus(data["status"])
        data["card_state"] = CardState(data["card_state"]) if data.get("card_state") else None
        data["callbacks"] = [CallbackAttempt(**c) for c in data.get("callbacks", [])]
        return cls(**data)


class TradeBook:
    """Thread-safe trades by (MerchantID, MerchantTradeNo), optionally persisted to a JSON file.

    Callers mutate trades while holding :attr:`lock` and then call :meth:`save`.
    """

    def __init__(self, path: Path | None = None) -> None:
        self.path = path
        self.lock = threading.RLock()
        self._trades: dict[tuple[str, str], Trade] = {}
        if path is not None and path.exists():
            self._load(path)

    def _load(self, path: Path) -> None:
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
            for item in raw.get("trades", []):
                trade = Trade.from_json(item)
                self._trades[trade.key] = trade
        except (OSError, ValueError, TypeError, KeyError) as exc:
            # A corrupt sandbox file must not stop the stack: start empty and say so.
            log.warning("ignoring unreadable sandbox state %s: %s", path, exc)
            self._trades.clear()

    def add(self, trade: Trade) -> bool:
        """Store a new trade; False if its (MerchantID, MerchantTradeNo) was used before."""
        with self.lock:
            if trade.key in self._trades:
                return False
            self._trades[trade.key] = trade
            while len(self._trades) > MAX_TRADES:
                self._trades.pop(next(iter(self._trades)))
            self.save()
            return True

    def get(self, merchant_id: str, merchant_trade_no: str) -> Trade | None:
        """One trade of one merchant."""
        with self.lock:
            return self._trades.get((merchant_id, merchant_trade_no))

    def find(self, merchant_trade_no: str) -> Trade | None:
        """A trade by MerchantTradeNo alone (the control API's lookup)."""
        with self.lock:
            for trade in self._trades.values():
                if trade.merchant_trade_no == merchant_trade_no:
                    return trade
            return None

    def find_by_gwsr(self, merchant_id: str, gwsr: str) -> Trade | None:
        """The card trade of one merchant whose authorisation serial is ``gwsr``."""
        with self.lock:
            for trade in self._trades.values():
                if trade.merchant_id == merchant_id and trade.gwsr and trade.gwsr == gwsr:
                    return trade
            return None

    def gwsr_in_use(self, gwsr: str) -> bool:
        """True if any trade already has this authorisation serial."""
        with self.lock:
            return any(trade.gwsr == gwsr for trade in self._trades.values())

    def all(self) -> list[Trade]:
        """Every trade, newest first."""
        with self.lock:
            return list(reversed(self._trades.values()))

    def clear(self) -> None:
        """Forget every trade."""
        with self.lock:
            self._trades.clear()
            self.save()

    def save(self) -> None:
        """Write the file atomically (no-op without a path)."""
        if self.path is None:
            return
        with self.lock:
            payload = json.dumps({"trades": [t.to_json() for t in self._trades.values()]}, ensure_ascii=False)
            write_atomically(self.path, payload, prefix=".sandbox-")


def write_atomically(path: Path, text: str, *, prefix: str) -> None:
    """Replace ``path`` with ``text`` in one step (a temporary file, then ``os.replace``)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=prefix, dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(tmp, path)
    except OSError:
        Path(tmp).unlink(missing_ok=True)
        raise
