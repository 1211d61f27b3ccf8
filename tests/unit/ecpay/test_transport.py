"""UrllibTransport against a loopback HTTP server (no other network)."""

from __future__ import annotations

import socket
import threading
import urllib.parse
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from ecpay_lambda.ecpay import MerchantCredentials, RateLimitedError, TransportError
from ecpay_lambda.ecpay.client import EcpayClient
from ecpay_lambda.ecpay.environments import Endpoints
from ecpay_lambda.ecpay.transport import UrllibTransport, encode_form

RECEIVED: list[dict[str, object]] = []


class _Handler(BaseHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        return

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", "0"))
        body = self.rfile.read(length)
        RECEIVED.append({"path": self.path, "body": body, "content_type": self.headers.get("Content-Type")})
        if self.path.startswith("/forbidden"):
            self._answer(403, b"Forbidden")
        elif self.path.startswith("/redirect"):
            self.send_response(302)
            self.send_header("Location", "/echo")
            self.send_header("Content-Length", "0")
            self.end_headers()
        elif self.path.startswith("/huge"):
            self._answer(200, b"x" * 5000)
        else:
            self._answer(200, b"echo:" + body)

    def _answer(self, status: int, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture(autouse=True)
def _no_proxies(monkeypatch: pytest.MonkeyPatch) -> None:
    # urllib honours proxy variables; loopback traffic must go straight to the test server.
    for name in ("http_proxy", "https_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_posts_utf8_form_and_returns_the_answer(server: str) -> None:
    RECEIVED.clear()
    fields = {"ItemName": "點數 A+B & C", "Blank": ""}
    response = UrllibTransport().post_form(f"{server}/echo", fields, timeout=5)
    assert response.status == 200
    assert RECEIVED[0]["content_type"] == "application/x-www-form-urlencoded; charset=utf-8"
    sent = RECEIVED[0]["body"]
    assert isinstance(sent, bytes)
    assert dict(urllib.parse.parse_qsl(sent.decode("ascii"), keep_blank_values=True)) == fields
    assert response.body == b"echo:" + encode_form(fields)
    assert response.headers["Content-Type"].startswith("text/html")


def test_posts_json_bytes_unchanged(server: str) -> None:
    RECEIVED.clear()
    body = '{"MerchantID":"2000132","Data":"點"}'.encode()
    response = UrllibTransport().post_json(f"{server}/echo", body, timeout=5)
    assert response.status == 200
    assert RECEIVED[0]["content_type"] == "application/json; charset=utf-8"
    assert RECEIVED[0]["body"] == body
    assert response.body == b"echo:" + body
    assert UrllibTransport().post_json(f"{server}/forbidden", b"{}", timeout=5).status == 403


def test_http_errors_are_returned_as_responses(server: str) -> None:
    response = UrllibTransport().post_form(f"{server}/forbidden", {"A": "1"}, timeout=5)
    assert (response.status, response.body) == (403, b"Forbidden")


def test_redirects_are_not_followed(server: str) -> None:
    RECEIVED.clear()
    response = UrllibTransport().post_form(f"{server}/redirect", {"A": "1"}, timeout=5)
    assert response.status == 302
    assert [r["path"] for r in RECEIVED] == ["/redirect"]


def test_oversized_answers_are_refused(server: str) -> None:
    with pytest.raises(TransportError, match="larger"):
        UrllibTransport(max_response_bytes=1000).post_form(f"{server}/huge", {}, timeout=5)


def test_client_maps_403_from_a_real_socket(server: str) -> None:
    client = EcpayClient(
        MerchantCredentials.stage_test_merchant(),
        Endpoints(f"{server}/forbidden"),
        transport=UrllibTransport(),
        timeout=5,
    )
    with pytest.raises(RateLimitedError):
        client.query_trade_info("tx42abc12345")


def test_connection_refused_is_a_transport_error() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    # Nothing listens on the port now.
    with pytest.raises(TransportError, match="failed") as caught:
        UrllibTransport().post_form(f"http://127.0.0.1:{port}/x", {"CheckMacValue": "SECRETISH"}, timeout=5)
    assert "SECRETISH" not in str(caught.value)


def test_a_silent_server_ends_in_a_transport_error() -> None:
    # A listening socket that never answers: the explicit timeout must end the call.
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(1)
        port = silent.getsockname()[1]
        with pytest.raises(TransportError):
            UrllibTransport().post_form(f"http://127.0.0.1:{port}/x", {"A": "1"}, timeout=0.2)


@pytest.mark.parametrize("url", ["file:///etc/passwd", "ftp://127.0.0.1/x", "127.0.0.1/x"])
def test_only_http_urls(url: str) -> None:
    with pytest.raises(TransportError, match="scheme"):
        UrllibTransport().post_form(url, {}, timeout=1)


def test_timeout_must_be_positive() -> None:
    with pytest.raises(TransportError, match="timeout"):
        UrllibTransport().post_form("http://127.0.0.1:1/x", {}, timeout=0)
