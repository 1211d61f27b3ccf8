"""Per-method amount limits (protocol page §13.2) and periodic limits (§13.3), alone and at checkout."""

from __future__ import annotations

from typing import Any

import pytest

from ecpay_lambda.ecpay import CheckoutRequest, EcpayValidationError, MerchantCredentials, build_checkout_form
from ecpay_lambda.ecpay.environments import Endpoints
from ecpay_lambda.ecpay.limits import (
    DEFAULT_AMOUNT_LIMITS,
    MAX_INT,
    PERIOD_LIMITS,
    AmountLimits,
    check_period,
)

CREDS = MerchantCredentials.stage_test_merchant()
STAGE = Endpoints.for_environment("stage")


@pytest.mark.parametrize(
    ("method", "low", "high"),
    [
        ("Credit", 5, 199_999),
        ("ApplePay", 5, 199_999),
        ("TWQR", 5, 199_999),
        ("ATM", 11, 49_999),
        ("WebATM", 11, 49_999),
        ("CVS", 33, 6_000),
        ("BARCODE", 17, 20_000),
        ("BNPL", 3_000, 200_000),
    ],
)
def test_default_ranges_and_their_edges(method: str, low: int, high: int) -> None:
    limits = DEFAULT_AMOUNT_LIMITS
    assert limits.range_for(method) == (low, high)
    limits.check(method, low)
    limits.check(method, high)
    for outside in (low - 1, high + 1):
        with pytest.raises(EcpayValidationError) as caught:
            limits.check(method, outside)
        assert caught.value.field == "TotalAmount"
        assert caught.value.reason == f"{method} accepts {low:,} to {high:,} TWD"


def test_cvs_message_reads_as_documented() -> None:
    with pytest.raises(EcpayValidationError, match=r"^TotalAmount: CVS accepts 33 to 6,000 TWD$"):
        DEFAULT_AMOUNT_LIMITS.check("CVS", 6001)


def test_methods_without_a_documented_limit_take_any_positive_int() -> None:
    assert DEFAULT_AMOUNT_LIMITS.range_for("WeiXin") == (1, MAX_INT)
    DEFAULT_AMOUNT_LIMITS.check("DigitalPayment", 1_000_000)


def test_unknown_method_has_no_range() -> None:
    with pytest.raises(ValueError, match="no amount limits"):
        DEFAULT_AMOUNT_LIMITS.range_for("GooglePay")
    with pytest.raises(ValueError, match="no amount limits"):
        DEFAULT_AMOUNT_LIMITS.range_for("ALL")


def test_all_below_every_method_is_refused() -> None:
    with pytest.raises(EcpayValidationError, match="no offered payment method accepts 4 TWD"):
        DEFAULT_AMOUNT_LIMITS.check("ALL", 4)
    DEFAULT_AMOUNT_LIMITS.check("ALL", 5)  # Credit's lower edge


def test_all_page_rules() -> None:
    limits = DEFAULT_AMOUNT_LIMITS
    limits.check("ALL", 150_000)  # Credit and BNPL still fit
    limits.check("ALL", 40_000, ignore=["Credit", "ApplePay", "TWQR", "BNPL"])  # ATM fits
    with pytest.raises(EcpayValidationError) as caught:
        limits.check("ALL", 250_000)
    assert caught.value.field == "TotalAmount"
    assert "no offered payment method accepts 250,000 TWD" in caught.value.reason
    assert "Credit 5 to 199,999" in caught.value.reason
    with pytest.raises(EcpayValidationError, match="CVS 33 to 6,000"):
        limits.check("ALL", 7_000, ignore=["Credit", "ApplePay", "TWQR", "BNPL", "ATM", "WebATM", "BARCODE"])
    # Ignored methods do not rescue an amount: only CVS is left, 20 TWD is below its range.
    with pytest.raises(EcpayValidationError):
        limits.check("ALL", 20, ignore=["Credit", "ApplePay", "TWQR", "BNPL", "ATM", "WebATM", "BARCODE"])


