"""The e-invoice sandbox over real HTTP on the sandbox's own port, with the library's default transport."""

from __future__ import annotations

import json
import urllib.request

import pytest

from ecpay_lambda.ecpay.einvoice import (
    Buyer,
    InvoiceClient,
    InvoiceCredentials,
    InvoiceRejected,
    IssueRequest,
    Item,
)


@pytest.fixture(autouse=True)
def _no_proxies(monkeypatch: pytest.MonkeyPatch) -> None:
    # urllib honours proxy variables; loopback traffic must go straight to the sandbox.
    for name in ("http_proxy", "https_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)


def _get(url: str) -> tuple[int, bytes]:
    with urllib.request.urlopen(url, timeout=5) as reply:
        return reply.status, reply.read()


def test_issue_query_void_over_http(ecpay_sandbox) -> None:  # type: ignore[no-untyped-def]
    client = InvoiceClient(
        InvoiceCredentials.stage_test_merchant(), base_url=ecpay_sandbox.base_url, timeout=5
    )
    request = IssueRequest(
        relate_number="HTTP0001",
        buyer=Buyer(email="buyer@example.com", love_code="168001"),
        items=(Item("點數儲值", 2, "份", 250, 500),),
        sales_amount=500,
    )
    issued = client.issue(request)
    record = client.get_issue(relate_number="HTTP0001")
    assert record is not None and record.invoice_no == issued.invoice_no and record.sales_amount == 500
    with pytest.raises(InvoiceRejected):
        client.issue(request)
    assert client.check_love_code("168001") and not client.check_barcode("/0000000")
    status, body = _get(f"{ecpay_sandbox.base_url}/sandbox/api/invoices/{issued.invoice_no}")
    record_json = json.loads(body)
    assert status == 200
    assert record_json["request"]["LoveCode"] == "168001" and record_json["request"]["Donation"] == "1"
    client.invalid(issued.invoice_no, issued.invoice_date, "退款")
    status, body = _get(f"{ecpay_sandbox.base_url}/sandbox/api/invoices")
    assert [(i["invoice_no"], i["status"]) for i in json.loads(body)["invoices"]] == [
        (issued.invoice_no, "voided")
    ]
    status, page = _get(f"{ecpay_sandbox.base_url}/sandbox/invoices")
    assert status == 200 and issued.invoice_no.encode() in page and "已作廢 Voided".encode() in page
