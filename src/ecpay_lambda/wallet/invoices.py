"""B2C e-invoices for paid deposits (issue 13): the pure decisions and the job that carries them out.

What is issued when:

* A deposit made while invoicing is on carries ``invoice.status = "requested"``; the credit's own atomic
  write turns it ``pending`` (``invoice_state.on_paid``), never the notification's ``1|OK`` path.
* :class:`InvoiceService.run` (the local worker, the scheduled function, ``ecpay-lambda invoices``)
  takes the deposits whose invoice work is due (``WalletStore.list_invoices_due``) and issues ONE invoice
  per deposit with a RelateNumber derived from the deposit. A timeout or an unreadable answer is resolved
  with GetIssue on that RelateNumber before anything is sent again, so a retry can only find the same
  invoice, never issue a second one.
* After ECPay confirms a refund, the deposit's ``refunded_amount`` exceeds what its invoice credited back:
  a full refund within the invoice's filing period voids it, anything else is an allowance (折讓) of the
  refunded amount.
* Transport failures back off (``next_attempt_at``); a request ECPay refuses marks the invoice ``failed``
  with ECPay's code and message, for an operator (audit reports it, metrics count it).

Imports the e-invoice library, so it is never on the notification Lambda's import path.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Literal, NamedTuple

from ..ecpay.einvoice import (
    Buyer,
    CarrierType,
    InvoiceClient,
    InvoiceRejected,
    InvoiceRuleError,
    IssueRequest,
    Item,
    can_void,
)
from ..ecpay.errors import EcpayError
from . import errors
from .invoice_state import (
    InvoiceAllowance,
    InvoiceState,
    InvoiceStatus,
    refund_owed,
)
from .models import Transaction, User
from .port import AtomicWrite, Decision, Reads, TransactionPut, WalletStore
from .retry import retry_on_conflict

# --- buyer settings ---------------------------------------------------------------------------------

# How the buyer receives the invoice. Each kind uses some of the fields below; the rest must be empty.
BUYER_KINDS: Mapping[str, str] = {
    "email": "an e-mail notice; ECPay keeps the invoice in its member carrier for the e-mail address",
    "mobile_barcode": "the buyer's mobile barcode carrier (手機條碼), '/' and 7 characters",
    "citizen_certificate": "the buyer's citizen digital certificate carrier (自然人憑證)",
    "ecpay_member": "ECPay's member carrier (綠界會員載具)",
    "donation": "donated to a charity by its love code (捐贈碼)",
    "company": "a company invoice with its tax ID (統一編號), printed and posted",
}
SETTING_FIELDS = ("kind", "email", "carrier_num", "love_code", "tax_id", "name", "address")
MAX_SETTING_LENGTH = 200


class InvoiceSettingsInvalid(errors.InvalidRequest):
    """Buyer invoice settings break a rule; ``code`` names it (``invoice_<rule>``)."""

    code = "invoice_settings_invalid"

    def __init__(self, rule: str, message: str) -> None:
        super().__init__(message)
        self.code = f"invoice_{rule}"


def normalize_settings(data: Mapping[str, object]) -> dict[str, str]:
    """The stored form of buyer settings (known fields, stripped strings, empties dropped).

    Raises :class:`InvoiceSettingsInvalid` for an unknown kind or field or a non-string value. The
    invoice rules themselves are checked by :func:`validate_settings`.
    """
    unknown = sorted(set(data) - set(SETTING_FIELDS))
    if unknown:
        raise InvoiceSettingsInvalid(
            "unknown_field", f"unknown invoice setting {unknown[0]!r}; known: {', '.join(SETTING_FIELDS)}"
        )
    out: dict[str, str] = {}
    for name in SETTING_FIELDS:
        value = data.get(name)
        if value is None:
            continue
        if not isinstance(value, str):
            raise InvoiceSettingsInvalid("field_type", f"invoice setting {name!r} must be a string")
        value = value.strip()
        if len(value) > MAX_SETTING_LENGTH:
            raise InvoiceSettingsInvalid("field_length", f"invoice setting {name!r} is too long")
        if value:
            out[name] = value
    kind = out.get("kind", "email")
    if kind not in BUYER_KINDS:
        choices = "; ".join(f"{k}: {v}" for k, v in BUYER_KINDS.items())
        raise InvoiceSettingsInvalid("kind", f"unknown invoice kind {kind!r}; choose one of — {choices}")
    out["kind"] = kind
    return out


def buyer_from_settings(settings: Mapping[str, str], fallback_email: str) -> Buyer:
    """The library's ``Buyer`` for stored settings (the user's e-mail when the settings name none)."""
    kind = settings.get("kind", "email")
    email = settings.get("email") or fallback_email
    name = settings.get("name", "")
    if kind == "company":
        return Buyer(
            email=email,
            name=name,
            address=settings.get("address", ""),
            tax_id=settings.get("tax_id", ""),
            print_paper=True,
        )
    carriers = {
        "mobile_barcode": CarrierType.MOBILE_BARCODE,
        "citizen_certificate": CarrierType.CITIZEN_CERTIFICATE,
        "ecpay_member": CarrierType.ECPAY_MEMBER,
        # A plain e-mail invoice is kept in ECPay's member carrier and announced by e-mail.
        "email": CarrierType.ECPAY_MEMBER,
    }
    if kind == "donation":
        return Buyer(email=email, name=name, love_code=settings.get("love_code", ""))
    return Buyer(
        email=email,
        name=name,
        carrier_type=carriers[kind],
        carrier_num=settings.get("carrier_num", "")
        if kind in ("mobile_barcode", "citizen_certificate")
        else "",
    )


def resolve_settings(user: User, override: Mapping[str, str]) -> Mapping[str, str]:
    """The settings an invoice uses: the deposit's override when it has one, else the user's."""
    return override if override else user.invoice_settings


def validate_settings(
    settings: Mapping[str, str], fallback_email: str, client: InvoiceClient | None = None
) -> None:
    """Raise :class:`InvoiceSettingsInvalid` when ECPay would refuse an invoice for these settings.

    The library checks each rule (tax ID checksum, carrier formats, donation vs tax ID, print); with
    ``client``, a mobile barcode and a love code are also asked of ECPay (CheckBarcode, CheckLoveCode).
    """
    kind = settings.get("kind", "email")
    needs = {"mobile_barcode": "carrier_num", "citizen_certificate": "carrier_num", "donation": "love_code"}
    needs_company = ("tax_id", "name", "address")
    required = needs_company if kind == "company" else ((needs[kind],) if kind in needs else ())
    for name in required:
        if not settings.get(name):
            raise InvoiceSettingsInvalid(f"{name}_required", f"an invoice of kind {kind!r} needs {name!r}")
    buyer = buyer_from_settings(settings, fallback_email)
    try:
        buyer.validate()
    except InvoiceRuleError as exc:
        raise InvoiceSettingsInvalid(exc.code, exc.message) from None
    if client is None:
        return
    try:
        if kind == "mobile_barcode" and not client.check_barcode(buyer.carrier_num):
            raise InvoiceSettingsInvalid(
                "barcode_unknown",
                f"ECPay does not know the mobile barcode {buyer.carrier_num!r} (CheckBarcode)",
            )
        if kind == "donation" and not client.check_love_code(buyer.love_code):
            raise InvoiceSettingsInvalid(
                "love_code_unknown", f"no charity has the love code {buyer.love_code!r} (CheckLoveCode)"
            )
    except EcpayError as exc:
        raise errors.PaymentGatewayError(
            f"ECPay's e-invoice service could not check the carrier or love code now ({type(exc).__name__})"
        ) from None


# --- pure decisions ---------------------------------------------------------------------------------

ITEM_NAME = "儲值點數"  # what the deposit sells: wallet points (one line, the whole amount)
ITEM_WORD = "點"
REFUND_REASON = "refund"
BACKOFF_BASE = timedelta(seconds=30)
BACKOFF_CAP = timedelta(hours=1)
FAR_FUTURE = datetime(9999, 1, 1, tzinfo=UTC)


def relate_number(txn: Transaction, prefix: str = "W") -> str:
    """The deposit's RelateNumber: ``prefix`` + transaction id (≤ 30 characters, deterministic).

    Deterministic so a retry after a timeout can only find (GetIssue) or repeat the same invoice:
    ECPay refuses a second Issue with the same RelateNumber. ``prefix`` separates deployments that
    share an invoice merchant (the public test merchant 2000132 is shared by everyone on stage).
    """
    number = f"{prefix}{txn.transaction_id}"
    if len(number) > 30 or not number.isascii() or not number.replace("_", "").replace("-", "").isalnum():
        raise ValueError("RelateNumber prefix + transaction id must be ≤ 30 letters, digits, '-' or '_'")
    return number


class Action(NamedTuple):
    """What the job does to one deposit's invoice now."""

    kind: Literal["issue", "void", "allowance", "none"]
    amount: int = 0


