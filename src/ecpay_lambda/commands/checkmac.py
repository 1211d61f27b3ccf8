"""``ecpay-lambda checkmac``: compute or verify an ECPay CheckMacValue, optionally step by step.

The tool for "ECPay says CheckMacValue error": ``--explain`` prints the sorted string, the encoded
string and the digest (HashKey and HashIV masked), and on a mismatch says which common mistake
would explain it. Imports stay inside ``run`` so that building the CLI parser stays cheap.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, TextIO

if TYPE_CHECKING:
    from ecpay_lambda.ecpay.checkmac import CheckMacSteps

EXIT_OK = 0
EXIT_MISMATCH = 1
EXIT_USAGE = 2
_MASK = "********"


class _UsageError(Exception):
    """A problem with the command line or its inputs (exit status 2)."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Declare the ``checkmac`` options."""
    parser.add_argument(
        "params",
        nargs="*",
        metavar="KEY=VALUE",
        help="parameters, e.g. MerchantID=3002607 'ItemName=Apple iphone 15' (values taken literally)",
    )
    parser.add_argument(
        "--query",
        metavar="STRING",
        help="a form-encoded string such as a notification body ('+' is a space, %%XX decoded)",
    )
    parser.add_argument(
        "--raw",
        action="store_true",
        help="with --query: take values undecoded, as QueryTradeInfo answers are ('+' stays '+')",
    )
    parser.add_argument("--json", metavar="FILE", help="a JSON object of parameters ('-' reads stdin)")
    parser.add_argument(
        "--hash-key",
        metavar="KEY",
        help="HashKey (default: $ECPAY_HASH_KEY, else the stage test merchant's; "
        "prefer the variable: options show up in ps and shell history)",
    )
    parser.add_argument("--hash-iv", metavar="IV", help="HashIV (default: $ECPAY_HASH_IV, else stage test)")
    parser.add_argument("--md5", action="store_true", help="MD5 (EncryptType=0) instead of SHA256")
    parser.add_argument(
        "--verify",
        action="store_true",
        help="check the CheckMacValue given among the parameters; exit 1 when it does not match",
    )
    parser.add_argument(
        "--explain",
        action="store_true",
        help="print every step (HashKey/HashIV masked) and, on a mismatch, likely causes",
    )


def _collect_params(args: argparse.Namespace) -> dict[str, str]:
    params: dict[str, str] = {}

    def add(source: str, items: Mapping[str, str]) -> None:
        for key, value in items.items():
            if key in params:
                raise _UsageError(f"parameter {key!r} is given twice ({source})")
            params[key] = value

    if args.json is not None:
        add("--json", _read_json(args.json))
    if args.query is not None:
        add("--query", _read_query(args.query, raw=args.raw))
    elif args.raw:
        raise _UsageError("--raw only applies to --query")
    pairs: dict[str, str] = {}
    for item in args.params:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise _UsageError(f"expected KEY=VALUE, got {item!r}")
        if key in pairs:
            raise _UsageError(f"parameter {key!r} is given twice")
        pairs[key] = value
    add("KEY=VALUE", pairs)
    if not params:
        raise _UsageError("no parameters: give KEY=VALUE arguments, --query or --json")
    return params


def _read_json(path: str) -> dict[str, str]:
    import json  # noqa: PLC0415 - keep module import light

    try:
        if path == "-":
            text = sys.stdin.read()
        else:
            with open(path, encoding="utf-8") as handle:
                text = handle.read()
        data = json.loads(text)
    except (OSError, UnicodeDecodeError, ValueError) as error:
        raise _UsageError(f"cannot read JSON from {path}: {error}") from None
    if not isinstance(data, dict):
        raise _UsageError("the JSON must be an object of parameter names to values")
    out: dict[str, str] = {}
    for key, value in data.items():
        if value is None:
            out[key] = ""
        elif isinstance(value, str):
            out[key] = value
        elif isinstance(value, int) and not isinstance(value, bool):
            out[key] = str(value)
        else:
            raise _UsageError(f"{key}: only strings and integers are parameters (ECPay signs text)")
    return out


def _read_query(text: str, *, raw: bool) -> dict[str, str]:
    from ecpay_lambda.ecpay.errors import EcpayError  # noqa: PLC0415

    text = text.removeprefix("?")
    try:
        if raw:
            from ecpay_lambda.ecpay.client import parse_raw_pairs  # noqa: PLC0415

            return parse_raw_pairs(text)
        from ecpay_lambda.ecpay.notifications import parse_form_body  # noqa: PLC0415

        return parse_form_body(text)
    except EcpayError as error:
        raise _UsageError(f"--query: {error}") from None


def _keys(args: argparse.Namespace) -> tuple[str, str, bool]:
    import os  # noqa: PLC0415

    from ecpay_lambda.ecpay.credentials import STAGE_TEST_HASH_IV, STAGE_TEST_HASH_KEY  # noqa: PLC0415

    key = args.hash_key if args.hash_key is not None else os.environ.get("ECPAY_HASH_KEY")
    iv = args.hash_iv if args.hash_iv is not None else os.environ.get("ECPAY_HASH_IV")
    if key is None and iv is None:
        return STAGE_TEST_HASH_KEY, STAGE_TEST_HASH_IV, True
    if not key or not iv:
        raise _UsageError("give both HashKey and HashIV (options or ECPAY_HASH_KEY / ECPAY_HASH_IV)")
    return key, iv, False


