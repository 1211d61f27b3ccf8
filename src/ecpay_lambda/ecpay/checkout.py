"""AioCheckOut/V5: a validated checkout request, signed into form fields and an auto-submitting page.

The only module of ``ecpay_lambda.ecpay`` that imports pydantic: keep it out of notification paths.
"""

from __future__ import annotations

import html
import re
import urllib.parse
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from .checkmac import check_mac_value
from .credentials import MerchantCredentials
from .environments import PRODUCTION_BASE_URL, STAGE_BASE_URL, Endpoints
from .errors import EcpayValidationError
from .limits import DEFAULT_AMOUNT_LIMITS, MAX_INT, MIN_EXEC_TIMES, PERIOD_LIMITS, AmountLimits
from .timezone import ECPAY_DATETIME_FORMAT, format_ecpay_datetime

CHOOSE_PAYMENTS = frozenset(
    {
        "ALL",
        "Credit",
        "WebATM",
        "ATM",
        "CVS",
        "BARCODE",
        "ApplePay",
        "TWQR",
        "BNPL",
        "WeiXin",
        "DigitalPayment",
    }
)
IGNORABLE_PAYMENTS = frozenset(
    {"Credit", "WebATM", "ATM", "CVS", "BARCODE", "ApplePay", "TWQR", "BNPL", "WeiXin"}
)
INSTALLMENT_TERMS = frozenset({"3", "5", "6", "8", "9", "10", "12", "18", "24", "30", "30N"})
LANGUAGES = frozenset({"ENG", "KOR", "JPN", "CHI", "CHT"})
BNPL_MIN_AMOUNT = 3000
# MAX_INT and PERIOD_LIMITS (per PeriodType: Frequency max, ExecTimes max) live in ``limits``,
# light enough for the sandbox and the config layer.

# Which ChoosePayment values each method-specific parameter belongs to.
_CREDIT = frozenset({"Credit", "ALL"})
_OFFLINE = frozenset({"ATM", "CVS", "BARCODE"})
_ALLOWED_WITH: dict[str, frozenset[str]] = {
    "BindingCard": _CREDIT,
    "MerchantMemberID": _CREDIT,
    "Redeem": _CREDIT,
    "UnionPay": _CREDIT,
    "CreditInstallment": _CREDIT,
    "PeriodAmount": _CREDIT,
    "PeriodType": _CREDIT,
    "Frequency": _CREDIT,
    "ExecTimes": _CREDIT,
    "PeriodReturnURL": _CREDIT,
    "ExpireDate": frozenset({"ATM", "ALL"}),
    "PaymentInfoURL": frozenset({"ATM", "CVS", "BARCODE", "BNPL", "ALL"}),
    "ClientRedirectURL": frozenset({"ATM", "CVS", "BARCODE", "ALL"}),
    "StoreExpireDate": frozenset({"CVS", "BARCODE", "ALL"}),
    "Desc_1": frozenset({"CVS", "BARCODE", "ALL"}),
    "Desc_2": frozenset({"CVS", "BARCODE", "ALL"}),
    "Desc_3": frozenset({"CVS", "BARCODE", "ALL"}),
    "Desc_4": frozenset({"CVS", "BARCODE", "ALL"}),
    "IgnorePayment": frozenset({"ALL"}),
}
_SERVER_CALLBACKS = ("ReturnURL", "PaymentInfoURL", "PeriodReturnURL")
_BUILDER_FIELDS = frozenset({"MerchantID", "PaymentType", "EncryptType", "CheckMacValue"})

_ALNUM = re.compile(r"[A-Za-z0-9]+")
_SUB_PAYMENT = re.compile(r"[A-Za-z0-9_]{1,20}")
_DATETIME = re.compile(r"\d{4}/\d{2}/\d{2} \d{2}:\d{2}:\d{2}")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_HTML_TAG = re.compile(r"<[A-Za-z!/?]")
_ENCODED_AMP_LT = re.compile(r"%(?:26|3c)", re.IGNORECASE)
_URL_FORBIDDEN = re.compile(r"[;|`\s]")
# CustomField: letters and digits of any script, space, and the specials ECPay lists
# (",.#()$[];%{}:/?&@<>!") plus "-" and "_", which every encoder leaves alone.
_CUSTOM_FIELD_SPECIALS = frozenset(",.#()$[];%{}:/?&@<>!-_ ")


def merchant_trade_date(now: datetime | None = None) -> str:
    """``MerchantTradeDate`` text (``yyyy/MM/dd HH:mm:ss``, Asia/Taipei) for aware ``now`` (default: now)."""
    return format_ecpay_datetime(now if now is not None else datetime.now(UTC))


