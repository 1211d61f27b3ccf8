"""CheckMacValue: ECPay's published examples, the .NET encoding table, and property tests."""

from __future__ import annotations

import hashlib
import hmac
import urllib.parse

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ecpay_lambda.ecpay import check_mac_value, verify_check_mac_value
from ecpay_lambda.ecpay.checkmac import MD5, SHA256, ecpay_urlencode, explain_check_mac_value
from ecpay_lambda.ecpay.errors import EcpayValidationError

KEY, IV = "pwFHCqoQZGmho4w6", "EkRm7iFT261dpevs"

OFFICIAL_PARAMS = {
    "TradeDesc": "促銷方案",
    "PaymentType": "aio",
    "MerchantTradeDate": "2023/03/12 15:30:23",
    "MerchantTradeNo": "ecpay20230312153023",
    "MerchantID": "3002607",
    "ReturnURL": "https://www.ecpay.com.tw/receive.php",
    "ItemName": "Apple iphone 15",
    "TotalAmount": "30000",
    "ChoosePayment": "ALL",
    "EncryptType": "1",
}
OFFICIAL_WRAPPED = (
    "HashKey=pwFHCqoQZGmho4w6&ChoosePayment=ALL&EncryptType=1&ItemName=Apple iphone 15&MerchantID=3002607"
    "&MerchantTradeDate=2023/03/12 15:30:23&MerchantTradeNo=ecpay20230312153023&PaymentType=aio"
    "&ReturnURL=https://www.ecpay.com.tw/receive.php&TotalAmount=30000&TradeDesc=促銷方案&HashIV=EkRm7iFT261dpevs"
)
OFFICIAL_ENCODED = (
    "hashkey%3dpwfhcqoqzgmho4w6%26choosepayment%3dall%26encrypttype%3d1%26itemname%3dapple+iphone+15"
    "%26merchantid%3d3002607%26merchanttradedate%3d2023%2f03%2f12+15%3a30%3a23%26merchanttradeno"
    "%3decpay20230312153023%26paymenttype%3daio%26returnurl%3dhttps%3a%2f%2fwww.ecpay.com.tw%2freceive.php"
    "%26totalamount%3d30000%26tradedesc%3d%e4%bf%83%e9%8a%b7%e6%96%b9%e6%a1%88%26hashiv%3dekrm7ift261dpevs"
)
OFFICIAL_SHA256 = "6C51C9E6888DE861FD62FB1DD17029FC742634498FD813DC43D4243B5685B840"

TRICKY_PARAMS = {
    "MerchantID": "3002607",
    "ItemName": "Joe's ~Café~ (A+B) 50%!",
    "TotalAmount": "100",
    "CustomField1": "",
}
TRICKY_ENCODED = (
    "hashkey%3dpwfhcqoqzgmho4w6%26customfield1%3d%26itemname%3djoe%27s+%7ecaf%c3%a9%7e+(a%2bb)+50%25!"
    "%26merchantid%3d3002607%26totalamount%3d100%26hashiv%3dekrm7ift261dpevs"
)


# --- the published examples (protocol page §3.5) ------------------------------------------------


def test_official_example_every_step() -> None:
    steps = explain_check_mac_value(OFFICIAL_PARAMS, KEY, IV)
    assert steps.wrapped == OFFICIAL_WRAPPED
    assert steps.encoded == OFFICIAL_ENCODED
    assert steps.digest == OFFICIAL_SHA256
    assert check_mac_value(OFFICIAL_PARAMS, KEY, IV) == OFFICIAL_SHA256


def test_official_example_verifies_and_rejects_tampering() -> None:
    signed = {**OFFICIAL_PARAMS, "CheckMacValue": OFFICIAL_SHA256}
    assert verify_check_mac_value(signed, KEY, IV)
    assert not verify_check_mac_value({**signed, "TotalAmount": "30001"}, KEY, IV)
    assert not verify_check_mac_value({**signed, "TotalAmount": "030000"}, KEY, IV)


def test_tricky_example_sha256_and_md5() -> None:
    assert explain_check_mac_value(TRICKY_PARAMS, KEY, IV).encoded == TRICKY_ENCODED
    assert check_mac_value(TRICKY_PARAMS, KEY, IV) == (
        "00A1E79FA712F132F3B53B5CFC7F403158878841D98BC9E7D8C40FA0455A68E9"
    )
    assert check_mac_value(TRICKY_PARAMS, KEY, IV, MD5) == "538DFE682DF83581D01A4549B6214B1E"


def test_tricky_example_differs_from_the_python_sdk_tilde_bug() -> None:
    # The official Python SDK leaves "~" unencoded and gets BF1324A3...; we must not.
    wrapped = explain_check_mac_value(TRICKY_PARAMS, KEY, IV).wrapped
    python_sdk = urllib.parse.quote_plus(wrapped, safe="-_.!*()").lower()
    python_sdk_mac = hashlib.sha256(python_sdk.encode()).hexdigest().upper()
    assert python_sdk_mac.startswith("BF1324A3")
    assert check_mac_value(TRICKY_PARAMS, KEY, IV) != python_sdk_mac


