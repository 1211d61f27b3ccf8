"""The AES-JSON envelope of ECPay's e-invoice API against protocol page §8's vectors."""

from __future__ import annotations

import base64
import json

import pytest
from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from hypothesis import given, settings
from hypothesis import strategies as st

from ecpay_lambda.ecpay.einvoice.envelope import (
    REVISION,
    as_int,
    build_request,
    decrypt_data,
    encrypt_data,
    open_response,
    php_urlencode,
    timestamp_in_window,
)
from ecpay_lambda.ecpay.einvoice.errors import InvoiceEnvelopeError, InvoiceRejected, InvoiceTransportError
from ecpay_lambda.ecpay.errors import ResponseError

EINVOICE = ("ejCk326UnaZWKisg", "q9jcZX8Ib9LM8wYk")
AIO = ("pwFHCqoQZGmho4w6", "EkRm7iFT261dpevs")

# §8's table: (key/iv, plaintext JSON, URL-encoded plaintext, Base64 ciphertext).
VECTORS = [
    (
        EINVOICE,
        '{"MerchantID":"2000132","BarCode":"/1234567"}',
        "%7B%22MerchantID%22%3A%222000132%22%2C%22BarCode%22%3A%22%2F1234567%22%7D",
        "XeEOdHpTRvxKEqs/JD9RSd16s7VtpyWVCN6AV44pKTW3DVa6yI7vKmjBRp2eulDhXoru/qBqFDBH3fEqlkMn3bbJfJBfGAq+v+SvttutYnc=",
    ),
    (
        EINVOICE,
        '{"Name":"test!*\'()~value"}',
        "%7B%22Name%22%3A%22test%21%2A%27%28%29%7Evalue%22%7D",
        "uvI4yrErM37XNQkXGAgRgBuDOiJoVs72Xn/rum9Ejl1DSna4HyLSoY7764PmhTR7JXb9jJWLSjCGcZEDeFiABg==",
    ),
    (
        AIO,
        '{"MerchantID":"3002607","RespondType":"JSON"}',
        "%7B%22MerchantID%22%3A%223002607%22%2C%22RespondType%22%3A%22JSON%22%7D",
        "udqjXgM+7Q6lCrrculcvzUFnN5zv0ibax1glKFxrORoO0sl6pcoib/QDYPKCAP57ME4+3Yo84XmyabVFnxriMTuy9JK/RXS7DtEOvF+PUoU=",
    ),
]
# Row 4: SDK_PHP's json_encode escapes '/', so a different ciphertext of the same payload.
PHP_ROW = (
    "XeEOdHpTRvxKEqs/JD9RSd16s7VtpyWVCN6AV44pKTW3DVa6yI7vKmjBRp2eulDh"
    "8onbv2yw4kH8aHkPBLplhzSpypqKNcTmGly5Lf/Uj0Q="
)


@pytest.mark.parametrize(("keys", "plain", "encoded", "cipher"), VECTORS)
def test_vectors_encrypt_exactly(keys: tuple[str, str], plain: str, encoded: str, cipher: str) -> None:
    assert php_urlencode(plain) == encoded
    assert encrypt_data(json.loads(plain), *keys) == cipher


@pytest.mark.parametrize(("keys", "plain", "encoded", "cipher"), VECTORS)
def test_vectors_decrypt(keys: tuple[str, str], plain: str, encoded: str, cipher: str) -> None:
    assert decrypt_data(cipher, *keys) == json.loads(plain)


def test_php_sdk_row_decrypts_to_the_same_payload() -> None:
    assert decrypt_data(PHP_ROW, *EINVOICE) == {"MerchantID": "2000132", "BarCode": "/1234567"}
    assert encrypt_data({"MerchantID": "2000132", "BarCode": "/1234567"}, *EINVOICE) != PHP_ROW


def test_php_urlencode_rules() -> None:
    assert php_urlencode("a b~c*d'e(f)g!h-i_j.k") == "a+b%7Ec%2Ad%27e%28f%29g%21h-i_j.k"
    assert php_urlencode("統一") == "%E7%B5%B1%E4%B8%80"


@pytest.mark.parametrize(
    "payload",
    [
        {"CustomerName": "王小明", "Items": [{"ItemName": "點數 500", "ItemCount": 1}], "Empty": ""},
        {"Text": "+ % & = ? / \\ \" ' \n\t", "N": 0, "Neg": -5, "Null": None, "Bool": True},
        {"Long": "x" * 5000},
    ],
)
def test_round_trip(payload: dict[str, object]) -> None:
    assert decrypt_data(encrypt_data(payload, *EINVOICE), *EINVOICE) == payload


def test_wrong_key_does_not_decrypt() -> None:
    data = encrypt_data({"MerchantID": "2000132"}, *EINVOICE)
    with pytest.raises(InvoiceEnvelopeError):
        decrypt_data(data, *AIO)


@pytest.mark.parametrize("data", ["", "not base64!!", base64.b64encode(b"short").decode(), 5])
def test_garbage_data_is_an_envelope_error(data: object) -> None:
    with pytest.raises(InvoiceEnvelopeError):
        decrypt_data(data, *EINVOICE)  # type: ignore[arg-type]