class CheckoutRequest(BaseModel):
    """The merchant's AioCheckOut/V5 parameters, named exactly as ECPay names them.

    ``None`` means "not sent"; ``""`` is sent empty (and signed). ``MerchantID``, ``PaymentType=aio``
    and ``EncryptType=1`` are added by :func:`build_checkout_form`. Construction validates lengths,
    character sets, ranges and combinations, raising :class:`EcpayValidationError` naming the field.
    """

    model_config = ConfigDict(strict=True, frozen=True, extra="forbid")

    # General parameters.
    MerchantTradeNo: str
    MerchantTradeDate: str = Field(default_factory=merchant_trade_date)
    TotalAmount: int
    TradeDesc: str
    ItemName: str
    ReturnURL: str
    ChoosePayment: str
    StoreID: str | None = None
    ClientBackURL: str | None = None
    ItemURL: str | None = None
    Remark: str | None = None
    ChooseSubPayment: str | None = None
    OrderResultURL: str | None = None
    NeedExtraPaidInfo: str | None = None
    DeviceSource: str | None = None
    IgnorePayment: str | None = None
    PlatformID: str | None = None
    InvoiceMark: str | None = None
    CustomField1: str | None = None
    CustomField2: str | None = None
    CustomField3: str | None = None
    CustomField4: str | None = None
    Language: str | None = None
    # Credit card (Credit or ALL): card binding, one-time extras, installments, periodic.
    BindingCard: int | None = None
    MerchantMemberID: str | None = None
    Redeem: str | None = None
    UnionPay: int | None = None
    CreditInstallment: str | None = None
    PeriodAmount: int | None = None
    PeriodType: str | None = None
    Frequency: int | None = None
    ExecTimes: int | None = None
    PeriodReturnURL: str | None = None
    # ATM.
    ExpireDate: int | None = None
    PaymentInfoURL: str | None = None
    ClientRedirectURL: str | None = None
    # CVS and BARCODE.
    StoreExpireDate: int | None = None
    Desc_1: str | None = None
    Desc_2: str | None = None
    Desc_3: str | None = None
    Desc_4: str | None = None

    if not TYPE_CHECKING:
        # At run time, pydantic's ValidationError becomes the library's one typed error; type
        # checkers keep seeing the field-by-field constructor pydantic synthesizes.
        def __init__(self, **data: Any) -> None:
            try:
                super().__init__(**data)
            except ValidationError as error:
                raise _as_ecpay_error(error) from None

    @model_validator(mode="after")
    def _validate(self) -> CheckoutRequest:
        _validate_request(self)
        return self

    def ecpay_fields(self) -> dict[str, str]:
        """The parameters that are sent, as strings, in declaration order (``None`` ones left out)."""
        out: dict[str, str] = {}
        for name in type(self).model_fields:
            value = getattr(self, name)
            if value is not None:
                out[name] = str(value)
        return out


def _as_ecpay_error(error: ValidationError) -> EcpayValidationError:
    first = error.errors()[0]
    original = first.get("ctx", {}).get("error")
    if isinstance(original, EcpayValidationError):
        return original
    location = first.get("loc") or ()
    name = str(location[0]) if location else "CheckoutRequest"
    kind = first.get("type", "")
    if kind == "missing":
        return EcpayValidationError(name, "is required")
    if kind == "extra_forbidden":
        if name in _BUILDER_FIELDS:
            return EcpayValidationError(name, "is filled in by build_checkout_form; do not pass it")
        return EcpayValidationError(name, "is not an AioCheckOut/V5 parameter supported here")
    return EcpayValidationError(name, str(first.get("msg", "is invalid")))


# --- validation rules ---------------------------------------------------------------------------


def _check_text(name: str, value: str | None, max_length: int, *, required: bool = False) -> None:
    if value is None or value == "":
        if required:
            raise EcpayValidationError(name, "is required")
        return
    if len(value) > max_length:
        raise EcpayValidationError(name, f"has {len(value)} characters; at most {max_length} are allowed")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise EcpayValidationError(name, "is not valid Unicode (lone surrogate)") from None
    if _CONTROL.search(value):
        raise EcpayValidationError(name, "contains a control character (line break, tab, ...)")
    if _HTML_TAG.search(value):
        raise EcpayValidationError(name, "contains an HTML tag, which ECPay does not allow")
    if _ENCODED_AMP_LT.search(value):
        raise EcpayValidationError(name, "contains %26 or %3C; ECPay asks for these to be sent decoded")


