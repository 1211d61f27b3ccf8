"""The sandbox's TradeNoAio: checked like ECPay, answered as a Big5 trade file the library parses.

Driven over the engine (a fake clock, no callbacks sent) and, once, through the app and the
project's own ECPay client.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta

import pytest

from ecpay_lambda.ecpay.checkmac import check_mac_value
from ecpay_lambda.ecpay.client import EcpayClient
from ecpay_lambda.ecpay.environments import Endpoints
from ecpay_lambda.ecpay.errors import RateLimitedError, RejectedError
from ecpay_lambda.ecpay.statement import parse_statement
from ecpay_lambda.ecpay.transport import HttpResponse, encode_form
from ecpay_lambda.local.http import Request
from ecpay_lambda.local.sandbox import Sandbox
from ecpay_lambda.local.sandbox.app import SandboxApp
from ecpay_lambda.local.sandbox.engine import SandboxSettings
from ecpay_lambda.local.sandbox.statement import trade_no_aio

from .conftest import STAGE, CheckoutFactory


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 11, 27, 4, 0, tzinfo=UTC)  # 12:00 Taipei

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def sandbox(clock: Clock) -> Iterator[Sandbox]:
    engine = Sandbox(STAGE, clock=clock, settings=SandboxSettings(drop_callbacks=True))
    try:
        yield engine
    finally:
        engine.close()


def request(begin: str = "2026-11-27", end: str = "2026-11-27", **extra: str) -> dict[str, str]:
    fields = {
        "MerchantID": STAGE.merchant_id,
        "DateType": "2",
        "BeginDate": begin,
        "EndDate": end,
        "MediaFormated": "1",
        **extra,
    }
    fields["CheckMacValue"] = check_mac_value(fields, STAGE.hash_key, STAGE.hash_iv)
    return fields


def _open(sandbox: Sandbox, checkout_form: CheckoutFactory, amount: str = "500", **overrides: str) -> str:
    form = checkout_form("https://merchant.example/return", TotalAmount=amount, **overrides)
    sandbox.checkout(form)
    return form["MerchantTradeNo"]


def test_paid_trades_by_payment_date(sandbox: Sandbox, clock: Clock, checkout_form: CheckoutFactory) -> None:
    paid = _open(sandbox, checkout_form, "700")
    unpaid = _open(sandbox, checkout_form)
    sandbox.pay(paid)
    status, body, content_type = trade_no_aio(sandbox, request())
    assert status == 200 and content_type == "text/csv; charset=big5"
    assert isinstance(body, bytes) and body.decode("big5").startswith("特店訂單編號")
    statement = parse_statement(body)
    assert [row.merchant_trade_no for row in statement.rows] == [paid]
    (row,) = statement.rows
    assert row.amount == 700 and row.is_paid and row.payment_date == clock.now
    assert row.trade_no == sandbox.trade(paid).trade_no and row.payment_type == "Credit_CreditCard"
    assert unpaid not in body.decode("big5")


def test_order_date_lists_every_trade_and_filters_by_status(
    sandbox: Sandbox, clock: Clock, checkout_form: CheckoutFactory
) -> None:
    paid, failed, waiting = (_open(sandbox, checkout_form) for _ in range(3))
    sandbox.pay(paid)
    sandbox.fail(failed)
    sandbox.simulate_paid(waiting)
    status, body, _ = trade_no_aio(sandbox, request(DateType="6"))
    assert status == 200
    rows = {row.merchant_trade_no: row for row in parse_statement(body).rows}  # type: ignore[arg-type]
    assert {m: r.status for m, r in rows.items()} == {paid: "paid", failed: "failed", waiting: "unpaid"}
    assert rows[waiting].simulate_paid and not rows[waiting].is_paid
    clock.now += timedelta(minutes=1)
    status, body, _ = trade_no_aio(sandbox, request(DateType="6", PaymentStatus="2"))
    assert [r.merchant_trade_no for r in parse_statement(body).rows] == [failed]  # type: ignore[arg-type]


def test_dates_are_taipei_days(sandbox: Sandbox, clock: Clock, checkout_form: CheckoutFactory) -> None:
    clock.now = datetime(2026, 11, 27, 16, 30, tzinfo=UTC)  # 00:30 on the 28th in Taipei
    mtn = _open(sandbox, checkout_form)
    sandbox.pay(mtn)
    _, body, _ = trade_no_aio(sandbox, request("2026-11-27", "2026-11-27"))
    assert parse_statement(body).rows == ()  # type: ignore[arg-type]
    clock.now += timedelta(minutes=1)
    _, body, _ = trade_no_aio(sandbox, request("2026-11-28", "2026-11-28"))
    assert [r.merchant_trade_no for r in parse_statement(body).rows] == [mtn]  # type: ignore[arg-type]


def _refused(sandbox: Sandbox, form: dict[str, str]) -> str:
    status, body, content_type = trade_no_aio(sandbox, form)
    assert status == 200 and content_type.startswith("text/plain")
    assert isinstance(body, str) and body.startswith("RtnCode=")
    return body


def test_a_bad_mac_is_refused(sandbox: Sandbox) -> None:
    tampered = {**request(), "EndDate": "2026-11-28"}
    assert _refused(sandbox, tampered) == "RtnCode=10200073&RtnMsg=CheckMacValue verify fail"
    other = {**request(), "MerchantID": "9999999"}
    assert "10200073" in _refused(sandbox, other)


@pytest.mark.parametrize(
    ("form", "text"),
    [
        (request("2026-11-01", "2026-11-08"), "at most 7 days"),
        (request("2026-11-02", "2026-11-01"), "before BeginDate"),
        (request("2026/11/01", "2026-11-01"), "yyyy-MM-dd"),
        (request("2026-02-30", "2026-03-01"), "yyyy-MM-dd"),
        (request(DateType="9"), "DateType"),
        (request(DateType="4"), "not simulated"),
        (request(PaymentStatus="5"), "PaymentStatus"),
        (request(MediaFormated="2"), "MediaFormated"),
        ({k: v for k, v in request().items() if k != "MediaFormated"}, "MediaFormated is required"),
    ],
)
def test_bad_requests_are_refused(sandbox: Sandbox, form: dict[str, str], text: str) -> None:
    assert text in _refused(sandbox, form)


def test_seven_days_is_allowed(sandbox: Sandbox) -> None:
    status, _, _ = trade_no_aio(sandbox, request("2026-11-21", "2026-11-27"))
    assert status == 200


def test_one_file_per_minute_per_merchant(sandbox: Sandbox, clock: Clock) -> None:
    assert trade_no_aio(sandbox, request())[0] == 200
    clock.now += timedelta(seconds=59)
    assert trade_no_aio(sandbox, request())[0] == 403
    # A refused request is not a file: it does not restart the minute.
    clock.now += timedelta(seconds=1)
    assert trade_no_aio(sandbox, request())[0] == 200


def test_refusals_do_not_count_toward_the_minute(sandbox: Sandbox) -> None:
    _refused(sandbox, request("2026-11-01", "2026-11-08"))
    assert trade_no_aio(sandbox, request())[0] == 200


def test_query_status_override_applies(sandbox: Sandbox) -> None:
    sandbox.settings = sandbox.settings.updated({"query_status_override": 403})
    assert trade_no_aio(sandbox, request())[0] == 403


class AppTransport:
    """The library's transport, answered by the sandbox app in process (no sockets)."""

    def __init__(self, app: SandboxApp) -> None:
        self.app = app

    def post_form(self, url: str, fields: dict[str, str], *, timeout: float) -> HttpResponse:
        path = url.removeprefix("http://sandbox.test")
        headers = (("Content-Type", "application/x-www-form-urlencoded"),)
        reply = self.app.handle(Request("POST", path, "", headers, body=encode_form(fields)))
        assert reply is not None
        return HttpResponse(reply.status, reply.body, dict(reply.headers))


def test_the_library_client_reads_the_sandbox_file(
    sandbox: Sandbox, clock: Clock, checkout_form: CheckoutFactory
) -> None:
    mtn = _open(sandbox, checkout_form, "1234")
    sandbox.pay(mtn)
    client = EcpayClient(
        STAGE,
        Endpoints.for_environment("sandbox", "http://sandbox.test"),
        transport=AppTransport(SandboxApp(sandbox)),
    )
    statement = client.download_trade_file(date(2026, 11, 27), date(2026, 11, 27))
    assert statement.encoding == "cp950" and statement.skipped_lines == 1
    assert [(r.merchant_trade_no, r.amount, r.is_paid) for r in statement.rows] == [(mtn, 1234, True)]
    with pytest.raises(RateLimitedError):
        client.download_trade_file(date(2026, 11, 27), date(2026, 11, 27))
    clock.now += timedelta(minutes=2)
    with pytest.raises(RejectedError) as caught:
        client.download_trade_file(date(2026, 11, 21), date(2026, 11, 27), date_type="4")
    assert caught.value.code == "10100050"
