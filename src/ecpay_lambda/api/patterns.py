"""The request fields' rules as plain data: amount, name and address patterns, white space.

Standard library only: the pydantic schemas (api/schemas.py) publish and check these rules, and the
lean request path (api/fast/) checks the same ones without importing pydantic, so the two cannot
disagree.
"""

from __future__ import annotations

from ..wallet.service import MAX_AMOUNT

# The string form of an amount: 1 to MAX_AMOUNT in digits, no sign, no leading zero.
AMOUNT_PATTERN = r"^(?:[1-9][0-9]{0,7}|100000000)$"
assert MAX_AMOUNT == 100_000_000, "AMOUNT_PATTERN spells MAX_AMOUNT out"  # import-time guard

# Names and addresses are stripped of surrounding white space (Unicode White_Space, as pydantic's
# own strip does), so the published pattern allows it around the value; lengths count the raw input.
# The same regular expression is checked here and published in the spec: the two cannot disagree.
# Written as \uXXXX escapes, which ECMA-262 (JSON Schema), Python's re and Rust's regex all read alike.
WHITE_SPACE = (
    "\t\n\x0b\x0c\r \x85\xa0\u1680"
    + "".join(map(chr, range(0x2000, 0x200B)))
    + "\u2028\u2029\u202f\u205f\u3000"
)
_WS = "".join(f"\\u{ord(c):04x}" for c in WHITE_SPACE)
_CONTROL = "\\u0000-\\u001f"
USERNAME_PATTERN = (
    f"^[{_WS}]*[^{_WS}{_CONTROL}\\u007f](?:[^{_CONTROL}\\u007f]*[^{_WS}{_CONTROL}\\u007f])?[{_WS}]*$"
)
USERNAME_MAX = 64
EMAIL_PATTERN = f"^[{_WS}]*[^@{_WS}{_CONTROL}]+@[^@{_WS}{_CONTROL}]+[{_WS}]*$"
EMAIL_MAX = 254


def strip_white_space(value: str) -> str:
    """``value`` without surrounding white space (what a stored name or address keeps)."""
    return value.strip(WHITE_SPACE)