def _check_url(name: str, value: str | None, *, required: bool = False) -> None:
    _check_text(name, value, 200, required=required)
    if not value:
        return
    if not value.isascii():
        raise EcpayValidationError(name, "must be ASCII (write non-ASCII host names in punycode)")
    if _URL_FORBIDDEN.search(value):
        raise EcpayValidationError(name, "must not contain whitespace, ';', '|' or '`'")
    parts = urllib.parse.urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise EcpayValidationError(name, "must be an absolute http(s) URL")
    try:
        parts.port  # noqa: B018 - urlsplit validates the port lazily
    except ValueError:
        raise EcpayValidationError(name, "has an invalid port") from None


def _check_choice(name: str, value: str | None, choices: frozenset[str]) -> None:
    if value is not None and value not in choices:
        raise EcpayValidationError(name, f"must be one of {', '.join(sorted(choices))}")


def _check_range(name: str, value: int | None, low: int, high: int, unit: str = "") -> None:
    if value is not None and not low <= value <= high:
        suffix = f" {unit}" if unit else ""
        raise EcpayValidationError(name, f"must be between {low} and {high}{suffix}")


def _check_merchant_trade_date(value: str) -> None:
    if not _DATETIME.fullmatch(value):
        raise EcpayValidationError("MerchantTradeDate", "must be yyyy/MM/dd HH:mm:ss (Taiwan time)")
    try:
        datetime.strptime(value, ECPAY_DATETIME_FORMAT)
    except ValueError:
        raise EcpayValidationError("MerchantTradeDate", "is not a real date and time") from None


def _check_custom_field(name: str, value: str | None) -> None:
    _check_text(name, value, 50)
    if value and any(not (ch.isalnum() or ch in _CUSTOM_FIELD_SPECIALS) for ch in value):
        raise EcpayValidationError(
            name, "may hold letters, digits, spaces and only these specials: ,.#()$[];%{}:/?&@<>!-_"
        )


def _check_general(r: CheckoutRequest) -> None:
    if not (len(r.MerchantTradeNo) <= 20 and _ALNUM.fullmatch(r.MerchantTradeNo)):
        raise EcpayValidationError("MerchantTradeNo", "must be 1 to 20 ASCII letters or digits")
    _check_merchant_trade_date(r.MerchantTradeDate)
    if not 1 <= r.TotalAmount <= MAX_INT:
        raise EcpayValidationError("TotalAmount", "must be a positive whole number of TWD")
    _check_text("TradeDesc", r.TradeDesc, 200, required=True)
    _check_text("ItemName", r.ItemName, 400, required=True)
    _check_url("ReturnURL", r.ReturnURL, required=True)
    _check_choice("ChoosePayment", r.ChoosePayment, CHOOSE_PAYMENTS)
    if r.StoreID and not (len(r.StoreID) <= 20 and _ALNUM.fullmatch(r.StoreID)):
        raise EcpayValidationError("StoreID", "must be at most 20 ASCII letters or digits")
    for name in ("ClientBackURL", "ItemURL", "OrderResultURL", "PaymentInfoURL", "ClientRedirectURL"):
        _check_url(name, getattr(r, name))
    _check_url("PeriodReturnURL", r.PeriodReturnURL)
    _check_text("Remark", r.Remark, 100)
    if r.ChooseSubPayment and not _SUB_PAYMENT.fullmatch(r.ChooseSubPayment):
        raise EcpayValidationError("ChooseSubPayment", "must be 1 to 20 letters, digits or underscores")
    _check_choice("NeedExtraPaidInfo", r.NeedExtraPaidInfo, frozenset({"Y", "N"}))
    if r.DeviceSource:
        raise EcpayValidationError("DeviceSource", "is legacy: leave it out or send it empty")
    if r.PlatformID and not (len(r.PlatformID) <= 10 and _ALNUM.fullmatch(r.PlatformID)):
        raise EcpayValidationError("PlatformID", "must be at most 10 ASCII letters or digits")
    if r.InvoiceMark not in (None, "", "N"):
        raise EcpayValidationError(
            "InvoiceMark", "issuing an e-invoice with the payment (Y) is not supported"
        )
    for index in range(1, 5):
        _check_custom_field(f"CustomField{index}", getattr(r, f"CustomField{index}"))
    _check_choice("Language", r.Language, LANGUAGES)
    if r.OrderResultURL and r.OrderResultURL == r.ReturnURL:
        raise EcpayValidationError(
            "OrderResultURL", "must differ from ReturnURL (browser vs server callback)"
        )


