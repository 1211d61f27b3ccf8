"""pytest plugin: the offline ECPay sandbox as a fixture, for this project's tests and integrators' own.

- ``ecpay_sandbox``: a sandbox on a free loopback port (in-process thread, trades in memory, callback
  retries 50/100/200/400 ms apart). It is a ``SandboxClient``: ``base_url``, ``credentials``,
  ``endpoints`` (give them to your ECPay client), ``sign()``, ``checkout()``, ``pay()``, ``fail()``,
  ``issue_code()``, ``simulate_paid()``, ``expire()``, ``resend()``, ``callbacks()``,
  ``wait_for_callbacks()``, ``settings(drop_callbacks=True, ...)``. ``.engine`` is the in-process sandbox.
- ``merchant_endpoint``: a loopback HTTP server standing in for a merchant's ReturnURL/PaymentInfoURL;
  it records every POST and answers ``1|OK`` unless told otherwise (``answers``).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl

import pytest

from ecpay_lambda.ecpay.credentials import MerchantCredentials
from ecpay_lambda.local.sandbox import Sandbox
from ecpay_lambda.local.sandbox.client import SandboxClient
from ecpay_lambda.local.stack import LocalStack, build_sandbox_only

TEST_RETRY_DELAYS = (0.05, 0.1, 0.2, 0.4)


class RunningSandbox(SandboxClient):
    """A sandbox started by the fixture, with its client API and the in-process engine."""

    def __init__(self, stack: LocalStack) -> None:
        super().__init__(stack.base_url, next(iter(stack.sandbox.merchants.values())))
        self.stack = stack

    @property
    def engine(self) -> Sandbox:
        """The in-process sandbox (for assertions the HTTP API does not expose)."""
        return self.stack.sandbox


@pytest.fixture
def ecpay_sandbox() -> Iterator[RunningSandbox]:
    """A fresh offline ECPay sandbox on 127.0.0.1 for one test (merchant 3002607)."""
    stack = build_sandbox_only(
        port=0, merchant=MerchantCredentials.stage_test_merchant(), retry_delays=TEST_RETRY_DELAYS, quiet=True
    )
    stack.server.start_background()
    try:
        yield RunningSandbox(stack)
    finally:
        stack.close()


@dataclass
class ReceivedPost:
    """One POST the merchant endpoint received."""

    path: str
    headers: dict[str, str]
    body: bytes
    fields: dict[str, str]


@dataclass
class MerchantEndpoint:
    """A recording stand-in for a merchant's callback URLs."""

    base_url: str
    received: list[ReceivedPost] = field(default_factory=list)
    answers: list[tuple[int, bytes]] = field(default_factory=list)  # consumed in order, then 200 1|OK
    lock: threading.Lock = field(default_factory=threading.Lock)

    def url(self, path: str) -> str:
        """An absolute URL on this endpoint."""
        return self.base_url + path

    def posts(self, path: str | None = None) -> list[ReceivedPost]:
        """What was received (optionally at one path), in order."""
        with self.lock:
            return [p for p in self.received if path is None or p.path == path]


@pytest.fixture
def merchant_endpoint() -> Iterator[MerchantEndpoint]:
    """A loopback server recording callbacks; answers ``1|OK`` unless ``answers`` says otherwise."""
    endpoint: MerchantEndpoint

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length)
            fields = dict(parse_qsl(body.decode("utf-8"), keep_blank_values=True))
            with endpoint.lock:
                endpoint.received.append(ReceivedPost(self.path, dict(self.headers.items()), body, fields))
                status, answer = endpoint.answers.pop(0) if endpoint.answers else (200, b"1|OK")
            self.send_response(status)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    endpoint = MerchantEndpoint(f"http://127.0.0.1:{server.server_address[1]}")
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield endpoint
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
