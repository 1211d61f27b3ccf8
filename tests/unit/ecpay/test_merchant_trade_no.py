"""MerchantTradeNo: at most 20 letters/digits, fresh per attempt, the reference recoverable."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ecpay_lambda.ecpay import EcpayValidationError
from ecpay_lambda.ecpay.merchant_trade_no import MAX_REFERENCE_LENGTH, new_merchant_trade_no, reference_of

ECPAY_FORMAT = re.compile(r"[A-Za-z0-9]{1,20}")
references = st.text(
    alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789", min_size=1, max_size=12
)


@given(references, st.integers(min_value=0, max_value=2**62))
def test_format_and_reference_recovery(reference: str, now_ns: int) -> None:
    number = new_merchant_trade_no(reference, now_ns=now_ns)
    assert ECPAY_FORMAT.fullmatch(number)
    assert reference_of(number) == reference


def test_full_length_reference_gives_twenty_characters() -> None:
    number = new_merchant_trade_no("A" * MAX_REFERENCE_LENGTH)
    assert len(number) == 20


def test_attempts_from_the_clock_are_unique_even_in_a_tight_loop() -> None:
    numbers = [new_merchant_trade_no("tx42") for _ in range(2000)]
    assert len(set(numbers)) == len(numbers)
    assert {reference_of(n) for n in numbers} == {"tx42"}


def test_attempts_are_time_ordered() -> None:
    earlier = new_merchant_trade_no("tx", now_ns=1_700_000_000_000_000_000)
    later = new_merchant_trade_no("tx", now_ns=1_700_000_000_010_000_000)
    assert earlier[:-1] < later[:-1]


@pytest.mark.parametrize("reference", ["", "a" * (MAX_REFERENCE_LENGTH + 1), "tx-1", "tx_1", "交易", "tx 1"])
def test_bad_references_are_refused(reference: str) -> None:
    with pytest.raises(EcpayValidationError) as caught:
        new_merchant_trade_no(reference)
    assert caught.value.field == "reference"


@pytest.mark.parametrize("number", ["", "short", "x" * 21, "abc-12345678", "abcd1234567_"])
def test_reference_of_refuses_foreign_numbers(number: str) -> None:
    with pytest.raises(EcpayValidationError) as caught:
        reference_of(number)
    assert caught.value.field == "MerchantTradeNo"
