"""Management-route authentication: a bearer token (constant-time compare) or the API's JWT authorizer."""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from typing import Literal

from ..config import Settings
from .events import Event, header, request_context


@dataclass(frozen=True)
class AuthFailure:
    """Why a request is refused."""

    status: int
    code: str
    message: str


AuthScheme = Literal["token", "jwt", "none"]


def auth_scheme(settings: Settings) -> AuthScheme:
    """The credentials :func:`check` requires under ``settings`` (what the OpenAPI document declares)."""
    if settings.auth_mode == "jwt":
        return "jwt"
    return "token" if settings.auth_required else "none"


def _digest(value: str) -> bytes:
    # Comparing fixed-length digests keeps the comparison constant-time whatever the lengths.
    return hashlib.sha256(value.encode("utf-8", errors="surrogatepass")).digest()


def token_matches(presented: str, expected: str) -> bool:
    """True when ``presented`` equals ``expected``, compared in constant time."""
    return hmac.compare_digest(_digest(presented), _digest(expected))


def bearer_token(event: Event) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header, or None."""
    value = header(event, "authorization")
    if value is None:
        return None
    scheme, _, token = value.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        return None
    return token


def check(event: Event, settings: Settings) -> AuthFailure | None:
    """None when the request may reach a management route, else why not.

    - ``AUTH_MODE=jwt``: API Gateway's JWT authorizer already verified the token; refuse an event
      that carries no verified claims (a route deployed without the authorizer).
    - ``AUTH_MODE=token``: the bearer token must match. On Lambda a missing token fails closed;
      locally an unset ``API_TOKEN`` leaves the routes open (the local server then binds loopback).
    """
    if settings.auth_mode == "jwt":
        authorizer = request_context(event).get("authorizer") or {}
        claims = (authorizer.get("jwt") or {}).get("claims") if isinstance(authorizer, dict) else None
        if not claims:
            return AuthFailure(401, "unauthorized", "a valid JWT is required")
        return None
    if settings.api_token is None:
        if settings.on_lambda:
            return AuthFailure(503, "auth_not_configured", "the API token is not configured")
        return None
    presented = bearer_token(event)
    if presented is None or not token_matches(presented, settings.api_token):
        return AuthFailure(401, "unauthorized", "a valid bearer token is required")
    return None
