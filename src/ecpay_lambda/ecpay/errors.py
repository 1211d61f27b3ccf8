"""The ECPay library's error hierarchy (one base class, one subclass per failure a caller handles)."""

from __future__ import annotations

from enum import StrEnum


class EcpayError(Exception):
    """Base class of every error raised by ``ecpay_lambda.ecpay``. Messages never contain secrets."""


class EcpayValidationError(EcpayError, ValueError):
    """A request parameter is invalid; ``field`` names it."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.reason = message


class NotificationCheck(StrEnum):
    """Which check a notification body failed (a ``str``: stored and logged as its value)."""

    TOO_LARGE = "too_large"
    ENCODING = "encoding"
    MALFORMED = "malformed"
    DUPLICATE_FIELD = "duplicate_field"
    MISSING_FIELD = "missing_field"
    CHECK_MAC_VALUE = "check_mac_value"
    MERCHANT_ID = "merchant_id"
    INVALID_FIELD = "invalid_field"


class NotificationError(EcpayError):
    """A notification body failed a check; ``check`` says which (never echoing secrets)."""

    def __init__(self, check: NotificationCheck, message: str) -> None:
        super().__init__(f"{check.value}: {message}")
        self.check = check
        self.reason = message


class CheckMacValueError(NotificationError):
    """A received CheckMacValue does not match."""

    def __init__(self, message: str = "CheckMacValue does not match") -> None:
        super().__init__(NotificationCheck.CHECK_MAC_VALUE, message)


class TransportError(EcpayError):
    """The HTTP call to ECPay failed (connection, timeout, non-200 other than 403)."""


class RateLimitedError(TransportError):
    """ECPay answered HTTP 403: its query rate-limit lockout (back off about 30 minutes)."""


class ResponseError(EcpayError):
    """ECPay answered, but the answer is malformed, unsigned where it must be signed, or mis-signed."""


class RejectedError(ResponseError):
    """ECPay answered with an (unsigned) error instead of a result, e.g. ``TradeStatus=10200073``.

    ``code`` is ECPay's RtnCode/TradeStatus and ``rtn_msg`` its message; an unsigned answer is never
    trusted as a payment result, so it is raised rather than returned.
    """

    def __init__(self, code: str, rtn_msg: str, endpoint: str) -> None:
        super().__init__(f"{endpoint}: ECPay answered {code} ({rtn_msg or 'no message'})")
        self.code = code
        self.rtn_msg = rtn_msg
        self.endpoint = endpoint
