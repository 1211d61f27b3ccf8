"""The floor for the local server: a bare standard-library HTTP server that answers ``1|OK`` to every POST.

Same server classes and socket settings as local mode (``ThreadingHTTPServer``, HTTP/1.1
keep-alive, the same listen backlog, buffered writes with TCP_NODELAY), no routing, no event, no
handler, no store. Run as a script: prints ``Listening on URL`` and serves until SIGTERM.
"""

from __future__ import annotations

import signal
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # As the local server's handler: the response in one write, TCP_NODELAY (without them each
    # response waits about 40 ms for the client's delayed ACK, and this floor measures that sleep).
    wbufsize = 64 * 1024
    disable_nagle_algorithm = True

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(length)
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", "4")
        self.end_headers()
        self.wfile.write(b"1|OK")

    def log_message(self, format: str, *args: object) -> None:
        """No access log (the local server runs with --quiet in the benchmark too)."""


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128


def main() -> None:
    """Serve on a free loopback port until SIGTERM."""
    server = _Server(("127.0.0.1", 0), _Handler)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    print(f"Listening on http://127.0.0.1:{server.server_address[1]}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