def test_md5_example_with_blank_rtnmsg() -> None:
    params = {
        "IA_Allow_No": "1909181313013546",
        "IA_Date": "2019-09-18 13:13:23",
        "IA_Invoice_No": "UV11100019",
        "IIS_Remain_Allowance_Amt": "0",
        "RtnCode": "1",
        "RtnMsg": "",
    }
    mac = check_mac_value(params, "ejCk326UnaZWKisg", "q9jcZX8Ib9LM8wYk", MD5)
    assert mac == "50A276E71DAE26343013958B405EEEA0"
    without_blank = {k: v for k, v in params.items() if k != "RtnMsg"}
    assert check_mac_value(without_blank, "ejCk326UnaZWKisg", "q9jcZX8Ib9LM8wYk", MD5) != mac


# --- encoding table (§3.2) ----------------------------------------------------------------------

ENCODE_TABLE = {
    "-": "-",
    "_": "_",
    ".": ".",
    "!": "!",
    "*": "*",
    "(": "(",
    ")": ")",
    " ": "+",
    "+": "%2b",
    "~": "%7e",
    "'": "%27",
    '"': "%22",
    "`": "%60",
    "@": "%40",
    "#": "%23",
    "$": "%24",
    "%": "%25",
    "^": "%5e",
    "&": "%26",
    "=": "%3d",
    ";": "%3b",
    "/": "%2f",
    "?": "%3f",
    ":": "%3a",
    "\\": "%5c",
    "<": "%3c",
    ">": "%3e",
    "[": "%5b",
    "]": "%5d",
    "{": "%7b",
    "}": "%7d",
    ",": "%2c",
    "|": "%7c",
    "\r": "%0d",
    "\n": "%0a",
    "\t": "%09",
    "促": "%e4%bf%83",
    "😀": "%f0%9f%98%80",
    "A": "a",
    "z": "z",
    "0": "0",
}


@pytest.mark.parametrize(("char", "expected"), ENCODE_TABLE.items())
def test_dotnet_encoding_table(char: str, expected: str) -> None:
    assert ecpay_urlencode(char) == expected


def test_no_unicode_normalisation() -> None:
    assert ecpay_urlencode("é") == "%c3%a9"
    assert ecpay_urlencode("e\u0301") == "e%cc%81"


def _reference_encode(text: str) -> str:
    # An independent formulation (protocol page §3.2): quote_plus with .NET's safe set, plus "~".
    return urllib.parse.quote_plus(text, safe="-_.!*()").replace("~", "%7E").lower()


@given(st.text())
def test_encoding_matches_reference_formulation(text: str) -> None:
    assert ecpay_urlencode(text) == _reference_encode(text)


@given(st.text())
def test_encoded_output_is_lower_case_ascii_in_the_safe_set(text: str) -> None:
    encoded = ecpay_urlencode(text)
    assert set(encoded) <= set("abcdefghijklmnopqrstuvwxyz0123456789-_.!*()+%")


# --- sorting, blank values, algorithms ----------------------------------------------------------


def test_sort_is_case_insensitive_and_interleaves_lower_case_names() -> None:
    params = {"vAccount": "1", "TradeAmt": "2", "BankCode": "3", "gwsr": "4", "amount": "5"}
    steps = explain_check_mac_value(params, KEY, IV)
    assert steps.sorted_pairs == "amount=5&BankCode=3&gwsr=4&TradeAmt=2&vAccount=1"


def test_checkmacvalue_key_is_ignored_when_signing() -> None:
    assert check_mac_value({**OFFICIAL_PARAMS, "CheckMacValue": "X"}, KEY, IV) == OFFICIAL_SHA256


def test_blank_values_take_part() -> None:
    assert check_mac_value({"A": "1", "B": ""}, KEY, IV) != check_mac_value({"A": "1"}, KEY, IV)
    assert explain_check_mac_value({"A": "1", "B": ""}, KEY, IV).sorted_pairs == "A=1&B="


def test_none_is_signed_as_blank_and_ints_as_decimal_text() -> None:
    assert check_mac_value({"A": None, "N": 5}, KEY, IV) == check_mac_value({"A": "", "N": "5"}, KEY, IV)


def test_lengths_per_algorithm() -> None:
    assert len(check_mac_value({"A": "1"}, KEY, IV, SHA256)) == 64
    assert len(check_mac_value({"A": "1"}, KEY, IV, MD5)) == 32


def test_unknown_encrypt_type_is_refused() -> None:
    with pytest.raises(ValueError, match="encrypt_type"):
        check_mac_value({"A": "1"}, KEY, IV, 2)


def test_no_md5_downgrade_when_verifying_sha256() -> None:
    params = {"MerchantID": "3002607", "RtnCode": "1"}
    md5_signed = {**params, "CheckMacValue": check_mac_value(params, KEY, IV, MD5)}
    assert not verify_check_mac_value(md5_signed, KEY, IV)  # SHA256 is the default
    assert verify_check_mac_value(md5_signed, KEY, IV, MD5)