def test_non_object_payload_is_refused() -> None:
    padder = padding.PKCS7(128).padder()
    padded = padder.update(b"%5B1%2C2%5D") + padder.finalize()
    enc = Cipher(algorithms.AES(EINVOICE[0].encode()), modes.CBC(EINVOICE[1].encode())).encryptor()
    data = base64.b64encode(enc.update(padded) + enc.finalize()).decode()
    with pytest.raises(InvoiceEnvelopeError, match="not a JSON object"):
        decrypt_data(data, *EINVOICE)


def test_keys_must_be_16_characters_and_are_never_echoed() -> None:
    with pytest.raises(ValueError, match="HashKey must be 16") as caught:
        encrypt_data({}, "shortsecret", EINVOICE[1])
    assert "shortsecret" not in str(caught.value)
    with pytest.raises(ValueError, match="HashIV must be 16"):
        decrypt_data(VECTORS[0][3], EINVOICE[0], "q9jcZX8Ib9LM8wYkX")


def test_build_request_has_header_and_revision() -> None:
    body = build_request(
        "2000132", *EINVOICE, {"MerchantID": "2000132", "BarCode": "/1234567"}, timestamp=1700000000
    )
    assert body["MerchantID"] == "2000132"
    assert body["RqHeader"] == {"Timestamp": 1700000000, "Revision": REVISION}
    assert REVISION == "3.0.0"
    assert body["Data"] == VECTORS[0][3]
    with pytest.raises(TypeError):
        build_request("2000132", *EINVOICE, {}, timestamp=1.5)  # type: ignore[arg-type]


def test_timestamp_window_is_ten_minutes_either_way() -> None:
    now = 1_700_000_000.0
    assert timestamp_in_window(1_700_000_000, now)
    assert timestamp_in_window(1_700_000_600, now)
    assert timestamp_in_window(1_699_999_400, now)
    assert not timestamp_in_window(1_700_000_601, now)
    assert not timestamp_in_window(1_699_999_399, now)


def _answer(payload: dict[str, object], trans_code: object = 1, keys: tuple[str, str] = EINVOICE) -> bytes:
    return json.dumps(
        {
            "MerchantID": "2000132",
            "RpHeader": {"Timestamp": 1700000000},
            "TransCode": trans_code,
            "TransMsg": "" if trans_code == 1 else "Fail",
            "Data": encrypt_data(payload, *keys),
        }
    ).encode()


def test_open_response_returns_the_decrypted_payload() -> None:
    payload = {"RtnCode": 1, "RtnMsg": "開立發票成功", "InvoiceNo": "AB12345678"}
    assert open_response(_answer(payload), *EINVOICE) == payload
    assert (
        open_response(_answer({**payload, "RtnCode": "1"}).decode(), *EINVOICE)["InvoiceNo"] == "AB12345678"
    )


def test_trans_code_is_checked_before_data() -> None:
    body = json.dumps({"TransCode": 999, "TransMsg": "Decrypt Fail", "Data": ""}).encode()
    with pytest.raises(InvoiceTransportError) as caught:
        open_response(body, *EINVOICE, endpoint="Issue")
    assert caught.value.trans_code == 999
    assert caught.value.trans_msg == "Decrypt Fail"
    assert "Issue" in str(caught.value)


def test_rtn_code_other_than_one_is_rejected() -> None:
    with pytest.raises(InvoiceRejected) as caught:
        open_response(_answer({"RtnCode": 5000001, "RtnMsg": "RelateNumber重複"}), *EINVOICE)
    assert caught.value.rtn_code == 5000001
    assert caught.value.rtn_msg == "RelateNumber重複"
    with pytest.raises(InvoiceRejected) as caught:
        open_response(_answer({"RtnCode": "0", "RtnMsg": "x"}), *EINVOICE)
    assert caught.value.rtn_code == 0


@pytest.mark.parametrize(
    "body",
    [b"<html>", b"[1]", json.dumps({"Data": "x"}).encode(), json.dumps({"TransCode": 1}).encode()],
)
def test_malformed_answers(body: bytes) -> None:
    with pytest.raises(ResponseError):
        open_response(body, *EINVOICE)


def test_answer_without_rtn_code_is_malformed() -> None:
    with pytest.raises(ResponseError, match="no RtnCode"):
        open_response(_answer({"RtnMsg": "?"}), *EINVOICE)


def test_answer_with_another_merchants_keys_does_not_open() -> None:
    with pytest.raises(InvoiceEnvelopeError):
        open_response(_answer({"RtnCode": 1}, keys=AIO), *EINVOICE)


_JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-(10**12), 10**12) | st.text(max_size=40),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=12,
)


@settings(max_examples=60, deadline=None)
@given(st.dictionaries(st.text(max_size=12), _JSON_VALUES, max_size=6))
def test_any_json_object_round_trips(payload: dict[str, object]) -> None:
    assert decrypt_data(encrypt_data(payload, *EINVOICE), *EINVOICE) == payload


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (1, 1),
        ("1", 1),
        (" 2 ", 2),
        ("-3", -3),
        (1.0, 1),
        (True, None),
        ("--5", None),
        ("1.5", None),
        ("", None),
        ("１", None),
        (None, None),
        ([1], None),
    ],
)
def test_as_int(value: object, expected: int | None) -> None:
    assert as_int(value) == expected
