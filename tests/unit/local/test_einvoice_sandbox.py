"""The offline e-invoice sandbox: ECPay's envelope checks, its rules, and the library client against it."""

from __future__ import annotations

import base64
import json
import re
import urllib.parse
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from ecpay_lambda.ecpay.einvoice import (
    Buyer,
    CarrierType,
    InvoiceClient,
    InvoiceCredentials,
    InvoiceRejected,
    InvoiceTransportError,
    IssueRequest,
    Item,
)
from ecpay_lambda.local.http import Request
from ecpay_lambda.local.sandbox import Sandbox, SandboxApp, SandboxTransport
from ecpay_lambda.local.sandbox.einvoice_book import InvoiceBook
from ecpay_lambda.local.sandbox.einvoice_engine import InvoiceSandbox, invoices_for
from ecpay_lambda.local.stack import SandboxGuard

KEY, IV = b"ejCk326UnaZWKisg", b"q9jcZX8Ib9LM8wYk"
NOW = datetime(2026, 3, 10, 2, 0, tzinfo=UTC)  # 10:00 Taipei, in the March-April period


# --- an independent implementation of §8 (cryptography primitives and urllib only) -------------


def independent_encrypt(payload: dict[str, Any], key: bytes = KEY, iv: bytes = IV) -> str:
    text = json.dumps(payload, ensure_ascii=True)  # PHP-like escaping, unlike the library's compact UTF-8
    encoded = urllib.parse.quote(text, safe="-_.").encode("ascii")  # %20 for spaces: decodes the same
    padder = padding.PKCS7(128).padder()
    encryptor = Cipher(algorithms.AES(key), modes.CBC(iv)).encryptor()
    data = encryptor.update(padder.update(encoded) + padder.finalize()) + encryptor.finalize()
    return base64.b64encode(data).decode("ascii")


def independent_decrypt(data: str, key: bytes = KEY, iv: bytes = IV) -> dict[str, Any]:
    decryptor = Cipher(algorithms.AES(key), modes.CBC(iv)).decryptor()
    padded = decryptor.update(base64.b64decode(data)) + decryptor.finalize()
    unpadder = padding.PKCS7(128).unpadder()
    text = (unpadder.update(padded) + unpadder.finalize()).decode("ascii")
    result = json.loads(urllib.parse.unquote_plus(text))
    assert isinstance(result, dict)
    return result


@pytest.fixture
def clock() -> dict[str, datetime]:
    return {"now": NOW}


@pytest.fixture
def sandbox(clock: dict[str, datetime]) -> Iterator[Sandbox]:
    aio = Sandbox(clock=lambda: clock["now"])
    try:
        yield aio
    finally:
        aio.close()


@pytest.fixture
def app(sandbox: Sandbox) -> SandboxApp:
    return SandboxApp(sandbox)


@pytest.fixture
def client(app: SandboxApp, clock: dict[str, datetime]) -> InvoiceClient:
    return InvoiceClient(
        InvoiceCredentials.stage_test_merchant(),
        base_url="http://sandbox.test",
        transport=SandboxTransport(app),
        timeout=5,
        clock=lambda: clock["now"],
    )


def post(app: SandboxApp, path: str, body: bytes | dict[str, Any]) -> tuple[int, dict[str, Any]]:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    response = app.handle(
        Request(
            method="POST",
            raw_path=path,
            raw_query="",
            headers=(("Content-Type", "application/json"),),
            body=raw,
        )
    )
    assert response is not None
    return response.status, json.loads(response.body)


def get(app: SandboxApp, path: str) -> tuple[int, Any, str]:
    response = app.handle(Request(method="GET", raw_path=path, raw_query="", headers=(), body=b""))
    assert response is not None
    text = response.body.decode()
    return (
        response.status,
        (json.loads(text) if response.header("Content-Type").startswith("application/json") else None),
        text,
    )


def envelope(
    payload: dict[str, Any], *, timestamp: datetime = NOW, key: bytes = KEY, merchant: str = "2000132"
) -> dict[str, Any]:
    return {
        "MerchantID": merchant,
        "RqHeader": {"Timestamp": int(timestamp.timestamp()), "Revision": "3.0.0"},
        "Data": independent_encrypt(payload, key),
    }


