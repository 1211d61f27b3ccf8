"""The server-to-server client, through a fake transport: requests, answer parsing, verification."""

from __future__ import annotations

import json
import urllib.parse
from datetime import UTC, datetime

import pytest

from ecpay_lambda.ecpay import (
    EcpayValidationError,
    MerchantCredentials,
    RateLimitedError,
    RejectedError,
    ResponseError,
    TransportError,
    check_mac_value,
    verify_check_mac_value,
)
from ecpay_lambda.ecpay.client import EcpayClient, parse_form_pairs, parse_raw_pairs
from ecpay_lambda.ecpay.environments import Endpoints
from ecpay_lambda.ecpay.transport import UrllibTransport

from .conftest import FakeTransport

CREDS = MerchantCredentials.stage_test_merchant()
ENDPOINTS = Endpoints.for_environment("stage")
NOW = 1_732_693_800.75


def client(transport: FakeTransport, **kwargs: object) -> EcpayClient:
    return EcpayClient(CREDS, ENDPOINTS, transport=transport, clock=lambda: NOW, timeout=4.5, **kwargs)  # type: ignore[arg-type]


def raw_answer(fields: dict[str, str], *, sign: bool = True) -> str:
    """An answer the way QueryTradeInfo sends it: k=v joined by &, values raw (not encoded)."""
    if sign:
        fields = {**fields, "CheckMacValue": check_mac_value(fields, CREDS.hash_key, CREDS.hash_iv)}
    return "&".join(f"{k}={v}" for k, v in fields.items())


TRADE = {
    "CustomField1": "",
    "CustomField2": "",
    "CustomField3": "",
    "CustomField4": "",
    "HandlingCharge": "0",
    "ItemName": "Points x 500 + bonus",
    "MerchantID": "3002607",
    "MerchantTradeNo": "tx42abc12345",
    "PaymentDate": "2024/11/27 15:50:00",
    "PaymentType": "Credit_CreditCard",
    "PaymentTypeChargeFee": "3",
    "StoreID": "",
    "TradeAmt": "500",
    "TradeDate": "2024/11/27 15:49:12",
    "TradeNo": "2411271549123456",
    "TradeStatus": "1",
}


# --- QueryTradeInfo -----------------------------------------------------------------------------


def test_query_trade_info_request_is_signed_with_a_fresh_timestamp(fake_transport: FakeTransport) -> None:
    fake_transport.queue(raw_answer(TRADE))
    client(fake_transport).query_trade_info("tx42abc12345")
    ((url, fields, timeout),) = fake_transport.calls
    assert url == "https://payment-stage.ecpay.com.tw/Cashier/QueryTradeInfo/V5"
    assert timeout == 4.5
    assert fields["MerchantID"] == "3002607"
    assert fields["MerchantTradeNo"] == "tx42abc12345"
    assert fields["TimeStamp"] == "1732693800"
    assert set(fields) == {"MerchantID", "MerchantTradeNo", "TimeStamp", "CheckMacValue"}
    assert verify_check_mac_value(fields, CREDS.hash_key, CREDS.hash_iv)


def test_query_trade_info_literal_plus_is_a_plus(fake_transport: FakeTransport) -> None:
    answer = raw_answer(TRADE)
    fake_transport.queue(answer)
    info = client(fake_transport).query_trade_info("tx42abc12345")
    assert info.item_name == "Points x 500 + bonus"
    assert info.is_paid
    assert info.trade_amt == 500
    assert info.trade_no == "2411271549123456"
    assert info.payment_date == datetime(2024, 11, 27, 7, 50, tzinfo=UTC)
    assert info.trade_date == datetime(2024, 11, 27, 7, 49, 12, tzinfo=UTC)
    assert info.simulate_paid is False
    # The trap this parser avoids: a form decoder turns "+" into a space and the MAC fails.
    decoded = dict(urllib.parse.parse_qsl(answer, keep_blank_values=True))
    assert not verify_check_mac_value(decoded, CREDS.hash_key, CREDS.hash_iv)


@pytest.mark.parametrize(
    ("value", "simulated"),
    [(None, False), ("0", False), ("1", True), ("2", True), (" 0", True), ("", True), ("abc", True)],
)
def test_query_trade_info_simulate_paid(
    fake_transport: FakeTransport, value: str | None, simulated: bool
) -> None:
    # Present only with NeedExtraPaidInfo: absent is not simulated; present, only exactly 0 is real.
    answer = dict(TRADE) if value is None else {**TRADE, "SimulatePaid": value}
    fake_transport.queue(raw_answer(answer))
    assert client(fake_transport).query_trade_info("tx42abc12345").simulate_paid is simulated