def _masker(hash_key: str, hash_iv: str) -> Callable[[str], str]:
    from ecpay_lambda.ecpay.checkmac import ecpay_urlencode  # noqa: PLC0415

    secrets = sorted(
        {s for s in (hash_key, hash_iv, ecpay_urlencode(hash_key), ecpay_urlencode(hash_iv)) if s},
        key=len,
        reverse=True,
    )

    def mask(text: str) -> str:
        for secret in secrets:
            text = text.replace(secret, _MASK)
        return text

    return mask


def _print_steps(out: TextIO, steps: CheckMacSteps, mask: Callable[[str], str], algorithm: str) -> None:
    out.write("1. sorted by name (case-insensitive) and joined, CheckMacValue left out:\n")
    out.write(f"   {mask(steps.sorted_pairs)}\n")
    out.write("2. wrapped with HashKey and HashIV (masked here):\n")
    out.write(f"   {mask(steps.wrapped)}\n")
    out.write("3. URL-encoded the .NET way ('~' -> %7e, space -> +) and lower-cased:\n")
    out.write(f"   {mask(steps.encoded)}\n")
    out.write(f"4. {algorithm}, upper-case hex:\n")
    out.write(f"   {steps.digest}\n")


def _diagnose(
    params: Mapping[str, str], received: str, hash_key: str, hash_iv: str, encrypt_type: int
) -> list[str]:
    import hashlib  # noqa: PLC0415

    from ecpay_lambda.ecpay.checkmac import (  # noqa: PLC0415
        MD5,
        SHA256,
        check_mac_value,
        ecpay_urlencode,
        explain_check_mac_value,
    )

    hints: list[str] = []
    expected_length = 64 if encrypt_type == SHA256 else 32
    if len(received) != expected_length:
        hints.append(
            f"the received value has {len(received)} characters; this algorithm gives {expected_length}"
        )
    other = MD5 if encrypt_type == SHA256 else SHA256
    if check_mac_value(params, hash_key, hash_iv, other) == received:
        hints.append(
            "it matches with the other algorithm: " + ("use --md5" if other == MD5 else "drop --md5")
        )
    computed = check_mac_value(params, hash_key, hash_iv, encrypt_type)
    if computed.lower() == received.lower():
        hints.append("it matches except for letter case: ECPay sends upper-case hex")
    non_blank = {k: v for k, v in params.items() if v != ""}
    if (
        len(non_blank) != len(params)
        and check_mac_value(non_blank, hash_key, hash_iv, encrypt_type) == received
    ):
        hints.append(
            "it matches when blank fields are left out: the signer dropped empty values (ECPay signs them)"
        )
    # Python's quote_plus leaves "~" alone; ECPay (.NET) encodes it as %7e.
    wrapped = explain_check_mac_value(params, hash_key, hash_iv, encrypt_type).wrapped
    tilde_kept = ecpay_urlencode(wrapped).replace("%7e", "~")
    hasher = hashlib.sha256 if encrypt_type == SHA256 else hashlib.md5
    if "~" in wrapped and hasher(tilde_kept.encode("ascii")).hexdigest().upper() == received:
        hints.append(
            "it matches when '~' is left unencoded (Python quote_plus / the official Python SDK bug)"
        )
    if not hints:
        hints.append(
            "no common mistake explains it: check HashKey/HashIV, that every transmitted field "
            "(blank ones too) is signed, and that values are the decoded form values"
        )
    return hints


def run(args: argparse.Namespace) -> int:
    """Compute (or with ``--verify`` check) a CheckMacValue; 0 ok, 1 mismatch, 2 usage error."""
    from ecpay_lambda.ecpay.checkmac import MD5, SHA256, explain_check_mac_value  # noqa: PLC0415
    from ecpay_lambda.ecpay.errors import EcpayValidationError  # noqa: PLC0415

    out, err = sys.stdout, sys.stderr
    try:
        params = _collect_params(args)
        hash_key, hash_iv, is_default = _keys(args)
    except _UsageError as error:
        err.write(f"checkmac: {error}\n")
        return EXIT_USAGE
    encrypt_type = MD5 if args.md5 else SHA256
    algorithm = "MD5" if args.md5 else "SHA256"
    signed = {k: v for k, v in params.items() if k != "CheckMacValue"}
    try:
        steps = explain_check_mac_value(signed, hash_key, hash_iv, encrypt_type)
    except EcpayValidationError as error:  # two names differing only by case
        err.write(f"checkmac: {error}\n")
        return EXIT_USAGE
    if args.explain:
        if is_default:
            out.write("using ECPay's public stage test merchant keys (3002607)\n")
        _print_steps(out, steps, _masker(hash_key, hash_iv), algorithm)
    if not args.verify:
        if "CheckMacValue" in params and not args.explain:
            err.write("checkmac: the given CheckMacValue was ignored (use --verify to check it)\n")
        out.write(f"{steps.digest}\n")
        return EXIT_OK
    received = params.get("CheckMacValue")
    if not received:
        err.write("checkmac: --verify needs a CheckMacValue among the parameters\n")
        return EXIT_USAGE
    import hmac  # noqa: PLC0415

    if hmac.compare_digest(received.encode("utf-8"), steps.digest.encode("ascii")):
        out.write("OK: CheckMacValue matches\n")
        return EXIT_OK
    out.write(f"MISMATCH: received {received}\n          computed {steps.digest}\n")
    if args.explain:
        for hint in _diagnose(signed, received, hash_key, hash_iv, encrypt_type):
            out.write(f"hint: {hint}\n")
    else:
        out.write("hint: run again with --explain to see each step and likely causes\n")
    return EXIT_MISMATCH