def issue_payload(relate: str = "DEP000000001", **changes: Any) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "MerchantID": "2000132",
        "RelateNumber": relate,
        "CustomerID": "",
        "CustomerIdentifier": "",
        "CustomerName": "",
        "CustomerAddr": "",
        "CustomerPhone": "",
        "CustomerEmail": "buyer@example.com",
        "ClearanceMark": "",
        "Print": "0",
        "Donation": "0",
        "LoveCode": "",
        "CarrierType": "1",
        "CarrierNum": "",
        "TaxType": "1",
        "SalesAmount": 500,
        "InvoiceRemark": "",
        "Items": [
            {
                "ItemSeq": 1,
                "ItemName": "點數儲值 Points",
                "ItemCount": 1,
                "ItemWord": "式",
                "ItemPrice": 500,
                "ItemTaxType": "1",
                "ItemAmount": 500,
            }
        ],
        "InvType": "07",
        "vat": "1",
    }
    payload.update(changes)
    return payload


def answer_of(reply: dict[str, Any]) -> dict[str, Any]:
    assert reply["TransCode"] == 1, reply
    return independent_decrypt(reply["Data"])


# --- the envelope -----------------------------------------------------------------------------


def test_independent_request_is_accepted_and_the_answer_decrypts_with_the_test_keys(app: SandboxApp) -> None:
    status, reply = post(app, "/B2CInvoice/Issue", envelope(issue_payload()))
    assert status == 200
    assert reply["MerchantID"] == "2000132"
    answer = answer_of(reply)
    assert answer["RtnCode"] == 1
    assert re.fullmatch(r"[A-Z]{2}[0-9]{8}", answer["InvoiceNo"])
    assert re.fullmatch(r"[0-9]{4}", answer["RandomNumber"])
    assert answer["InvoiceDate"] == "2026-03-10 10:00:00"


def test_wrong_key_is_refused_in_the_envelope(app: SandboxApp) -> None:
    status, reply = post(app, "/B2CInvoice/Issue", envelope(issue_payload(), key=b"pwFHCqoQZGmho4w6"))
    assert status == 200
    assert reply["TransCode"] != 1
    assert reply["Data"] == ""
    assert "decrypt" in reply["TransMsg"].lower()
    _, listing, _ = get(app, "/sandbox/api/invoices")
    assert listing == {"invoices": []}


@pytest.mark.parametrize(
    ("shift", "accepted"), [(0, True), (599, True), (-599, True), (601, False), (-601, False)]
)
def test_timestamp_window_is_ten_minutes(app: SandboxApp, shift: int, accepted: bool) -> None:
    _, reply = post(
        app,
        "/B2CInvoice/CheckLoveCode",
        envelope({"MerchantID": "2000132", "LoveCode": "168001"}, timestamp=NOW + timedelta(seconds=shift)),
    )
    assert (reply["TransCode"] == 1) is accepted
    if not accepted:
        assert "Timestamp" in reply["TransMsg"]


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"[]",
        json.dumps(
            {"MerchantID": "9999999", "RqHeader": {"Timestamp": int(NOW.timestamp())}, "Data": "x"}
        ).encode(),
        json.dumps({"MerchantID": "2000132", "RqHeader": {}, "Data": "x"}).encode(),
        json.dumps(
            {"MerchantID": "2000132", "RqHeader": {"Timestamp": int(NOW.timestamp())}, "Data": "@@"}
        ).encode(),
    ],
)
def test_malformed_envelopes_are_refused(app: SandboxApp, body: bytes) -> None:
    status, reply = post(app, "/B2CInvoice/Issue", body)
    assert status == 200
    assert reply["TransCode"] != 1 and reply["TransMsg"]


def test_data_for_another_merchant_is_refused(app: SandboxApp) -> None:
    _, reply = post(app, "/B2CInvoice/Issue", envelope(issue_payload(MerchantID="3002607")))
    assert answer_of(reply)["RtnCode"] == 1500030


def test_unknown_endpoint_and_method(app: SandboxApp) -> None:
    response = app.handle(
        Request(method="POST", raw_path="/B2CInvoice/Nope", raw_query="", headers=(), body=b"{}")
    )
    assert response is not None and response.status == 404
    response = app.handle(
        Request(method="GET", raw_path="/B2CInvoice/Issue", raw_query="", headers=(), body=b"")
    )
    assert response is not None and response.status == 405


# --- ECPay's rules, as RtnCodes in an encrypted answer ------------------------------------------