def test_query_trade_info_unpaid_and_extra_paid_info(fake_transport: FakeTransport) -> None:
    unpaid = {**TRADE, "TradeStatus": "0", "PaymentDate": "", "gwsr": "", "card4no": "", "SimulatePaid": "0"}
    fake_transport.queue(raw_answer(unpaid))
    info = client(fake_transport).query_trade_info("tx42abc12345")
    assert not info.is_paid
    assert info.payment_date is None
    assert info.extra.present


def test_query_trade_info_percent_encoded_values_are_tried_too(fake_transport: FakeTransport) -> None:
    fields = {**TRADE, "ItemName": "點數 500"}
    mac = check_mac_value(fields, CREDS.hash_key, CREDS.hash_iv)
    encoded = {**fields, "ItemName": urllib.parse.quote("點數 500"), "CheckMacValue": mac}
    fake_transport.queue(raw_answer(encoded, sign=False))
    assert client(fake_transport).query_trade_info("tx42abc12345").item_name == "點數 500"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"TradeStatus": "1", "TradeAmt": "5"}, "CheckMacValue"),
        ({"ItemName": "Points x 500   bonus"}, "CheckMacValue"),
    ],
)
def test_query_trade_info_tampering(
    fake_transport: FakeTransport, change: dict[str, str], message: str
) -> None:
    answer = raw_answer(TRADE)
    fields = parse_raw_pairs(answer)
    fields.update(change)
    fake_transport.queue(raw_answer(fields, sign=False))
    with pytest.raises(ResponseError, match=message):
        client(fake_transport).query_trade_info("tx42abc12345")


def test_query_trade_info_identity_checks(fake_transport: FakeTransport) -> None:
    fake_transport.queue(raw_answer({**TRADE, "MerchantID": "2000132"}))
    with pytest.raises(ResponseError, match="MerchantID"):
        client(fake_transport).query_trade_info("tx42abc12345")
    fake_transport.queue(raw_answer(TRADE))
    with pytest.raises(ResponseError, match="MerchantTradeNo"):
        client(fake_transport).query_trade_info("tx42other0000")


def test_unsigned_error_answer_is_raised_not_trusted(fake_transport: FakeTransport) -> None:
    fake_transport.queue("TradeStatus=10200073&RtnMsg=CheckMacValue verify fail")
    with pytest.raises(RejectedError) as caught:
        client(fake_transport).query_trade_info("tx42abc12345")
    assert caught.value.code == "10200073"
    assert caught.value.rtn_msg == "CheckMacValue verify fail"
    # An unsigned "paid" answer is refused as unsigned, not reported as an ECPay error code.
    fake_transport.queue(raw_answer(TRADE, sign=False))
    with pytest.raises(ResponseError, match="not signed") as unsigned:
        client(fake_transport).query_trade_info("tx42abc12345")
    assert not isinstance(unsigned.value, RejectedError)
    fake_transport.queue("Hello=world")
    with pytest.raises(ResponseError, match="not signed"):
        client(fake_transport).query_trade_info("tx42abc12345")


@pytest.mark.parametrize("answer", ["", "garbage", "A=1&A=2", "A=1&junk&CheckMacValue=x"])
def test_malformed_answers(fake_transport: FakeTransport, answer: str) -> None:
    fake_transport.queue(answer)
    with pytest.raises(ResponseError):
        client(fake_transport).query_trade_info("tx42abc12345")


def test_non_utf8_answer(fake_transport: FakeTransport) -> None:
    fake_transport.queue(b"TradeStatus=1&ItemName=\xa5\xe6")
    with pytest.raises(ResponseError, match="UTF-8"):
        client(fake_transport).query_trade_info("tx42abc12345")


def test_http_403_is_rate_limited(fake_transport: FakeTransport) -> None:
    fake_transport.queue("Forbidden", status=403)
    with pytest.raises(RateLimitedError, match="403"):
        client(fake_transport).query_trade_info("tx42abc12345")