@pytest.mark.parametrize(
    "received", [None, "", 123, OFFICIAL_SHA256.lower(), OFFICIAL_SHA256 + " ", "é" * 64]
)
def test_malformed_or_non_exact_values_do_not_verify(received: object) -> None:
    params: dict[str, object] = {**OFFICIAL_PARAMS}
    if received is not None:
        params["CheckMacValue"] = received
    assert not verify_check_mac_value(params, KEY, IV)


def test_verification_uses_constant_time_compare(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[bytes, bytes]] = []
    real_compare = hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        calls.append((a, b))
        return real_compare(a, b)

    monkeypatch.setattr(hmac, "compare_digest", spy)
    assert verify_check_mac_value({**OFFICIAL_PARAMS, "CheckMacValue": OFFICIAL_SHA256}, KEY, IV)
    assert calls == [(OFFICIAL_SHA256.encode(), OFFICIAL_SHA256.encode())]


def test_hash_key_and_iv_matter() -> None:
    assert check_mac_value(OFFICIAL_PARAMS, KEY, IV) != check_mac_value(OFFICIAL_PARAMS, KEY[::-1], IV)
    assert check_mac_value(OFFICIAL_PARAMS, KEY, IV) != check_mac_value(OFFICIAL_PARAMS, KEY, IV[::-1])


# --- properties ---------------------------------------------------------------------------------

names = st.text(
    alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1, max_size=12
).filter(lambda name: name != "CheckMacValue")
# Names unique without regard to case: a set with "E" and "e" has no agreed CheckMacValue (refused,
# see the tests below), so it is not a valid input to the properties of valid sets.
param_sets = st.lists(
    st.tuples(names, st.text(max_size=30)), min_size=1, max_size=8, unique_by=lambda kv: kv[0].lower()
).map(dict)
secrets_ = st.text(
    alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789", min_size=16, max_size=16
)


@given(param_sets, secrets_, secrets_, st.sampled_from([SHA256, MD5]))
def test_sign_then_verify_round_trip(params: dict[str, str], key: str, iv: str, kind: int) -> None:
    signed = {**params, "CheckMacValue": check_mac_value(params, key, iv, kind)}
    assert verify_check_mac_value(signed, key, iv, kind)


@given(param_sets, st.data())
def test_changing_any_value_breaks_the_mac(params: dict[str, str], data: st.DataObject) -> None:
    signed = {**params, "CheckMacValue": check_mac_value(params, KEY, IV)}
    name = data.draw(st.sampled_from(sorted(params)))
    new_value = data.draw(st.text(max_size=30).filter(lambda v: v != params[name]))
    assert not verify_check_mac_value({**signed, name: new_value}, KEY, IV)


@given(param_sets, st.randoms())
def test_insertion_order_does_not_matter(params: dict[str, str], rnd: object) -> None:
    items = list(params.items())
    rnd.shuffle(items)  # type: ignore[attr-defined]
    assert check_mac_value(dict(items), KEY, IV) == check_mac_value(params, KEY, IV)


@given(param_sets)
def test_dropping_a_field_breaks_the_mac(params: dict[str, str]) -> None:
    signed = {**params, "CheckMacValue": check_mac_value(params, KEY, IV)}
    for name in params:
        reduced = {k: v for k, v in signed.items() if k != name}
        assert not verify_check_mac_value(reduced, KEY, IV)


@pytest.mark.parametrize(
    "params", [{"E": "1", "e": "2"}, {"e": "2", "E": "1"}, {"a": "", "Item": "x", "ITEM": "x"}]
)
def test_names_differing_only_by_case_have_no_check_mac_value(params: dict[str, str]) -> None:
    # ECPay orders names case-insensitively and its SDKs disagree on ties (insertion order, lower case
    # first, or one dropped): the library refuses rather than pick one of the orders.
    with pytest.raises(EcpayValidationError, match="only by case") as raised:
        check_mac_value(params, KEY, IV)
    assert raised.value.field.lower() in {name.lower() for name in params}
    # A received set like this never verifies, whatever its CheckMacValue.
    signed = {**params, "CheckMacValue": check_mac_value({"E": "1"}, KEY, IV)}
    assert not verify_check_mac_value(signed, KEY, IV)


def test_names_of_different_letters_still_sort_case_insensitively() -> None:
    # A lower-case name sits among the capitalised ones (protocol notes §3.3), not after them all.
    steps = explain_check_mac_value({"b": "2", "A": "1", "C": "3"}, KEY, IV)
    assert steps.sorted_pairs == "A=1&b=2&C=3"


@given(param_sets, st.data())
def test_adding_a_case_twin_of_any_name_is_refused(params: dict[str, str], data: st.DataObject) -> None:
    name = data.draw(st.sampled_from(sorted(params)).filter(lambda n: n.swapcase() != n))
    with pytest.raises(EcpayValidationError):
        check_mac_value({**params, name.swapcase(): "x"}, KEY, IV)
