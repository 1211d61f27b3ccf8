"""The local HTTP server's socket behaviour: one write per response, keep-alive, HEAD, large bodies."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from ecpay_lambda.local.http import Request, Response
from ecpay_lambda.local.server import LocalServer

LARGE = b"x" * (200 * 1024)  # larger than the write buffer: sent after the head, not in it


class _Echo:
    """Answers ``1|OK``, or a large body on /large."""

    def handle(self, request: Request) -> Response | None:
        body = LARGE if request.raw_path == "/large" else b"1|OK"
        return Response(200, [("Content-Type", "text/plain")], body)


@pytest.fixture
def server() -> Iterator[LocalServer]:
    srv = LocalServer("127.0.0.1", 0, [_Echo()], quiet=True)
    srv.start_background()
    yield srv
    srv.stop()


def _request(method: str, path: str, body: bytes = b"") -> bytes:
    return (
        f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {len(body)}\r\n\r\n".encode() + body
    )


def _read_response(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(65536)
        assert chunk, f"connection closed after {len(data)} bytes"
        data += chunk
    return data


def test_a_response_arrives_in_one_segment_with_nagle_off(server: LocalServer) -> None:
    # Written as head then body (two small writes), the body waited for the client's delayed ACK:
    # the first recv then returned the head alone. Two requests on one keep-alive connection.
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        for _ in range(2):
            sock.sendall(_request("POST", "/return", b"a=1"))
            first = sock.recv(65536)
            assert first.startswith(b"HTTP/1.1 200 ")
            assert first.endswith(b"\r\n\r\n1|OK")


def test_head_gets_the_head_only_and_the_connection_stays_open(server: LocalServer) -> None:
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        sock.sendall(_request("HEAD", "/x"))
        head = sock.recv(65536)
        assert head.startswith(b"HTTP/1.1 200 ")
        assert b"Content-Length: 4\r\n" in head
        assert head.endswith(b"\r\n\r\n")
        sock.sendall(_request("POST", "/x", b"a=1"))
        assert _read_response(sock, 1).startswith(b"HTTP/1.1 200 ")


def test_a_body_larger_than_the_buffer_arrives_whole(server: LocalServer) -> None:
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        sock.sendall(_request("GET", "/large"))
        data = _read_response(sock, len(LARGE))
        while len(data.partition(b"\r\n\r\n")[2]) < len(LARGE):
            data += _read_response(sock, 1)
        head, _, body = data.partition(b"\r\n\r\n")
        assert f"Content-Length: {len(LARGE)}".encode() in head
        assert body == LARGE
