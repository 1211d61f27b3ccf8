"""The local development JWT issuer, and the check the HTTP API's JWT authorizer makes, for ``serve``.

On AWS (``AuthMode=jwt``) API Gateway validates every management request's JWT against the issuer
and audience template.yaml names (Cognito or any OIDC provider) and passes the claims on in
``requestContext.authorizer.jwt.claims``. Locally with ``AUTH_MODE=jwt`` the gateway does the same
against this issuer: ``ecpay-lambda token --user ID`` / ``--operator`` print tokens it accepts.

Standard library only (HS256: HMAC-SHA256 with a random key kept in ``<data dir>/local-issuer.key``),
so local mode needs no JWT package and nothing here is on a Lambda function's import path. The key
never leaves the machine; a provider's tokens are RS256, checked on AWS by API Gateway, never here.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import os
import secrets
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

LOCAL_ISSUER = "urn:ecpay-lambda:local-issuer"
LOCAL_AUDIENCE = "ecpay-lambda-local"
KEY_FILE = "local-issuer.key"
DEFAULT_TTL_SECONDS = 3600
MAX_TOKEN_BYTES = 8 * 1024  # far above any token this issuer signs; a bigger header is refused unread
_B64URL = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


class InvalidToken(Exception):
    """The token is malformed, wrongly signed, expired or not for this API (the message says which)."""


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64url(text: str) -> bytes:
    if not text or not _B64URL.issuperset(text):
        raise InvalidToken("malformed")
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        raise InvalidToken("malformed") from None


def load_key(data_dir: Path) -> bytes:
    """The issuer's signing key from ``data_dir`` (created on first use, readable by its owner only)."""
    path = data_dir / KEY_FILE
    try:
        return bytes.fromhex(path.read_text(encoding="ascii").strip())
    except FileNotFoundError:
        pass
    data_dir.mkdir(parents=True, exist_ok=True)
    key = secrets.token_bytes(32)
    # O_EXCL: two processes creating it at once agree on the first one's key.
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return bytes.fromhex(path.read_text(encoding="ascii").strip())
    with os.fdopen(fd, "w", encoding="ascii") as out:
        out.write(key.hex() + "\n")
    return key


def issue(
    key: bytes,
    claims: Mapping[str, Any],
    *,
    ttl: int = DEFAULT_TTL_SECONDS,
    now: float | None = None,
    issuer: str = LOCAL_ISSUER,
    audience: str = LOCAL_AUDIENCE,
) -> str:
    """A signed token carrying ``claims`` plus ``iss``, ``aud``, ``iat`` and ``exp`` (``ttl`` seconds on)."""
    issued = int(time.time() if now is None else now)
    payload = {**claims, "iss": issuer, "aud": audience, "iat": issued, "exp": issued + ttl}
    header = {"alg": "HS256", "typ": "JWT"}
    signing_input = f"{_b64url(json.dumps(header).encode())}.{_b64url(json.dumps(payload).encode())}"
    signature = hmac.new(key, signing_input.encode("ascii"), hashlib.sha256).digest()
    return f"{signing_input}.{_b64url(signature)}"


def _audiences(value: object) -> Iterable[object]:
    return value if isinstance(value, list) else (value,)


def verify(
    key: bytes,
    token: str,
    *,
    now: float | None = None,
    issuer: str = LOCAL_ISSUER,
    audience: str = LOCAL_AUDIENCE,
) -> dict[str, Any]:
    """The claims of ``token`` once its signature, ``iss``, ``aud`` and ``exp`` hold (else InvalidToken).

    As API Gateway's JWT authorizer: the algorithm is the issuer's own (no ``none``, no switching),
    ``exp`` is required and past means refused, ``nbf`` in the future is refused, and the audience
    must be ours (``aud``, or ``client_id`` as Cognito's access tokens carry it).
    """
    if len(token) > MAX_TOKEN_BYTES:
        raise InvalidToken("malformed")
    parts = token.split(".")
    if len(parts) != 3:
        raise InvalidToken("malformed")
    try:
        header = json.loads(_unb64url(parts[0]))
        payload = json.loads(_unb64url(parts[1]))
        signature = _unb64url(parts[2])
    except (UnicodeDecodeError, ValueError):
        raise InvalidToken("malformed") from None
    if not isinstance(header, dict) or not isinstance(payload, dict):
        raise InvalidToken("malformed")
    if header.get("alg") != "HS256":
        raise InvalidToken("algorithm")
    expected = hmac.new(key, f"{parts[0]}.{parts[1]}".encode("ascii"), hashlib.sha256).digest()
    if not hmac.compare_digest(expected, signature):
        raise InvalidToken("signature")
    moment = time.time() if now is None else now
    if payload.get("iss") != issuer:
        raise InvalidToken("issuer")
    if audience not in _audiences(payload.get("aud")) and payload.get("client_id") != audience:
        raise InvalidToken("audience")
    exp = payload.get("exp")
    if isinstance(exp, bool) or not isinstance(exp, int | float) or exp <= moment:
        raise InvalidToken("expired")
    nbf = payload.get("nbf")
    if isinstance(nbf, int | float) and not isinstance(nbf, bool) and nbf > moment:
        raise InvalidToken("not yet valid")
    return payload


def bearer(value: str | None) -> str | None:
    """The token of an ``Authorization`` header as the authorizer reads it (``Bearer`` prefix optional)."""
    if value is None:
        return None
    text = value.strip()
    scheme, _, rest = text.partition(" ")
    if scheme.lower() == "bearer":
        text = rest.strip()
    return text or None


def as_event_claims(claims: Mapping[str, Any]) -> dict[str, str]:
    """Claims as API Gateway passes them to the function: every value a string, lists as ``[a b]``."""
    out: dict[str, str] = {}
    for name, value in claims.items():
        if isinstance(value, list):
            out[name] = "[" + " ".join(str(v) for v in value) + "]"
        elif isinstance(value, bool):
            out[name] = "true" if value else "false"
        elif isinstance(value, dict):
            out[name] = json.dumps(value, separators=(",", ":"))
        else:
            out[name] = str(value)
    return out
