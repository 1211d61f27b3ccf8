"""ReturnURL / PaymentInfoURL / PeriodReturnURL / OrderResultURL bodies: parse, verify, type."""

from __future__ import annotations

import base64
import subprocess
import sys
import urllib.parse
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ecpay_lambda.ecpay import (
    CheckMacValueError,
    MerchantCredentials,
    NotificationCheck,
    NotificationError,
    check_mac_value,
)
from ecpay_lambda.ecpay.checkmac import MD5
from ecpay_lambda.ecpay.notifications import (
    MAX_BODY_BYTES,
    NotificationKind,
    PaymentInfoNotice,
    PaymentResult,
    PeriodResult,
    parse_form_body,
    parse_notification,
    parse_payment_info,
    parse_payment_result,
    parse_period_result,
    simulate_paid_flag,
    verify_fields,
)

CREDS = MerchantCredentials.stage_test_merchant()
SECRETS = (CREDS.hash_key, CREDS.hash_iv)

RETURN_FIELDS = {
    "CustomField1": "",
    "CustomField2": "user:u1",
    "CustomField3": "",
    "CustomField4": "",
    "MerchantID": "3002607",
    "MerchantTradeNo": "tx42abc12345",
    "PaymentDate": "2024/11/27 15:50:00",
    "PaymentType": "Credit_CreditCard",
    "PaymentTypeChargeFee": "3",
    "RtnCode": "1",
    "RtnMsg": "交易成功",
    "SimulatePaid": "0",
    "StoreID": "",
    "TradeAmt": "500",
    "TradeDate": "2024/11/27 15:49:12",
    "TradeNo": "2411271549123456",
}


def signed(
    fields: dict[str, str], *, encrypt_type: int = 1, creds: MerchantCredentials = CREDS
) -> dict[str, str]:
    return {**fields, "CheckMacValue": check_mac_value(fields, creds.hash_key, creds.hash_iv, encrypt_type)}


def body(fields: dict[str, str]) -> bytes:
    return urllib.parse.urlencode(fields).encode("ascii")


def failure(call: object, *args: object, **kwargs: object) -> NotificationError:
    with pytest.raises(NotificationError) as caught:
        call(*args, **kwargs)  # type: ignore[operator]
    message = f"{caught.value} {caught.value!r} {caught.value.reason}"
    for secret in SECRETS:
        assert secret not in message
    return caught.value


# --- ReturnURL / OrderResultURL -----------------------------------------------------------------


def test_payment_result_is_typed() -> None:
    result = parse_payment_result(body(signed(RETURN_FIELDS)), CREDS)
    assert isinstance(result, PaymentResult)
    assert result.is_paid
    assert result.merchant_trade_no == "tx42abc12345"
    assert result.trade_no == "2411271549123456"
    assert result.trade_amt == 500
    assert result.rtn_msg == "交易成功"
    assert result.payment_date == datetime(2024, 11, 27, 7, 50, tzinfo=UTC)
    assert result.trade_date == datetime(2024, 11, 27, 7, 49, 12, tzinfo=UTC)
    assert result.simulate_paid is False
    assert result.custom_fields == ("", "user:u1", "", "")
    assert result.payment_type_charge_fee == "3"
    assert result.extra.present is False
    assert result.fields["CustomField1"] == ""  # blank fields kept


def test_blank_fields_are_kept_and_signed() -> None:
    fields = parse_form_body(body(signed(RETURN_FIELDS)))
    assert fields["StoreID"] == "" and fields["CustomField4"] == ""
    dropped = {k: v for k, v in fields.items() if v != ""}
    failure(verify_fields, dropped, CREDS)


def test_unknown_extra_fields_are_tolerated_and_signed() -> None:
    with_new = {**RETURN_FIELDS, "BrandNewField": "x", "another": ""}
    result = parse_payment_result(body(signed(with_new)), CREDS)
    assert result.fields["BrandNewField"] == "x"
    tampered = {**signed(with_new), "BrandNewField": "y"}
    assert failure(parse_payment_result, body(tampered), CREDS).check == "check_mac_value"


