"""Domain error -> HTTP, decided once for every entry point. Standard library only."""

from __future__ import annotations

from dataclasses import dataclass

from ..config import ConfigError
from ..wallet.errors import WalletError


@dataclass(frozen=True)
class HttpError:
    """What to answer for an exception: status, stable code, a message safe to show."""

    status: int
    code: str
    message: str


INTERNAL = HttpError(500, "internal_error", "internal error")
MISCONFIGURED = HttpError(503, "service_unavailable", "the service is not configured correctly")


def to_http_error(exc: BaseException) -> HttpError:
    """Map a domain error to its 4xx (or 502); anything else is a fault and says nothing about itself."""
    if isinstance(exc, WalletError):
        status = exc.status if 400 <= exc.status <= 599 else 400
        return HttpError(status, exc.code, exc.message)
    if isinstance(exc, ConfigError):
        return MISCONFIGURED
    return INTERNAL
