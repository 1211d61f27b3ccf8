"""Management-route authentication and roles.

Credentials: a bearer token (constant-time compare) or a JWT the HTTP API's authorizer verified. Roles:
an **operator** (the bearer token with ``AUTH_MODE=token``, a local server without one, or a JWT
carrying the operator group or scope) reaches everything; an **end user** (any other verified JWT)
reaches only the wallet its user claim names. In ``AUTH_MODE=jwt`` the authorizer refuses any bearer
that is not a JWT of the issuer, so scripts use a client-credentials token with the operator scope. The
routes enforce the role (:func:`principal`); the gate only refuses missing credentials.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from typing import Any, Literal, NamedTuple

from ..config import Settings
from .events import Event, header, request_context

# The routes that need no credentials (api/app.py registers /openapi.json and /docs, meta /healthz).
PUBLIC_PATHS = frozenset({"/openapi.json", "/docs", "/healthz"})


@dataclass(frozen=True)
class AuthFailure:
    """Why a request is refused."""

    status: int
    code: str
    message: str


AuthScheme = Literal["token", "jwt", "none"]


class Principal(NamedTuple):
    """Who is calling: an operator, or the end user owning wallet ``user_id`` (None: names no wallet)."""

    operator: bool
    user_id: str | None = None
    identity: str | None = None  # an end user's sign-in subject (``sub``): the key of their own wallet

    def may_reach(self, user_id: str) -> bool:
        """True when this caller may act on wallet ``user_id`` (an operator: any)."""
        return self.operator or (
            self.user_id is not None and hmac.compare_digest(_digest(user_id), _digest(self.user_id))
        )


OPERATOR = Principal(operator=True)


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


def jwt_claims(event: Event) -> dict[str, Any] | None:
    """The claims the JWT authorizer verified (``requestContext.authorizer.jwt.claims``), or None."""
    authorizer = request_context(event).get("authorizer")
    jwt = authorizer.get("jwt") if isinstance(authorizer, dict) else None
    claims = jwt.get("claims") if isinstance(jwt, dict) else None
    return claims if isinstance(claims, dict) and claims else None


def _claim_values(value: object) -> set[str]:
    # API Gateway flattens a list claim to a string: Cognito's groups arrive as "[operators admins]";
    # a scope claim is space-separated. A real list (a test, another front door) is taken as is.
    if isinstance(value, list | tuple):
        return {str(v) for v in value}
    if isinstance(value, str):
        return set(value.strip().strip("[]").replace(",", " ").split())
    return set()


def _is_operator(event: Event, claims: dict[str, Any], settings: Settings) -> bool:
    if settings.jwt_operator_group and settings.jwt_operator_group in _claim_values(
        claims.get(settings.jwt_groups_claim)
    ):
        return True
    if settings.jwt_operator_scope:
        jwt = (request_context(event).get("authorizer") or {}).get("jwt") or {}
        scopes = _claim_values(claims.get("scope")) | _claim_values(claims.get("scp"))
        scopes |= _claim_values(jwt.get("scopes") if isinstance(jwt, dict) else None)
        return settings.jwt_operator_scope in scopes
    return False


def _is_client(claims: dict[str, Any]) -> bool:
    # An OAuth2 client's own token (client-credentials grant: a script, no person signed in). RFC 9068
    # and Cognito give it the client's id as ``sub`` and ``client_id`` (or no ``sub`` at all).
    client_id = claims.get("client_id")
    if not isinstance(client_id, str) or not client_id:
        return False
    subject = claims.get("sub")
    return subject is None or subject == client_id


def principal(event: Event, settings: Settings) -> Principal:
    """The role of a request that passed :func:`check` (an end user of no wallet when claims are odd).

    In ``AUTH_MODE=token`` (and locally without a token) every caller that got past the gate is the
    operator. In ``AUTH_MODE=jwt`` the operator group or scope makes an operator; otherwise the
    ``JWT_USER_CLAIM`` claim (a non-empty string) is the only wallet the caller may reach. A client's
    own token (client credentials, see :func:`_is_client`) is an operator by its scope or nobody: it
    never names a wallet nor opens one, whatever its ``sub``.
    """
    if settings.auth_mode != "jwt":
        return OPERATOR
    claims = jwt_claims(event)
    if claims is None:
        return Principal(operator=False)
    if _is_operator(event, claims, settings):
        return OPERATOR
    if _is_client(claims):
        return Principal(operator=False)
    user_id = claims.get(settings.jwt_user_claim)
    subject = claims.get("sub")
    return Principal(
        operator=False,
        user_id=user_id if isinstance(user_id, str) and user_id else None,
        identity=subject if isinstance(subject, str) and subject else None,
    )


def check(event: Event, settings: Settings) -> AuthFailure | None:
    """None when the request may reach a management route, else why not.

    - ``AUTH_MODE=jwt``: API Gateway's JWT authorizer already verified the token; refuse an event
      that carries no verified claims (a route deployed without the authorizer).
    - ``AUTH_MODE=token``: the bearer token must match. On Lambda a missing token fails closed;
      locally an unset ``API_TOKEN`` leaves the routes open (the local server then binds loopback).
    """
    if settings.auth_mode == "jwt":
        if jwt_claims(event) is None:
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