@pytest.mark.parametrize(
    ("changes", "code"),
    [
        (
            {"CustomerIdentifier": "22099131", "Donation": "1", "LoveCode": "168001", "CarrierType": ""},
            1500007,
        ),
        (
            {
                "CustomerIdentifier": "22099132",
                "Print": "1",
                "CarrierType": "",
                "CustomerName": "A",
                "CustomerAddr": "B",
            },
            1500006,
        ),
        ({"CustomerIdentifier": "22099131", "CarrierType": ""}, 1500008),
        ({"Print": "1", "CustomerName": "A", "CustomerAddr": "B"}, 1500009),
        (
            {
                "Donation": "1",
                "LoveCode": "168001",
                "Print": "1",
                "CarrierType": "",
                "CustomerName": "A",
                "CustomerAddr": "B",
            },
            1500011,
        ),
        ({"Print": "1", "CarrierType": ""}, 1500012),
        ({"CarrierType": "3", "CarrierNum": "1234567"}, 1500013),
        ({"CarrierType": "3", "CarrierNum": "/0000000"}, 1500027),
        ({"CarrierType": "2", "CarrierNum": "AB123"}, 1500014),
        ({"Donation": "1", "LoveCode": "12", "CarrierType": ""}, 1500017),
        ({"Donation": "1", "LoveCode": "0000", "CarrierType": ""}, 1500028),
        ({"CustomerEmail": "", "CustomerPhone": ""}, 1500002),
        ({"SalesAmount": 400}, 1500020),
        ({"RelateNumber": "x" * 31}, 1500001),
        ({"TaxType": "7"}, 1500022),
    ],
)
def test_issue_rules_are_ecpay_error_codes(app: SandboxApp, changes: dict[str, Any], code: int) -> None:
    _, reply = post(app, "/B2CInvoice/Issue", envelope(issue_payload(**changes)))
    answer = answer_of(reply)
    assert answer["RtnCode"] == code
    assert answer["RtnMsg"]


def test_duplicate_relate_number_is_refused(app: SandboxApp) -> None:
    assert answer_of(post(app, "/B2CInvoice/Issue", envelope(issue_payload()))[1])["RtnCode"] == 1
    answer = answer_of(post(app, "/B2CInvoice/Issue", envelope(issue_payload()))[1])
    assert answer["RtnCode"] == 1500010
    assert "自訂編號重覆" in answer["RtnMsg"]


def test_invoice_numbers_are_unique_and_sequential(app: SandboxApp) -> None:
    numbers = [
        answer_of(post(app, "/B2CInvoice/Issue", envelope(issue_payload(f"DEP{n:09d}")))[1])["InvoiceNo"]
        for n in range(5)
    ]
    assert len(set(numbers)) == 5
    assert len({n[:2] for n in numbers}) == 1
    assert [int(n[2:]) for n in numbers] == list(range(int(numbers[0][2:]), int(numbers[0][2:]) + 5))


# --- the library client against the sandbox, every endpoint --------------------------------------

REQUEST = IssueRequest(
    relate_number="DEP123456789",
    buyer=Buyer(email="buyer@example.com", carrier_type=CarrierType.MOBILE_BARCODE, carrier_num="/ABC1234"),
    items=(Item("點數儲值", 1, "式", 800, 800),),
    sales_amount=800,
)


def test_client_issue_get_issue_and_duplicate(client: InvoiceClient) -> None:
    assert client.get_issue(relate_number="DEP123456789") is None
    issued = client.issue(REQUEST)
    assert issued.invoice_date == NOW
    record = client.get_issue(relate_number="DEP123456789")
    assert record is not None
    assert (record.invoice_no, record.random_number, record.sales_amount) == (
        issued.invoice_no,
        issued.random_number,
        800,
    )
    assert not record.voided and record.remaining_allowance_amount == 800
    assert record.fields["IIS_Carrier_Num"] == "/ABC1234"
    with pytest.raises(InvoiceRejected) as caught:
        client.issue(REQUEST)
    assert caught.value.rtn_code == 1500010


def test_client_void_in_period(client: InvoiceClient) -> None:
    issued = client.issue(REQUEST)
    client.invalid(issued.invoice_no, issued.invoice_date, "全額退款")
    record = client.get_issue(relate_number=REQUEST.relate_number)
    assert record is not None and record.voided
    with pytest.raises(InvoiceRejected) as caught:
        client.invalid(issued.invoice_no, issued.invoice_date, "again")
    assert caught.value.rtn_code == 1600020
    with pytest.raises(InvoiceRejected) as refused:
        client.allowance(
            issued.invoice_no, issued.invoice_date, 100, [Item("退款", 1, "式", 100, 100)], buyer_email=""
        )
    assert refused.value.rtn_code == 1600020


def test_client_void_with_the_wrong_date_is_refused(client: InvoiceClient) -> None:
    issued = client.issue(REQUEST)
    with pytest.raises(InvoiceRejected) as caught:
        client.invalid(issued.invoice_no, issued.invoice_date + timedelta(days=1), "退款")
    assert caught.value.rtn_code == 1600004


