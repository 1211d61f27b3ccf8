"""Issue 13 in the API layer: invoicing settings, the buyer-settings route, the job's metrics and audit."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from tests.unit.api.apitest import Api, LambdaContext

from ecpay_lambda.api import metrics, scheduled
from ecpay_lambda.config import INVOICE_TEST_MERCHANT, ConfigError, parse_settings
from ecpay_lambda.store import open_store
from ecpay_lambda.wallet.audit import run_audit
from ecpay_lambda.wallet.invoice_state import InvoiceState, InvoiceStatus
from ecpay_lambda.wallet.invoices import InvoiceRunReport
from ecpay_lambda.wallet.models import Transaction, TransactionStatus, TransactionType, User, UserStatus
from ecpay_lambda.wallet.port import AtomicWrite, TransactionPut

SANDBOX = {"ECPAY_BASE_URL": "http://127.0.0.1:3000"}
KEYS = {"MerchantID": "2999999", "HashKey": "abcdefghijklmnop", "HashIV": "qrstuvwxyz123456"}


# --- settings -------------------------------------------------------------------------------------


def test_invoicing_is_off_unless_asked() -> None:
    assert parse_settings(SANDBOX).invoicing is None
    assert parse_settings({**SANDBOX, "INVOICING": "off"}).invoicing is None


def test_sandbox_invoicing_uses_the_test_merchant_on_the_same_port() -> None:
    inv = parse_settings({**SANDBOX, "INVOICING": "on"}).invoicing
    assert inv is not None
    assert (inv.base_url, inv.merchant_id, inv.relate_prefix) == ("http://127.0.0.1:3000", "2000132", "W")
    assert (inv.hash_key, inv.hash_iv) == INVOICE_TEST_MERCHANT[1:]
    assert "ejCk" not in repr(inv) and "q9jc" not in repr(inv)  # keys never in a repr (logs)


def test_stage_uses_ecpays_stage_host_and_secrets_manager() -> None:
    settings = parse_settings(
        {"ECPAY_ENV": "stage", "INVOICING": "on", "INVOICE_SECRET_ARN": "arn:inv"},
        read_secret=lambda arn: {"arn:inv": __import__("json").dumps(KEYS)}[arn],
    )
    assert settings.invoicing is not None
    assert settings.invoicing.base_url == "https://einvoice-stage.ecpay.com.tw"
    assert settings.invoicing.merchant_id == "2999999"


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"ECPAY_ENV": "production", "INVOICING": "on"}, "INVOICE_SECRET_ARN"),
        (
            {
                "ECPAY_ENV": "production",
                "INVOICING": "on",
                "INVOICE_MERCHANT_ID": "2000132",
                "INVOICE_HASH_KEY": "ejCk326UnaZWKisg",
                "INVOICE_HASH_IV": "q9jcZX8Ib9LM8wYk",
            },
            "test merchant 2000132",
        ),
        ({**SANDBOX, "INVOICING": "on", "INVOICE_MERCHANT_ID": "1"}, "set all of INVOICE_MERCHANT_ID"),
        (
            {**SANDBOX, "INVOICING": "on", "INVOICE_MERCHANT_ID": "1", "INVOICE_HASH_KEY": "short"}
            | {"INVOICE_HASH_IV": "q9jcZX8Ib9LM8wYk"},
            "INVOICE_HASH_KEY must be the 16",
        ),
        ({**SANDBOX, "INVOICING": "on", "INVOICE_RELATE_PREFIX": "x" * 19}, "INVOICE_RELATE_PREFIX"),
        ({**SANDBOX, "INVOICING": "maybe"}, "INVOICING must be true or false"),
    ],
)
def test_bad_invoicing_configuration_is_one_readable_line(env: dict[str, str], message: str) -> None:
    production = {"ECPAY_MERCHANT_ID": "3099999", "ECPAY_HASH_KEY": "k" * 16, "ECPAY_HASH_IV": "v" * 16}
    full = {**production, **env} if env.get("ECPAY_ENV") == "production" else env
    with pytest.raises(ConfigError) as caught:
        parse_settings(full)
    text = str(caught.value)
    assert message in text and "\n" not in text
    assert "ejCk326UnaZWKisg" not in text  # never a key in the message


# --- the buyer-settings route ---------------------------------------------------------------------


def test_settings_are_validated_and_shown_with_the_user(api: Api, user: dict[str, Any]) -> None:
    uid = user["user_id"]
    bad = api.request(
        "PUT", f"/users/{uid}/invoice-settings", json_body={"kind": "company", "tax_id": "12345678"}
    )
    assert bad.status == 400 and bad.json()["error"]["code"] == "invoice_name_required"
    bad = api.request(
        "PUT",
        f"/users/{uid}/invoice-settings",
        json_body={"kind": "company", "tax_id": "12345678", "name": "Co", "address": "Taipei"},
    )
    assert bad.status == 400 and bad.json()["error"]["code"] == "invoice_tax_id_checksum"
    assert "check digit" in bad.json()["error"]["message"]
    ok = api.request(
        "PUT",
        f"/users/{uid}/invoice-settings",
        json_body={"kind": "company", "tax_id": "04595257", "name": "Co", "address": "Taipei"},
    )
    assert ok.status == 200, ok.text
    shown = api.request("GET", f"/users/{uid}").json()["invoice_settings"]
    assert (shown["kind"], shown["tax_id"]) == ("company", "04595257")
    missing = api.request("PUT", "/users/nobody/invoice-settings", json_body={"kind": "email"})
    assert missing.status == 404


def test_a_deposit_cannot_carry_invoice_settings_while_invoicing_is_off(
    api: Api, user: dict[str, Any]
) -> None:
    reply = api.request(
        "POST",
        f"/users/{user['user_id']}/transactions",
        json_body={"transaction_type": "deposit", "amount": 500, "invoice": {"kind": "email"}},
    )
    assert reply.status == 400 and "invoicing is off" in reply.json()["error"]["message"]
    plain = api.request(
        "POST",
        f"/users/{user['user_id']}/transactions",
        json_body={"transaction_type": "deposit", "amount": 500},
    )
    assert plain.status == 201 and plain.json()["invoice"] is None


def test_the_invoice_schedule_does_nothing_while_invoicing_is_off(api: Api) -> None:
    assert scheduled.handler({"id": "e", "action": "invoices"}, LambdaContext()) == {"invoices": None}


# --- metrics and audit ----------------------------------------------------------------------------


def test_invoice_metrics_name_every_outcome() -> None:
    figures = metrics.invoice_metrics(InvoiceRunReport(examined=5, issued=2, voided=1, allowances=1, retry=1))
    assert figures == {
        "InvoicesIssued": 2,
        "InvoicesVoided": 1,
        "InvoiceAllowances": 1,
        "InvoiceRetries": 1,
        "InvoiceFailures": 0,
    }


NOW = datetime(2026, 11, 27, 4, 0, tzinfo=UTC)


def test_audit_reports_invoice_problems(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path / 'w.db'}")
    store.ensure_schema()
    store.create_user(User("u1", "alice", "a@example.com", 0, 0, UserStatus.ACTIVE, 0, NOW, NOW))
    paid_long_ago = NOW - timedelta(hours=2)

    def deposit(tid: str, invoice: InvoiceState, **kw: object) -> None:
        txn = Transaction(
            tid,
            "u1",
            TransactionType.DEPOSIT,
            100,
            TransactionStatus.PAID,
            1,
            paid_long_ago,
            paid_long_ago,
            paid_at=paid_long_ago,
            invoice=invoice,
        )._replace(**kw)  # type: ignore[arg-type]
        store.commit(AtomicWrite(transactions=(TransactionPut(txn, 0),)))

    deposit("aaaaaaaaaaa1", InvoiceState(InvoiceStatus.PENDING, error="timeout"))
    deposit("aaaaaaaaaaa2", InvoiceState(InvoiceStatus.FAILED, error="rejected:1500028 no such love code"))
    deposit("aaaaaaaaaaa3", InvoiceState(InvoiceStatus.ISSUED, number="AB00000001", date=NOW, amount=90))
    deposit(
        "aaaaaaaaaaa4",
        InvoiceState(InvoiceStatus.ISSUED, number="AB00000002", date=NOW, amount=100),
        status=TransactionStatus.REFUNDED,
        refunded_amount=100,
    )
    deposit("aaaaaaaaaaa5", InvoiceState(InvoiceStatus.ISSUED, number="AB00000003", date=NOW, amount=100))
    report = run_audit(store, now=NOW, grace=timedelta(minutes=30))
    invoice_lines = [p for p in report.problems if "invoice" in p]
    joined = "\n".join(invoice_lines)
    assert "aaaaaaaaaaa1 of user u1: invoice not issued" in joined and "timeout" in joined
    assert "aaaaaaaaaaa2 of user u1: invoice failed (rejected:1500028" in joined
    assert "aaaaaaaaaaa3 of user u1: invoice AB00000001 is for 90, the deposit is 100" in joined
    assert "aaaaaaaaaaa4 of user u1: invoice refund not voided or allowed" in joined
    assert "aaaaaaaaaaa5" not in joined  # issued for the right amount: fine
    assert len(invoice_lines) == 4
    # Within the grace period a pending invoice is not a problem yet.
    fresh = run_audit(store, now=paid_long_ago + timedelta(minutes=5), grace=timedelta(minutes=30))
    assert not any("aaaaaaaaaaa1" in p and "invoice" in p for p in fresh.problems)
