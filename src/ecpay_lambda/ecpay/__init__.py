"""ECPay AIO protocol, pure Python: CheckMacValue, checkout, notifications, and the query/refund client.

Knows nothing of wallets, users, AWS or storage. Import light modules directly (``checkmac``,
``notifications``, ``client``); the checkout models are imported lazily so notification handlers
never pay for them.
"""

from .checkmac import check_mac_value, verify_check_mac_value
from .credentials import MerchantCredentials
from .errors import (
    CheckMacValueError,
    EcpayError,
    EcpayValidationError,
    NotificationError,
    RateLimitedError,
    ResponseError,
    TransportError,
)

__all__ = [
    "CheckMacValueError",
    "EcpayError",
    "EcpayValidationError",
    "MerchantCredentials",
    "NotificationError",
    "RateLimitedError",
    "ResponseError",
    "TransportError",
    "check_mac_value",
    "verify_check_mac_value",
]