def test_need_extra_paid_info_fields() -> None:
    extra = {
        "gwsr": "13475885",
        "process_date": "2024/11/27 15:50:00",
        "auth_code": "777777",
        "amount": "500",
        "stage": "0",
        "stast": "0",
        "staed": "0",
        "eci": "5",
        "card4no": "2222",
        "card6no": "431195",
        "red_dan": "0",
        "red_de_amt": "0",
        "red_ok_amt": "0",
        "red_yet": "0",
        "PaymentNo": "",
        "PayFrom": "",
        "ATMAccBank": "",
        "ATMAccNo": "",
        "WebATMAccBank": "",
        "WebATMAccNo": "",
        "WebATMBankName": "",
        "TWQRTradeNo": "",
    }
    result = parse_payment_result(body(signed({**RETURN_FIELDS, **extra})), CREDS)
    assert result.extra.present
    assert (result.extra.gwsr, result.extra.card4no, result.extra.card6no) == ("13475885", "2222", "431195")
    assert result.extra.auth_code == "777777" and result.extra.eci == "5"


def test_simulated_payment_is_flagged() -> None:
    result = parse_payment_result(body(signed({**RETURN_FIELDS, "SimulatePaid": "1"})), CREDS)
    assert result.is_paid and result.simulate_paid


def test_order_result_url_body_without_simulate_paid() -> None:
    # OrderResultURL is display-only: its caller may read a missing SimulatePaid as real.
    fields = {k: v for k, v in RETURN_FIELDS.items() if k != "SimulatePaid"} | {"RtnMsg": "Succeeded"}
    result = parse_payment_result(body(signed(fields)), CREDS, simulate_paid_required=False)
    assert result.simulate_paid is False
    assert result.rtn_msg == "Succeeded"


def test_return_url_without_simulate_paid_counts_as_simulated() -> None:
    # §5.1 lists SimulatePaid in every ReturnURL: without it nothing says the money is real, so
    # it is never credited from the notification (reconciliation's QueryTradeInfo decides).
    fields = {k: v for k, v in RETURN_FIELDS.items() if k != "SimulatePaid"}
    result = parse_payment_result(body(signed(fields)), CREDS)
    assert result.is_paid and result.simulate_paid
    dispatched = parse_notification(NotificationKind.PAYMENT_RESULT, body(signed(fields)), CREDS)
    assert isinstance(dispatched, PaymentResult) and dispatched.simulate_paid


@pytest.mark.parametrize(
    ("value", "simulated"), [("0", False), ("1", True), ("2", True), (" 0", True), ("", True), ("abc", True)]
)
def test_only_exactly_zero_is_a_real_payment(value: str, simulated: bool) -> None:
    result = parse_payment_result(body(signed({**RETURN_FIELDS, "SimulatePaid": value})), CREDS)
    assert result.simulate_paid is simulated
    period = parse_period_result(body(signed({**PERIOD_FIELDS, "SimulatePaid": value})), CREDS)
    assert period.simulate_paid is simulated
    assert simulate_paid_flag({"SimulatePaid": value}, required=False) is simulated


def test_a_missing_simulate_paid_follows_the_message_kind() -> None:
    assert simulate_paid_flag({}, required=True) is True
    assert simulate_paid_flag({}, required=False) is False


def test_failed_payment_with_blank_payment_date() -> None:
    fields = {**RETURN_FIELDS, "RtnCode": "10200058", "RtnMsg": "授權失敗", "PaymentDate": ""}
    result = parse_payment_result(body(signed(fields)), CREDS)
    assert not result.is_paid
    assert result.payment_date is None


def test_form_plus_is_a_space_and_percent_2b_is_a_plus() -> None:
    fields = {**RETURN_FIELDS, "CustomField1": "A+B C"}
    raw = body(signed(fields))
    assert b"CustomField1=A%2BB+C" in raw
    assert parse_payment_result(raw, CREDS).custom_fields[0] == "A+B C"


# --- transport shapes: base64, str ----------------------------------------------------------------


def test_base64_bodies_bytes_and_str() -> None:
    encoded = base64.b64encode(body(signed(RETURN_FIELDS)))
    assert parse_payment_result(encoded, CREDS, is_base64=True).is_paid
    assert parse_payment_result(encoded.decode("ascii"), CREDS, is_base64=True).is_paid


def test_str_body_is_accepted() -> None:
    assert parse_payment_result(body(signed(RETURN_FIELDS)).decode("ascii"), CREDS).trade_amt == 500


@pytest.mark.parametrize("bad", [b"not base64!!", "TWVy\u00e9", b"TWVyY2hhbnRJRD0"])
def test_bad_base64(bad: bytes | str) -> None:
    assert failure(parse_form_body, bad, is_base64=True).check in ("malformed", "encoding")


