"""E-invoice request rules: buyer choices, items, RelateNumber, tax ID check digits, filing periods."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from ecpay_lambda.ecpay.credentials import MerchantCredentials
from ecpay_lambda.ecpay.einvoice.errors import InvoiceRuleError
from ecpay_lambda.ecpay.einvoice.models import (
    Buyer,
    CarrierType,
    InvoiceCredentials,
    IssueRequest,
    Item,
    issue_request_from_payload,
)
from ecpay_lambda.ecpay.einvoice.periods import can_void, filing_period, void_deadline
from ecpay_lambda.ecpay.einvoice.tax_id import is_valid_tax_id
from ecpay_lambda.ecpay.errors import EcpayValidationError

PRINTED = {"name": "王小明", "address": "台北市信義區市府路1號"}


def _rule(buyer: Buyer) -> str:
    with pytest.raises(InvoiceRuleError) as caught:
        buyer.validate()
    return caught.value.code


# --- tax IDs ----------------------------------------------------------------------------------

# Public companies' numbers (TSMC, Hon Hai, MediaTek, Chunghwa Telecom), and ones that pass only by
# the seventh-digit-7 rule or only by the 2023 divisor 5.
VALID_TAX_IDS = ["22099131", "04541302", "24566673", "96979933", "10458575", "10458574", "22099136"]
INVALID_TAX_IDS = [
    "22099132",
    "22099133",
    "04541303",
    "12345678",
    "1234567",
    "123456789",
    "2209913a",
    "２２０９９１３１",
    "",
]


@pytest.mark.parametrize("tax_id", VALID_TAX_IDS)
def test_valid_tax_ids(tax_id: str) -> None:
    assert is_valid_tax_id(tax_id)


@pytest.mark.parametrize("tax_id", INVALID_TAX_IDS)
def test_invalid_tax_ids(tax_id: str) -> None:
    assert not is_valid_tax_id(tax_id)


def test_seventh_digit_seven_rule_only_applies_to_a_seven() -> None:
    # 10458574 sums to 29 (28 -> 10 counted as 10): valid only because its 7th digit is 7.
    assert is_valid_tax_id("10458574")
    # The same sum 29 with a 7th digit other than 7 fails: 22099130 (TSMC's 30, minus one).
    assert not is_valid_tax_id("22099130")
    # 22099136 sums to 35: valid only by the 2023 divisor 5 (not a multiple of 10).
    assert is_valid_tax_id("22099136")


# --- buyer rules ------------------------------------------------------------------------------


def test_plain_email_buyer_is_valid() -> None:
    Buyer(email="a@example.com").validate()
    Buyer(phone="0912345678", carrier_type=CarrierType.ECPAY_MEMBER).validate()


def test_contact_required() -> None:
    assert _rule(Buyer()) == "contact_required"


@pytest.mark.parametrize(
    ("buyer", "code"),
    [
        (Buyer(email="nope"), "email_format"),
        (Buyer(phone="09-12"), "phone_format"),
        (Buyer(email="a@b.co", name="x" * 61), "field_length"),
        (Buyer(email="a@b.co", tax_id="1234567"), "tax_id_format"),
        (Buyer(email="a@b.co", tax_id="22099132", print_paper=True, **PRINTED), "tax_id_checksum"),
        (Buyer(email="a@b.co", tax_id="22099131", love_code="168001"), "donation_with_tax_id"),
        (Buyer(email="a@b.co", tax_id="22099131"), "tax_id_print"),
        (Buyer(email="a@b.co", love_code="12"), "love_code_format"),
        (Buyer(email="a@b.co", love_code="12345678"), "love_code_format"),
        (Buyer(email="a@b.co", love_code="16800A"), "love_code_format"),
        (Buyer(email="a@b.co", love_code="168001", print_paper=True, **PRINTED), "donation_with_print"),
        (
            Buyer(
                email="a@b.co",
                carrier_type=CarrierType.MOBILE_BARCODE,
                carrier_num="/ABC1234",
                print_paper=True,
                **PRINTED,
            ),
            "carrier_with_print",
        ),
        (
            Buyer(email="a@b.co", carrier_type=CarrierType.ECPAY_MEMBER, print_paper=True, **PRINTED),
            "carrier_with_print",
        ),
        (Buyer(email="a@b.co", print_paper=True, name="王小明"), "print_needs_name_address"),
        (
            Buyer(email="a@b.co", carrier_type=CarrierType.MOBILE_BARCODE, carrier_num="ABC1234"),
            "mobile_barcode_format",
        ),
        (
            Buyer(email="a@b.co", carrier_type=CarrierType.MOBILE_BARCODE, carrier_num="/abc1234"),
            "mobile_barcode_format",
        ),
        (
            Buyer(email="a@b.co", carrier_type=CarrierType.MOBILE_BARCODE, carrier_num="/ABC123"),
            "mobile_barcode_format",
        ),
        (
            Buyer(
                email="a@b.co", carrier_type=CarrierType.CITIZEN_CERTIFICATE, carrier_num="AB1234567890123"
            ),
            "citizen_certificate_format",
        ),
        (
            Buyer(
                email="a@b.co", carrier_type=CarrierType.CITIZEN_CERTIFICATE, carrier_num="ab12345678901234"
            ),
            "citizen_certificate_format",
        ),
        (Buyer(email="a@b.co", carrier_type=CarrierType.ECPAY_MEMBER, carrier_num="x"), "member_carrier_num"),
        (Buyer(email="a@b.co", carrier_num="/ABC1234"), "carrier_num_without_type"),
    ],
)
def test_buyer_rules(buyer: Buyer, code: str) -> None:
    assert _rule(buyer) == code


@pytest.mark.parametrize(
    "buyer",
    [
        Buyer(email="a@b.co", carrier_type=CarrierType.MOBILE_BARCODE, carrier_num="/AB+-.12"),
        Buyer(email="a@b.co", carrier_type=CarrierType.CITIZEN_CERTIFICATE, carrier_num="AB12345678901234"),
        Buyer(email="a@b.co", love_code="168001"),
        Buyer(email="a@b.co", love_code="919"),
        Buyer(email="a@b.co", tax_id="22099131", print_paper=True, **PRINTED),
        # A company invoice kept electronically: ECPay's member carrier, or a mobile barcode (print or not).
        Buyer(email="a@b.co", tax_id="22099131", carrier_type=CarrierType.ECPAY_MEMBER),
        Buyer(
            email="a@b.co", tax_id="22099131", carrier_type=CarrierType.MOBILE_BARCODE, carrier_num="/ABC1234"
        ),
        Buyer(
            email="a@b.co",
            tax_id="22099131",
            carrier_type=CarrierType.MOBILE_BARCODE,
            carrier_num="/ABC1234",
            print_paper=True,
            **PRINTED,
        ),
        Buyer(email="a@b.co", print_paper=True, **PRINTED),
    ],
)
def test_buyer_choices_ecpay_accepts(buyer: Buyer) -> None:
    buyer.validate()


def test_carrier_type_given_as_stored_text_is_the_enum() -> None:
    buyer = Buyer(email="a@b.co", carrier_type="3", carrier_num="/ABC1234")  # type: ignore[arg-type]
    assert buyer.carrier_type is CarrierType.MOBILE_BARCODE
    buyer.validate()
    assert Buyer(email="a@b.co", tax_id="22099131", carrier_type="").to_payload()["CarrierType"] == ""  # type: ignore[arg-type]
    assert _rule(Buyer(email="a@b.co", tax_id="22099131", carrier_type="")) == "tax_id_print"  # type: ignore[arg-type]
    with pytest.raises(InvoiceRuleError) as caught:
        Buyer(email="a@b.co", carrier_type="4")  # type: ignore[arg-type]
    assert caught.value.code == "field_value"


def test_rule_error_is_a_validation_error_naming_the_field() -> None:
    with pytest.raises(EcpayValidationError) as caught:
        Buyer(email="a@b.co", love_code="1").validate()
    assert caught.value.field == "LoveCode"


def test_buyer_payload() -> None:
    payload = Buyer(email="a@b.co", love_code="168001").to_payload()
    assert payload["Donation"] == "1"
    assert payload["LoveCode"] == "168001"
    assert payload["Print"] == "0"
    assert payload["CarrierType"] == ""


# --- requests and items -----------------------------------------------------------------------

ITEM = Item(name="點數儲值", count=1, word="式", price=500, amount=500)


def _request(**changes: object) -> IssueRequest:
    base: dict[str, object] = {
        "relate_number": "DEP0123456789",
        "buyer": Buyer(email="a@b.co"),
        "items": (ITEM,),
        "sales_amount": 500,
    }
    base.update(changes)
    return IssueRequest(**base)  # type: ignore[arg-type]


def _request_rule(**changes: object) -> str:
    with pytest.raises(InvoiceRuleError) as caught:
        _request(**changes).validate()
    return caught.value.code


def test_valid_request_and_payload() -> None:
    request = _request(items=[ITEM, Item("手續費", 2, "次", 10, 20)], sales_amount=520)
    request.validate()
    assert isinstance(request.items, tuple)
    payload = request.to_payload("2000132")
    assert payload["MerchantID"] == "2000132"
    assert payload["SalesAmount"] == 520
    assert payload["InvType"] == "07"
    assert payload["TaxType"] == "1"
    assert payload["vat"] == "1"
    assert [item["ItemSeq"] for item in payload["Items"]] == [1, 2]  # type: ignore[attr-defined]
    assert payload["CustomerEmail"] == "a@b.co"


@pytest.mark.parametrize(
    ("changes", "code"),
    [
        ({"relate_number": ""}, "relate_number_format"),
        ({"relate_number": "x" * 31}, "relate_number_format"),
        ({"relate_number": "DEP-01"}, "relate_number_format"),
        ({"relate_number": "訂單1"}, "relate_number_format"),
        ({"sales_amount": 501}, "items_sum"),
        ({"items": (ITEM, ITEM), "sales_amount": 500}, "items_sum"),
        ({"items": ()}, "items_required"),
        ({"sales_amount": 0}, "amount"),
        ({"sales_amount": 500.0}, "amount"),
        ({"items": (Item("x", 2, "式", 250, 499),), "sales_amount": 499}, "item_amount"),
        ({"items": (Item("x", 1, "式", 500.0, 500),)}, "amount"),  # type: ignore[arg-type]
        ({"items": (Item("x", 0, "式", 500, 0),), "sales_amount": 1}, "amount"),
        ({"items": (Item("", 1, "式", 500, 500),)}, "field_length"),
        ({"items": (Item("x", 1, "", 500, 500),)}, "field_length"),
        ({"items": (Item("x", 1, "式", 500, 500, tax_type="7"),)}, "tax_type"),
        ({"tax_type": "5"}, "tax_type"),
        ({"inv_type": "09"}, "inv_type"),
        ({"buyer": Buyer()}, "contact_required"),
    ],
)
def test_request_rules(changes: dict[str, object], code: str) -> None:
    assert _request_rule(**changes) == code


def test_request_from_payload_round_trips() -> None:
    request = _request(buyer=Buyer(email="a@b.co", tax_id="22099131", print_paper=True, **PRINTED))
    assert issue_request_from_payload(request.to_payload("2000132")) == request


@pytest.mark.parametrize(
    ("changes", "code"),
    [
        ({"Donation": "1", "LoveCode": ""}, "love_code_format"),
        ({"Donation": "0", "LoveCode": "168001"}, "love_code_format"),
        ({"Print": "2"}, "field_value"),
        ({"CarrierType": "4"}, "field_value"),
        ({"SalesAmount": "5x"}, "amount"),
        ({"Items": "nope"}, "items_required"),
        ({"CustomerName": ["x"]}, "field_type"),
    ],
)
def test_request_from_malformed_payload(changes: dict[str, object], code: str) -> None:
    payload = {**_request().to_payload("2000132"), **changes}
    with pytest.raises(InvoiceRuleError) as caught:
        issue_request_from_payload(payload)
    assert caught.value.code == code


# --- credentials ------------------------------------------------------------------------------


def test_credentials_hide_secrets() -> None:
    stage = InvoiceCredentials.stage_test_merchant()
    assert stage.merchant_id == "2000132"
    assert stage.is_public_test_merchant
    assert "ejCk" not in repr(stage)
    assert stage == InvoiceCredentials("2000132", "ejCk326UnaZWKisg", "q9jcZX8Ib9LM8wYk")
    assert not InvoiceCredentials("2000132", "x" * 16, "y" * 16).is_public_test_merchant
    with pytest.raises(AttributeError):
        stage._hash_key = "x"  # type: ignore[misc]


def test_invoice_keys_are_never_taken_for_the_merchants_aio_keys() -> None:
    same = ("2000132", "ejCk326UnaZWKisg", "q9jcZX8Ib9LM8wYk")
    invoice, aio = InvoiceCredentials(*same), MerchantCredentials(*same)
    assert invoice != aio and not isinstance(invoice, MerchantCredentials)
    assert repr(invoice) == "InvoiceCredentials(merchant_id='2000132')"
    assert repr(aio) == "MerchantCredentials(merchant_id='2000132')"


# --- filing periods ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("day", "period"),
    [
        (date(2026, 1, 1), (date(2026, 1, 1), date(2026, 2, 28))),
        (date(2028, 2, 29), (date(2028, 1, 1), date(2028, 2, 29))),
        (date(2026, 4, 30), (date(2026, 3, 1), date(2026, 4, 30))),
        (date(2026, 7, 15), (date(2026, 7, 1), date(2026, 8, 31))),
        (date(2026, 12, 31), (date(2026, 11, 1), date(2026, 12, 31))),
        (date(2026, 11, 1), (date(2026, 11, 1), date(2026, 12, 31))),
    ],
)
def test_filing_period(day: date, period: tuple[date, date]) -> None:
    assert filing_period(day) == period


def test_filing_period_uses_taipei_dates() -> None:
    # 2026-02-28 17:00 UTC is 2026-03-01 01:00 in Taipei: the March-April period.
    assert filing_period(datetime(2026, 2, 28, 17, 0, tzinfo=UTC)) == (date(2026, 3, 1), date(2026, 4, 30))
    with pytest.raises(ValueError, match="naive"):
        filing_period(datetime(2026, 2, 28, 17, 0))


def test_can_void_within_the_period_only() -> None:
    issued = date(2026, 3, 10)
    assert can_void(issued, date(2026, 3, 10))
    assert can_void(issued, date(2026, 4, 30))
    assert not can_void(issued, date(2026, 5, 1))
    assert not can_void(issued, date(2026, 5, 12))
    assert not can_void(issued, date(2026, 3, 9))  # before the invoice: a clock error, not a void
    assert can_void(datetime(2026, 4, 30, 15, 59, tzinfo=UTC), datetime(2026, 4, 30, 15, 59, 59, tzinfo=UTC))
    assert not can_void(datetime(2026, 4, 30, 15, 59, tzinfo=UTC), datetime(2026, 4, 30, 16, 0, tzinfo=UTC))


def test_void_deadline_is_the_13th_of_the_next_odd_month() -> None:
    assert void_deadline(date(2026, 3, 10)) == date(2026, 5, 13)
    assert void_deadline(date(2026, 12, 31)) == date(2027, 1, 13)