def _check_method_fields(r: CheckoutRequest) -> None:
    for name, methods in _ALLOWED_WITH.items():
        if getattr(r, name) is not None and r.ChoosePayment not in methods:
            allowed = " or ".join(sorted(methods))
            raise EcpayValidationError(name, f"only applies when ChoosePayment is {allowed}")
    if r.ChooseSubPayment and r.ChoosePayment == "ALL":
        raise EcpayValidationError("ChooseSubPayment", "does not apply when ChoosePayment is ALL")
    if r.OrderResultURL and r.ChoosePayment in _OFFLINE:
        raise EcpayValidationError(
            "OrderResultURL", "is not supported for ATM, CVS and BARCODE; use ClientRedirectURL"
        )
    if r.ChoosePayment == "BNPL" and r.TotalAmount < BNPL_MIN_AMOUNT:
        raise EcpayValidationError("TotalAmount", f"must be at least {BNPL_MIN_AMOUNT} for BNPL")
    if r.IgnorePayment:
        _check_text("IgnorePayment", r.IgnorePayment, 100)
        ignored = r.IgnorePayment.split("#")
        for method in ignored:
            if method not in IGNORABLE_PAYMENTS:
                raise EcpayValidationError(
                    "IgnorePayment",
                    f"'#'-separated list of {', '.join(sorted(IGNORABLE_PAYMENTS))}; got {method[:20]!r}",
                )
        if len(set(ignored)) != len(ignored):
            raise EcpayValidationError("IgnorePayment", "lists a payment method twice")
    _check_range("ExpireDate", r.ExpireDate, 1, 60, "days")
    if r.StoreExpireDate is not None:
        if r.ChoosePayment == "BARCODE":
            _check_range("StoreExpireDate", r.StoreExpireDate, 1, 30, "days for BARCODE")
        else:
            _check_range("StoreExpireDate", r.StoreExpireDate, 1, 43200, "minutes for CVS")
    for index in range(1, 5):
        _check_text(f"Desc_{index}", getattr(r, f"Desc_{index}"), 20)


def _check_credit(r: CheckoutRequest) -> None:
    if r.BindingCard is not None and r.BindingCard not in (0, 1):
        raise EcpayValidationError("BindingCard", "must be 0 or 1")
    if r.BindingCard == 1 and not r.MerchantMemberID:
        raise EcpayValidationError("MerchantMemberID", "is required when BindingCard is 1")
    if r.MerchantMemberID is not None and r.BindingCard != 1:
        raise EcpayValidationError("MerchantMemberID", "only applies when BindingCard is 1")
    _check_text("MerchantMemberID", r.MerchantMemberID, 30)
    _check_choice("Redeem", r.Redeem, frozenset({"Y", "N"}))
    if r.UnionPay is not None and r.UnionPay not in (0, 1, 2):
        raise EcpayValidationError(
            "UnionPay", "must be 0 (shopper may choose), 1 (UnionPay only) or 2 (hidden)"
        )

    installment = r.CreditInstallment is not None
    if installment:
        _check_text("CreditInstallment", r.CreditInstallment, 20, required=True)
        terms = (r.CreditInstallment or "").split(",")
        for term in terms:
            if term not in INSTALLMENT_TERMS:
                raise EcpayValidationError(
                    "CreditInstallment",
                    f"comma-separated terms among {', '.join(sorted(INSTALLMENT_TERMS, key=_term_order))}",
                )
        if len(set(terms)) != len(terms):
            raise EcpayValidationError("CreditInstallment", "lists a term twice")

    period_values = (r.PeriodAmount, r.PeriodType, r.Frequency, r.ExecTimes)
    periodic = any(value is not None for value in period_values)
    if periodic:
        for name in ("PeriodAmount", "PeriodType", "Frequency", "ExecTimes"):
            if getattr(r, name) is None:
                raise EcpayValidationError(name, "is required for a periodic (定期定額) order")
        if r.PeriodAmount != r.TotalAmount:
            raise EcpayValidationError("PeriodAmount", "must equal TotalAmount")
        _check_choice("PeriodType", r.PeriodType, frozenset(PERIOD_LIMITS))
        max_frequency, max_exec_times = PERIOD_LIMITS[r.PeriodType or ""]
        _check_range("Frequency", r.Frequency, 1, max_frequency, f"when PeriodType is {r.PeriodType}")
        _check_range(
            "ExecTimes", r.ExecTimes, MIN_EXEC_TIMES, max_exec_times, f"when PeriodType is {r.PeriodType}"
        )
    elif r.PeriodReturnURL is not None:
        raise EcpayValidationError("PeriodReturnURL", "only applies to a periodic order (PeriodAmount, ...)")

    redeem = r.Redeem == "Y"
    if periodic and installment:
        raise EcpayValidationError("CreditInstallment", "cannot be combined with a periodic order")
    if redeem and (periodic or installment):
        raise EcpayValidationError("Redeem", "cannot be combined with installments or a periodic order")
    if r.UnionPay == 1:
        if installment or periodic or redeem or r.BindingCard == 1:
            raise EcpayValidationError(
                "UnionPay",
                "1 (UnionPay only) cannot be combined with installments, periodic, Redeem or BindingCard",
            )
        if r.OrderResultURL:
            raise EcpayValidationError("OrderResultURL", "is not supported for UnionPay")


