"""Money metrics: the EMF lines each outcome writes to stdout (what CloudWatch turns into metrics).

Driven through the real entry points (callback handler, management API, schedule) with the EMF
lines captured from stdout, and the line format checked against what Powertools' Metrics prints.
"""

from __future__ import annotations

import json
import time
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pytest
from aws_lambda_powertools import Metrics
from aws_lambda_powertools.metrics import MetricUnit
from tests.unit.api.apitest import MERCHANT, Api, LambdaContext, form, return_fields, sign
from tests.unit.api.conftest import checkout, create_deposit

from ecpay_lambda.api import composition, metrics, scheduled
from ecpay_lambda.config import load_settings
from ecpay_lambda.ecpay.errors import TransportError
from ecpay_lambda.ecpay.testing import FakeEcpay
from ecpay_lambda.ecpay.transport import HttpResponse
from ecpay_lambda.wallet.results import ReconcileReport

FORM = {"Content-Type": "application/x-www-form-urlencoded"}
SERVICE = "ecpay-lambda-test"  # the api_env fixture's POWERTOOLS_SERVICE_NAME


def emf_lines(capsys: pytest.CaptureFixture[str]) -> list[dict[str, Any]]:
    """Every EMF document written to stdout since the last call."""
    out = capsys.readouterr().out
    return [json.loads(line) for line in out.splitlines() if line.startswith('{"_aws"')]


def counted(lines: list[dict[str, Any]]) -> dict[str, float]:
    """metric name -> sum over ``lines``."""
    totals: dict[str, float] = {}
    for doc in lines:
        for directive in doc["_aws"]["CloudWatchMetrics"]:
            for metric in directive["Metrics"]:
                totals[metric["Name"]] = totals.get(metric["Name"], 0) + sum(doc[metric["Name"]])
    return totals


def reasons(lines: list[dict[str, Any]]) -> list[str | None]:
    return [doc.get("reason") for doc in lines]


@pytest.fixture(autouse=True)
def _service_name(monkeypatch: pytest.MonkeyPatch) -> None:
    # The function's service name, as the template sets it (read for each line, see metrics._service).
    monkeypatch.setenv("POWERTOOLS_SERVICE_NAME", SERVICE)
    monkeypatch.delenv("POWERTOOLS_METRICS_NAMESPACE", raising=False)
    monkeypatch.delenv("POWERTOOLS_METRICS_DISABLED", raising=False)


# --- the line format --------------------------------------------------------------------------------


@pytest.mark.parametrize("reason", [None, "check_mac_value"])
def test_a_line_is_exactly_what_powertools_metrics_prints(reason: str | None) -> None:
    now_ms = int(time.time() * 1000)  # Powertools warns about timestamps CloudWatch would drop
    ours = json.loads(
        metrics.emf_line(
            {"NotificationsRejected": 1, "CrossCheckFailures": 1},
            reason=reason,
            namespace="EcpayWallet",
            service=SERVICE,
            timestamp_ms=now_ms,
        )
    )
    theirs_metrics = Metrics(namespace="EcpayWallet", service=SERVICE)
    try:
        theirs_metrics.add_metric(name="NotificationsRejected", unit=MetricUnit.Count, value=1)
        theirs_metrics.add_metric(name="CrossCheckFailures", unit=MetricUnit.Count, value=1)
        if reason is not None:
            theirs_metrics.add_dimensions(service=SERVICE, reason=reason)
        theirs_metrics.set_timestamp(now_ms)
        theirs = theirs_metrics.serialize_metric_set()
    finally:
        theirs_metrics.clear_metrics()
    assert ours == theirs
    assert list(ours) == list(theirs)  # the same key order too


def test_a_reason_that_is_not_a_small_known_word_becomes_other() -> None:
    for odd in ("x" * 41, "Has Space", "", "ünïcode", "a:b"):
        doc = json.loads(metrics.emf_line({"NotificationsRejected": 1}, reason=odd))
        assert doc["reason"] == "other", odd
    assert json.loads(metrics.emf_line({"X": 1}, reason="cross_check"))["reason"] == "cross_check"


