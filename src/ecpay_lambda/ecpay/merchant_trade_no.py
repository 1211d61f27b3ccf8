"""MerchantTradeNo: at most 20 letters and digits, fresh per checkout attempt, reference recoverable."""

from __future__ import annotations

import re
import secrets
import threading
import time

from .errors import EcpayValidationError

MAX_LENGTH = 20
ATTEMPT_SUFFIX_LENGTH = 8
MAX_REFERENCE_LENGTH = MAX_LENGTH - ATTEMPT_SUFFIX_LENGTH
_ALNUM = re.compile(r"[A-Za-z0-9]+")
_DIGITS = "0123456789abcdefghijklmnopqrstuvwxyz"
_clock_lock = threading.Lock()
_last_centis = 0


def _next_centis() -> int:
    # Strictly increasing within a process, so two attempts made in the same hundredth of a second
    # (or across a backwards clock step) still get different numbers.
    global _last_centis  # noqa: PLW0603 - one process-wide counter, guarded by the lock
    with _clock_lock:
        _last_centis = max(time.time_ns() // 10_000_000, _last_centis + 1)
        return _last_centis


def _base36(value: int, width: int) -> str:
    out = []
    for _ in range(width):
        value, rem = divmod(value, 36)
        out.append(_DIGITS[rem])
    return "".join(reversed(out))


def new_merchant_trade_no(reference: str, *, now_ns: int | None = None) -> str:
    """Return ``reference`` + an 8-character attempt suffix (7 base-36 digits of centiseconds + 1 random).

    ``reference`` (1 to 12 letters/digits, e.g. a transaction id) is recovered with
    :func:`reference_of`. The suffix is time-ordered, so two attempts of one reference differ.
    """
    if not (1 <= len(reference) <= MAX_REFERENCE_LENGTH) or not _ALNUM.fullmatch(reference):
        raise EcpayValidationError(
            "reference", f"must be 1 to {MAX_REFERENCE_LENGTH} ASCII letters or digits"
        )
    centis = _next_centis() if now_ns is None else now_ns // 10_000_000
    # 7 base-36 digits of centiseconds wrap only every ~24 years; the random digit separates two
    # attempts of one reference made by different processes within the same hundredth of a second.
    suffix = _base36(centis, 7) + _base36(secrets.randbelow(36), 1)
    return reference + suffix


def reference_of(merchant_trade_no: str) -> str:
    """Return the reference a MerchantTradeNo was built from (raises if it is not one of ours)."""
    if not (ATTEMPT_SUFFIX_LENGTH < len(merchant_trade_no) <= MAX_LENGTH) or not _ALNUM.fullmatch(
        merchant_trade_no
    ):
        raise EcpayValidationError("MerchantTradeNo", "is not a MerchantTradeNo made by this library")
    return merchant_trade_no[:-ATTEMPT_SUFFIX_LENGTH]
