"""The RtnCode / TradeStatus table (protocol page §6) as data."""

from __future__ import annotations

import pytest

from ecpay_lambda.ecpay.codes import RETURN_CODES, CodeContext, describe_code, lookup_code

DOCUMENTED = {
    "1", "0", "2", "10100073", "10200095", "10200047", "10200163", "10200073", "10200043", "10200050",
    "10200058", "10200115", "10200009", "10200105", "10200094", "10200141", "10100058", "10100001",
    "10300006", "10300028", "10300029", "10400011", "90100150",
}  # fmt: skip


def test_every_documented_code_is_in_the_table() -> None:
    assert set(RETURN_CODES) == DOCUMENTED


@pytest.mark.parametrize(
    ("code", "fragment"),
    [
        ("1", "paid"),
        ("2", "ATM virtual account issued"),
        ("10100073", "CVS / BARCODE"),
        ("10200095", "never chose"),
        ("10200073", "CheckMacValue"),
        ("10200105", "BNPL"),
    ],
)
def test_lookup_finds_meaning(code: str, fragment: str) -> None:
    entry = lookup_code(code)
    assert entry is not None
    assert fragment in entry.meaning


def test_lookup_accepts_ints_and_surrounding_space() -> None:
    assert lookup_code(10100073) is lookup_code("10100073")
    assert lookup_code(" 1 ") is lookup_code("1")


def test_only_code_1_means_paid() -> None:
    assert [entry.code for entry in RETURN_CODES.values() if entry.paid] == ["1"]


def test_code_2_is_a_payment_info_code() -> None:
    entry = lookup_code("2")
    assert entry is not None
    assert entry.contexts == (CodeContext.PAYMENT_INFO,)


def test_unknown_codes() -> None:
    assert lookup_code("10300066") is None
    assert "undocumented" in describe_code("10300066")
    assert describe_code(1) == "1: success / paid"


def test_table_is_read_only() -> None:
    with pytest.raises(TypeError):
        RETURN_CODES["99"] = RETURN_CODES["1"]  # type: ignore[index]