def test_from_env_text_overrides_on_top_of_the_defaults() -> None:
    limits = AmountLimits.from_env_text(" CVS=33-5000 , credit=10-100_000;BNPL=3000-50000 ")
    assert limits.range_for("CVS") == (33, 5_000)
    assert limits.range_for("Credit") == (10, 100_000)
    assert limits.range_for("BNPL") == (3_000, 50_000)
    assert limits.range_for("ATM") == DEFAULT_AMOUNT_LIMITS.range_for("ATM")
    assert AmountLimits.from_env_text("") == DEFAULT_AMOUNT_LIMITS
    assert AmountLimits.from_env_text(limits.to_env_text()) == limits


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("CVS", "is not METHOD=LOW-HIGH"),
        ("CVS=33", "is not METHOD=LOW-HIGH"),
        ("CVS=-5-10", "is not METHOD=LOW-HIGH"),
        ("CVS=1.5-10", "is not METHOD=LOW-HIGH"),
        ("Paypal=1-10", "unknown payment method 'Paypal'"),
        ("CVS=100-10", "need 1 <= LOW <= HIGH"),
        ("CVS=0-10", "need 1 <= LOW <= HIGH"),
        ("CVS=1-9999999999", "need 1 <= LOW <= HIGH"),
        ("CVS=1-10,cvs=2-20", "given twice"),
    ],
)
def test_from_env_text_refuses_bad_text_readably(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        AmountLimits.from_env_text(text)


# --- enforced at checkout -----------------------------------------------------------------------

BASE: dict[str, Any] = {
    "MerchantTradeNo": "tx42abc12345",
    "MerchantTradeDate": "2024/05/01 12:00:00",
    "TotalAmount": 500,
    "TradeDesc": "Wallet deposit",
    "ItemName": "Points",
    "ReturnURL": "https://api.example.com/return",
    "ChoosePayment": "Credit",
}


def _form(limits: AmountLimits | None = None, **overrides: Any) -> dict[str, str]:
    made = CheckoutRequest(**{**BASE, **overrides})
    if limits is None:
        return build_checkout_form(made, CREDS, STAGE).fields
    return build_checkout_form(made, CREDS, STAGE, amount_limits=limits).fields


def test_checkout_refuses_an_amount_outside_the_method_range() -> None:
    assert _form(ChoosePayment="CVS", TotalAmount=6_000)["TotalAmount"] == "6000"
    with pytest.raises(EcpayValidationError, match="CVS accepts 33 to 6,000 TWD"):
        _form(ChoosePayment="CVS", TotalAmount=6_001)
    with pytest.raises(EcpayValidationError, match="Credit accepts 5 to 199,999 TWD"):
        _form(TotalAmount=4)
    with pytest.raises(EcpayValidationError, match="no offered payment method"):
        _form(ChoosePayment="ALL", TotalAmount=300_000)


def test_checkout_honours_configured_limits() -> None:
    tight = AmountLimits.from_env_text("Credit=100-1000")
    with pytest.raises(EcpayValidationError, match="Credit accepts 100 to 1,000 TWD"):
        _form(tight, TotalAmount=1_001)
    loose = AmountLimits.from_env_text("CVS=33-20000")
    assert _form(loose, ChoosePayment="CVS", TotalAmount=10_000)["TotalAmount"] == "10000"


def test_checkout_all_applies_ignore_payment() -> None:
    only_cvs = "Credit#ApplePay#TWQR#BNPL#ATM#WebATM#BARCODE"
    assert _form(ChoosePayment="ALL", IgnorePayment=only_cvs, TotalAmount=5_000)["ChoosePayment"] == "ALL"
    with pytest.raises(EcpayValidationError, match="CVS 33 to 6,000"):
        _form(ChoosePayment="ALL", IgnorePayment=only_cvs, TotalAmount=7_000)


# --- periodic ------------------------------------------------------------------------------------


def test_period_limits_table() -> None:
    assert dict(PERIOD_LIMITS) == {"D": (365, 999), "M": (12, 999), "Y": (1, 99)}


@pytest.mark.parametrize(
    ("period_type", "frequency", "exec_times", "field"),
    [
        ("W", 1, 2, "PeriodType"),
        ("D", 0, 2, "Frequency"),
        ("D", 366, 2, "Frequency"),
        ("M", 13, 2, "Frequency"),
        ("Y", 2, 2, "Frequency"),
        ("D", 1, 1, "ExecTimes"),
        ("D", 1, 1000, "ExecTimes"),
        ("M", 1, 1000, "ExecTimes"),
        ("Y", 1, 100, "ExecTimes"),
    ],
)
def test_check_period_names_the_field(period_type: str, frequency: int, exec_times: int, field: str) -> None:
    with pytest.raises(EcpayValidationError) as caught:
        check_period(period_type, frequency, exec_times)
    assert caught.value.field == field


def test_check_period_accepts_the_edges() -> None:
    for period_type, (max_frequency, max_exec_times) in PERIOD_LIMITS.items():
        check_period(period_type, 1, 2)
        check_period(period_type, max_frequency, max_exec_times)


def test_periodic_and_installments_together_are_refused() -> None:
    with pytest.raises(EcpayValidationError) as caught:
        CheckoutRequest(
            **BASE, CreditInstallment="3,6", PeriodAmount=500, PeriodType="M", Frequency=1, ExecTimes=12
        )
    assert caught.value.field == "CreditInstallment"
    assert "periodic" in caught.value.reason