def test_disabled_metrics_write_nothing(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "true")
    metrics.emit({"NotificationsApplied": 1})
    assert emf_lines(capsys) == []
    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "false")
    metrics.emit({"NotificationsApplied": 1})
    assert counted(emf_lines(capsys)) == {"NotificationsApplied": 1}


@pytest.mark.parametrize(
    ("outcome", "expected", "reason"),
    [
        ("applied", {"NotificationsApplied": 1}, None),
        ("duplicate", {"NotificationsDuplicate": 1}, None),
        ("flagged:duplicate_payment", {"NotificationsFlagged": 1}, "duplicate_payment"),
        ("ignored:simulate_paid", {"NotificationsIgnored": 1}, "simulate_paid"),
        ("rejected:check_mac_value", {"NotificationsRejected": 1}, "check_mac_value"),
        ("rejected:cross_check", {"NotificationsRejected": 1, "CrossCheckFailures": 1}, "cross_check"),
        (
            "rejected:cross_check_unavailable",
            {"NotificationsRejected": 1, "CrossCheckFailures": 1},
            "cross_check_unavailable",
        ),
        ("retry:contention", {"NotificationsRetry": 1}, "contention"),
        ("something_new:x", {"NotificationsOther": 1}, "something_new"),
    ],
)
def test_each_outcome_label_maps_to_its_family(
    outcome: str, expected: dict[str, float], reason: str | None
) -> None:
    assert metrics.notification_metrics(outcome) == (expected, reason)


def test_the_reconcile_mapping_names_every_figure() -> None:
    report = ReconcileReport(
        checked=5, paid=2, failed=1, expired=1, unchanged=1, errors=["a", "b", "c"], refunds_settled=1,
        review=["refund r1 ...", "t2: flagged:duplicate_payment"], refunds_reversed=1, skipped=4,
        stopped="deadline",
    )  # fmt: skip
    assert metrics.reconcile_metrics(report) == {
        "ReconcileChecked": 5,
        "ReconcileCredited": 2,
        "ReconcileFailed": 1,
        "ReconcileExpired": 1,
        "ReconcileRefundsSettled": 1,
        "ReconcileErrors": 3,
        "RefundsNeedingReview": 2,
        "ReconcileRefundsReversed": 1,
        "ReconcileSkipped": 4,
        "ReconcileStoppedEarly": 1,
    }


def test_a_credit_to_a_closed_user_is_counted_for_its_alarm() -> None:
    counted, reason = metrics.notification_metrics("flagged:closed_user_credit")
    assert counted == {"NotificationsFlagged": 1, "ClosedUserCredits": 1} and reason == "closed_user_credit"


# --- notifications through the callback function ------------------------------------------------------


def started(api: Api, uid: str, amount: int = 500) -> tuple[str, str]:
    tx = create_deposit(api, uid, amount)
    return tx["transaction_id"], checkout(api, uid, tx["transaction_id"])["fields"]["MerchantTradeNo"]


def notify(api: Api, uid: str, tx_id: str, fields: Mapping[str, str]) -> Any:
    return api.request(
        "POST", f"/users/{uid}/transactions/{tx_id}/return", body=form(fields), headers=FORM, token=None
    )


