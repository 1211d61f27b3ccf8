"""Typed, validated requests and answers of ECPay's B2C e-invoice API (protocol page §13.6).

The buyer's choice decides the invoice's fate: a carrier (ECPay member carrier, citizen digital
certificate, mobile barcode) keeps it electronic, a love code donates it, a company tax ID (統編)
makes it a company invoice. ECPay's rules, checked here before anything is sent (and by the offline
sandbox, which reuses them to refuse what ECPay refuses):

- donation and a company tax ID are mutually exclusive;
- a donated invoice is never printed, nor is one kept in a carrier (except a mobile barcode with a
  tax ID); with a tax ID and no carrier it must be printed, and a printed invoice needs the buyer's
  name and address (ECPay's document "使用情境說明" of Issue, rules for Donation / CustomerIdentifier /
  CarrierType / Print);
- carrier numbers by type: none for ECPay's member carrier, two capital letters + 14 digits for a
  citizen certificate, ``/`` + 7 of ``0-9 A-Z . + -`` for a mobile barcode;
- a love code is 3 to 7 digits; the buyer's e-mail or phone is required;
- items: ``count * price == amount`` each, and their amounts add up to SalesAmount; money is
  integer TWD.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from types import MappingProxyType
from typing import NamedTuple

from ..credentials import KeyedCredentials
from ..records import repr_without
from .errors import InvoiceRuleError
from .tax_id import is_valid_tax_id

# ECPay's public e-invoice stage merchant (SDK_PHP example/Invoice, §2.1): the same MerchantID as the
# old AIO stage merchant with different keys. Public, so a safe local/stage default, never production.
STAGE_TEST_MERCHANT_ID = "2000132"
STAGE_TEST_HASH_KEY = "ejCk326UnaZWKisg"  # public stage test default, not a secret
STAGE_TEST_HASH_IV = "q9jcZX8Ib9LM8wYk"  # public stage test default, not a secret

RELATE_NUMBER = re.compile(r"[A-Za-z0-9]{1,30}")
INVOICE_NO = re.compile(r"[A-Z]{2}[0-9]{8}")
RANDOM_NUMBER = re.compile(r"[0-9]{4}")
MOBILE_BARCODE = re.compile(r"/[0-9A-Z.+\-]{7}")
CITIZEN_CERTIFICATE = re.compile(r"[A-Z]{2}[0-9]{14}")
LOVE_CODE = re.compile(r"[0-9]{3,7}")
EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
PHONE = re.compile(r"[0-9]{1,20}")
TAX_TYPES = frozenset({"1", "2", "3", "4", "9"})  # taxed, zero-rated, tax-free, special, mixed
INV_TYPES = frozenset({"07", "08"})  # general, special tax
MAX_NAME = 60
MAX_ADDRESS = 100
MAX_EMAIL = 80
MAX_ITEM_NAME = 100
MAX_ITEM_WORD = 6
MAX_ITEMS = 999
MAX_REASON = 20


class InvoiceCredentials(KeyedCredentials):
    """The e-invoice service's MerchantID, HashKey and HashIV (its own keys, not the AIO ones; the AES
    key and IV of the envelope)."""

    __slots__ = ()

    @property
    def is_public_test_merchant(self) -> bool:
        """True for ECPay's published e-invoice stage merchant."""
        return self._merchant_id == STAGE_TEST_MERCHANT_ID and self._hash_key == STAGE_TEST_HASH_KEY

    @classmethod
    def stage_test_merchant(cls) -> InvoiceCredentials:
        """ECPay's public e-invoice stage merchant 2000132 (local and stage default only)."""
        return cls(STAGE_TEST_MERCHANT_ID, STAGE_TEST_HASH_KEY, STAGE_TEST_HASH_IV)


class CarrierType(StrEnum):
    """ECPay's CarrierType: where an electronic invoice is kept."""

    NONE = ""
    ECPAY_MEMBER = "1"  # ECPay's own carrier, reached through the buyer's e-mail or phone
    CITIZEN_CERTIFICATE = "2"  # 自然人憑證
    MOBILE_BARCODE = "3"  # 手機條碼


def _length(value: str, limit: int, name: str) -> None:
    if len(value) > limit:
        raise InvoiceRuleError("field_length", f"{name} is at most {limit} characters", name)