# --- malformed bodies ---------------------------------------------------------------------------


def test_duplicated_keys_are_refused() -> None:
    raw = body(signed(RETURN_FIELDS)) + b"&RtnCode=1"
    assert failure(parse_payment_result, raw, CREDS).check == "duplicate_field"


def test_duplicated_keys_differing_only_in_encoding_are_refused() -> None:
    assert failure(parse_form_body, b"Rtn%43ode=1&RtnCode=2").check == "duplicate_field"


def test_non_utf8_body_is_refused() -> None:
    raw = body(signed(RETURN_FIELDS)).replace(b"RtnMsg=", b"RtnMsg=\xa5\xe6")
    assert failure(parse_payment_result, raw, CREDS).check == "encoding"


def test_percent_encoded_non_utf8_is_refused() -> None:
    # Big5 for 交易, percent-encoded: decoding it as Latin-1 would silently break every MAC.
    assert failure(parse_form_body, b"RtnMsg=%A5%E6%A9%F6&A=1").check == "encoding"


def test_body_size_limit() -> None:
    big = b"A=" + b"x" * MAX_BODY_BYTES
    assert failure(parse_form_body, big).check == "too_large"
    assert failure(parse_form_body, base64.b64encode(big), is_base64=True).check == "too_large"
    assert parse_form_body(b"A=" + b"x" * (MAX_BODY_BYTES - 2))["A"].startswith("x")


@pytest.mark.parametrize("raw", [b"", b"&&", b"MerchantID", b"=1", b"A=1&junk"])
def test_malformed_bodies(raw: bytes) -> None:
    assert failure(parse_form_body, raw).check == "malformed"


def test_error_messages_bound_untrusted_text() -> None:
    error = failure(parse_form_body, b"A=1&" + b"x" * 5000)
    assert len(str(error)) < 200


# --- verification failures ----------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(RETURN_FIELDS))
def test_tampering_any_field_is_detected(name: str) -> None:
    tampered = {**signed(RETURN_FIELDS), name: RETURN_FIELDS[name] + "0"}
    error = failure(parse_payment_result, body(tampered), CREDS)
    assert isinstance(error, CheckMacValueError)
    assert error.check == "check_mac_value"


def test_tampered_mac_and_removed_field_are_detected() -> None:
    good = signed(RETURN_FIELDS)
    assert failure(verify_fields, {**good, "CheckMacValue": "0" * 64}, CREDS).check == "check_mac_value"
    without = {k: v for k, v in good.items() if k != "CustomField3"}
    assert failure(verify_fields, without, CREDS).check == "check_mac_value"


def test_wrong_key_is_detected() -> None:
    other = MerchantCredentials("3002607", "AAAAAAAAAAAAAAAA", "BBBBBBBBBBBBBBBB")
    error = failure(parse_payment_result, body(signed(RETURN_FIELDS, creds=other)), CREDS)
    assert error.check == "check_mac_value"


def test_md5_length_mac_never_downgrades_sha256_verification() -> None:
    md5_signed = signed(RETURN_FIELDS, encrypt_type=MD5)
    assert len(md5_signed["CheckMacValue"]) == 32
    error = failure(parse_payment_result, body(md5_signed), CREDS)
    assert error.check == "check_mac_value"
    assert "32 characters" in error.reason
    verify_fields(md5_signed, CREDS, encrypt_type=MD5)  # only when the caller asks for MD5


def test_missing_mac() -> None:
    assert failure(parse_payment_result, body(RETURN_FIELDS), CREDS).check == "check_mac_value"


def test_other_merchant_is_refused_even_when_signed() -> None:
    fields = {**RETURN_FIELDS, "MerchantID": "2000132"}
    assert failure(parse_payment_result, body(signed(fields)), CREDS).check == "merchant_id"


@pytest.mark.parametrize("name", ["MerchantID", "MerchantTradeNo", "RtnCode", "TradeAmt", "TradeNo"])
def test_missing_required_fields(name: str) -> None:
    fields = {k: v for k, v in RETURN_FIELDS.items() if k != name}
    assert failure(parse_payment_result, body(signed(fields)), CREDS).check == "missing_field"


