"""Injectable HTTP transport for ECPay's server-to-server APIs (the httpx transport idea)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class HttpResponse:
    """What a transport returns: status and raw body bytes."""

    status: int
    body: bytes
    headers: Mapping[str, str]


class Transport(Protocol):
    """Sends one form POST. Tests and the sandbox plug in their own; the default uses urllib."""

    def post_form(self, url: str, fields: Mapping[str, str], *, timeout: float) -> HttpResponse:
        """POST ``fields`` form-encoded (UTF-8) to ``url``; raise ``TransportError`` on I/O failure."""
        ...


class UrllibTransport:
    """The default transport: stdlib urllib over HTTPS, no extra dependency (cold start)."""

    def post_form(self, url: str, fields: Mapping[str, str], *, timeout: float) -> HttpResponse:
        """POST ``fields`` with urllib."""
        raise NotImplementedError