def next_action(txn: Transaction, now: datetime) -> Action:
    """Issue a pending invoice; after a confirmed refund, void (in full, in the filing period) or allow."""
    inv = txn.invoice
    if inv is None:
        return Action("none")
    if inv.status is InvoiceStatus.PENDING:
        return Action("issue", txn.amount)
    owed = refund_owed(txn)
    if owed <= 0:
        return Action("none")
    full = owed == txn.amount and not inv.allowances
    if full and inv.date is not None and can_void(inv.date, now):
        return Action("void", owed)
    return Action("allowance", owed)


def backoff(tries: int) -> timedelta:
    """The wait before try ``tries + 1`` after ``tries`` failures: 30 s doubling, at most an hour."""
    wait: timedelta = BACKOFF_BASE * (2 ** max(min(tries, 20) - 1, 0))
    return min(wait, BACKOFF_CAP)


def _retry_later(inv: InvoiceState, now: datetime, error: str) -> InvoiceState:
    tries = inv.tries + 1
    return inv._replace(tries=tries, next_attempt_at=now + backoff(tries), error=error)


def _failed(inv: InvoiceState, error: str) -> InvoiceState:
    return inv._replace(status=InvoiceStatus.FAILED, next_attempt_at=None, error=error)


def _done(inv: InvoiceState, **changes: object) -> InvoiceState:
    return inv._replace(tries=0, next_attempt_at=None, error=None, **changes)  # type: ignore[arg-type]


