"""Issue 13, the wallet side: the pure invoice decisions and the job against a fake e-invoice client.

The job runs on a real (SQLite) store so the writes are the ones the product makes; ECPay's e-invoice
service is a small fake that records every call and can time out or refuse on demand.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

import pytest

from ecpay_lambda.ecpay.einvoice import (
    AllowanceResult,
    CarrierType,
    InvoiceClient,
    InvoiceRecord,
    InvoiceRejected,
    IssuedInvoice,
    IssueRequest,
)
from ecpay_lambda.ecpay.errors import TransportError
from ecpay_lambda.store import open_store
from ecpay_lambda.wallet.attempts import with_attempts
from ecpay_lambda.wallet.errors import InvalidRequest
from ecpay_lambda.wallet.invoice_state import (
    InvoiceAllowance,
    InvoiceState,
    InvoiceStatus,
    invoice_due,
    on_paid,
    requested,
)
from ecpay_lambda.wallet.invoices import (
    BACKOFF_CAP,
    InvoiceService,
    InvoiceSettingsInvalid,
    backoff,
    buyer_from_settings,
    next_action,
    normalize_settings,
    relate_number,
    validate_settings,
)
from ecpay_lambda.wallet.models import (
    Attempt,
    AttemptState,
    PaymentMethod,
    Transaction,
    TransactionStatus,
    TransactionType,
    User,
    UserStatus,
)
from ecpay_lambda.wallet.outcomes import Change, EcpayOutcome, OutcomeKind, decide
from ecpay_lambda.wallet.port import AtomicWrite, TransactionPut, WalletStore

NOW = datetime(2026, 11, 27, 4, 0, tzinfo=UTC)  # Taipei: 27 Nov, filing period Nov-Dec
S = TransactionStatus


def _deposit(**kw: object) -> Transaction:
    base = Transaction(
        transaction_id="abcdefghijkl",
        user_id="u1",
        transaction_type=TransactionType.DEPOSIT,
        amount=1000,
        status=S.PAID,
        version=3,
        created_at=NOW - timedelta(hours=1),
        updated_at=NOW - timedelta(minutes=5),
        paid_at=NOW - timedelta(minutes=5),
    )
    return base._replace(**kw)  # type: ignore[arg-type]


ISSUED = InvoiceState(InvoiceStatus.ISSUED, number="AB12345678", date=NOW, random_number="1234")


# --- pure decisions ------------------------------------------------------------------------------


def test_relate_number_is_derived_from_the_deposit() -> None:
    txn = _deposit()
    assert relate_number(txn) == "Wabcdefghijkl" == relate_number(txn)
    assert relate_number(txn, "shop-1_") == "shop-1_abcdefghijkl"
    assert len(relate_number(txn, "x" * 18)) == 30
    with pytest.raises(ValueError):
        relate_number(txn, "x" * 19)  # 31 characters: ECPay's limit is 30
    with pytest.raises(ValueError):
        relate_number(txn, "a b")


def test_the_credit_write_turns_a_requested_invoice_pending() -> None:
    attempt = Attempt("abcdefghijkl0a1b2c3d", PaymentMethod.CREDIT, AttemptState.AWAITING_PAYMENT, NOW)
    unpaid = with_attempts(
        _deposit(status=S.PENDING, paid_at=None, invoice=requested({"kind": "donation"})), (attempt,)
    )
    oc = EcpayOutcome(
        kind=OutcomeKind.PAID,
        transaction_id=unpaid.transaction_id,
        merchant_trade_no=attempt.merchant_trade_no,
        merchant_id="3002607",
        amount=1000,
    )
    step = decide(unpaid, oc, NOW, merchant_id="3002607")
    assert isinstance(step, Change) and step.credits_money
    paid = step.puts[0].new
    assert paid.status is S.PAID
    assert paid.invoice is not None and paid.invoice.status is InvoiceStatus.PENDING
    assert dict(paid.invoice.buyer) == {"kind": "donation"}  # the per-deposit override is kept
    assert invoice_due(paid) == NOW  # due at once, in the same write as the credit
    # Without invoicing the deposit stays invoice-less; other states are never touched.
    assert on_paid(None) is None
    assert on_paid(ISSUED) is ISSUED


def test_next_action_issue_void_or_allowance() -> None:
    assert next_action(_deposit(invoice=InvoiceState(InvoiceStatus.PENDING)), NOW).kind == "issue"
    assert next_action(_deposit(invoice=ISSUED), NOW).kind == "none"
    assert next_action(_deposit(), NOW).kind == "none"
    full = _deposit(invoice=ISSUED, status=S.REFUNDED, refunded_amount=1000)
    assert next_action(full, NOW) == ("void", 1000)
    # The same full refund after the filing period (Nov-Dec) ended: an allowance instead.
    assert next_action(full, datetime(2027, 1, 2, tzinfo=UTC)) == ("allowance", 1000)
    partial = _deposit(invoice=ISSUED, status=S.PARTIALLY_REFUNDED, refunded_amount=300)
    assert next_action(partial, NOW) == ("allowance", 300)
    # The rest refunded later: an allowance for what is not credited back yet.
    allowed = ISSUED._replace(status=InvoiceStatus.ALLOWANCE, allowances=(InvoiceAllowance("A1", 300, NOW),))
    rest = _deposit(invoice=allowed, status=S.REFUNDED, refunded_amount=1000)
    assert next_action(rest, NOW) == ("allowance", 700)
    # A refund still being settled with ECPay is not confirmed: nothing yet.
    settling = _deposit(invoice=ISSUED, refunded_amount=1000, related_transaction_id="refund000001")
    assert next_action(settling, NOW).kind == "none" and invoice_due(settling) is None
    voided = _deposit(invoice=ISSUED._replace(status=InvoiceStatus.VOIDED), refunded_amount=1000)
    assert next_action(voided, NOW).kind == "none"


def test_backoff_doubles_and_is_capped() -> None:
    waits = [backoff(n) for n in range(1, 12)]
    assert waits[0] == timedelta(seconds=30) and waits[1] == timedelta(seconds=60)
    assert waits == sorted(waits) and waits[-1] == BACKOFF_CAP


@pytest.mark.parametrize(
    ("settings", "code"),
    [
        ({"kind": "company", "tax_id": "12345678", "name": "A", "address": "B"}, "invoice_tax_id_checksum"),
        ({"kind": "company", "tax_id": "1234", "name": "A", "address": "B"}, "invoice_tax_id_format"),
        ({"kind": "company", "tax_id": "04595257"}, "invoice_name_required"),
        ({"kind": "mobile_barcode", "carrier_num": "ABC"}, "invoice_mobile_barcode_format"),
        ({"kind": "mobile_barcode"}, "invoice_carrier_num_required"),
        ({"kind": "citizen_certificate", "carrier_num": "AB12"}, "invoice_citizen_certificate_format"),
        ({"kind": "donation", "love_code": "12"}, "invoice_love_code_format"),
        ({"kind": "donation"}, "invoice_love_code_required"),
        ({"kind": "email", "email": "not-an-email"}, "invoice_email_format"),
    ],
)
def test_each_settings_rule_has_its_code_and_an_explanation(settings: dict[str, str], code: str) -> None:
    with pytest.raises(InvoiceSettingsInvalid) as caught:
        validate_settings(normalize_settings(settings), "buyer@example.com")
    assert caught.value.code == code
    # An InvalidRequest: the API answers it 400 (tests/unit/api/test_invoicing.py checks over HTTP).
    assert isinstance(caught.value, InvalidRequest) and len(caught.value.message) > 10


def test_settings_are_normalized_and_unknown_kinds_refused() -> None:
    assert normalize_settings({"love_code": " 168001 ", "kind": "donation", "email": ""}) == {
        "kind": "donation",
        "love_code": "168001",
    }
    assert normalize_settings({}) == {"kind": "email"}
    with pytest.raises(InvoiceSettingsInvalid) as caught:
        normalize_settings({"kind": "paper"})
    assert caught.value.code == "invoice_kind" and "company" in caught.value.message
    with pytest.raises(InvoiceSettingsInvalid) as caught:
        normalize_settings({"kind": "email", "print": "1"})
    assert caught.value.code == "invoice_unknown_field"


def test_buyer_from_settings_maps_each_kind() -> None:
    company = buyer_from_settings(
        {"kind": "company", "tax_id": "04595257", "name": "Co", "address": "Taipei"}, "u@example.com"
    )
    assert (company.tax_id, company.print_paper, company.email) == ("04595257", True, "u@example.com")
    barcode = buyer_from_settings({"kind": "mobile_barcode", "carrier_num": "/ABC1234"}, "u@example.com")
    assert (barcode.carrier_type, barcode.carrier_num) == (CarrierType.MOBILE_BARCODE, "/ABC1234")
    donation = buyer_from_settings({"kind": "donation", "love_code": "168001"}, "u@example.com")
    assert donation.love_code == "168001" and donation.carrier_type is CarrierType.NONE
    plain = buyer_from_settings({}, "u@example.com")
    assert plain.carrier_type is CarrierType.ECPAY_MEMBER and plain.email == "u@example.com"
    for buyer in (company, barcode, donation, plain):
        buyer.validate()  # every kind builds a buyer ECPay accepts


# --- the job ------------------------------------------------------------------------------------


class FakeInvoices:
    """ECPay's e-invoice service in memory: records calls; ``fail_next`` makes the next call time out
    (after doing its work, when ``after_work``) or be refused."""

    def __init__(self) -> None:
        self.records: dict[str, dict[str, Any]] = {}
        self.calls: list[str] = []
        self.fail_next: str | None = None  # "timeout", "timeout_after_work", "reject"
        self.counter = 0

    def _maybe_fail(self, before_work: bool) -> None:
        if self.fail_next == "timeout" and before_work:
            self.fail_next = None
            raise TransportError("timed out")
        if self.fail_next == "reject" and before_work:
            self.fail_next = None
            raise InvoiceRejected(6000001, "refused")
        if self.fail_next == "timeout_after_work" and not before_work:
            self.fail_next = None
            raise TransportError("timed out after ECPay acted")

    def issue(self, request: IssueRequest) -> IssuedInvoice:
        self.calls.append("issue")
        self._maybe_fail(True)
        if request.relate_number in self.records:
            raise InvoiceRejected(4000003, "RelateNumber already used")
        self.counter += 1
        number = f"AB{self.counter:08d}"
        self.records[request.relate_number] = {
            "number": number,
            "amount": request.sales_amount,
            "buyer": request.buyer,
            "voided": False,
            "remaining": request.sales_amount,
        }
        self._maybe_fail(False)
        return IssuedInvoice(number, NOW, "0042")

    def get_issue(self, *, relate_number: str) -> InvoiceRecord | None:
        self.calls.append("get_issue")
        rec = self.records.get(relate_number)
        if rec is None:
            return None
        return InvoiceRecord(
            rec["number"], NOW, "0042", relate_number, rec["amount"], rec["voided"], rec["remaining"]
        )

    def _by_number(self, number: str) -> dict[str, Any]:
        return next(r for r in self.records.values() if r["number"] == number)

    def invalid(self, invoice_no: str, invoice_date: datetime, reason: str) -> None:
        self.calls.append("invalid")
        self._maybe_fail(True)
        self._by_number(invoice_no)["voided"] = True
        self._maybe_fail(False)

    def allowance(
        self, invoice_no: str, invoice_date: datetime, amount: int, items: object, *, buyer_email: str
    ) -> AllowanceResult:
        self.calls.append("allowance")
        self._maybe_fail(True)
        rec = self._by_number(invoice_no)
        rec["remaining"] -= amount
        self._maybe_fail(False)
        return AllowanceResult(f"2026112700000{len(self.calls):03d}", invoice_no, NOW, rec["remaining"])


@pytest.fixture
def store(tmp_path: Path) -> Iterator[WalletStore]:
    opened = open_store(f"sqlite:///{tmp_path / 'wallet.db'}")
    opened.ensure_schema()
    yield opened


@pytest.fixture
def fake() -> FakeInvoices:
    return FakeInvoices()


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def job(store: WalletStore, fake: FakeInvoices, clock: Clock) -> InvoiceService:
    return InvoiceService(store, cast(InvoiceClient, fake), clock=clock)


def _seed(store: WalletStore, **kw: object) -> Transaction:
    user = User("u1", "alice", "alice@example.com", 0, 0, UserStatus.ACTIVE, 0, NOW, NOW)
    if store.get_user("u1") is None:
        store.create_user(user)
    txn = _deposit(version=1, invoice=InvoiceState(InvoiceStatus.PENDING), **kw)
    store.commit(AtomicWrite(transactions=(TransactionPut(txn, 0),)))
    return txn


def _reload(store: WalletStore, txn: Transaction) -> Transaction:
    found = store.get_transaction(txn.transaction_id)
    assert found is not None
    return found


def test_a_pending_invoice_is_issued_once(
    store: WalletStore, fake: FakeInvoices, job: InvoiceService
) -> None:
    txn = _seed(store)
    report = job.run()
    assert (report.examined, report.issued) == (1, 1)
    inv = _reload(store, txn).invoice
    assert inv is not None and inv.status is InvoiceStatus.ISSUED and inv.number == "AB00000001"
    assert fake.records["Wabcdefghijkl"]["amount"] == 1000
    assert fake.records["Wabcdefghijkl"]["buyer"].email == "alice@example.com"  # the user's e-mail
    assert job.run().examined == 0  # nothing due any more
    assert fake.calls == ["issue"]


def test_a_timeout_after_issuing_is_resolved_by_get_issue_never_a_second_invoice(
    store: WalletStore, fake: FakeInvoices, job: InvoiceService, clock: Clock
) -> None:
    txn = _seed(store)
    fake.fail_next = "timeout_after_work"
    assert job.run().retry == 1
    inv = _reload(store, txn).invoice
    assert inv is not None and inv.status is InvoiceStatus.PENDING and inv.error == "timeout"
    assert inv.next_attempt_at == NOW + timedelta(seconds=30)
    assert job.run().examined == 0  # backing off
    clock.now += timedelta(seconds=31)
    assert job.run().issued == 1
    assert fake.calls == ["issue", "get_issue"]  # found, not issued again
    assert fake.counter == 1
    inv = _reload(store, txn).invoice
    assert inv is not None and inv.status is InvoiceStatus.ISSUED and inv.number == "AB00000001"


def test_a_timeout_before_ecpay_acted_issues_on_the_retry(
    store: WalletStore, fake: FakeInvoices, job: InvoiceService, clock: Clock
) -> None:
    txn = _seed(store)
    fake.fail_next = "timeout"
    job.run()
    clock.now += timedelta(minutes=5)
    assert job.run().issued == 1
    assert fake.calls == ["issue", "get_issue", "issue"] and fake.counter == 1
    assert _reload(store, txn).invoice.status is InvoiceStatus.ISSUED  # type: ignore[union-attr]


def test_a_refused_issue_is_failed_and_flagged(
    store: WalletStore, fake: FakeInvoices, job: InvoiceService
) -> None:
    txn = _seed(store)
    fake.fail_next = "reject"
    assert job.run().failed == 1
    inv = _reload(store, txn).invoice
    assert inv is not None and inv.status is InvoiceStatus.FAILED and inv.error is not None
    assert inv.error.startswith("rejected:6000001")
    assert job.run().examined == 0  # failed invoices wait for an operator, they are not retried blindly


def test_the_per_deposit_override_wins_over_the_user_settings(
    store: WalletStore, fake: FakeInvoices, job: InvoiceService
) -> None:
    txn = _seed(store)
    store.set_invoice_settings("u1", {"kind": "mobile_barcode", "carrier_num": "/ABC1234"}, NOW)
    override = InvoiceState(InvoiceStatus.PENDING, buyer={"kind": "donation", "love_code": "168001"})
    current = _reload(store, txn)
    store.commit(
        AtomicWrite(transactions=(TransactionPut(current._replace(version=2, invoice=override), 1),))
    )
    job.run()
    assert fake.records["Wabcdefghijkl"]["buyer"].love_code == "168001"
    other = _seed(store, transaction_id="mnopqrstuvwx")
    job.run()
    buyer = fake.records[relate_number(other)]["buyer"]
    assert (buyer.carrier_type, buyer.carrier_num) == (CarrierType.MOBILE_BARCODE, "/ABC1234")


def _refund(store: WalletStore, txn: Transaction, amount: int) -> Transaction:
    current = _reload(store, txn)
    total = current.refunded_amount + amount
    status = S.REFUNDED if total == current.amount else S.PARTIALLY_REFUNDED
    new = current._replace(version=current.version + 1, refunded_amount=total, status=status)
    store.commit(AtomicWrite(transactions=(TransactionPut(new, current.version),)))
    return new


def test_a_full_refund_voids_and_a_partial_one_allows(
    store: WalletStore, fake: FakeInvoices, job: InvoiceService
) -> None:
    full = _seed(store)
    part = _seed(store, transaction_id="mnopqrstuvwx")
    job.run()
    _refund(store, full, 1000)
    _refund(store, part, 250)
    report = job.run()
    assert (report.voided, report.allowances) == (1, 1)
    assert _reload(store, full).invoice.status is InvoiceStatus.VOIDED  # type: ignore[union-attr]
    assert fake.records["Wabcdefghijkl"]["voided"] is True
    inv = _reload(store, part).invoice
    assert inv is not None and inv.status is InvoiceStatus.ALLOWANCE
    assert [a.amount for a in inv.allowances] == [250]
    assert fake.records["Wmnopqrstuvwx"]["remaining"] == 750
    _refund(store, part, 750)  # the rest, later: a second allowance, never a void after an allowance
    assert job.run().allowances == 1
    inv = _reload(store, part).invoice
    assert inv is not None and [a.amount for a in inv.allowances] == [250, 750]
    assert job.run().examined == 0


def test_an_allowance_timeout_is_resolved_by_the_remaining_amount(
    store: WalletStore, fake: FakeInvoices, job: InvoiceService, clock: Clock
) -> None:
    txn = _seed(store)
    job.run()
    _refund(store, txn, 400)
    fake.fail_next = "timeout_after_work"
    assert job.run().retry == 1
    clock.now += timedelta(minutes=1)
    assert job.run().allowances == 1
    assert fake.calls.count("allowance") == 1  # found by GetIssue's remaining amount, not sent twice
    inv = _reload(store, txn).invoice
    assert inv is not None and [a.amount for a in inv.allowances] == [400]
