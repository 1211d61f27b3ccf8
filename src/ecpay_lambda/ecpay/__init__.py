"""ECPay AIO protocol, pure Python: CheckMacValue, checkout, notifications, and the query/refund client.

Knows nothing of wallets, users, AWS or storage. Import light modules directly (``checkmac``,
``notifications``, ``client``); the checkout models are imported lazily so notification handlers
never pay for them.
"""

from typing import TYPE_CHECKING

from .checkmac import check_mac_value, verify_check_mac_value
from .credentials import MerchantCredentials
from .errors import (
    CheckMacValueError,
    EcpayError,
    EcpayValidationError,
    NotificationCheck,
    NotificationError,
    RateLimitedError,
    RejectedError,
    ResponseError,
    TransportError,
)

if TYPE_CHECKING:
    from .checkout import CheckoutForm, CheckoutRequest, build_checkout_form, merchant_trade_date

# Names served from .checkout on first use (PEP 562), so importing this package never loads pydantic.
_LAZY_CHECKOUT = frozenset({"CheckoutForm", "CheckoutRequest", "build_checkout_form", "merchant_trade_date"})


def __getattr__(name: str) -> object:
    if name in _LAZY_CHECKOUT:
        from . import checkout  # noqa: PLC0415 - deliberately lazy

        return getattr(checkout, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "CheckMacValueError",
    "CheckoutForm",
    "CheckoutRequest",
    "EcpayError",
    "EcpayValidationError",
    "MerchantCredentials",
    "NotificationCheck",
    "NotificationError",
    "RateLimitedError",
    "RejectedError",
    "ResponseError",
    "TransportError",
    "build_checkout_form",
    "check_mac_value",
    "merchant_trade_date",
    "verify_check_mac_value",
]
