"""Identifiers: random where only uniqueness matters, time-ordered where listing order follows them."""

from __future__ import annotations

import secrets
import time

_ALPHABET = "0123456789abcdefghijklmnopqrstuvwxyz"

TRANSACTION_ID_LENGTH = 12  # it prefixes the 20-character ECPay MerchantTradeNo
USER_ID_LENGTH = 16


def _random_base36(length: int) -> str:
    # One draw below 36**length written in base 36: the same uniform choice as one secrets.choice
    # per character, with one call to the system's random source instead of one per character.
    return _base36(secrets.randbelow(36**length), length)


def _base36(value: int, width: int) -> str:
    out = []
    for _ in range(width):
        value, rem = divmod(value, 36)
        out.append(_ALPHABET[rem])
    return "".join(reversed(out))


def _time_ordered(prefix: str) -> str:
    # 10 base-36 digits of microseconds cover ~115 years; 8 random digits separate ids made within
    # the same microsecond (on any machine), so entries sort by creation time and never collide.
    return prefix + _base36(time.time_ns() // 1_000, 10) + _random_base36(8)


def new_transaction_id() -> str:
    """12 characters [0-9a-z] (62 random bits): short enough to prefix a MerchantTradeNo."""
    return _random_base36(TRANSACTION_ID_LENGTH)


def new_user_id() -> str:
    """'u' + 15 random characters [0-9a-z]."""
    return "u" + _random_base36(USER_ID_LENGTH - 1)


def new_entry_id() -> str:
    """A time-ordered ledger entry id."""
    return _time_ordered("e")


def new_notification_id() -> str:
    """A time-ordered notification record id."""
    return _time_ordered("n")


def is_transaction_id(value: str) -> bool:
    """True when ``value`` has the shape of a transaction id (cheap input check before a lookup)."""
    return len(value) == TRANSACTION_ID_LENGTH and all(c in _ALPHABET for c in value)
