"""The e-invoice client over a fake JSON transport: requests sent, answers read, failures told apart."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime

import pytest

from ecpay_lambda.ecpay.einvoice import (
    Buyer,
    InvoiceClient,
    InvoiceCredentials,
    InvoiceRejected,
    InvoiceRuleError,
    InvoiceTransportError,
    IssueRequest,
    Item,
)
from ecpay_lambda.ecpay.einvoice.envelope import decrypt_data, encrypt_data
from ecpay_lambda.ecpay.environments import einvoice_base_url
from ecpay_lambda.ecpay.errors import RateLimitedError, ResponseError, TransportError
from ecpay_lambda.ecpay.transport import HttpResponse

CREDS = InvoiceCredentials.stage_test_merchant()
NOW = datetime(2026, 3, 10, 2, 0, tzinfo=UTC)
Answer = Callable[[str, dict[str, object]], dict[str, object] | HttpResponse]


@dataclass
class FakeEcpay:
    """Decrypts each request, records it, and encrypts what ``answer`` returns."""

    answer: Answer
    calls: list[tuple[str, dict[str, object], dict[str, object]]] = field(default_factory=list)

    def post_json(self, url: str, body: bytes, *, timeout: float) -> HttpResponse:
        envelope = json.loads(body)
        payload = decrypt_data(envelope["Data"], CREDS.hash_key, CREDS.hash_iv)
        self.calls.append((url, envelope, payload))
        reply = self.answer(url.rsplit("/", 1)[-1], payload)
        if isinstance(reply, HttpResponse):
            return reply
        data = {
            "MerchantID": CREDS.merchant_id,
            "RpHeader": {"Timestamp": 1},
            "TransCode": 1,
            "TransMsg": "",
            "Data": encrypt_data(reply, CREDS.hash_key, CREDS.hash_iv),
        }
        return HttpResponse(200, json.dumps(data).encode(), {})


def _client(answer: Answer) -> tuple[InvoiceClient, FakeEcpay]:
    fake = FakeEcpay(answer)
    return InvoiceClient(
        CREDS, base_url="https://einvoice.test/", transport=fake, timeout=3, clock=lambda: NOW
    ), fake


REQUEST = IssueRequest(
    relate_number="DEP0123456789",
    buyer=Buyer(email="a@b.co"),
    items=(Item("點數儲值", 1, "式", 500, 500),),
    sales_amount=500,
)


def test_issue_sends_the_envelope_and_reads_the_invoice() -> None:
    client, fake = _client(
        lambda name, p: {
            "RtnCode": 1,
            "RtnMsg": "開立發票成功",
            "InvoiceNo": "AB12345678",
            "InvoiceDate": "2026-03-10+10:00:05",
            "RandomNumber": "0427",
        }
    )
    issued = client.issue(REQUEST)
    assert issued.invoice_no == "AB12345678"
    assert issued.random_number == "0427"
    assert issued.invoice_date == datetime(2026, 3, 10, 2, 0, 5, tzinfo=UTC)
    url, envelope, payload = fake.calls[0]
    assert url == "https://einvoice.test/B2CInvoice/Issue"
    assert envelope["MerchantID"] == "2000132"
    assert envelope["RqHeader"] == {"Timestamp": int(NOW.timestamp()), "Revision": "3.0.0"}
    assert payload["RelateNumber"] == "DEP0123456789"
    assert payload["SalesAmount"] == 500
    assert payload["MerchantID"] == "2000132"


def test_issue_validates_before_sending() -> None:
    client, fake = _client(lambda name, p: {"RtnCode": 1})
    bad = IssueRequest("DEP1", Buyer(email="a@b.co"), (Item("x", 1, "式", 500, 500),), 400)
    with pytest.raises(InvoiceRuleError) as caught:
        client.issue(bad)
    assert caught.value.code == "items_sum"
    assert fake.calls == []


def test_issue_rejected_carries_ecpays_code_and_message() -> None:
    client, _ = _client(lambda name, p: {"RtnCode": 1500010, "RtnMsg": "RelateNumber 重複"})
    with pytest.raises(InvoiceRejected) as caught:
        client.issue(REQUEST)
    assert (caught.value.rtn_code, caught.value.rtn_msg) == (1500010, "RelateNumber 重複")


def test_malformed_invoice_number_is_a_response_error() -> None:
    client, _ = _client(
        lambda name, p: {
            "RtnCode": 1,
            "InvoiceNo": "ab1234567",
            "InvoiceDate": "2026-03-10 10:00:05",
            "RandomNumber": "0427",
        }
    )
    with pytest.raises(ResponseError):
        client.issue(REQUEST)


def test_envelope_refusal_and_http_errors_and_timeouts_are_distinguishable() -> None:
    refused = json.dumps({"TransCode": 999, "TransMsg": "Timestamp Error", "Data": ""}).encode()
    client, _ = _client(lambda name, p: HttpResponse(200, refused, {}))
    with pytest.raises(InvoiceTransportError) as caught:
        client.issue(REQUEST)
    assert caught.value.trans_code == 999
    client, _ = _client(lambda name, p: HttpResponse(403, b"", {}))
    with pytest.raises(RateLimitedError):
        client.issue(REQUEST)
    client, _ = _client(lambda name, p: HttpResponse(500, b"", {}))
    with pytest.raises(TransportError) as failed:
        client.issue(REQUEST)
    assert not isinstance(failed.value, ResponseError)

    def timeout(name: str, payload: dict[str, object]) -> dict[str, object]:
        raise TransportError("POST failed: timed out")

    client, _ = _client(timeout)
    with pytest.raises(TransportError):
        client.issue(REQUEST)


def test_answer_for_another_merchant_is_refused() -> None:
    client, fake = _client(lambda name, p: {"RtnCode": 1, "MerchantID": "9999999", "IsExist": "Y"})
    with pytest.raises(ResponseError, match="another MerchantID"):
        client.check_barcode("/ABC1234")
    assert len(fake.calls) == 1


GET_ISSUE = {
    "RtnCode": 1,
    "RtnMsg": "查詢發票成功",
    "IIS_Number": "AB12345678",
    "IIS_Relate_Number": "DEP0123456789",
    "IIS_Create_Date": "2026-03-10 10:00:05",
    "IIS_Random_Number": "0427",
    "IIS_Sales_Amount": 500,
    "IIS_Invalid_Status": "0",
    "IIS_Remain_Allowance_Amt": 500,
}


def test_get_issue_found() -> None:
    client, fake = _client(lambda name, p: GET_ISSUE)
    record = client.get_issue(relate_number="DEP0123456789")
    assert record is not None
    assert (record.invoice_no, record.random_number, record.sales_amount) == ("AB12345678", "0427", 500)
    assert record.invoice_date == datetime(2026, 3, 10, 2, 0, 5, tzinfo=UTC)
    assert not record.voided
    assert record.remaining_allowance_amount == 500
    assert "fields" not in repr(record)
    assert fake.calls[0][2]["RelateNumber"] == "DEP0123456789"
    assert fake.calls[0][0].endswith("/B2CInvoice/GetIssue")


def test_get_issue_voided() -> None:
    client, _ = _client(lambda name, p: {**GET_ISSUE, "IIS_Invalid_Status": "1"})
    record = client.get_issue(relate_number="DEP0123456789")
    assert record is not None and record.voided


def test_get_issue_not_found_is_none_other_refusals_raise() -> None:
    client, _ = _client(lambda name, p: {"RtnCode": 1600003, "RtnMsg": "查無發票資料"})
    assert client.get_issue(relate_number="DEP0123456789") is None
    client, _ = _client(lambda name, p: {"RtnCode": 9000001, "RtnMsg": "系統錯誤"})
    with pytest.raises(InvoiceRejected):
        client.get_issue(relate_number="DEP0123456789")


def test_get_issue_for_another_relate_number_is_refused() -> None:
    client, _ = _client(lambda name, p: {**GET_ISSUE, "IIS_Relate_Number": "OTHER"})
    with pytest.raises(ResponseError):
        client.get_issue(relate_number="DEP0123456789")


def test_invalid_sends_taipei_date_and_reason() -> None:
    client, fake = _client(
        lambda name, p: {"RtnCode": 1, "RtnMsg": "作廢發票成功", "InvoiceNo": "AB12345678"}
    )
    client.invalid("AB12345678", datetime(2026, 3, 9, 16, 30, tzinfo=UTC), "退款")
    payload = fake.calls[0][2]
    assert payload == {
        "MerchantID": "2000132",
        "InvoiceNo": "AB12345678",
        "InvoiceDate": "2026-03-10",
        "Reason": "退款",
    }
    with pytest.raises(InvoiceRuleError):
        client.invalid("AB1234567", date(2026, 3, 10), "退款")
    with pytest.raises(InvoiceRuleError):
        client.invalid("AB12345678", date(2026, 3, 10), "x" * 21)
    assert len(fake.calls) == 1


def test_allowance() -> None:
    client, fake = _client(
        lambda name, p: {
            "RtnCode": 1,
            "IA_Allow_No": "2026031012345678",
            "IA_Invoice_No": "AB12345678",
            "IA_Date": "2026-03-11 09:00:00",
            "IA_Remain_Allowance_Amt": 300,
        }
    )
    result = client.allowance(
        "AB12345678", date(2026, 3, 10), 200, [Item("退款", 1, "式", 200, 200)], buyer_email="a@b.co"
    )
    assert result.allowance_no == "2026031012345678"
    assert result.remaining_amount == 300
    assert result.date == datetime(2026, 3, 11, 1, 0, tzinfo=UTC)
    payload = fake.calls[0][2]
    assert payload["AllowanceAmount"] == 200
    assert payload["AllowanceNotify"] == "E"
    assert payload["NotifyMail"] == "a@b.co"
    with pytest.raises(InvoiceRuleError) as caught:
        client.allowance(
            "AB12345678", date(2026, 3, 10), 250, [Item("退款", 1, "式", 200, 200)], buyer_email=""
        )
    assert caught.value.code == "items_sum"


def test_allowance_without_email_notifies_nobody() -> None:
    client, fake = _client(
        lambda name, p: {
            "RtnCode": 1,
            "IA_Allow_No": "2026031012345678",
            "IA_Date": "2026-03-11 09:00:00",
            "IA_Remain_Allowance_Amt": 0,
        }
    )
    client.allowance("AB12345678", date(2026, 3, 10), 500, [Item("退款", 1, "式", 500, 500)], buyer_email="")
    assert fake.calls[0][2]["AllowanceNotify"] == "N"


def test_invalid_allowance() -> None:
    client, fake = _client(lambda name, p: {"RtnCode": 1, "IA_Invoice_No": "AB12345678"})
    client.invalid_allowance("AB12345678", "2026031012345678", "取消折讓")
    assert fake.calls[0][0].endswith("/B2CInvoice/AllowanceInvalid")
    assert fake.calls[0][2]["AllowanceNo"] == "2026031012345678"


def test_check_barcode_and_love_code() -> None:
    client, fake = _client(lambda name, p: {"RtnCode": 1, "IsExist": "Y" if name == "CheckBarcode" else "N"})
    assert client.check_barcode("/ABC1234")
    assert not client.check_love_code("168001")
    assert [call[2].get("BarCode") or call[2].get("LoveCode") for call in fake.calls] == [
        "/ABC1234",
        "168001",
    ]
    # Malformed values are answered without asking ECPay.
    assert not client.check_barcode("ABC1234")
    assert not client.check_love_code("12")
    assert len(fake.calls) == 2


def test_environment_urls() -> None:
    assert einvoice_base_url("stage") == "https://einvoice-stage.ecpay.com.tw"
    assert einvoice_base_url("production") == "https://einvoice.ecpay.com.tw"
    assert einvoice_base_url("sandbox", "http://127.0.0.1:3000/") == "http://127.0.0.1:3000"
    with pytest.raises(ValueError):
        einvoice_base_url("sandbox")


def test_client_repr_has_no_secrets() -> None:
    client, _ = _client(lambda name, p: {"RtnCode": 1})
    assert "ejCk" not in repr(client) and "q9jc" not in repr(client)
