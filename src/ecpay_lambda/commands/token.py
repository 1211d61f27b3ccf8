"""``ecpay-lambda token``: print a JWT the local gateway accepts (``serve`` with ``AUTH_MODE=jwt``).

``--user USER_ID`` signs an end user's token (the wallet id in ``JWT_USER_CLAIM``, default ``sub``);
``--operator`` signs an operator's (the ``JWT_OPERATOR_GROUP`` group in ``JWT_GROUPS_CLAIM``, or the
``JWT_OPERATOR_SCOPE`` scope). The key is the local issuer's in the data folder (created on first use),
so the token works against a ``serve`` using the same ``--data-dir``. Development only: on AWS tokens
come from your identity provider (Cognito or any OIDC issuer).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from ..local.issuer import issue, load_key

EXIT_OK = 0
EXIT_USAGE = 2


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Declare the ``token`` options."""
    who = parser.add_mutually_exclusive_group(required=True)
    who.add_argument("--user", metavar="USER_ID", help="an end user's token: reaches only this wallet")
    who.add_argument("--operator", action="store_true", help="an operator's token: reaches every route")
    parser.add_argument(
        "--expires-in",
        type=int,
        default=3600,
        metavar="SECONDS",
        help="lifetime in seconds (default 3600: one hour)",
    )
    parser.add_argument(
        "--data-dir", default=".data", help="the data folder of the serve to use (default .data)"
    )


def claims_for(user: str | None, *, operator: bool, env: dict[str, str]) -> dict[str, Any]:
    """The claims of a token for ``user`` or an operator, named as the settings read them."""
    user_claim = env.get("JWT_USER_CLAIM", "").strip() or "sub"
    if operator:
        claims: dict[str, Any] = {"sub": "local-operator"}
        group = (
            env.get("JWT_OPERATOR_GROUP", "operators").strip() if "JWT_OPERATOR_GROUP" in env else "operators"
        )
        if group:
            claims[env.get("JWT_GROUPS_CLAIM", "").strip() or "cognito:groups"] = [group]
        scope = env.get("JWT_OPERATOR_SCOPE", "").strip()
        if scope:
            claims["scope"] = scope
        return claims
    assert user is not None
    return {"sub": user, user_claim: user}


def run(args: argparse.Namespace) -> int:
    """Print the token on stdout (nothing else, so ``TOKEN=$(ecpay-lambda token --operator)`` works)."""
    if not 60 <= args.expires_in <= 7 * 24 * 3600:
        print("--expires-in must be between 60 and 604800 seconds", file=sys.stderr)
        return EXIT_USAGE
    if args.user is not None and not 1 <= len(args.user.strip()) <= 64:
        print("--user must be a user id of 1 to 64 characters", file=sys.stderr)
        return EXIT_USAGE
    user = args.user.strip() if args.user is not None else None
    key = load_key(Path(args.data_dir).resolve())
    claims = claims_for(user, operator=bool(args.operator), env=dict(os.environ))
    print(issue(key, claims, ttl=args.expires_in))
    return EXIT_OK