def test_void_only_within_the_filing_period_on_the_sandbox_clock(
    client: InvoiceClient, sandbox: Sandbox
) -> None:
    issued = client.issue(REQUEST)
    # Move the sandbox's business clock to May 1st (Taipei): the March-April period is over.
    sandbox.settings = sandbox.settings.updated(
        {"clock_offset_seconds": (datetime(2026, 4, 30, 16, 0, tzinfo=UTC) - NOW).total_seconds()}
    )
    with pytest.raises(InvoiceRejected) as caught:
        client.invalid(issued.invoice_no, issued.invoice_date, "退款")
    assert caught.value.rtn_code == 1600021
    # An allowance is still possible, dated on the moved clock.
    result = client.allowance(
        issued.invoice_no, issued.invoice_date, 800, [Item("退款", 1, "式", 800, 800)], buyer_email="b@x.co"
    )
    assert result.remaining_amount == 0
    assert result.date == datetime(2026, 4, 30, 16, 0, tzinfo=UTC)


def test_client_allowances_reduce_the_remaining_amount(client: InvoiceClient) -> None:
    issued = client.issue(REQUEST)
    first = client.allowance(
        issued.invoice_no,
        issued.invoice_date,
        300,
        [Item("部分退款", 1, "式", 300, 300)],
        buyer_email="b@x.co",
    )
    assert first.remaining_amount == 500
    assert re.fullmatch(r"20260310[0-9]{8}", first.allowance_no)
    with pytest.raises(InvoiceRejected) as too_much:
        client.allowance(
            issued.invoice_no, issued.invoice_date, 600, [Item("退款", 1, "式", 600, 600)], buyer_email=""
        )
    assert too_much.value.rtn_code == 1600030
    # An invoice with an allowance in force cannot be voided until the allowance is.
    with pytest.raises(InvoiceRejected) as has_allowance:
        client.invalid(issued.invoice_no, issued.invoice_date, "退款")
    assert has_allowance.value.rtn_code == 1600022
    client.invalid_allowance(issued.invoice_no, first.allowance_no, "取消折讓")
    record = client.get_issue(relate_number=REQUEST.relate_number)
    assert record is not None and record.remaining_allowance_amount == 800
    with pytest.raises(InvoiceRejected) as twice:
        client.invalid_allowance(issued.invoice_no, first.allowance_no, "取消折讓")
    assert twice.value.rtn_code == 1600032
    second = client.allowance(
        issued.invoice_no, issued.invoice_date, 800, [Item("退款", 1, "式", 800, 800)], buyer_email=""
    )
    assert second.remaining_amount == 0 and second.allowance_no != first.allowance_no


def test_client_checks_barcodes_and_love_codes(client: InvoiceClient) -> None:
    assert client.check_barcode("/ABC1234")
    assert client.check_barcode("/+-.9ZZ0")
    assert not client.check_barcode("/0000000")
    assert client.check_love_code("168001")
    assert client.check_love_code("919")
    assert not client.check_love_code("0000")


def test_client_with_wrong_keys_gets_a_transport_refusal(app: SandboxApp) -> None:
    wrong = InvoiceClient(
        InvoiceCredentials("2000132", "pwFHCqoQZGmho4w6", "EkRm7iFT261dpevs"),
        base_url="http://sandbox.test",
        transport=SandboxTransport(app),
        clock=lambda: NOW,
    )
    with pytest.raises(InvoiceTransportError):
        wrong.check_love_code("168001")


def test_get_issue_by_invoice_number_and_date(app: SandboxApp, client: InvoiceClient) -> None:
    issued = client.issue(REQUEST)
    _, reply = post(
        app,
        "/B2CInvoice/GetIssue",
        envelope({"MerchantID": "2000132", "InvoiceNo": issued.invoice_no, "InvoiceDate": "2026-03-10"}),
    )
    assert answer_of(reply)["IIS_Relate_Number"] == "DEP123456789"
    _, reply = post(
        app,
        "/B2CInvoice/GetIssue",
        envelope({"MerchantID": "2000132", "InvoiceNo": "ZZ99999999", "InvoiceDate": "2026-03-10"}),
    )
    assert answer_of(reply)["RtnCode"] == 1600003


# --- control API, pages, state -------------------------------------------------------------------