@pytest.mark.parametrize(
    ("name", "value"),
    [("TradeAmt", "5O0"), ("TradeAmt", "-5"), ("TradeAmt", ""), ("PaymentDate", "yesterday")],
)
def test_invalid_field_values(name: str, value: str) -> None:
    fields = {**RETURN_FIELDS, name: value}
    assert failure(parse_payment_result, body(signed(fields)), CREDS).check == "invalid_field"


# --- PaymentInfoURL ------------------------------------------------------------------------------

INFO_COMMON = {
    "MerchantID": "3002607",
    "MerchantTradeNo": "tx42abc12345",
    "StoreID": "",
    "TradeNo": "2411271549123456",
    "TradeAmt": "500",
    "TradeDate": "2024/11/27 15:49:12",
    "CustomField1": "",
    "CustomField2": "",
    "CustomField3": "",
    "CustomField4": "",
}


def test_atm_account_issued() -> None:
    fields = {
        **INFO_COMMON,
        "RtnCode": "2",
        "RtnMsg": "Get VirtualAccount Succeeded",
        "PaymentType": "ATM_TAISHIN",
        "BankCode": "812",
        "vAccount": "9103522175887271",
        "ExpireDate": "2024/11/30",
    }
    notice = parse_payment_info(body(signed(fields)), CREDS)
    assert isinstance(notice, PaymentInfoNotice)
    assert notice.is_code_issued
    assert (notice.bank_code, notice.v_account) == ("812", "9103522175887271")
    # The end of 2024/11/30 in Taiwan.
    assert notice.expire_at == datetime(2024, 11, 30, 15, 59, 59, tzinfo=UTC)


def test_cvs_code_issued() -> None:
    fields = {
        **INFO_COMMON,
        "RtnCode": "10100073",
        "RtnMsg": "Get CVS Code Succeeded.",
        "PaymentType": "CVS_CVS",
        "PaymentNo": "LLL22251222",
        "ExpireDate": "2024/12/04 15:49:12",
        "Barcode1": "",
        "Barcode2": "",
        "Barcode3": "",
    }
    notice = parse_payment_info(body(signed(fields)), CREDS)
    assert notice.is_code_issued
    assert notice.payment_no == "LLL22251222"
    assert notice.expire_at == datetime(2024, 12, 4, 7, 49, 12, tzinfo=UTC)


def test_barcode_issued() -> None:
    fields = {
        **INFO_COMMON,
        "RtnCode": "10100073",
        "RtnMsg": "Get CVS Code Succeeded.",
        "PaymentType": "BARCODE_BARCODE",
        "PaymentNo": "",
        "ExpireDate": "2024/12/04 15:49:12",
        "Barcode1": "131204627",
        "Barcode2": "2411270000087935",
        "Barcode3": "1130000000000500",
    }
    notice = parse_payment_info(body(signed(fields)), CREDS)
    assert (notice.barcode1, notice.barcode2, notice.barcode3) == (
        "131204627",
        "2411270000087935",
        "1130000000000500",
    )


def test_bnpl_application_and_failed_code() -> None:
    fields = {
        **INFO_COMMON,
        "RtnCode": "2",
        "RtnMsg": "申請中",
        "PaymentType": "BNPL_ZINGALA",
        "BNPLTradeNo": "Z123",
        "BNPLInstallment": "6",
    }
    notice = parse_payment_info(body(signed(fields)), CREDS)
    assert (notice.bnpl_trade_no, notice.bnpl_installment) == ("Z123", "6")
    failed = {**INFO_COMMON, "RtnCode": "10100001", "RtnMsg": "x", "PaymentType": "CVS_CVS", "ExpireDate": ""}
    notice = parse_payment_info(body(signed(failed)), CREDS)
    assert not notice.is_code_issued
    assert notice.expire_at is None


def test_payment_info_is_verified_too() -> None:
    fields = signed({**INFO_COMMON, "RtnCode": "2", "RtnMsg": "ok", "vAccount": "1"})
    fields["vAccount"] = "2"
    assert failure(parse_payment_info, body(fields), CREDS).check == "check_mac_value"


# --- PeriodReturnURL ------------------------------------------------------------------------------