def _term_order(term: str) -> tuple[int, str]:
    return (int(term.rstrip("N")), term)


def _validate_request(r: CheckoutRequest) -> None:
    _check_general(r)
    _check_method_fields(r)
    _check_credit(r)


# --- the signed form ----------------------------------------------------------------------------


@dataclass(frozen=True)
class CheckoutForm:
    """A signed AioCheckOut/V5 form: where to POST it and every field (CheckMacValue included)."""

    action: str
    fields: dict[str, str]

    def html(self, *, nonce: str | None = None) -> str:
        """A page whose form submits itself to ECPay (every value HTML-escaped).

        ``nonce`` goes on the inline script for a Content-Security-Policy that requires one; a
        button in ``<noscript>`` covers browsers without JavaScript.
        """
        inputs = "\n".join(
            f'<input type="hidden" name="{html.escape(name)}" value="{html.escape(value)}">'
            for name, value in self.fields.items()
        )
        nonce_attribute = f' nonce="{html.escape(nonce)}"' if nonce else ""
        return (
            "<!DOCTYPE html>\n"
            '<html lang="zh-Hant">\n<head>\n<meta charset="utf-8">\n'
            '<meta name="robots" content="noindex">\n<title>Redirecting to ECPay</title>\n</head>\n<body>\n'
            f'<form id="ecpay-checkout" method="post" action="{html.escape(self.action)}"'
            ' accept-charset="UTF-8">\n'
            f"{inputs}\n"
            '<noscript><button type="submit">Continue to ECPay</button></noscript>\n'
            "</form>\n"
            f'<script{nonce_attribute}>document.getElementById("ecpay-checkout").submit();</script>\n'
            "</body>\n</html>\n"
        )


def _is_official_host(endpoints: Endpoints) -> bool:
    return endpoints.base_url.lower() in (STAGE_BASE_URL, PRODUCTION_BASE_URL)


def build_checkout_form(
    request: CheckoutRequest,
    credentials: MerchantCredentials,
    endpoints: Endpoints,
    *,
    amount_limits: AmountLimits = DEFAULT_AMOUNT_LIMITS,
) -> CheckoutForm:
    """Sign ``request`` for ``credentials`` and return the form to POST to ``endpoints.checkout``.

    ``amount_limits`` are the merchant's per-method amount ranges (ECPay refuses an order outside
    them at checkout, so it is refused here first, naming the method and its range).
    """
    ignored = request.IgnorePayment.split("#") if request.IgnorePayment else ()
    amount_limits.check(request.ChoosePayment, request.TotalAmount, ignore=ignored)
    if not (len(credentials.merchant_id) <= 10 and _ALNUM.fullmatch(credentials.merchant_id)):
        raise EcpayValidationError("MerchantID", "must be 1 to 10 ASCII letters or digits")
    params = request.ecpay_fields()
    if _is_official_host(endpoints):
        # ECPay's servers only call merchants back on the default ports (browser redirects may use
        # any port); the offline sandbox has no such limit.
        for name in _SERVER_CALLBACKS:
            value = params.get(name)
            if value:
                port = urllib.parse.urlsplit(value).port
                if port not in (None, 80, 443):
                    raise EcpayValidationError(name, "ECPay only reaches ports 80 and 443")
    fields = {"MerchantID": credentials.merchant_id, **params, "PaymentType": "aio", "EncryptType": "1"}
    fields["CheckMacValue"] = check_mac_value(fields, credentials.hash_key, credentials.hash_iv)
    return CheckoutForm(action=endpoints.checkout, fields=fields)
