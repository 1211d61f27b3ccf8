"""ECPay CheckMacValue: sign and verify parameter sets exactly as ECPay's servers do."""

# Annotations evaluated, not postponed: the cold-start rule (docs/performance.md).

import hashlib
import hmac
from collections.abc import Mapping
from itertools import pairwise
from typing import NamedTuple

from .errors import EcpayValidationError

# The .NET HttpUtility.UrlEncode safe set, which is what ECPay's servers use; note that "~" is NOT
# safe (Python's quote_plus leaves it alone, which is the official Python SDK's bug).
_SAFE_BYTES = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.!*()")
_ENCODE_TABLE: tuple[str, ...] = tuple(
    chr(b) if b in _SAFE_BYTES else "+" if b == 0x20 else f"%{b:02x}" for b in range(256)
)

SHA256 = 1
MD5 = 0


def ecpay_urlencode(text: str) -> str:
    """Encode like .NET ``HttpUtility.UrlEncode`` over UTF-8, then lower-case (ECPay steps 5-6)."""
    return "".join(_ENCODE_TABLE[b] for b in text.encode("utf-8")).lower()


class CheckMacSteps(NamedTuple):
    """The intermediate strings of one CheckMacValue computation (for the ``checkmac --explain`` tool)."""

    sorted_pairs: str
    wrapped: str
    encoded: str
    digest: str


def explain_check_mac_value(
    params: Mapping[str, object], hash_key: str, hash_iv: str, encrypt_type: int = SHA256
) -> CheckMacSteps:
    """Compute a CheckMacValue and return every intermediate step.

    Raises :class:`EcpayValidationError` when two names differ only by case (``E`` and ``e``): ECPay
    sorts names case-insensitively, and its SDKs then disagree about such a pair (PHP and Python keep
    the insertion order, .NET puts lower case first, Java's TreeSet drops one), so no CheckMacValue of
    that set is agreed. No ECPay field name collides so; refusing keeps the value a function of the
    set alone, whatever the order it was built in.
    """
    if encrypt_type not in (SHA256, MD5):
        raise ValueError("encrypt_type must be 1 (SHA256) or 0 (MD5)")
    items = [(k, "" if v is None else str(v)) for k, v in params.items() if k != "CheckMacValue"]
    # Sort on the lower-cased name: PHP strcasecmp / Python SDK order (protocol notes §3.3).
    items.sort(key=lambda kv: kv[0].lower())
    for (before, _), (after, _) in pairwise(items):
        if before.lower() == after.lower():
            raise EcpayValidationError(
                after, f"differs from field {before!r} only by case: ECPay's order of the two is undefined"
            )
    joined = "&".join(f"{k}={v}" for k, v in items)
    wrapped = f"HashKey={hash_key}&{joined}&HashIV={hash_iv}"
    encoded = ecpay_urlencode(wrapped)
    hasher = hashlib.sha256 if encrypt_type == SHA256 else hashlib.md5
    digest = hasher(encoded.encode("ascii")).hexdigest().upper()
    return CheckMacSteps(sorted_pairs=joined, wrapped=wrapped, encoded=encoded, digest=digest)


def check_mac_value(
    params: Mapping[str, object], hash_key: str, hash_iv: str, encrypt_type: int = SHA256
) -> str:
    """Return the upper-case hex CheckMacValue of ``params`` (any ``CheckMacValue`` key is ignored)."""
    return explain_check_mac_value(params, hash_key, hash_iv, encrypt_type).digest


def verify_check_mac_value(
    params: Mapping[str, object], hash_key: str, hash_iv: str, encrypt_type: int = SHA256
) -> bool:
    """True when ``params['CheckMacValue']`` matches, compared in constant time.

    The algorithm is the caller's choice, never the message's: a 32-character (MD5-length) value
    never makes an SHA256 verification fall back to MD5. A set with two names differing only by case
    has no agreed value (see :func:`explain_check_mac_value`) and never verifies.
    """
    received = params.get("CheckMacValue")
    if not isinstance(received, str) or not received:
        return False
    try:
        expected = check_mac_value(params, hash_key, hash_iv, encrypt_type)
    except EcpayValidationError:
        return False
    return hmac.compare_digest(received.encode("utf-8"), expected.encode("ascii"))