@dataclass(frozen=True, slots=True)
class Buyer:
    """Who the invoice is for and where it goes (carrier, donation, company tax ID, print)."""

    email: str = ""
    phone: str = ""
    name: str = ""
    tax_id: str = ""
    carrier_type: CarrierType = CarrierType.NONE
    carrier_num: str = ""
    love_code: str = ""
    print_paper: bool = False
    address: str = ""

    def __post_init__(self) -> None:
        # A stored "3" becomes CarrierType.MOBILE_BARCODE, so the rules below compare members.
        try:
            object.__setattr__(self, "carrier_type", CarrierType(self.carrier_type))
        except ValueError:
            raise InvoiceRuleError(
                "field_value", "CarrierType must be empty, 1, 2 or 3", "CarrierType"
            ) from None

    @property
    def donation(self) -> bool:
        """A love code given means the invoice is donated."""
        return bool(self.love_code)

    def validate(self) -> None:
        """Raise ``InvoiceRuleError`` for the first rule the buyer's details break."""
        _length(self.name, MAX_NAME, "CustomerName")
        _length(self.address, MAX_ADDRESS, "CustomerAddr")
        _length(self.email, MAX_EMAIL, "CustomerEmail")
        if not self.email and not self.phone:
            raise InvoiceRuleError("contact_required", "give the buyer's e-mail or phone", "CustomerEmail")
        if self.email and not EMAIL.fullmatch(self.email):
            raise InvoiceRuleError("email_format", "the e-mail address is not valid", "CustomerEmail")
        if self.phone and not PHONE.fullmatch(self.phone):
            raise InvoiceRuleError("phone_format", "the phone number is 1 to 20 digits", "CustomerPhone")
        if self.tax_id:
            if len(self.tax_id) != 8 or not self.tax_id.isascii() or not self.tax_id.isdigit():
                raise InvoiceRuleError(
                    "tax_id_format", "a company tax ID (統編) is 8 digits", "CustomerIdentifier"
                )
            if not is_valid_tax_id(self.tax_id):
                raise InvoiceRuleError(
                    "tax_id_checksum", "the company tax ID (統編) fails its check digit", "CustomerIdentifier"
                )
            if self.donation:
                raise InvoiceRuleError(
                    "donation_with_tax_id", "an invoice with a company tax ID cannot be donated", "Donation"
                )
        self._validate_carrier()
        if self.love_code and not LOVE_CODE.fullmatch(self.love_code):
            raise InvoiceRuleError("love_code_format", "a love code (捐贈碼) is 3 to 7 digits", "LoveCode")
        self._validate_print()

    def _validate_carrier(self) -> None:
        kind, number = self.carrier_type, self.carrier_num
        if kind is CarrierType.NONE and number:
            raise InvoiceRuleError(
                "carrier_num_without_type", "a carrier number needs a carrier type", "CarrierNum"
            )
        if kind is CarrierType.ECPAY_MEMBER and number:
            raise InvoiceRuleError(
                "member_carrier_num", "ECPay's member carrier takes no carrier number", "CarrierNum"
            )
        if kind is CarrierType.CITIZEN_CERTIFICATE and not CITIZEN_CERTIFICATE.fullmatch(number):
            raise InvoiceRuleError(
                "citizen_certificate_format",
                "a citizen digital certificate carrier is 2 capital letters and 14 digits",
                "CarrierNum",
            )
        if kind is CarrierType.MOBILE_BARCODE and not MOBILE_BARCODE.fullmatch(number):
            raise InvoiceRuleError(
                "mobile_barcode_format",
                "a mobile barcode is '/' and 7 characters of 0-9, A-Z, '.', '+', '-'",
                "CarrierNum",
            )

    def _validate_print(self) -> None:
        kind = self.carrier_type
        if self.print_paper:
            if self.donation:
                raise InvoiceRuleError("donation_with_print", "a donated invoice is never printed", "Print")
            if kind is not CarrierType.NONE and not (self.tax_id and kind is CarrierType.MOBILE_BARCODE):
                raise InvoiceRuleError(
                    "carrier_with_print", "an invoice kept in a carrier is not printed", "Print"
                )
            if not self.name or not self.address:
                raise InvoiceRuleError(
                    "print_needs_name_address",
                    "a printed invoice needs the buyer's name and address",
                    "Print",
                )
        elif self.tax_id and kind is CarrierType.NONE:
            raise InvoiceRuleError(
                "tax_id_print", "an invoice with a company tax ID and no carrier must be printed", "Print"
            )

    def to_payload(self) -> dict[str, object]:
        """The buyer's fields of an Issue request."""
        return {
            "CustomerName": self.name,
            "CustomerAddr": self.address,
            "CustomerPhone": self.phone,
            "CustomerEmail": self.email,
            "CustomerIdentifier": self.tax_id,
            "Print": "1" if self.print_paper else "0",
            "Donation": "1" if self.donation else "0",
            "LoveCode": self.love_code,
            "CarrierType": self.carrier_type.value,
            "CarrierNum": self.carrier_num,
        }