@pytest.mark.parametrize("status", [500, 404, 302])
def test_other_http_errors_are_transport_errors(fake_transport: FakeTransport, status: int) -> None:
    fake_transport.queue("oops", status=status)
    with pytest.raises(TransportError) as caught:
        client(fake_transport).query_trade_info("tx42abc12345")
    assert not isinstance(caught.value, RateLimitedError)


@pytest.mark.parametrize("number", ["", "x" * 21, "tx 42", "tx-42", "交易"])
def test_bad_merchant_trade_no_is_refused_before_sending(fake_transport: FakeTransport, number: str) -> None:
    with pytest.raises(EcpayValidationError):
        client(fake_transport).query_trade_info(number)
    assert fake_transport.calls == []


def test_platform_id_is_sent_and_signed(fake_transport: FakeTransport) -> None:
    fake_transport.queue(raw_answer(TRADE))
    client(fake_transport, platform_id="3002599").query_trade_info("tx42abc12345")
    fields = fake_transport.calls[0][1]
    assert fields["PlatformID"] == "3002599"
    assert verify_check_mac_value(fields, CREDS.hash_key, CREDS.hash_iv)


def test_defaults() -> None:
    made = EcpayClient(CREDS, ENDPOINTS)
    assert isinstance(made._transport, UrllibTransport)
    assert made.timeout == 10.0
    with pytest.raises(ValueError, match="timeout"):
        EcpayClient(CREDS, ENDPOINTS, timeout=0)


def test_secrets_never_reach_error_messages(fake_transport: FakeTransport) -> None:
    fake_transport.queue(raw_answer({**TRADE, "TradeAmt": "x"}))
    with pytest.raises(ResponseError) as caught:
        client(fake_transport).query_trade_info("tx42abc12345")
    for secret in (CREDS.hash_key, CREDS.hash_iv):
        assert secret not in str(caught.value)
    assert CREDS.hash_key not in repr(client(fake_transport).credentials)


# --- QueryPaymentInfo ---------------------------------------------------------------------------


def test_query_payment_info(fake_transport: FakeTransport) -> None:
    fields = {
        "MerchantID": "3002607",
        "MerchantTradeNo": "tx42abc12345",
        "StoreID": "",
        "RtnCode": "1",
        "RtnMsg": "Get VirtualAccount Succeeded",
        "TradeNo": "2411271549123456",
        "TradeAmt": "500",
        "PaymentType": "ATM_TAISHIN",
        "TradeDate": "2024/11/27 15:49:12",
        "BankCode": "812",
        "vAccount": "9103522175887271",
        "ExpireDate": "2024/11/30",
        "CustomField1": "",
        "CustomField2": "",
        "CustomField3": "",
        "CustomField4": "",
    }
    fake_transport.queue(raw_answer(fields))
    info = client(fake_transport).query_payment_info("tx42abc12345")
    assert fake_transport.calls[0][0] == "https://payment-stage.ecpay.com.tw/Cashier/QueryPaymentInfo"
    assert (info.bank_code, info.v_account, info.rtn_code) == ("812", "9103522175887271", "1")
    assert info.expire_at == datetime(2024, 11, 30, 15, 59, 59, tzinfo=UTC)
    fake_transport.queue(raw_answer({k: v for k, v in fields.items() if k != "TradeAmt"}))
    with pytest.raises(ResponseError, match="TradeAmt"):
        client(fake_transport).query_payment_info("tx42abc12345")


# --- DoAction -----------------------------------------------------------------------------------


def test_do_action_request(fake_transport: FakeTransport) -> None:
    fake_transport.queue(
        "MerchantID=3002607&MerchantTradeNo=tx42abc12345&TradeNo=2411271549123456&RtnCode=1&RtnMsg="
    )
    result = client(fake_transport).do_action("tx42abc12345", "2411271549123456", "R", 200)
    url, fields, _ = fake_transport.calls[0]
    assert url == "https://payment-stage.ecpay.com.tw/CreditDetail/DoAction"
    assert {k: fields[k] for k in ("MerchantTradeNo", "TradeNo", "Action", "TotalAmount")} == {
        "MerchantTradeNo": "tx42abc12345",
        "TradeNo": "2411271549123456",
        "Action": "R",
        "TotalAmount": "200",
    }
    assert verify_check_mac_value(fields, CREDS.hash_key, CREDS.hash_iv)
    assert result.ok and result.rtn_msg == "" and not result.signed


