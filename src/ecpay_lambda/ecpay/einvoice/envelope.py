"""ECPay's AES-JSON envelope (protocol page §8), as the B2C e-invoice service speaks it.

Request: ``{"MerchantID", "RqHeader": {"Timestamp", "Revision": "3.0.0"}, "Data"}``, where ``Data`` is
the payload's JSON, URL-encoded as PHP's ``urlencode`` does, AES-128-CBC encrypted with the HashKey as
key and the HashIV as IV (PKCS7 padding), then Base64. The answer carries ``TransCode`` (the envelope)
and an encrypted ``Data`` whose ``RtnCode`` is the request's own outcome.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import urllib.parse
from collections.abc import Mapping

from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from ..errors import ResponseError
from .errors import InvoiceEnvelopeError, InvoiceRejected, InvoiceTransportError

REVISION = "3.0.0"  # RqHeader.Revision of the B2C e-invoice API (B2B uses 1.0.0, ECPG none)
TIMESTAMP_WINDOW_SECONDS = 600  # ECPay accepts a request whose Timestamp is within 10 minutes
MAX_DATA_CHARS = 1024 * 1024  # far above any invoice; a larger Data is refused before decoding
_BLOCK_BITS = 128
_INTEGER = re.compile(r"-?[0-9]{1,18}")


def php_urlencode(text: str) -> str:
    """PHP ``urlencode``: UTF-8, space as ``+``, upper-case hex, only ``A-Z a-z 0-9 - _ .`` kept.

    Python's ``quote_plus`` also keeps ``~``, which PHP encodes (§8's second vector).
    """
    return urllib.parse.quote_plus(text, safe="-_.", encoding="utf-8").replace("~", "%7E")


def _key_bytes(value: str, name: str) -> bytes:
    data = value.encode("ascii", errors="replace")
    if len(data) != 16:
        # The length is safe to say; the value never goes into a message.
        raise ValueError(f"{name} must be 16 ASCII characters (AES-128)")
    return data


def _cipher(key: str, iv: str) -> Cipher[modes.CBC]:
    return Cipher(algorithms.AES(_key_bytes(key, "HashKey")), modes.CBC(_key_bytes(iv, "HashIV")))


def encrypt_data(payload: Mapping[str, object], key: str, iv: str) -> str:
    """The ``Data`` field for ``payload``: compact UTF-8 JSON -> urlencode -> AES-128-CBC -> Base64.

    The JSON is compact and keeps non-ASCII as is; ECPay decrypts and parses, so PHP's escaped
    ``\\/`` and ``\\uXXXX`` spellings are different ciphertexts of the same payload.
    """
    text = json.dumps(dict(payload), ensure_ascii=False, separators=(",", ":"))
    plain = php_urlencode(text).encode("ascii")
    padder = padding.PKCS7(_BLOCK_BITS).padder()
    padded = padder.update(plain) + padder.finalize()
    encryptor = _cipher(key, iv).encryptor()
    return base64.b64encode(encryptor.update(padded) + encryptor.finalize()).decode("ascii")


def decrypt_data(data: str, key: str, iv: str) -> dict[str, object]:
    """The payload of a ``Data`` field; ``InvoiceEnvelopeError`` when it is not one (wrong key...)."""
    if not isinstance(data, str) or not data or len(data) > MAX_DATA_CHARS:
        raise InvoiceEnvelopeError("Data is empty, not a string or too large")
    try:
        raw = base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        raise InvoiceEnvelopeError("Data is not Base64") from None
    if not raw or len(raw) % 16:
        raise InvoiceEnvelopeError("Data is not a whole number of AES blocks")
    decryptor = _cipher(key, iv).decryptor()
    padded = decryptor.update(raw) + decryptor.finalize()
    unpadder = padding.PKCS7(_BLOCK_BITS).unpadder()
    try:
        plain = unpadder.update(padded) + unpadder.finalize()
        text = urllib.parse.unquote_plus(plain.decode("ascii"), encoding="utf-8", errors="strict")
        payload = json.loads(text)
    except (ValueError, UnicodeDecodeError):
        # A wrong key or IV lands here (bad padding or garbage text): say so without detail.
        raise InvoiceEnvelopeError("Data does not decrypt with this merchant's keys") from None
    if not isinstance(payload, dict):
        raise InvoiceEnvelopeError("Data is not a JSON object")
    return payload


def build_request(
    merchant_id: str, key: str, iv: str, payload: Mapping[str, object], *, timestamp: int
) -> dict[str, object]:
    """The request body (as a dict to JSON-encode) for ``payload``, stamped ``timestamp`` (Unix s)."""
    if isinstance(timestamp, bool) or not isinstance(timestamp, int):
        raise TypeError("timestamp must be Unix seconds (int)")
    return {
        "MerchantID": merchant_id,
        "RqHeader": {"Timestamp": timestamp, "Revision": REVISION},
        "Data": encrypt_data(payload, key, iv),
    }


def timestamp_in_window(timestamp: int, now: float, window: int = TIMESTAMP_WINDOW_SECONDS) -> bool:
    """True when ``timestamp`` is within ``window`` seconds of ``now`` either way (ECPay's check)."""
    return abs(now - timestamp) <= window


def as_int(value: object) -> int | None:
    """An integer field as ECPay sends it (``1`` or ``"1"``); None when it is not one."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        text = value.strip()
        if _INTEGER.fullmatch(text):
            return int(text)
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return None


def open_response(
    body: bytes | str | Mapping[str, object], key: str, iv: str, endpoint: str = ""
) -> dict[str, object]:
    """The decrypted payload of a successful answer.

    ``TransCode`` other than 1 raises ``InvoiceTransportError`` (ECPay refused the envelope), a
    decrypted ``RtnCode`` other than 1 raises ``InvoiceRejected``; a malformed answer raises
    ``ResponseError`` (``InvoiceEnvelopeError`` when ``Data`` does not decrypt).
    """
    where = f"{endpoint}: " if endpoint else ""
    if isinstance(body, Mapping):
        answer: object = dict(body)
    else:
        try:
            answer = json.loads(body)
        except (ValueError, UnicodeDecodeError):
            raise ResponseError(f"{where}answer is not JSON") from None
    if not isinstance(answer, dict):
        raise ResponseError(f"{where}answer is not a JSON object")
    trans_code = as_int(answer.get("TransCode"))
    if trans_code is None:
        raise ResponseError(f"{where}answer has no TransCode")
    if trans_code != 1:
        raise InvoiceTransportError(trans_code, str(answer.get("TransMsg") or "")[:200], endpoint)
    data = answer.get("Data")
    if not isinstance(data, str):
        raise ResponseError(f"{where}answer has no Data")
    payload = decrypt_data(data, key, iv)
    rtn_code = as_int(payload.get("RtnCode"))
    if rtn_code is None:
        raise ResponseError(f"{where}decrypted answer has no RtnCode")
    if rtn_code != 1:
        raise InvoiceRejected(rtn_code, str(payload.get("RtnMsg") or "")[:200], endpoint)
    return payload