@dataclass(frozen=True, slots=True)
class Item:
    """One invoice line: ``count`` x ``price`` = ``amount`` (integer TWD), ``word`` is the unit."""

    name: str
    count: int
    word: str
    price: int
    amount: int
    tax_type: str = "1"

    def validate(self, seq: int = 1) -> None:
        """Raise ``InvoiceRuleError`` when the line is not well formed."""
        where = f"Items[{seq}]"
        if not self.name or len(self.name) > MAX_ITEM_NAME:
            raise InvoiceRuleError(
                "field_length", f"{where}: ItemName is 1 to {MAX_ITEM_NAME} characters", "ItemName"
            )
        if not self.word or len(self.word) > MAX_ITEM_WORD:
            raise InvoiceRuleError(
                "field_length", f"{where}: ItemWord is 1 to {MAX_ITEM_WORD} characters", "ItemWord"
            )
        for name, value in (
            ("ItemCount", self.count),
            ("ItemPrice", self.price),
            ("ItemAmount", self.amount),
        ):
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise InvoiceRuleError("amount", f"{where}: {name} must be a non-negative integer", name)
        if self.count < 1:
            raise InvoiceRuleError("amount", f"{where}: ItemCount must be at least 1", "ItemCount")
        if self.count * self.price != self.amount:
            raise InvoiceRuleError(
                "item_amount", f"{where}: ItemAmount must be ItemCount x ItemPrice", "ItemAmount"
            )
        if self.tax_type not in TAX_TYPES:
            raise InvoiceRuleError("tax_type", f"{where}: ItemTaxType must be 1, 2, 3, 4 or 9", "ItemTaxType")

    def to_payload(self, seq: int) -> dict[str, object]:
        """The line as ECPay's ``Items`` entry."""
        return {
            "ItemSeq": seq,
            "ItemName": self.name,
            "ItemCount": self.count,
            "ItemWord": self.word,
            "ItemPrice": self.price,
            "ItemTaxType": self.tax_type,
            "ItemAmount": self.amount,
        }


def validate_items(items: Sequence[Item], total: int, total_name: str) -> None:
    """Each line well formed, and their amounts add up to ``total`` (SalesAmount/AllowanceAmount)."""
    if isinstance(total, bool) or not isinstance(total, int) or total < 1:
        raise InvoiceRuleError("amount", f"{total_name} must be a positive integer (TWD)", total_name)
    if not items:
        raise InvoiceRuleError("items_required", "at least one item is required", "Items")
    if len(items) > MAX_ITEMS:
        raise InvoiceRuleError("field_length", f"at most {MAX_ITEMS} items", "Items")
    for seq, item in enumerate(items, start=1):
        item.validate(seq)
    if sum(item.amount for item in items) != total:
        raise InvoiceRuleError("items_sum", f"the items' amounts must add up to {total_name}", total_name)


@dataclass(frozen=True, slots=True)
class IssueRequest:
    """A B2C Issue request: RelateNumber (unique per merchant), buyer, items, SalesAmount."""

    relate_number: str
    buyer: Buyer
    items: tuple[Item, ...]
    sales_amount: int
    tax_type: str = "1"
    inv_type: str = "07"
    remark: str = ""

    def __post_init__(self) -> None:
        # A list given by the caller becomes a tuple, so the request stays immutable and hashable.
        object.__setattr__(self, "items", tuple(self.items))

    def validate(self) -> None:
        """Raise ``InvoiceRuleError`` for the first rule the request breaks."""
        if not isinstance(self.relate_number, str) or not RELATE_NUMBER.fullmatch(self.relate_number):
            raise InvoiceRuleError(
                "relate_number_format", "RelateNumber is 1 to 30 letters or digits", "RelateNumber"
            )
        if self.tax_type not in TAX_TYPES:
            raise InvoiceRuleError("tax_type", "TaxType must be 1, 2, 3, 4 or 9", "TaxType")
        if self.inv_type not in INV_TYPES:
            raise InvoiceRuleError("inv_type", "InvType must be 07 or 08", "InvType")
        _length(self.remark, 200, "InvoiceRemark")
        self.buyer.validate()
        validate_items(self.items, self.sales_amount, "SalesAmount")

    def to_payload(self, merchant_id: str) -> dict[str, object]:
        """The Data payload of ``/B2CInvoice/Issue``."""
        return {
            "MerchantID": merchant_id,
            "RelateNumber": self.relate_number,
            "CustomerID": "",
            **self.buyer.to_payload(),
            "ClearanceMark": "",
            "TaxType": self.tax_type,
            "SalesAmount": self.sales_amount,
            "InvoiceRemark": self.remark,
            "Items": [item.to_payload(seq) for seq, item in enumerate(self.items, start=1)],
            "InvType": self.inv_type,
            "vat": "1",
        }


# --- answers (NamedTuples, like the AIO client's) ---------------------------------------------