# --- the job ----------------------------------------------------------------------------------------


class InvoiceRunReport(NamedTuple):
    """What one run of the invoice job did."""

    examined: int = 0
    issued: int = 0
    voided: int = 0
    allowances: int = 0
    retry: int = 0  # transport failures, tried again later
    failed: int = 0  # ECPay refused: flagged for an operator
    stopped_early: bool = False

    def to_dict(self) -> dict[str, object]:
        """JSON-ready counts."""
        return dict(self._asdict())


Outcome = Literal["issued", "voided", "allowance", "retry", "failed", "skipped"]


class InvoiceService:
    """Carries out the invoice work of deposits: issue, void, allowance, with backoff."""

    def __init__(
        self,
        store: WalletStore,
        client: InvoiceClient,
        *,
        clock: Callable[[], datetime] | None = None,
        relate_prefix: str = "W",
    ) -> None:
        self.store = store
        self.client = client
        self.relate_prefix = relate_prefix
        self._clock = clock or (lambda: datetime.now(UTC))

    def now(self) -> datetime:
        """The injected clock's time (aware UTC)."""
        return self._clock().astimezone(UTC)

    def run(
        self, *, limit: int = 50, deadline: float | None = None, ignore_schedule: bool = False
    ) -> InvoiceRunReport:
        """Process the most overdue invoice work: at most ``limit``, none after ``deadline`` (monotonic)."""
        counts = dict.fromkeys(("issued", "voided", "allowance", "retry", "failed", "skipped"), 0)
        # ignore_schedule (``invoices --now``): everything with work pending, backoff or not.
        horizon = FAR_FUTURE if ignore_schedule else self.now()
        due = self.store.list_invoices_due(due_before=horizon, limit=limit)
        stopped = False
        examined = 0
        for txn in due:
            if deadline is not None and time.monotonic() >= deadline:
                stopped = True
                break
            examined += 1
            counts[self.process(txn)] += 1
        return InvoiceRunReport(
            examined=examined,
            issued=counts["issued"],
            voided=counts["voided"],
            allowances=counts["allowance"],
            retry=counts["retry"],
            failed=counts["failed"],
            stopped_early=stopped,
        )

    def process(self, txn: Transaction) -> Outcome:
        """Do the due work of one deposit and record it (compare-and-set on the deposit)."""
        now = self.now()
        action = next_action(txn, now)
        if action.kind == "none" or txn.invoice is None:
            return "skipped"
        if action.kind == "issue":
            new, outcome = self._issue(txn, txn.invoice, now)
        elif action.kind == "void":
            new, outcome = self._void(txn, txn.invoice, now)
        else:
            new, outcome = self._allowance(txn, txn.invoice, action.amount, now)
        self._record(txn, action, new)
        return outcome

    # -- actions (each returns the new invoice state; none writes) ------------------------------

    def _issue(self, txn: Transaction, inv: InvoiceState, now: datetime) -> tuple[InvoiceState, Outcome]:
        number = relate_number(txn, self.relate_prefix)
        try:
            if inv.tries > 0:
                # An earlier try may have reached ECPay (timeout): find it before sending again.
                found = self.client.get_issue(relate_number=number)
                if found is not None:
                    return self._issued(
                        inv, found.invoice_no, found.invoice_date, found.random_number, found.sales_amount
                    )
            user = self.store.get_user(txn.user_id)
            if user is None:
                return _failed(inv, "user_missing"), "failed"
            buyer = buyer_from_settings(resolve_settings(user, inv.buyer), user.email)
            request = IssueRequest(
                relate_number=number,
                buyer=buyer,
                items=(Item(ITEM_NAME, 1, ITEM_WORD, txn.amount, txn.amount),),
                sales_amount=txn.amount,
            )
            issued = self.client.issue(request)
        except InvoiceRuleError as exc:
            return _failed(inv, f"rule:{exc.code} {exc.message}"), "failed"
        except InvoiceRejected as exc:
            # A refused Issue may be "RelateNumber already used": the first try did issue it.
            return self._after_rejection(inv, number, exc)
        except EcpayError as exc:
            return _retry_later(inv, now, _transport_label(exc)), "retry"
        return self._issued(inv, issued.invoice_no, issued.invoice_date, issued.random_number, txn.amount)

    def _after_rejection(
        self, inv: InvoiceState, number: str, exc: InvoiceRejected
    ) -> tuple[InvoiceState, Outcome]:
        try:
            found = self.client.get_issue(relate_number=number)
        except EcpayError:
            return _retry_later(inv, self.now(), f"rejected:{exc.rtn_code} then GetIssue failed"), "retry"
        if found is not None:
            return self._issued(
                inv, found.invoice_no, found.invoice_date, found.random_number, found.sales_amount
            )
        return _failed(inv, f"rejected:{exc.rtn_code} {exc.rtn_msg}"), "failed"

    @staticmethod
    def _issued(
        inv: InvoiceState, number: str, date: datetime, random_number: str, amount: int
    ) -> tuple[InvoiceState, Outcome]:
        state = _done(
            inv,
            status=InvoiceStatus.ISSUED,
            number=number,
            date=date,
            random_number=random_number,
            amount=amount,
        )
        return state, "issued"

    def _void(self, txn: Transaction, inv: InvoiceState, now: datetime) -> tuple[InvoiceState, Outcome]:
        assert inv.number is not None and inv.date is not None
        try:
            if inv.tries > 0:
                found = self.client.get_issue(relate_number=relate_number(txn, self.relate_prefix))
                if found is not None and found.voided:
                    return _done(inv, status=InvoiceStatus.VOIDED), "voided"
            self.client.invalid(inv.number, inv.date, REFUND_REASON)
        except InvoiceRejected as exc:
            return _failed(inv, f"rejected:{exc.rtn_code} {exc.rtn_msg}"), "failed"
        except EcpayError as exc:
            return _retry_later(inv, now, _transport_label(exc)), "retry"
        return _done(inv, status=InvoiceStatus.VOIDED), "voided"

    def _allowance(
        self, txn: Transaction, inv: InvoiceState, amount: int, now: datetime
    ) -> tuple[InvoiceState, Outcome]:
        assert inv.number is not None and inv.date is not None
        expected_remaining = txn.amount - inv.credited(txn.amount) - amount
        try:
            if inv.tries > 0:
                # An earlier try may have reached ECPay: its remaining amount tells whether it did.
                found = self.client.get_issue(relate_number=relate_number(txn, self.relate_prefix))
                if found is not None and found.remaining_allowance_amount == expected_remaining:
                    recovered = InvoiceAllowance("", amount, now)
                    state = _done(
                        inv, status=InvoiceStatus.ALLOWANCE, allowances=(*inv.allowances, recovered)
                    )
                    return state._replace(error="allowance number unknown (found by GetIssue)"), "allowance"
            user = self.store.get_user(txn.user_id)
            email = (
                ""
                if user is None
                else buyer_from_settings(resolve_settings(user, inv.buyer), user.email).email
            )
            result = self.client.allowance(
                inv.number,
                inv.date,
                amount,
                (Item(ITEM_NAME, 1, ITEM_WORD, amount, amount),),
                buyer_email=email,
            )
        except InvoiceRejected as exc:
            return _failed(inv, f"rejected:{exc.rtn_code} {exc.rtn_msg}"), "failed"
        except InvoiceRuleError as exc:
            return _failed(inv, f"rule:{exc.code} {exc.message}"), "failed"
        except EcpayError as exc:
            return _retry_later(inv, now, _transport_label(exc)), "retry"
        allowance = InvoiceAllowance(result.allowance_no, amount, result.date)
        state = _done(inv, status=InvoiceStatus.ALLOWANCE, allowances=(*inv.allowances, allowance))
        return state, "allowance"

    # -- the write ----------------------------------------------------------------------------

    def _record(self, txn: Transaction, action: Action, new: InvoiceState) -> None:
        """Write ``new`` on the deposit; after a concurrent change, on the fresh one if still due.

        What ECPay did must not be lost: an invoice issued (or voided, allowed) is recorded even when the
        deposit changed meanwhile (e.g. a refund started), as long as the same work was still due.
        """

        def step() -> None:
            now = self.now()
            return self.store.run(
                Reads((txn.transaction_id,)),
                lambda snap: decide_invoice_write(
                    snap.transactions.get(txn.transaction_id), txn.invoice, new, now
                ),
            )

        def kept_changing() -> None:
            raise errors.Conflict(
                f"deposit {txn.transaction_id} keeps changing; its invoice is retried later"
            )

        retry_on_conflict(step, kept_changing, attempts=10)