PERIOD_FIELDS = {
    "MerchantID": "3002607",
    "MerchantTradeNo": "sub42abc1234",
    "StoreID": "",
    "RtnCode": "1",
    "RtnMsg": "授權成功",
    "PeriodType": "M",
    "Frequency": "1",
    "ExecTimes": "12",
    "Amount": "299",
    "Gwsr": "13476000",
    "ProcessDate": "2024/12/27 10:00:00",
    "AuthCode": "777777",
    "FirstAuthAmount": "299",
    "TotalSuccessTimes": "2",
    "CustomField1": "",
    "CustomField2": "",
    "CustomField3": "",
    "CustomField4": "",
}


def test_period_result_is_typed() -> None:
    result = parse_period_result(body(signed(PERIOD_FIELDS)), CREDS)
    assert isinstance(result, PeriodResult)
    assert result.is_paid
    assert (result.amount, result.total_success_times, result.first_auth_amount) == (299, 2, 299)
    assert (result.period_type, result.frequency, result.exec_times) == ("M", 1, 12)
    assert result.gwsr == "13476000"
    assert result.process_date == datetime(2024, 12, 27, 2, 0, tzinfo=UTC)
    assert result.simulate_paid is False


def test_period_result_lower_case_gwsr_and_simulation() -> None:
    fields = {k: v for k, v in PERIOD_FIELDS.items() if k != "Gwsr"} | {"gwsr": "1", "SimulatePaid": "1"}
    result = parse_period_result(body(signed(fields)), CREDS)
    assert result.gwsr == "1" and result.simulate_paid


def test_dispatch_by_kind() -> None:
    assert isinstance(
        parse_notification(NotificationKind.PAYMENT_RESULT, body(signed(RETURN_FIELDS)), CREDS), PaymentResult
    )
    assert isinstance(parse_notification("period_result", body(signed(PERIOD_FIELDS)), CREDS), PeriodResult)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="unknown"):
        parse_notification("other", b"A=1", CREDS)  # type: ignore[arg-type]


# --- properties and import weight ---------------------------------------------------------------

field_names = st.text(alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_0123456789", min_size=1)
field_values = st.text(alphabet=st.characters(blacklist_categories=["Cs"]), max_size=40)


def _case_unique(fields: dict[str, str]) -> bool:
    # Names differing only by case are refused (a duplicate field): not a round trip's input.
    return len({name.lower() for name in fields}) == len(fields)


@given(
    st.dictionaries(field_names, field_values, max_size=10).filter(
        lambda d: _case_unique({**d, **RETURN_FIELDS})
    )
)
def test_any_signed_body_round_trips(extra: dict[str, str]) -> None:
    fields = {**extra, **RETURN_FIELDS}
    raw = body(signed(fields))
    parsed = parse_form_body(raw)
    assert parsed == signed(fields)
    verify_fields(parsed, CREDS)
    assert parse_payment_result(base64.b64encode(raw), CREDS, is_base64=True).fields == parsed


def test_notification_and_client_imports_stay_free_of_pydantic() -> None:
    script = (
        "import sys\n"
        "import ecpay_lambda.ecpay.notifications, ecpay_lambda.ecpay.client, ecpay_lambda.ecpay\n"
        "import ecpay_lambda.ecpay.codes, ecpay_lambda.ecpay.transport, ecpay_lambda.ecpay.checkmac\n"
        "print('pydantic' in sys.modules, any(m.startswith('pydantic') for m in sys.modules))\n"
        "from ecpay_lambda.ecpay import CheckoutRequest\n"  # the lazy attribute still works
        "print('pydantic' in sys.modules, CheckoutRequest.__name__)\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert result.stdout.splitlines() == ["False False", "True CheckoutRequest"]


def test_the_failed_check_is_a_notification_check_that_compares_as_its_string() -> None:
    error = failure(parse_form_body, b"A=1&A=2")
    assert error.check is NotificationCheck.DUPLICATE_FIELD
    assert error.check == "duplicate_field" and str(error).startswith("duplicate_field: field ")
    assert {check.value for check in NotificationCheck} == {
        "too_large",
        "encoding",
        "malformed",
        "duplicate_field",
        "missing_field",
        "check_mac_value",
        "merchant_id",
        "invalid_field",
    }


def test_names_differing_only_by_case_are_a_duplicate_field() -> None:
    # CheckMacValue orders names without regard to case, so "E" and "e" make the signed set ambiguous.
    assert failure(parse_form_body, b"E=1&e=2").check is NotificationCheck.DUPLICATE_FIELD
    assert failure(parse_form_body, b"merchantid=1&MerchantID=2").check is NotificationCheck.DUPLICATE_FIELD