def test_control_api_shows_the_decrypted_request_and_state(app: SandboxApp, client: InvoiceClient) -> None:
    issued = client.issue(REQUEST)
    allowance = client.allowance(
        issued.invoice_no, issued.invoice_date, 100, [Item("退款", 1, "式", 100, 100)], buyer_email=""
    )
    status, listing, _ = get(app, "/sandbox/api/invoices")
    assert status == 200
    assert [i["invoice_no"] for i in listing["invoices"]] == [issued.invoice_no]
    assert listing["invoices"][0]["remaining_amount"] == 700
    status, record, _ = get(app, f"/sandbox/api/invoices/{issued.invoice_no}")
    assert status == 200
    assert record["status"] == "issued"
    assert record["sales_amount"] == 800
    assert record["request"]["CarrierType"] == "3" and record["request"]["CarrierNum"] == "/ABC1234"
    assert record["request"]["Items"][0]["ItemName"] == "點數儲值"
    assert [(a["allowance_no"], a["amount"], a["status"]) for a in record["allowances"]] == [
        (allowance.allowance_no, 100, "issued")
    ]
    status, missing, _ = get(app, "/sandbox/api/invoices/ZZ00000000")
    assert status == 404 and missing["error"]["code"] == "not_found"
    assert post(app, "/sandbox/api/invoices/reset", b"")[1] == {"invoices": 0}
    assert get(app, "/sandbox/api/invoices")[1] == {"invoices": []}


def test_voided_state_in_the_control_api(app: SandboxApp, client: InvoiceClient) -> None:
    issued = client.issue(REQUEST)
    client.invalid(issued.invoice_no, issued.invoice_date, "全額退款")
    record = get(app, f"/sandbox/api/invoices/{issued.invoice_no}")[1]
    assert record["status"] == "voided" and record["void_reason"] == "全額退款"


def test_pages_list_and_show_invoices_in_both_languages(app: SandboxApp, client: InvoiceClient) -> None:
    issued = client.issue(REQUEST)
    status, _, html = get(app, "/sandbox/invoices")
    assert status == 200
    assert issued.invoice_no in html and "電子發票" in html and "E-invoices" in html and "NT$800" in html
    status, _, html = get(app, f"/sandbox/invoices/{issued.invoice_no}")
    assert status == 200
    assert (
        "手機條碼 Mobile barcode /ABC1234" in html
        and "已開立 Issued" in html
        and issued.random_number in html
    )
    assert "2026-03-10 10:00:00" in html  # Taipei time, not ISO UTC
    assert not re.search(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}", html), "ISO times left on the page"
    status, _, html = get(app, "/sandbox/invoices/ZZ00000000")
    assert status == 404 and "No such invoice" in html
    _, _, index = get(app, "/sandbox/")
    assert 'href="/sandbox/invoices"' in index


def test_apps_of_one_sandbox_share_its_invoices(sandbox: Sandbox, client: InvoiceClient) -> None:
    client.issue(REQUEST)
    other = SandboxApp(sandbox)
    assert other.invoices is invoices_for(sandbox)
    assert [i["relate_number"] for i in get(other, "/sandbox/api/invoices")[1]["invoices"]] == [
        "DEP123456789"
    ]


def test_invoices_persist_next_to_the_trades(tmp_path: Any) -> None:
    path = tmp_path / "einvoice.json"
    first = InvoiceSandbox(book=InvoiceBook(path), clock=lambda: NOW)
    payload = envelope(issue_payload())
    answer = independent_decrypt(first.handle("Issue", json.dumps(payload).encode())["Data"])
    again = InvoiceSandbox(book=InvoiceBook(path), clock=lambda: NOW)
    assert again.snapshot(answer["InvoiceNo"]) is not None
    # The number sequence survives a restart too: the next invoice gets the next number.
    second = independent_decrypt(
        again.handle("Issue", json.dumps(envelope(issue_payload("DEP2"))).encode())["Data"]
    )
    assert int(second["InvoiceNo"][2:]) == int(answer["InvoiceNo"][2:]) + 1
    # A duplicate RelateNumber is still refused after the restart.
    dup = independent_decrypt(again.handle("Issue", json.dumps(payload).encode())["Data"])
    assert dup["RtnCode"] == 1500010


def test_the_public_address_guard_covers_the_einvoice_paths() -> None:
    guard = SandboxGuard("token-123")
    for path in ("/B2CInvoice/Issue", "/sandbox/api/invoices", "/sandbox/invoices"):
        remote = Request(
            method="POST", raw_path=path, raw_query="", headers=(), body=b"{}", client_ip="203.0.113.5"
        )
        refused = guard.handle(remote)
        assert refused is not None and refused.status == 403
        local = Request(method="POST", raw_path=path, raw_query="", headers=(), body=b"{}")
        assert guard.handle(local) is None