def decide_invoice_write(
    current: Transaction | None, seen: InvoiceState | None, new: InvoiceState, now: datetime
) -> Decision[None]:
    """Write ``new`` on the deposit if its invoice is still the one the job worked from (``seen``);
    otherwise someone else did this invoice's work meanwhile, and theirs stands."""
    if current is None or current.invoice != seen:
        return Decision(None)
    updated = current._replace(version=current.version + 1, updated_at=now, invoice=new)
    return Decision(None, AtomicWrite(transactions=(TransactionPut(updated, current.version),)))


def _transport_label(exc: EcpayError) -> str:
    name = type(exc).__name__
    return "timeout" if name in ("TransportError",) else f"unavailable:{name}"


# --- use cases of the buyer settings ----------------------------------------------------------------


def checked_settings(
    store: WalletStore, user_id: str, data: Mapping[str, object], client: InvoiceClient | None
) -> dict[str, str]:
    """Normalized, validated buyer settings for ``user_id`` (a deposit override, or to store).

    ``NotFound`` for an unknown user; :class:`InvoiceSettingsInvalid` with the rule's code otherwise.
    """
    user = store.get_user(user_id)
    if user is None:
        raise errors.NotFound(f"user {user_id} not found")
    settings = normalize_settings(data)
    validate_settings(settings, user.email, client)
    return settings


def update_invoice_settings(
    store: WalletStore,
    user_id: str,
    data: Mapping[str, object],
    *,
    client: InvoiceClient | None,
    now: datetime,
) -> User:
    """Validate and store a user's buyer settings; the updated user."""
    settings = checked_settings(store, user_id, data, client)
    user = store.set_invoice_settings(user_id, settings, now)
    if user is None:
        raise errors.NotFound(f"user {user_id} not found")
    return user
