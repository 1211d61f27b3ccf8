"""The library's ECPay test doubles, driven through the real client (signing and verification included)."""

from __future__ import annotations

import pytest

from ecpay_lambda.ecpay.client import EcpayClient
from ecpay_lambda.ecpay.credentials import MerchantCredentials
from ecpay_lambda.ecpay.environments import Endpoints
from ecpay_lambda.ecpay.errors import RejectedError, TransportError
from ecpay_lambda.ecpay.testing import FakeEcpay, MockRequest, MockTransport, Trade, form_answer
from ecpay_lambda.ecpay.transport import HttpResponse

CREDENTIALS = MerchantCredentials.stage_test_merchant()
ENDPOINTS = Endpoints("http://ecpay.test.invalid")


def test_a_mock_transport_hands_each_request_to_its_handler_and_keeps_it() -> None:
    def handler(request: MockRequest) -> HttpResponse:
        assert request.url.endswith("/Cashier/QueryTradeInfo/V5")
        return form_answer("TradeStatus=10200047&RtnMsg=Cant not find the trade data")

    transport = MockTransport(handler)
    client = EcpayClient(CREDENTIALS, ENDPOINTS, transport=transport)
    with pytest.raises(RejectedError) as rejected:
        client.query_trade_info("T1")
    assert rejected.value.code == "10200047"
    [request] = transport.requests
    assert request.fields["MerchantTradeNo"] == "T1" and "CheckMacValue" in request.fields
    assert request.timeout > 0


def test_a_mock_transport_raises_what_its_handler_raises() -> None:
    def handler(request: MockRequest) -> HttpResponse:
        raise TransportError("timed out")

    client = EcpayClient(CREDENTIALS, ENDPOINTS, transport=MockTransport(handler))
    with pytest.raises(TransportError):
        client.query_trade_info("T1")


def test_form_answer_encodes_a_mapping_and_keeps_text() -> None:
    assert (
        form_answer({"RtnCode": "1", "RtnMsg": "交易 OK"}).body == b"RtnCode=1&RtnMsg=%E4%BA%A4%E6%98%93+OK"
    )
    assert form_answer("1|OK", status=403) == HttpResponse(403, b"1|OK", {"Content-Type": "text/html"})


def test_the_fake_answers_a_signed_query_the_client_verifies() -> None:
    fake = FakeEcpay()
    fake.pay("T1", 500)
    fake.trades["T2"] = Trade(300, payment_type="ATM_TAISHIN")
    client = EcpayClient(CREDENTIALS, ENDPOINTS, transport=fake)
    paid, waiting = client.query_trade_info("T1"), client.query_trade_info("T2")
    assert (paid.is_paid, paid.trade_amt, paid.payment_type) == (True, 500, "Credit_CreditCard")
    assert (waiting.is_paid, waiting.trade_status, waiting.trade_amt) == (False, "0", 300)
    assert fake.queries == ["T1", "T2"]


@pytest.mark.parametrize(("unknown", "status"), [("not_found", None), ("unpaid", "0")])
def test_an_unknown_trade_is_not_found_or_unpaid(unknown: str, status: str | None) -> None:
    client = EcpayClient(CREDENTIALS, ENDPOINTS, transport=FakeEcpay(unknown_trades=unknown))  # type: ignore[arg-type]
    if status is None:
        with pytest.raises(RejectedError):
            client.query_trade_info("T9")
    else:
        assert client.query_trade_info("T9").trade_status == status


def test_the_fake_refunds_and_records_the_action() -> None:
    fake = FakeEcpay()
    client = EcpayClient(CREDENTIALS, ENDPOINTS, transport=fake)
    result = client.do_action("T1", "2411270000000001", "R", 200)
    assert result.ok and fake.card_refunded == [200]
    assert [a["Action"] for a in fake.actions] == ["R"]
    fake.action_rtn_code = "10200115"
    assert not client.do_action("T1", "2411270000000001", "R", 100).ok
    assert fake.card_refunded == [200]  # a refused refund refunds nothing


def test_the_fake_refuses_a_request_signed_with_other_keys() -> None:
    other = MerchantCredentials("2000132", "5294y06JbISpM5x9", "v77hoKGq4kWxNNIS")
    client = EcpayClient(other, ENDPOINTS, transport=FakeEcpay())
    with pytest.raises(RejectedError) as rejected:
        client.query_trade_info("T1")
    assert rejected.value.code == "10200073"


def test_injected_failures_are_raised() -> None:
    fake = FakeEcpay(query_error=TransportError("down"))
    with pytest.raises(TransportError, match="down"):
        EcpayClient(CREDENTIALS, ENDPOINTS, transport=fake).query_trade_info("T1")
    assert fake.queries == ["T1"]
