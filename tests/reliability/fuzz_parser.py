"""Coverage-guided fuzzing of the ECPay notification parser with atheris (libFuzzer for Python).

Run by tests/reliability/test_fuzz.py as ``python fuzz_parser.py CORPUS_DIR -runs=N -max_total_time=S
-dict=FILE``; any uncaught exception or failed check is a crash (non-zero exit, input saved by libFuzzer).

The first input byte picks a mode:

- raw ReturnURL / PaymentInfoURL body (optionally base64, as API Gateway delivers forms): the parser
  must refuse with ``NotificationError`` or accept — and it may accept only what an independent
  reference (the form grammar written out, and the protocol page's §3.6 algorithm) also verifies;
- re-signed: the body's fields are signed with the right key and sent again, so the fuzzer gets past
  the CheckMacValue into the typed views; then the MAC must verify (signer and verifier agree on
  every value the fuzzer finds), and only the field checks may refuse.

Self-contained (no test helpers): it runs as a script in its own process.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import sys
from urllib.parse import quote_plus, unquote_plus, urlencode

import atheris

with atheris.instrument_imports():
    from ecpay_lambda.ecpay.checkmac import check_mac_value
    from ecpay_lambda.ecpay.credentials import MerchantCredentials
    from ecpay_lambda.ecpay.errors import NotificationError
    from ecpay_lambda.ecpay.notifications import (
        PaymentInfoNotice,
        PaymentResult,
        parse_form_body,
        parse_payment_info,
        parse_payment_result,
    )

CREDENTIALS = MerchantCredentials.stage_test_merchant()
AFTER_MAC_CHECKS = frozenset({"missing_field", "invalid_field", "merchant_id", "too_large"})


def reference_mac(fields: dict[str, str], key: str, iv: str) -> str:
    """ECPay's algorithm as the protocol page states it (§3.6), independent of the library."""
    items = sorted(((k, v) for k, v in fields.items() if k != "CheckMacValue"), key=lambda kv: kv[0].lower())
    raw = f"HashKey={key}&" + "&".join(f"{k}={v}" for k, v in items) + f"&HashIV={iv}"
    encoded = quote_plus(raw, safe="-_.!*()").replace("~", "%7E").lower()
    return hashlib.sha256(encoded.encode("ascii")).hexdigest().upper()


def reference_form(text: str) -> list[tuple[str, str]] | None:
    """The x-www-form-urlencoded grammar, written out: ``&``-separated ``name=value`` pieces, empty
    pieces skipped (``a=1&&b=2``, as every form parser does), ``+`` a space, ``%XX`` UTF-8 bytes."""
    pairs = []
    for piece in text.split("&"):
        if not piece:
            continue
        if "=" not in piece:
            return None
        name, value = piece.split("=", 1)
        try:
            pairs.append((unquote_plus(name, errors="strict"), unquote_plus(value, errors="strict")))
        except UnicodeDecodeError:
            return None
    return pairs


def reference_accepts(body: bytes, is_base64: bool) -> bool:
    """Would a careful independent implementation accept this body as genuinely ours?"""
    try:
        data = base64.b64decode(body, validate=True) if is_base64 else body
        pairs = reference_form(data.decode("utf-8"))
    except (ValueError, UnicodeDecodeError):
        return False
    if not pairs:
        return False
    fields = dict(pairs)
    if len(fields) != len(pairs) or "CheckMacValue" not in fields:
        return False
    expected = reference_mac(fields, CREDENTIALS.hash_key, CREDENTIALS.hash_iv)
    return hmac.compare_digest(fields["CheckMacValue"], expected) and fields.get("MerchantID") == "3002607"


def check_raw(body: bytes, is_base64: bool, info: bool) -> None:
    parse = parse_payment_info if info else parse_payment_result
    try:
        result = parse(body, CREDENTIALS, is_base64=is_base64)
    except NotificationError:
        return
    if not reference_accepts(body, is_base64):
        raise AssertionError(f"accepted a body the reference refuses: {body[:200]!r}")
    assert isinstance(result, PaymentInfoNotice if info else PaymentResult)


def check_resigned(body: bytes, info: bool) -> None:
    try:
        fields = parse_form_body(body)
    except NotificationError:
        return
    # The two names set here replace any case twin (a "MercHantID" next to "MerchantID" is a duplicate
    # field: no CheckMacValue is agreed for such a set, and the parser refuses it).
    fields = {k: v for k, v in fields.items() if k.lower() not in ("merchantid", "checkmacvalue")}
    fields["MerchantID"] = CREDENTIALS.merchant_id
    fields["CheckMacValue"] = check_mac_value(fields, CREDENTIALS.hash_key, CREDENTIALS.hash_iv)
    if fields["CheckMacValue"] != reference_mac(fields, CREDENTIALS.hash_key, CREDENTIALS.hash_iv):
        raise AssertionError(f"library and reference MAC differ for {fields!r}")
    encoded = urlencode(fields).encode("utf-8")
    parse = parse_payment_info if info else parse_payment_result
    try:
        result = parse(encoded, CREDENTIALS)
    except NotificationError as exc:
        if exc.check not in AFTER_MAC_CHECKS:
            raise AssertionError(f"a correctly signed body failed {exc.check}: {fields!r}") from None
        return
    assert dict(result.fields) == fields


def test_one_input(data: bytes) -> None:
    """libFuzzer's entry point."""
    if not data:
        return
    mode, body = data[0], data[1:]
    info = bool(mode & 1)
    if mode & 2:
        check_resigned(body, info)
    else:
        check_raw(body, bool(mode & 4), info)


def main() -> None:
    """Run libFuzzer with the command line's options."""
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