def test_applied_then_duplicate(
    api: Api, user: dict[str, Any], api_env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    uid = user["user_id"]
    tx_id, mtn = started(api, uid)
    emf_lines(capsys)
    assert notify(api, uid, tx_id, sign(return_fields(mtn, 500))).body == "1|OK"
    first = emf_lines(capsys)
    assert counted(first) == {"NotificationsApplied": 1} and reasons(first) == [None]
    assert first[0]["service"] == SERVICE
    assert first[0]["_aws"]["CloudWatchMetrics"][0]["Namespace"] == metrics.NAMESPACE
    api_env.setenv("POWERTOOLS_SERVICE_NAME", "another-stack")
    api_env.setenv("POWERTOOLS_METRICS_NAMESPACE", "Elsewhere")
    metrics.emit({"NotificationsApplied": 1})
    moved = emf_lines(capsys)[0]
    assert moved["service"] == "another-stack"
    assert moved["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "Elsewhere"
    api_env.setenv("POWERTOOLS_SERVICE_NAME", SERVICE)
    assert notify(api, uid, tx_id, sign(return_fields(mtn, 500) | {"RtnMsg": "again"})).body == "1|OK"
    assert counted(emf_lines(capsys)) == {"NotificationsDuplicate": 1}


@pytest.mark.parametrize(
    ("tamper", "reason"),
    [
        (lambda f: f | {"CheckMacValue": "0" * 64}, "check_mac_value"),
        (lambda f: sign(f | {"TradeAmt": "499"}), "amount"),
        (lambda f: sign(f | {"SimulatePaid": "1"}), "simulate_paid"),
    ],
    ids=["forged", "wrong-amount", "simulated"],
)
def test_refused_notifications_count_by_reason(
    api: Api, user: dict[str, Any], capsys: pytest.CaptureFixture[str], tamper: Any, reason: str
) -> None:
    uid = user["user_id"]
    tx_id, mtn = started(api, uid)
    emf_lines(capsys)
    notify(api, uid, tx_id, tamper(sign(return_fields(mtn, 500))))
    lines = emf_lines(capsys)
    family = "NotificationsIgnored" if reason == "simulate_paid" else "NotificationsRejected"
    assert counted(lines) == {family: 1}
    assert reasons(lines) == [reason]
    # Alarms watch [service]; people slice by [service, reason].
    assert lines[0]["_aws"]["CloudWatchMetrics"][0]["Dimensions"] == [["service"], ["service", "reason"]]


def test_a_second_paid_attempt_is_flagged(
    api: Api, user: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    uid = user["user_id"]
    tx_id, first_mtn = started(api, uid)
    second_mtn = checkout(api, uid, tx_id)["fields"]["MerchantTradeNo"]
    notify(api, uid, tx_id, sign(return_fields(first_mtn, 500)))
    emf_lines(capsys)
    notify(api, uid, tx_id, sign(return_fields(second_mtn, 500) | {"TradeNo": "2611271200000002"}))
    lines = emf_lines(capsys)
    assert counted(lines) == {"NotificationsFlagged": 1} and reasons(lines) == ["duplicate_payment"]


class _Unreachable:
    def post_form(self, url: str, fields: Mapping[str, str], *, timeout: float) -> HttpResponse:
        raise TransportError("ECPay is down")


@pytest.mark.parametrize("ecpay_up", [True, False], ids=["not-confirmed", "unreachable"])
def test_cross_check_failures(
    api: Api,
    user: dict[str, Any],
    api_env: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    ecpay_up: bool,
) -> None:
    api_env.setenv("ECPAY_CROSS_CHECK", "true")
    composition.reset()
    transport = FakeEcpay(unknown_trades="unpaid") if ecpay_up else _Unreachable()
    composition.set_service(composition.build_service(load_settings(), transport=transport))
    uid = user["user_id"]
    tx_id, mtn = started(api, uid)
    emf_lines(capsys)
    assert notify(api, uid, tx_id, sign(return_fields(mtn, 500))).body.startswith("0|")
    lines = emf_lines(capsys)
    assert counted(lines) == {"NotificationsRejected": 1, "CrossCheckFailures": 1}
    assert reasons(lines) == ["cross_check" if ecpay_up else "cross_check_unavailable"]


def test_a_store_fault_counts_a_store_error(
    api: Api, user: dict[str, Any], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    uid = user["user_id"]
    tx_id, mtn = started(api, uid)
    store = composition.get_callbacks().store

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("table unavailable")

    monkeypatch.setattr(store, "record_notification", broken)
    monkeypatch.setattr(store, "commit", broken)
    monkeypatch.setattr(store, "run", broken)
    emf_lines(capsys)
    assert notify(api, uid, tx_id, sign(return_fields(mtn, 500))).status == 500
    assert counted(emf_lines(capsys)) == {"StoreErrors": 1}


def test_a_misconfigured_callback_function_counts_a_config_error(
    api: Api, api_env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    api_env.setenv("ECPAY_ENV", "production")  # without real credentials: refuses to start
    composition.reset()
    emf_lines(capsys)
    assert notify(api, "u1", "t1", {"a": "b"}).status == 503
    assert counted(emf_lines(capsys)) == {"ConfigErrors": 1}


def test_a_management_fault_counts_a_store_error(
    api: Api, user: dict[str, Any], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    store = composition.get_service().store

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("table unavailable")

    monkeypatch.setattr(store, "get_user", broken)
    emf_lines(capsys)
    assert api.request("GET", f"/users/{user['user_id']}").status == 500
    assert counted(emf_lines(capsys)) == {"StoreErrors": 1}


# --- refunds (DoAction) ------------------------------------------------------------------------------------


@dataclass
class RefusingEcpay(FakeEcpay):
    """ECPay that answers QueryTradeInfo but refuses (or never answers) DoAction."""

    answer_refunds: bool = True
    refused: list[str] = field(default_factory=list)

    def post_form(self, url: str, fields: Mapping[str, str], *, timeout: float) -> HttpResponse:
        if not url.endswith("/DoAction"):
            return super().post_form(url, fields, timeout=timeout)
        if not self.answer_refunds:
            raise TransportError("timed out")
        self.refused.append(fields["MerchantTradeNo"])
        body = urllib.parse.urlencode(
            {
                "MerchantID": MERCHANT.merchant_id,
                "MerchantTradeNo": fields["MerchantTradeNo"],
                "TradeNo": fields.get("TradeNo", ""),
                "RtnCode": "10200115",
                "RtnMsg": "error_overDate",
            }
        )
        return HttpResponse(status=200, body=body.encode(), headers={"Content-Type": "text/html"})


@pytest.mark.parametrize(("answers", "reason"), [(True, "refused"), (False, "unknown")])
def test_refund_failures_count_by_what_is_known(
    api: Api, user: dict[str, Any], capsys: pytest.CaptureFixture[str], answers: bool, reason: str
) -> None:
    fake = RefusingEcpay(answer_refunds=answers, unknown_trades="unpaid")
    composition.set_service(composition.build_service(load_settings(), transport=fake))
    uid = user["user_id"]
    tx = create_deposit(api, uid, 700)
    mtn = checkout(api, uid, tx["transaction_id"], payment_method="Credit")["fields"]["MerchantTradeNo"]
    assert notify(api, uid, tx["transaction_id"], sign(return_fields(mtn, 700))).body == "1|OK"
    emf_lines(capsys)
    resp = api.request("POST", f"/users/{uid}/transactions/{tx['transaction_id']}/refund")
    assert resp.status == 502
    lines = emf_lines(capsys)
    assert counted(lines) == {"RefundFailures": 1} and reasons(lines) == [reason]
    assert fake.refused == ([mtn] if answers else [])


def test_a_refund_that_works_counts_no_failure(
    api: Api, user: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    composition.set_service(
        composition.build_service(load_settings(), transport=FakeEcpay(unknown_trades="unpaid"))
    )
    uid = user["user_id"]
    tx = create_deposit(api, uid, 300)
    mtn = checkout(api, uid, tx["transaction_id"], payment_method="Credit")["fields"]["MerchantTradeNo"]
    notify(api, uid, tx["transaction_id"], sign(return_fields(mtn, 300)))
    emf_lines(capsys)
    assert api.request("POST", f"/users/{uid}/transactions/{tx['transaction_id']}/refund").status == 201
    assert "RefundFailures" not in counted(emf_lines(capsys))


# --- reconciliation -----------------------------------------------------------------------------------


def test_a_payment_found_by_reconciliation_is_a_reconcile_credit(
    api: Api, user: dict[str, Any], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = FakeEcpay(unknown_trades="unpaid")
    service = composition.build_service(load_settings(), transport=fake)
    monkeypatch.setattr(service, "reconcile_grace", service.reconcile_grace * 0)
    composition.set_service(service)
    uid = user["user_id"]
    _, paid_mtn = started(api, uid, 400)
    started(api, uid, 100)  # still unpaid at ECPay
    fake.pay(paid_mtn, 400)  # paid, but its notification was lost
    emf_lines(capsys)
    report = scheduled.handler({"id": "evt-1"}, LambdaContext())
    assert report["paid"] == 1
    lines = emf_lines(capsys)
    assert len(lines) == 1 and reasons(lines) == [None]
    figures = counted(lines)
    assert figures["ReconcileCredited"] == 1 and figures["ReconcileChecked"] == 2
    assert figures["ReconcileErrors"] == 0 and figures["RefundsNeedingReview"] == 0
    assert api.request("GET", f"/users/{uid}").json()["balance"] == 400