_HIDDEN = frozenset({"fields"})
_EMPTY: Mapping[str, object] = MappingProxyType({})


class IssuedInvoice(NamedTuple):
    """An Issue answer: the invoice number (2 letters + 8 digits), its time (aware UTC), random number."""

    invoice_no: str
    invoice_date: datetime
    random_number: str


class InvoiceRecord(NamedTuple):
    """A GetIssue answer: what ECPay holds for one RelateNumber."""

    invoice_no: str
    invoice_date: datetime
    random_number: str
    relate_number: str
    sales_amount: int
    voided: bool
    remaining_allowance_amount: int | None = None
    fields: Mapping[str, object] = _EMPTY  # the whole decrypted answer; left out of repr

    def __repr__(self) -> str:
        return repr_without(self, _HIDDEN)


class AllowanceResult(NamedTuple):
    """An Allowance answer: the allowance number, its invoice, its time (aware UTC), what remains."""

    allowance_no: str
    invoice_no: str
    date: datetime
    remaining_amount: int


# --- from a decrypted Issue payload (the sandbox checks what ECPay receives) --------------------


def _text(payload: Mapping[str, object], name: str) -> str:
    value = payload.get(name, "")
    if value is None:
        return ""
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise InvoiceRuleError("field_type", f"{name} must be a string", name)
    return str(value)


def _integer(value: object, name: str) -> int:
    if isinstance(value, bool):
        raise InvoiceRuleError("amount", f"{name} must be an integer", name)
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and value.strip().isdigit() and value.isascii():
        return int(value.strip())
    raise InvoiceRuleError("amount", f"{name} must be an integer (TWD)", name)


def _flag(payload: Mapping[str, object], name: str) -> bool:
    value = _text(payload, name)
    if value not in ("0", "1"):
        raise InvoiceRuleError("field_value", f"{name} must be 0 or 1", name)
    return value == "1"


def items_from_payload(raw: object) -> tuple[Item, ...]:
    """``Items`` of a decrypted payload as :class:`Item` lines (``InvoiceRuleError`` when malformed)."""
    if not isinstance(raw, list) or not all(isinstance(entry, dict) for entry in raw):
        raise InvoiceRuleError("items_required", "Items must be a list of objects", "Items")
    return tuple(
        Item(
            name=_text(entry, "ItemName"),
            count=_integer(entry.get("ItemCount"), "ItemCount"),
            word=_text(entry, "ItemWord"),
            price=_integer(entry.get("ItemPrice"), "ItemPrice"),
            amount=_integer(entry.get("ItemAmount"), "ItemAmount"),
            tax_type=_text(entry, "ItemTaxType") or "1",
        )
        for entry in raw
    )


def issue_request_from_payload(payload: Mapping[str, object]) -> IssueRequest:
    """The :class:`IssueRequest` an Issue payload describes (not yet validated).

    ``Donation`` 1 without a love code, or a love code without ``Donation`` 1, is refused here, since
    the model derives donation from the love code.
    """
    donation = _flag(payload, "Donation")
    love_code = _text(payload, "LoveCode")
    if donation and not love_code:
        raise InvoiceRuleError("love_code_format", "Donation 1 needs a LoveCode", "LoveCode")
    if love_code and not donation:
        raise InvoiceRuleError("love_code_format", "a LoveCode is given only with Donation 1", "LoveCode")
    carrier = _text(payload, "CarrierType")
    if carrier not in {kind.value for kind in CarrierType}:
        raise InvoiceRuleError("field_value", "CarrierType must be empty, 1, 2 or 3", "CarrierType")
    buyer = Buyer(
        email=_text(payload, "CustomerEmail"),
        phone=_text(payload, "CustomerPhone"),
        name=_text(payload, "CustomerName"),
        tax_id=_text(payload, "CustomerIdentifier"),
        carrier_type=CarrierType(carrier),
        carrier_num=_text(payload, "CarrierNum"),
        love_code=love_code,
        print_paper=_flag(payload, "Print"),
        address=_text(payload, "CustomerAddr"),
    )
    return IssueRequest(
        relate_number=_text(payload, "RelateNumber"),
        buyer=buyer,
        items=items_from_payload(payload.get("Items")),
        sales_amount=_integer(payload.get("SalesAmount"), "SalesAmount"),
        tax_type=_text(payload, "TaxType"),
        inv_type=_text(payload, "InvType") or "07",
        remark=_text(payload, "InvoiceRemark"),
    )


__all__ = [
    "AllowanceResult",
    "Buyer",
    "CarrierType",
    "InvoiceCredentials",
    "InvoiceRecord",
    "IssueRequest",
    "IssuedInvoice",
    "Item",
    "issue_request_from_payload",
    "items_from_payload",
    "validate_items",
]
