"""The local HTTP server: one loopback port, requests handed to a chain of apps (first answer wins)."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from ipaddress import ip_address
from urllib.parse import urlsplit

from .http import App, Request, Response

log = logging.getLogger("ecpay_lambda.local.access")

MAX_BODY_BYTES = 12 * 1024 * 1024  # a little above API Gateway's 10 MB so the gateway can answer 413
_MAX_CHUNKS = 100_000


def is_loopback(host: str) -> bool:
    """True for 127.0.0.0/8, ::1 and ``localhost``."""
    if host == "localhost":
        return True
    try:
        return ip_address(host).is_loopback
    except ValueError:
        return False


class _Handler(BaseHTTPRequestHandler):
    server: LocalServer
    protocol_version = "HTTP/1.1"
    server_version = "ecpay-lambda-local"
    sys_version = ""
    # A response's head and body leave in one write (flushed after each request; a body larger than
    # the buffer goes out right after the head), with TCP_NODELAY. Written unbuffered as two small
    # writes, the body waited for the client's delayed ACK of the head (Nagle): about 40 ms per
    # response on a keep-alive connection.
    wbufsize = 64 * 1024
    disable_nagle_algorithm = True

    def _serve(self) -> None:
        started = time.perf_counter()
        try:
            body = self._read_body()
        except ValueError as exc:
            self._write(Response(400, [("Content-Type", "text/plain")], str(exc).encode()), close=True)
            return
        if body is None:
            self._write(
                Response(413, [("Content-Type", "text/plain")], b"Request Entity Too Large"), close=True
            )
            return
        parts = urlsplit(self.path)
        raw_path = parts.path or "/"
        if not raw_path.startswith("/"):  # absolute-form request target
            raw_path = "/" + raw_path
        request = Request(
            method=self.command.upper(),
            raw_path=raw_path,
            raw_query=parts.query,
            headers=tuple((k, v) for k, v in self.headers.items()),
            body=body,
            client_ip=self.client_address[0],
            server_port=self.server.server_address[1],
            protocol=self.request_version,
        )
        response = self.server.dispatch(request)
        self._write(response, head=request.method == "HEAD")
        if not self.server.quiet:
            elapsed = (time.perf_counter() - started) * 1000
            # Method, path and status only: bodies and query strings may carry personal data.
            log.info("%s %s -> %d (%.0f ms)", request.method, raw_path, response.status, elapsed)

    def _read_body(self) -> bytes | None:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            return self._read_chunked()
        length_text = self.headers.get("Content-Length")
        if not length_text:
            return b""
        try:
            length = int(length_text)
        except ValueError:
            raise ValueError("bad Content-Length") from None
        if length < 0:
            raise ValueError("bad Content-Length")
        if length > MAX_BODY_BYTES:
            return None
        return self.rfile.read(length)

    def _read_chunked(self) -> bytes | None:
        chunks: list[bytes] = []
        total = 0
        for _ in range(_MAX_CHUNKS):
            line = self.rfile.readline(1024).strip()
            try:
                size = int(line.split(b";", 1)[0], 16)
            except ValueError:
                raise ValueError("bad chunk size") from None
            if size == 0:
                while self.rfile.readline(1024).strip():  # trailers
                    pass
                return b"".join(chunks)
            total += size
            if total > MAX_BODY_BYTES:
                return None
            chunks.append(self.rfile.read(size))
            self.rfile.readline(8)
        raise ValueError("too many chunks")

    def _write(self, response: Response, *, head: bool = False, close: bool = False) -> None:
        self.send_response(response.status)
        for name, value in response.headers:
            if name.lower() in ("content-length", "transfer-encoding", "connection"):
                continue
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(response.body)))
        if close:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        if not head and response.body:
            self.wfile.write(response.body)

    def log_message(self, format: str, *args: object) -> None:
        """Silence the stdlib's per-request stderr line (``_serve`` logs instead)."""

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = do_HEAD = _serve  # noqa: N815
    # The stdlib answers 501 to a method without a do_ method; API Gateway routes TRACE (and the
    # draft QUERY) like any other method, and with no route for them answers 404.
    do_TRACE = do_QUERY = _serve  # noqa: N815


class LocalServer(ThreadingHTTPServer):
    """A threading HTTP server dispatching to ``apps`` in order; the last app should answer everything."""

    daemon_threads = True
    allow_reuse_address = True
    # socketserver's default backlog of 5 resets connections under a burst of parallel clients
    # (duplicate-notification storms, load tests); the kernel caps this at somaxconn anyway.
    request_queue_size = 128

    def __init__(self, host: str, port: int, apps: Sequence[App] = (), *, quiet: bool = False) -> None:
        super().__init__((host, port), _Handler)
        self.apps: list[App] = list(apps)
        self.quiet = quiet
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        """The bound port (useful after binding port 0)."""
        return int(self.server_address[1])

    @property
    def base_url(self) -> str:
        """``http://host:port`` of this server."""
        host = str(self.server_address[0])
        host = f"[{host}]" if ":" in host else host
        return f"http://{host}:{self.port}"

    def dispatch(self, request: Request) -> Response:
        """The first app's answer; a 500 if an app raises, a 404 if none answers."""
        for app in self.apps:
            try:
                response = app.handle(request)
            except Exception:
                log.exception("unhandled error in %s", type(app).__name__)
                return Response(500, [("Content-Type", "text/plain")], b"Internal Server Error")
            if response is not None:
                return response
        return Response(404, [("Content-Type", "application/json")], b'{"message":"Not Found"}')

    def start_background(self) -> threading.Thread:
        """Serve in a daemon thread (tests, fixtures); stop with :meth:`stop`."""
        self._thread = threading.Thread(
            target=self.serve_forever, kwargs={"poll_interval": 0.05}, name="local-server", daemon=True
        )
        self._thread.start()
        return self._thread

    def stop(self, timeout: float = 5.0) -> None:
        """Stop serving and close the socket."""
        if self._thread is not None:
            self.shutdown()
            self._thread.join(timeout)
            self._thread = None
        self.server_close()
