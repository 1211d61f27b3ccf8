"""Charges #2..n of a periodic (定期定額) order in the sandbox: the ``charge-period`` control action, the
signed PeriodReturnURL notification it sends, and the refusals after Cancel or the last planned charge."""

from __future__ import annotations

import json
import urllib.parse
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from ecpay_lambda.ecpay.client import EcpayClient
from ecpay_lambda.ecpay.environments import Endpoints
from ecpay_lambda.ecpay.notifications import parse_period_result
from ecpay_lambda.ecpay.timezone import TAIPEI
from ecpay_lambda.local.http import Request
from ecpay_lambda.local.sandbox import Sandbox, SandboxApp, SandboxTransport, Trade
from ecpay_lambda.local.sandbox.engine import ActionError

from .conftest import STAGE, CheckoutFactory

BASE = "http://sandbox.invalid"
RETURN_URL = "http://127.0.0.1:9/return"
PERIOD_URL = "http://127.0.0.1:9/periodReturn"
PERIODIC = {
    "TotalAmount": "500",
    "PeriodAmount": "500",
    "PeriodType": "M",
    "Frequency": "1",
    "ExecTimes": "3",
    "PeriodReturnURL": PERIOD_URL,
}


class Recorder:
    """The merchant's callback routes: record (url, fields), answer 1|OK."""

    def __init__(self) -> None:
        self.posts: list[tuple[str, dict[str, str]]] = []

    def __call__(self, url: str, fields: dict[str, str], timeout: float) -> tuple[int, bytes]:
        self.posts.append((url, fields))
        return 200, b"1|OK"

    def period_posts(self) -> list[dict[str, str]]:
        return [fields for url, fields in self.posts if url == PERIOD_URL]


@pytest.fixture
def received() -> Recorder:
    return Recorder()


@pytest.fixture
def sandbox(received: Recorder) -> Iterator[Sandbox]:
    moment = datetime(2026, 3, 2, 10, 0, tzinfo=TAIPEI).astimezone(UTC)
    box = Sandbox(clock=lambda: moment, send=received)
    yield box
    box.close()


@pytest.fixture
def client(sandbox: Sandbox) -> EcpayClient:
    return EcpayClient(
        STAGE,
        Endpoints(BASE),
        transport=SandboxTransport(SandboxApp(sandbox)),
        clock=lambda: sandbox.now().timestamp(),
    )


def _periodic(sandbox: Sandbox, checkout_form: CheckoutFactory) -> Trade:
    form = checkout_form(RETURN_URL, **PERIODIC)
    assert isinstance(sandbox.checkout(form), Trade)
    return sandbox.pay(form["MerchantTradeNo"])


def test_each_charge_is_signed_to_period_return_url(
    sandbox: Sandbox, client: EcpayClient, received: Recorder, checkout_form: CheckoutFactory
) -> None:
    mtn = _periodic(sandbox, checkout_form).merchant_trade_no
    sandbox.charge_period(mtn)
    [body] = received.period_posts()
    result = parse_period_result(urllib.parse.urlencode(body).encode(), STAGE)
    assert (result.merchant_trade_no, result.rtn_code, result.amount) == (mtn, "1", 500)
    assert (result.total_success_times, result.exec_times, result.period_type) == (2, 3, "M")
    assert result.gwsr and result.first_auth_amount == 500 and not result.simulate_paid
    info = client.query_credit_card_period_info(mtn)
    assert (info.total_success_times, info.total_success_amount, info.exec_status) == (2, 1000, "1")
    assert info.executions[1].gwsr == result.gwsr


def test_a_declined_charge_keeps_the_count_and_the_last_charge_finishes(
    sandbox: Sandbox, client: EcpayClient, received: Recorder, checkout_form: CheckoutFactory
) -> None:
    mtn = _periodic(sandbox, checkout_form).merchant_trade_no
    sandbox.charge_period(mtn, fail=True)
    declined = parse_period_result(urllib.parse.urlencode(received.period_posts()[0]).encode(), STAGE)
    assert declined.rtn_code == "10200058" and declined.total_success_times == 1
    sandbox.charge_period(mtn)
    sandbox.charge_period(mtn)
    assert client.query_credit_card_period_info(mtn).exec_status == "2"
    with pytest.raises(ActionError) as refused:
        sandbox.charge_period(mtn)
    assert (refused.value.status, refused.value.code) == (409, "period_not_running")
    assert len(received.period_posts()) == 3


def test_after_cancel_a_charge_is_refused(
    sandbox: Sandbox, client: EcpayClient, received: Recorder, checkout_form: CheckoutFactory
) -> None:
    mtn = _periodic(sandbox, checkout_form).merchant_trade_no
    assert client.credit_card_period_action(mtn, "Cancel").ok
    with pytest.raises(ActionError) as refused:
        sandbox.charge_period(mtn)
    assert refused.value.code == "period_not_running" and "cancelled" in refused.value.message
    assert received.period_posts() == []


def test_six_declined_charges_cancel_the_schedule(
    sandbox: Sandbox, client: EcpayClient, checkout_form: CheckoutFactory
) -> None:
    form = checkout_form(RETURN_URL, **{**PERIODIC, "ExecTimes": "12"})
    sandbox.checkout(form)
    mtn = sandbox.pay(form["MerchantTradeNo"]).merchant_trade_no
    for _ in range(6):
        sandbox.charge_period(mtn, fail=True)
    assert client.query_credit_card_period_info(mtn).exec_status == "0"


def test_one_time_orders_have_no_later_charges(sandbox: Sandbox, checkout_form: CheckoutFactory) -> None:
    form = checkout_form(RETURN_URL, TotalAmount="500")
    sandbox.checkout(form)
    with pytest.raises(ActionError) as refused:
        sandbox.charge_period(form["MerchantTradeNo"])
    assert refused.value.code == "not_periodic"


def test_control_api_charge_period_and_resend(
    sandbox: Sandbox, received: Recorder, checkout_form: CheckoutFactory
) -> None:
    app = SandboxApp(sandbox)
    mtn = _periodic(sandbox, checkout_form).merchant_trade_no

    def post(action: str, body: object) -> tuple[int, dict[str, object]]:
        request = Request("POST", f"/sandbox/api/trades/{mtn}/{action}", "", (), json.dumps(body).encode())
        response = app.handle(request)
        assert response is not None
        return response.status, json.loads(response.body)

    status, trade = post("charge-period", {"fail": "yes"})
    assert status == 400
    status, trade = post("charge-period", {"fail": False})
    assert status == 200 and len(trade["period_executions"]) == 2  # type: ignore[arg-type]
    status, _ = post("resend", {"kind": "period_return"})
    assert status == 200
    first, again = received.period_posts()
    assert first == again  # the same charge, delivered twice