def test_do_action_query_string_failure(fake_transport: FakeTransport) -> None:
    fake_transport.queue(
        "MerchantID=3002607&MerchantTradeNo=tx42abc12345&TradeNo=2411271549123456"
        "&RtnCode=10200001&RtnMsg=error_overDate+%E9%80%BE%E6%9C%9F"
    )
    result = client(fake_transport).do_action("tx42abc12345", "2411271549123456", "C", 500)
    assert not result.ok
    assert result.rtn_code == "10200001"
    assert result.rtn_msg == "error_overDate 逾期"


@pytest.mark.parametrize(
    ("answer", "code", "message"), [("1|OK", "1", "OK"), ("0|Trade not found\n", "0", "Trade not found")]
)
def test_do_action_pipe_format(fake_transport: FakeTransport, answer: str, code: str, message: str) -> None:
    fake_transport.queue(answer)
    result = client(fake_transport).do_action("tx42abc12345", "2411271549123456", "N", 500)
    assert (result.rtn_code, result.rtn_msg) == (code, message)
    assert result.merchant_trade_no == "tx42abc12345" and result.trade_no == "2411271549123456"
    assert result.ok is (code == "1")


def test_do_action_signed_answer_is_verified(fake_transport: FakeTransport) -> None:
    fields = {"MerchantID": "3002607", "MerchantTradeNo": "tx42abc12345", "TradeNo": "2411271549123456"}
    fields |= {"RtnCode": "1", "RtnMsg": "成功 OK"}
    good = {**fields, "CheckMacValue": check_mac_value(fields, CREDS.hash_key, CREDS.hash_iv)}
    fake_transport.queue(urllib.parse.urlencode(good))
    assert client(fake_transport).do_action("tx42abc12345", "2411271549123456", "E", 500).signed
    fake_transport.queue(urllib.parse.urlencode({**good, "RtnCode": "0"}))
    with pytest.raises(ResponseError, match="CheckMacValue"):
        client(fake_transport).do_action("tx42abc12345", "2411271549123456", "E", 500)


def test_do_action_answer_for_another_trade(fake_transport: FakeTransport) -> None:
    fake_transport.queue("MerchantID=3002607&MerchantTradeNo=tx42abc12345&TradeNo=999&RtnCode=1&RtnMsg=")
    with pytest.raises(ResponseError, match="TradeNo"):
        client(fake_transport).do_action("tx42abc12345", "2411271549123456", "R", 100)


@pytest.mark.parametrize("answer", ["<html>error</html>", "RtnMsg=no code"])
def test_do_action_unrecognised(fake_transport: FakeTransport, answer: str) -> None:
    fake_transport.queue(answer)
    with pytest.raises(ResponseError):
        client(fake_transport).do_action("tx42abc12345", "2411271549123456", "R", 100)


@pytest.mark.parametrize(
    ("action", "amount", "field"),
    [
        ("X", 100, "Action"),
        ("r", 100, "Action"),
        ("R", 0, "TotalAmount"),
        ("R", True, "TotalAmount"),
        ("R", 1.5, "TotalAmount"),
    ],
)
def test_do_action_arguments(fake_transport: FakeTransport, action: str, amount: int, field: str) -> None:
    with pytest.raises(EcpayValidationError) as caught:
        client(fake_transport).do_action("tx42abc12345", "2411271549123456", action, amount)
    assert caught.value.field == field
    assert fake_transport.calls == []


# --- periodic and card detail (JSON) ------------------------------------------------------------


def test_query_credit_card_period_info(fake_transport: FakeTransport) -> None:
    answer = {
        "MerchantID": "3002607",
        "MerchantTradeNo": "sub42abc1234",
        "TradeNo": "2411271549123456",
        "RtnCode": 1,
        "PeriodType": "M",
        "Frequency": 1,
        "ExecTimes": 12,
        "PeriodAmount": 299,
        "amount": 299,
        "gwsr": 13475885,
        "process_date": "2024/11/27 15:50:00",
        "auth_code": "777777",
        "card4no": "2222",
        "card6no": "431195",
        "TotalSuccessTimes": 2,
        "TotalSuccessAmount": 598,
        "ExecStatus": "1",
        "ExecLog": [
            {"RtnCode": 1, "amount": 299, "gwsr": 13475885, "process_date": "2024/11/27 15:50:00",
             "auth_code": "777777", "TradeNo": "2411271549123456"},
            {"RtnCode": 0, "amount": 299, "gwsr": "", "process_date": "", "auth_code": "", "TradeNo": "x"},
        ],
    }  # fmt: skip
    fake_transport.queue(json.dumps(answer))
    info = client(fake_transport).query_credit_card_period_info("sub42abc1234")
    url, fields, _ = fake_transport.calls[0]
    assert url.endswith("/Cashier/QueryCreditCardPeriodInfo") and fields["TimeStamp"] == "1732693800"
    assert (info.rtn_code, info.exec_status, info.period_type) == ("1", "1", "M")
    assert (info.frequency, info.exec_times, info.period_amount) == (1, 12, 299)
    assert (info.total_success_times, info.total_success_amount) == (2, 598)
    first, second = info.executions
    assert first.ok and first.gwsr == "13475885" and first.amount == 299
    assert first.process_date == datetime(2024, 11, 27, 7, 50, tzinfo=UTC)
    assert not second.ok and second.process_date is None


