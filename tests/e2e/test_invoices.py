"""Issue 13 over HTTP against ``ecpay-lambda serve``: one B2C e-invoice per paid deposit.

The module's own stack runs with the invoice worker off (``INVOICE_WORKER_SECONDS=0``): a paid deposit
then stays ``pending`` exactly as after a crash between the credit and the invoice, and ``ecpay-lambda
invoices`` (the job, by hand) issues it. The offline e-invoice sandbox on the same port keeps what it
issued (``GET /sandbox/api/invoices/{number}``: the decrypted request, its state, its allowances). One
test uses the session's stack, whose worker issues invoices by itself.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.e2e.conftest import Http, Wallet
from tests.support.stack_plugin import LocalStack, start_local_stack, stop_local_stack

REPO_ROOT = Path(__file__).resolve().parents[2]
WAIT = 30.0  # seconds: a bound for the background worker on a loaded machine, never asserted on


@pytest.fixture(scope="module")
def manual_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    """A stack whose invoice worker is off: invoices wait for ``ecpay-lambda invoices``."""
    stack = start_local_stack(tmp_path_factory.mktemp("invoices"), {"INVOICE_WORKER_SECONDS": "0"})
    try:
        yield stack
    finally:
        stop_local_stack(stack.process)


@pytest.fixture
def manual(manual_stack: LocalStack) -> Wallet:
    return Wallet(Http(manual_stack.base_url))


def run_job(stack: LocalStack) -> dict[str, Any]:
    """``ecpay-lambda invoices --json`` against the stack (its sandbox, store and clock)."""
    env = {k: v for k, v in stack.env.items() if k not in ("ECPAY_BASE_URL",)}
    data_dir = Path(stack.store_url.removeprefix("sqlite:///")).parent
    done = subprocess.run(
        [sys.executable, "-m", "ecpay_lambda.cli", "invoices", "--json", "--data-dir", str(data_dir)],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode in (0, 1), (done.stdout, done.stderr)
    report: dict[str, Any] = json.loads(done.stdout)
    return report


def paid_deposit(stack: LocalStack, wallet: Wallet, amount: int, **body: Any) -> tuple[str, str, str]:
    """A card deposit paid in the sandbox: (user id, transaction id, MerchantTradeNo)."""
    user_id = wallet.create_user()
    payload = {"transaction_type": "deposit", "amount": amount, "payment_method": "Credit", **body}
    created = wallet.http.json("POST", f"/users/{user_id}/transactions", payload)
    assert created.status == 201, created.text
    tid = created.json()["transaction_id"]
    assert created.json()["invoice"]["status"] == "requested"
    mtn, _ = wallet.open_payment_page(user_id, tid, "Credit")
    stack.sandbox.pay(mtn)
    assert wallet.transaction(user_id, tid)["status"] == "paid"
    return user_id, tid, mtn


def sandbox_invoice(wallet: Wallet, number: str) -> dict[str, Any]:
    reply = wallet.http.json("GET", f"/sandbox/api/invoices/{number}")
    assert reply.status == 200, reply.text
    return dict(reply.json())


def invoices_of(wallet: Wallet, relate_number: str) -> list[dict[str, Any]]:
    reply = wallet.http.json("GET", "/sandbox/api/invoices")
    assert reply.status == 200, reply.text
    return [i for i in reply.json()["invoices"] if i["relate_number"] == relate_number]


def test_a_paid_deposit_gets_one_invoice_after_a_crash_and_duplicates(
    manual_stack: LocalStack, manual: Wallet
) -> None:
    user_id, tid, mtn = paid_deposit(manual_stack, manual, 800)
    # The credit committed; the invoice did not happen yet (the worker is "crashed"): the marker stays.
    pending = manual.transaction(user_id, tid)["invoice"]
    assert pending["status"] == "pending" and pending["number"] is None
    assert invoices_of(manual, f"W{tid}") == []
    manual_stack.sandbox.resend(mtn)  # a duplicate notification changes nothing
    assert manual.transaction(user_id, tid)["invoice"]["status"] == "pending"

    report = run_job(manual_stack)
    assert report["issued"] >= 1 and report["failed"] == 0, report
    invoice = manual.transaction(user_id, tid)["invoice"]
    assert invoice["status"] == "issued" and len(invoice["number"]) == 10
    assert len(invoice["random_number"]) == 4 and invoice["date"]
    record = sandbox_invoice(manual, invoice["number"])
    assert record["sales_amount"] == 800 and record["relate_number"] == f"W{tid}"
    assert record["request"]["CustomerEmail"] == manual.user(user_id)["email"]

    # Duplicate and late notifications, and the job again: still exactly one invoice.
    manual_stack.sandbox.resend(mtn)
    manual_stack.sandbox.resend(mtn)
    run_job(manual_stack)
    assert len(invoices_of(manual, f"W{tid}")) == 1
    assert manual.transaction(user_id, tid)["invoice"]["number"] == invoice["number"]


def test_a_payment_found_by_asking_ecpay_then_its_late_notification_make_one_invoice(
    manual_stack: LocalStack, manual: Wallet
) -> None:
    user_id = manual.create_user()
    created = manual.create(user_id, "deposit", 650, "Credit")
    tid = created["transaction_id"]
    mtn, _ = manual.open_payment_page(user_id, tid, "Credit")
    manual_stack.sandbox.settings(drop_callbacks=True)  # ECPay's ReturnURL is lost...
    try:
        manual_stack.sandbox.pay(mtn)
    finally:
        manual_stack.sandbox.settings(drop_callbacks=False)
    synced = manual.http.json("POST", f"/users/{user_id}/transactions/{tid}/sync")  # ...the wallet asks
    assert synced.status == 200 and synced.json()["status"] == "paid", synced.text
    assert synced.json()["invoice"]["status"] == "pending"
    run_job(manual_stack)
    manual_stack.sandbox.resend(mtn)  # the notification arrives late, after the invoice
    run_job(manual_stack)
    invoice = manual.transaction(user_id, tid)["invoice"]
    assert invoice["status"] == "issued"
    assert [i["invoice_no"] for i in invoices_of(manual, f"W{tid}")] == [invoice["number"]]
    assert sandbox_invoice(manual, invoice["number"])["sales_amount"] == 650


@pytest.mark.parametrize(
    ("settings", "expected"),
    [
        (
            {"kind": "mobile_barcode", "carrier_num": "/ABC1234"},
            {"CarrierType": "3", "CarrierNum": "/ABC1234", "Donation": "0", "Print": "0"},
        ),
        ({"kind": "donation", "love_code": "168001"}, {"Donation": "1", "LoveCode": "168001", "Print": "0"}),
        (
            {"kind": "company", "tax_id": "04595257", "name": "測試股份有限公司", "address": "台北市"},
            {"CustomerIdentifier": "04595257", "Print": "1", "Donation": "0"},
        ),
    ],
)
def test_the_buyers_choice_reaches_the_invoice(
    manual_stack: LocalStack, manual: Wallet, settings: dict[str, str], expected: dict[str, str]
) -> None:
    user_id = manual.create_user()
    put = manual.http.json("PUT", f"/users/{user_id}/invoice-settings", settings)
    assert put.status == 200, put.text
    assert put.json()["invoice_settings"]["kind"] == settings["kind"]
    assert manual.user(user_id)["invoice_settings"] == {
        **dict.fromkeys(_FIELDS),
        **settings,
        "kind": settings["kind"],
    }
    created = manual.create(user_id, "deposit", 600, "Credit")
    mtn, _ = manual.open_payment_page(user_id, created["transaction_id"], "Credit")
    manual_stack.sandbox.pay(mtn)
    run_job(manual_stack)
    invoice = manual.transaction(user_id, created["transaction_id"])["invoice"]
    assert invoice["status"] == "issued", invoice
    request = sandbox_invoice(manual, invoice["number"])["request"]
    assert {k: str(request[k]) for k in expected} == expected


_FIELDS = ("kind", "email", "carrier_num", "love_code", "tax_id", "name", "address")


def test_a_deposit_overrides_the_users_settings(manual_stack: LocalStack, manual: Wallet) -> None:
    user_id, tid, _ = paid_deposit(
        manual_stack, manual, 700, invoice={"kind": "donation", "love_code": "168001"}
    )
    run_job(manual_stack)
    invoice = manual.transaction(user_id, tid)["invoice"]
    request = sandbox_invoice(manual, invoice["number"])["request"]
    assert (str(request["Donation"]), request["LoveCode"]) == ("1", "168001")


@pytest.mark.parametrize(
    ("settings", "code"),
    [
        ({"kind": "company", "tax_id": "12345678", "name": "A", "address": "B"}, "invoice_tax_id_checksum"),
        ({"kind": "mobile_barcode", "carrier_num": "/0000000"}, "invoice_barcode_unknown"),
        (
            {"kind": "donation", "love_code": "000000"},
            "invoice_love_code_unknown",
        ),  # the sandbox knows all but zeros
        ({"kind": "paper"}, "invoice_kind"),
    ],
)
def test_invalid_settings_are_refused_with_the_rule(
    manual: Wallet, settings: dict[str, str], code: str
) -> None:
    user_id = manual.create_user()
    reply = manual.http.json("PUT", f"/users/{user_id}/invoice-settings", settings)
    assert reply.status == 400, reply.text
    assert reply.json()["error"]["code"] == code and reply.json()["error"]["message"]
    assert manual.user(user_id)["invoice_settings"] is None


def test_a_full_refund_voids_and_a_partial_one_allows(manual_stack: LocalStack, manual: Wallet) -> None:
    user_id, full_id, _ = paid_deposit(manual_stack, manual, 900)
    owner, part_id, part_mtn = paid_deposit(manual_stack, manual, 1000)
    run_job(manual_stack)
    full_no = manual.transaction(user_id, full_id)["invoice"]["number"]

    whole = manual.http.json("POST", f"/users/{user_id}/transactions/{full_id}/refund", {})
    assert whole.status == 201, whole.text
    assert manual.transaction(user_id, full_id)["status"] == "refunded"
    run_job(manual_stack)
    assert manual.transaction(user_id, full_id)["invoice"]["status"] == "voided"
    assert sandbox_invoice(manual, full_no)["status"] == "voided"

    manual_stack.sandbox.close_trade(part_mtn)  # after the daily close a card trade refunds in part
    part = manual.http.json("POST", f"/users/{owner}/transactions/{part_id}/refund", {"amount": 300})
    assert part.status == 201, part.text
    run_job(manual_stack)
    invoice = manual.transaction(owner, part_id)["invoice"]
    assert invoice["status"] == "allowance" and [a["amount"] for a in invoice["allowances"]] == [300]
    record = sandbox_invoice(manual, invoice["number"])
    assert [a["amount"] for a in record["allowances"]] == [300] and record["remaining_amount"] == 700


def test_the_background_worker_issues_by_itself(local_stack: LocalStack, wallet: Wallet) -> None:
    user_id, tid, _ = paid_deposit(local_stack, wallet, 500)
    deadline = time.monotonic() + WAIT
    invoice = wallet.transaction(user_id, tid)["invoice"]
    while invoice["status"] == "pending" and time.monotonic() < deadline:
        time.sleep(0.2)
        invoice = wallet.transaction(user_id, tid)["invoice"]
    assert invoice["status"] == "issued", (invoice, local_stack.log()[-3000:])
    assert sandbox_invoice(wallet, invoice["number"])["sales_amount"] == 500
    # Issuing it is one wallet event, with the invoice's number (local mode's outbox, as the Pipe would).
    events = wallet.http.json("GET", "/events?limit=1000")
    assert events.status == 200, events.text
    ours = [e for e in events.json()["events"] if e["transaction_id"] == tid]
    issued = [e for e in ours if e["name"] == "invoice.issued"]
    assert [e["invoice_number"] for e in issued] == [invoice["number"]]
