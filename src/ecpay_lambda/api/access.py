"""Who may act on what: the caller of a request and the wallet checks every management route makes.

Plain functions of the API Gateway event, without Powertools: the Powertools routes (api/routes/) and
the lean request path (api/fast/) both call them.
"""

from __future__ import annotations

from ..config import load_settings
from ..wallet.errors import NotFound
from .auth import Principal, principal
from .composition import get_service
from .errors import ApiError
from .events import Event


def caller(event: Event) -> Principal:
    """Who sent ``event`` (see :func:`ecpay_lambda.api.auth.principal`).

    An end user whose identity created a wallet (``POST /users``) reaches that wallet, whatever
    their user claim says; otherwise the claim names it.
    """
    found = principal(event, load_settings())
    if not found.operator and found.identity is not None:
        bound = get_service().store.get_user_by_identity(found.identity)
        if bound is not None:
            return found._replace(user_id=bound.user_id)
    return found


def own_wallet(event: Event, user_id: str) -> None:
    """Refuse a caller who may not act on wallet ``user_id``: 404, exactly as for an unknown user.

    Never 403: an end user must not learn that another user's id exists.
    """
    if not caller(event).may_reach(user_id):
        raise NotFound(f"user {user_id} not found")


def operator_only(event: Event) -> None:
    """Refuse an end user on an operator route: 404, as for a route that does not exist."""
    if not caller(event).operator:
        raise ApiError(404, "route_not_found", "no such route")
