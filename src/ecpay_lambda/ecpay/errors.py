"""The ECPay library's error hierarchy (one base class, one subclass per failure a caller handles)."""

from __future__ import annotations


class EcpayError(Exception):
    """Base class of every error raised by ``ecpay_lambda.ecpay``. Messages never contain secrets."""


class EcpayValidationError(EcpayError, ValueError):
    """A request parameter is invalid; ``field`` names it."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.reason = message


class NotificationError(EcpayError):
    """A notification body failed a check; ``check`` says which (never echoing secrets)."""

    def __init__(self, check: str, message: str) -> None:
        super().__init__(f"{check}: {message}")
        # One of: "too_large", "encoding", "malformed", "duplicate_field", "missing_field",
        # "check_mac_value", "merchant_id", "invalid_field".
        self.check = check
        self.reason = message


class CheckMacValueError(NotificationError):
    """A received CheckMacValue does not match."""

    def __init__(self, message: str = "CheckMacValue does not match") -> None:
        super().__init__("check_mac_value", message)


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