def test_period_info_for_another_order_or_not_json(fake_transport: FakeTransport) -> None:
    fake_transport.queue(json.dumps({"MerchantID": "3002607", "MerchantTradeNo": "other", "ExecLog": []}))
    with pytest.raises(ResponseError, match="MerchantTradeNo"):
        client(fake_transport).query_credit_card_period_info("sub42abc1234")
    fake_transport.queue("RtnCode=90100150&RtnMsg=%E4%B8%8D%E5%AD%98%E5%9C%A8%E7%9A%84%E8%A8%82%E5%96%AE")
    with pytest.raises(RejectedError) as caught:
        client(fake_transport).query_credit_card_period_info("sub42abc1234")
    assert caught.value.code == "90100150" and caught.value.rtn_msg == "不存在的訂單"
    fake_transport.queue("[1, 2]")
    with pytest.raises(ResponseError, match="object"):
        client(fake_transport).query_credit_card_period_info("sub42abc1234")


def test_credit_card_period_action(fake_transport: FakeTransport) -> None:
    fake_transport.queue("MerchantID=3002607&MerchantTradeNo=sub42abc1234&RtnCode=1&RtnMsg=OK")
    result = client(fake_transport).credit_card_period_action("sub42abc1234", "Cancel")
    url, fields, _ = fake_transport.calls[0]
    assert url.endswith("/Cashier/CreditCardPeriodAction")
    assert fields["Action"] == "Cancel" and fields["TimeStamp"] == "1732693800"
    assert result.ok
    with pytest.raises(EcpayValidationError):
        client(fake_transport).credit_card_period_action("sub42abc1234", "Pause")


def test_query_credit_trade(fake_transport: FakeTransport) -> None:
    answer = {
        "RtnMsg": "",
        "RtnValue": {
            "TradeID": "13475885",
            "amount": "500",
            "clsamt": "500",
            "authtime": "2024/11/27 15:50:00",
            "status": "已關帳",
            "close_data": [
                {"status": "已關帳", "sno": "1", "amount": "500", "datetime": "2024/11/28 20:15:00"}
            ],
        },
    }
    fake_transport.queue(json.dumps(answer, ensure_ascii=False))
    detail = client(fake_transport).query_credit_trade(13475885, 500, 62861749)
    url, fields, _ = fake_transport.calls[0]
    assert url.endswith("/CreditDetail/QueryTrade/V2")
    assert (fields["CreditRefundId"], fields["CreditAmount"], fields["CreditCheckCode"]) == (
        "13475885",
        "500",
        "62861749",
    )
    assert (detail.trade_id, detail.amount, detail.clsamt, detail.status) == ("13475885", 500, 500, "已關帳")
    assert detail.close_data[0]["sno"] == "1"
    with pytest.raises(EcpayValidationError):
        client(fake_transport).query_credit_trade(-1, 500, 1)


# --- the parsers themselves ---------------------------------------------------------------------


def test_raw_and_form_pair_parsers_differ_exactly_on_plus_and_percent() -> None:
    text = "A=1+1&B=50%25&C=a b&D="
    assert parse_raw_pairs(text) == {"A": "1+1", "B": "50%25", "C": "a b", "D": ""}
    assert parse_form_pairs(text) == {"A": "1 1", "B": "50%", "C": "a b", "D": ""}
    assert parse_raw_pairs("\ufeffA=1\r\n") == {"A": "1"}
    assert parse_raw_pairs("A=x=y") == {"A": "x=y"}
