"""The merchant trade file (TradeNoAio): parsing by header name, encodings, rendering, and the client call."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from ecpay_lambda.ecpay import (
    EcpayValidationError,
    MerchantCredentials,
    RateLimitedError,
    RejectedError,
    ResponseError,
    TransportError,
    verify_check_mac_value,
)
from ecpay_lambda.ecpay.client import EcpayClient
from ecpay_lambda.ecpay.environments import Endpoints
from ecpay_lambda.ecpay.statement import (
    HEADER_ALIASES,
    StatementError,
    StatementFile,
    StatementRow,
    check_trade_file_range,
    parse_statement,
    render_statement,
)

from .conftest import FakeTransport

CREDS = MerchantCredentials.stage_test_merchant()

CHINESE = (
    "特店訂單編號,綠界訂單編號,訂單成立時間,付款時間,付款方式,交易金額,手續費,付款狀態,模擬付款\r\n"
    "tx1a2024112701,2411271549000001,2024/11/27 15:49:12,2024/11/27 15:50:00,"
    "Credit_CreditCard,500,15,已付款,0\r\n"
    'tx2a2024112702,2411271600000002,2024/11/27 16:00:00,,ATM_TAISHIN,"1,200",0,未付款,0\r\n'
    "tx3a2024112703,2411271700000003,2024/11/27 17:00:00,,CVS_CVS,300,0,付款失敗,0\r\n"
    ",合計 3 筆,,,,2000,,,\r\n"
)


def test_big5_file_with_chinese_headers() -> None:
    parsed = parse_statement(CHINESE.encode("big5"))
    assert parsed.encoding == "cp950"
    assert parsed.skipped_lines == 1  # the total line
    first, second, third = parsed.rows
    assert first.merchant_trade_no == "tx1a2024112701" and first.trade_no == "2411271549000001"
    assert first.amount == 500 and first.status == "paid" and first.is_paid
    assert first.payment_type == "Credit_CreditCard" and first.handling_charge == "15"
    # Taipei wall clock -> UTC
    assert first.payment_date == datetime(2024, 11, 27, 7, 50, tzinfo=UTC)
    assert first.trade_date == datetime(2024, 11, 27, 7, 49, 12, tzinfo=UTC)
    assert first.simulate_paid is False
    assert first.fields["付款狀態"] == "已付款"
    assert second.amount == 1200 and second.status == "unpaid" and second.payment_date is None
    assert third.status == "failed" and not third.is_paid
    assert "fields" not in repr(first)


def test_utf8_with_bom_and_plain_utf8() -> None:
    with_bom = parse_statement(b"\xef\xbb\xbf" + CHINESE.encode("utf-8"))
    assert with_bom.encoding == "utf-8-sig" and len(with_bom.rows) == 3
    plain = parse_statement(CHINESE.encode("utf-8"))
    assert plain.encoding == "utf-8" and plain.rows == with_bom.rows


def test_english_headers_reordered_with_extra_columns_and_blank_lines() -> None:
    text = (
        "Report,2024-11-27\n"
        "\n"
        "TradeAmt, Payment Status ,StoreID,MerchantTradeNo,PaymentDate,TradeNo,SimulatePaid,Remark\n"
        "\n"
        '"2,500.00",1,s1,txEN1,2024-11-27 09:05,T1,1,hello\n'
        "7,0,,txEN2,,T2,0,\n"
        "\n"
    )
    parsed = parse_statement(text.encode("ascii"))
    assert parsed.skipped_lines == 4  # title, blank before header, two blank lines after
    first, second = parsed.rows
    assert first.merchant_trade_no == "txEN1" and first.amount == 2500 and first.trade_no == "T1"
    assert first.status == "paid" and first.simulate_paid and not first.is_paid
    assert first.payment_date == datetime(2024, 11, 27, 1, 5, tzinfo=UTC)
    assert first.fields["StoreID"] == "s1" and first.fields["Remark"] == "hello"
    assert second.status == "unpaid" and second.amount == 7


def test_without_a_status_column_the_payment_time_decides() -> None:
    text = "特店訂單編號,交易金額,付款時間\r\nA1,100,2024/11/27 10:00:00\r\nA2,100,\r\n"
    first, second = parse_statement(text.encode("big5")).rows
    assert first.status == "paid" and second.status == "unpaid"
    assert not first.simulate_paid  # no SimulatePaid column at all: nothing says it was simulated


@pytest.mark.parametrize(
    ("cell", "simulated"),
    [("0", False), ("否", False), ("N", False), ("1", True), ("", True), ("2", True), ("abc", True)],
)
def test_only_an_explicit_no_is_a_real_payment(cell: str, simulated: bool) -> None:
    text = f"特店訂單編號,交易金額,付款狀態,模擬付款\r\nA1,100,已付款,{cell}\r\n"
    (row,) = parse_statement(text.encode("big5")).rows
    assert row.simulate_paid is simulated
    assert row.is_paid is not simulated


def test_spreadsheet_text_cells_are_unwrapped() -> None:
    text = '特店訂單編號,綠界訂單編號,交易金額,付款狀態\r\n="0012",="2411270001",100,1\r\n'
    (row,) = parse_statement(text.encode("utf-8")).rows
    assert row.merchant_trade_no == "0012" and row.trade_no == "2411270001"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("綠界訂單編號,交易金額,付款狀態\r\nT1,100,1\r\n", "no header naming a MerchantTradeNo"),
        ("特店訂單編號,付款狀態\r\nA1,1\r\n", "no amount column"),
        ("特店訂單編號,交易金額\r\nA1,100\r\n", "neither a payment_status nor a payment_date"),
        ("特店訂單編號,交易金額,付款狀態\r\nA1,100.5,1\r\n", "line 2: amount '100.5'"),
        ("特店訂單編號,交易金額,付款狀態\r\nA1,-100,1\r\n", "line 2: amount"),
        ("特店訂單編號,交易金額,付款狀態\r\nA1,100,1\r\nA2,100,退款\r\n", "line 3: payment status '退款'"),
        ("特店訂單編號,交易金額,付款時間\r\nA1,100,yesterday\r\n", "payment time 'yesterday'"),
        ("特店訂單編號,交易金額,付款時間\r\nA1,100,2024/02/30 10:00:00\r\n", "not a real date"),
        ("", "no header"),
    ],
)
def test_unreadable_files_say_why(text: str, message: str) -> None:
    with pytest.raises(StatementError, match=message):
        parse_statement(text.encode("big5"))


def test_undecodable_bytes_are_refused() -> None:
    with pytest.raises(StatementError, match="neither UTF-8 nor Big5"):
        parse_statement(b"\x80\x80\x80")
    with pytest.raises(StatementError, match="BOM"):
        parse_statement(b"\xef\xbb\xbf\xff")
    assert issubclass(StatementError, ResponseError)


def test_header_aliases_map_both_languages() -> None:
    assert HEADER_ALIASES["特店訂單編號"] == HEADER_ALIASES["merchanttradeno"] == "merchant_trade_no"
    assert HEADER_ALIASES["交易狀態"] == HEADER_ALIASES["tradestatus"] == "payment_status"
    assert HEADER_ALIASES["綠界交易編號"] == "trade_no"


def _row(mtn: str, status: str, amount: int = 100, **kw: object) -> StatementRow:
    base: dict[str, object] = {
        "merchant_trade_no": mtn,
        "trade_no": "T" + mtn,
        "amount": amount,
        "payment_type": "Credit_CreditCard",
        "status": status,
        "trade_date": datetime(2024, 11, 27, 7, 0, tzinfo=UTC),
        "payment_date": datetime(2024, 11, 27, 7, 1, tzinfo=UTC) if status == "paid" else None,
        "simulate_paid": False,
        "fields": {},
        "handling_charge": "0",
    }
    base.update(kw)
    return StatementRow(**base)  # type: ignore[arg-type]


def test_render_then_parse_round_trips_in_big5() -> None:
    rows = [
        _row("A1", "paid", 1500),
        _row("A2", "unpaid"),
        _row("A3", "failed"),
        _row("A4", "paid", simulate_paid=True),
    ]
    body = render_statement(rows)
    assert body.decode("big5").startswith("特店訂單編號,綠界訂單編號,")
    parsed = parse_statement(body)
    assert parsed.encoding == "cp950" and parsed.skipped_lines == 1
    strip = [r._replace(fields={}) for r in parsed.rows]
    assert strip == [r._replace(fields={}) for r in rows]
    assert parse_statement(render_statement(rows, encoding="utf-8", total_line=False)).skipped_lines == 0
    with pytest.raises(ValueError, match="status"):
        render_statement([_row("A5", "refunded")])


def test_range_rule_counts_both_ends() -> None:
    check_trade_file_range(date(2026, 11, 1), date(2026, 11, 7))
    check_trade_file_range(date(2026, 11, 1), date(2026, 11, 1))
    with pytest.raises(EcpayValidationError, match="at most 7 days"):
        check_trade_file_range(date(2026, 11, 1), date(2026, 11, 8))
    with pytest.raises(EcpayValidationError, match="before BeginDate"):
        check_trade_file_range(date(2026, 11, 2), date(2026, 11, 1))


# --- EcpayClient.download_trade_file ------------------------------------------------------------


def _client(transport: FakeTransport, environment: str = "stage") -> EcpayClient:
    return EcpayClient(CREDS, Endpoints.for_environment(environment), transport=transport, timeout=3.0)


def test_download_posts_the_documented_signed_form(fake_transport: FakeTransport) -> None:
    fake_transport.queue(CHINESE.encode("big5"))
    statement = _client(fake_transport).download_trade_file(
        date(2026, 11, 20), date(2026, 11, 26), payment_status="1"
    )
    assert isinstance(statement, StatementFile) and len(statement.rows) == 3
    ((url, fields, timeout),) = fake_transport.calls
    assert url == "https://vendor-stage.ecpay.com.tw/PaymentMedia/TradeNoAio"
    assert timeout == 3.0
    assert {k: v for k, v in fields.items() if k != "CheckMacValue"} == {
        "MerchantID": "3002607",
        "DateType": "2",
        "BeginDate": "2026-11-20",
        "EndDate": "2026-11-26",
        "MediaFormated": "1",
        "PaymentStatus": "1",
    }
    assert verify_check_mac_value(fields, CREDS.hash_key, CREDS.hash_iv)


def test_download_leaves_out_an_unset_status_filter(fake_transport: FakeTransport) -> None:
    fake_transport.queue(CHINESE.encode("big5"))
    _client(fake_transport, "production").download_trade_file(
        date(2026, 11, 1), date(2026, 11, 1), date_type="6"
    )
    ((url, fields, _),) = fake_transport.calls
    assert url == "https://vendor.ecpay.com.tw/PaymentMedia/TradeNoAio"
    assert "PaymentStatus" not in fields and fields["DateType"] == "6"


@pytest.mark.parametrize(
    ("begin", "end", "kwargs", "field"),
    [
        (date(2026, 11, 1), date(2026, 11, 8), {}, "EndDate"),
        (date(2026, 11, 2), date(2026, 11, 1), {}, "EndDate"),
        (date(2026, 11, 1), date(2026, 11, 2), {"date_type": "3"}, "DateType"),
        (date(2026, 11, 1), date(2026, 11, 2), {"payment_status": "9"}, "PaymentStatus"),
        (date(2026, 11, 1), date(2026, 11, 2), {"media_formatted": "2"}, "MediaFormated"),
        (datetime(2026, 11, 1, tzinfo=UTC), date(2026, 11, 2), {}, "BeginDate"),
    ],
)
def test_download_refuses_bad_requests_before_sending(
    fake_transport: FakeTransport, begin: date, end: date, kwargs: dict[str, str], field: str
) -> None:
    with pytest.raises(EcpayValidationError) as caught:
        _client(fake_transport).download_trade_file(begin, end, **kwargs)
    assert caught.value.field == field
    assert fake_transport.calls == []


def test_download_maps_ecpay_failures(fake_transport: FakeTransport) -> None:
    client = _client(fake_transport)
    day = date(2026, 11, 1)
    fake_transport.queue(b"Forbidden", status=403)
    with pytest.raises(RateLimitedError):
        client.download_trade_file(day, day)
    fake_transport.queue(b"oops", status=500)
    with pytest.raises(TransportError, match="HTTP 500"):
        client.download_trade_file(day, day)
    fake_transport.queue("RtnCode=10100050&RtnMsg=查詢區間錯誤\r\n".encode())
    with pytest.raises(RejectedError) as caught:
        client.download_trade_file(day, day)
    assert caught.value.code == "10100050" and caught.value.rtn_msg == "查詢區間錯誤"
    fake_transport.queue(b"<html><body>IP not allowed</body></html>")
    with pytest.raises(ResponseError, match="HTML page"):
        client.download_trade_file(day, day)
    fake_transport.queue(b"")
    with pytest.raises(ResponseError, match="empty answer"):
        client.download_trade_file(day, day)
    fake_transport.queue("特店訂單編號,付款狀態\r\nA1,1\r\n".encode("big5"))
    with pytest.raises(StatementError, match="no amount column"):
        client.download_trade_file(day, day)
