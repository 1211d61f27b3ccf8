"""An ECPay transport that hands each request to the sandbox in the same process (no socket).

For tests of code that talks to ECPay through ``ecpay.client``: give ``SandboxTransport(SandboxApp(sandbox))``
to an ``EcpayClient`` and every query, refund and trade-file download is answered by the sandbox, with
the sandbox's injected clock if it has one; give it to an ``einvoice.InvoiceClient`` and the e-invoice
sandbox answers (``post_json``).
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Mapping

from ...ecpay.errors import TransportError
from ...ecpay.transport import HttpResponse, encode_form
from ..http import Request
from .app import SandboxApp


class SandboxTransport:
    """``post_form`` / ``post_json`` as ``ecpay.transport`` expects, answered by a :class:`SandboxApp`."""

    def __init__(self, app: SandboxApp) -> None:
        self.app = app

    def post_form(self, url: str, fields: Mapping[str, str], *, timeout: float) -> HttpResponse:
        """Send one signed form to the sandbox app and return its answer."""
        return self._send(url, "application/x-www-form-urlencoded", encode_form(fields))

    def post_json(self, url: str, body: bytes, *, timeout: float) -> HttpResponse:
        """Send one JSON request (the e-invoice API's envelope) to the sandbox app."""
        return self._send(url, "application/json", body)

    def _send(self, url: str, content_type: str, body: bytes) -> HttpResponse:
        request = Request(
            method="POST",
            raw_path=urllib.parse.urlsplit(url).path,
            raw_query="",
            headers=(("Content-Type", content_type),),
            body=body,
        )
        response = self.app.handle(request)
        if response is None:
            raise TransportError(f"the sandbox has no {urllib.parse.urlsplit(url).path}")
        return HttpResponse(response.status, response.body, dict(response.headers))
