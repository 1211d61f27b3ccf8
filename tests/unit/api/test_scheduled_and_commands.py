"""The reconciliation schedule's handler and the ``audit`` / ``reconcile`` commands."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest
from tests.unit.api.apitest import Api, LambdaContext
from tests.unit.api.conftest import checkout, create_deposit

from ecpay_lambda.api import composition, scheduled
from ecpay_lambda.cli import main
from ecpay_lambda.config import load_settings
from ecpay_lambda.ecpay.testing import FakeEcpay
from ecpay_lambda.wallet.results import AuditReport
from ecpay_lambda.wallet.service import WalletService

SCHEDULE_EVENT = {"id": "evt-1", "source": "aws.events", "detail-type": "Scheduled Event", "detail": {}}


def test_the_schedule_handler_reconciles_and_returns_its_report(api: Api, user: dict[str, Any]) -> None:
    fake = FakeEcpay(unknown_trades="unpaid")
    composition.set_service(composition.build_service(load_settings(), transport=fake))
    report = scheduled.handler(SCHEDULE_EVENT, LambdaContext())
    assert report["checked"] == 0 and report["errors"] == []
    json.dumps(report)  # a Lambda result must serialise


def test_the_schedule_handler_raises_when_it_cannot_start(api_env: pytest.MonkeyPatch) -> None:
    # Raising makes Lambda retry the asynchronous invocation, then send it to the dead-letter queue.
    api_env.setenv("ECPAY_ENV", "production")
    composition.reset()
    with pytest.raises(Exception, match="production"):
        scheduled.handler(SCHEDULE_EVENT, LambdaContext())


def test_audit_of_a_clean_store(api: Api, user: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["audit"]) == 0
    out = capsys.readouterr().out
    assert "users checked: 1" in out and "audit: clean" in out


def test_audit_json_with_an_explicit_store_url(
    api: Api,
    user: dict[str, Any],
    api_env: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Any,
) -> None:
    store_url = load_settings().store_url
    api_env.setenv("STORE_URL", f"sqlite:///{tmp_path / 'elsewhere.db'}")
    api_env.setenv("ECPAY_ENV", "production")  # the audit needs no ECPay credentials at all
    assert main(["audit", "--store-url", store_url, "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report == {
        "clean": True,
        "users_checked": 1,
        "mismatches": [],
        "problems": [],
        "external": [],
        "flagged": [],
        "stuck": [],
    }


def test_audit_exits_non_zero_on_a_mismatch(
    api: Api, user: dict[str, Any], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(
        WalletService, "audit", lambda self, external=None: AuditReport(1, ["u1: balance 5 != ledger 0"], [])
    )
    assert main(["audit"]) == 1
    assert "MISMATCH u1" in capsys.readouterr().out


def test_audit_of_a_store_it_cannot_open(
    capsys: pytest.CaptureFixture[str], api_env: pytest.MonkeyPatch
) -> None:
    assert main(["audit", "--store-url", "nosuch://x"]) == 2
    assert "audit:" in capsys.readouterr().err


def test_reconcile_command_applies_what_ecpay_says(
    api: Api, user: dict[str, Any], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    uid = user["user_id"]
    tx = create_deposit(api, uid, 300)
    mtn = checkout(api, uid, tx["transaction_id"])["fields"]["MerchantTradeNo"]
    fake = FakeEcpay(unknown_trades="unpaid")
    fake.pay(mtn, 300)
    real_build = composition.build_service

    def with_fake(settings: Any, **kwargs: Any) -> Any:
        return real_build(settings, transport=fake)

    monkeypatch.setattr(composition, "build_service", with_fake)
    # The grace period keeps fresh deposits out of reconciliation: run it from an hour later.
    later = composition.wallet_clock() + timedelta(hours=1)  # the tests' pinned clock
    monkeypatch.setattr(WalletService, "now", lambda self: later)
    assert main(["reconcile", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["checked"] == 1 and report["paid"] == 1
    assert api.request("GET", f"/users/{uid}").json()["balance"] == 300


def test_reconcile_command_grace_zero_checks_fresh_deposits(
    api: Api, user: dict[str, Any], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    uid = user["user_id"]
    tx = create_deposit(api, uid, 200)
    mtn = checkout(api, uid, tx["transaction_id"])["fields"]["MerchantTradeNo"]
    fake = FakeEcpay(unknown_trades="unpaid")
    fake.pay(mtn, 200)
    real_build = composition.build_service
    monkeypatch.setattr(composition, "build_service", lambda s, **kw: real_build(s, transport=fake))
    assert main(["reconcile", "--json"]) == 0  # within the default grace period: left alone
    assert json.loads(capsys.readouterr().out)["checked"] == 0
    assert main(["reconcile", "--json", "--grace-minutes", "0", "--now"]) == 0
    assert json.loads(capsys.readouterr().out)["paid"] == 1
    assert api.request("GET", f"/users/{uid}").json()["balance"] == 200


def test_reconcile_command_refuses_a_negative_grace(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["reconcile", "--grace-minutes", "-1"]) == 2
    assert "--grace-minutes" in capsys.readouterr().err


def test_reconcile_command_refuses_a_bad_limit(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["reconcile", "--limit", "0"]) == 2


def test_a_run_ends_before_the_function_would_time_out(api: Api) -> None:
    class Context:
        def __init__(self, left_ms: int) -> None:
            self.left_ms = left_ms

        def get_remaining_time_in_millis(self) -> int:
            return self.left_ms

    assert scheduled.budget(Context(300_000)) == timedelta(seconds=240)  # RECONCILE_DEADLINE_SECONDS
    assert scheduled.budget(Context(100_000)) == timedelta(seconds=80)  # its remaining time, less 20 s
    assert scheduled.budget(Context(5_000)) == timedelta(0)  # nothing left to start a query in
