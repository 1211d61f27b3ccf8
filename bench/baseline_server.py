"""The floor for the local server: a bare standard-library HTTP server that answers ``1|OK`` to every POST.

Same server classes and socket settings as local mode (``ThreadingHTTPServer``, HTTP/1.1
keep-alive, the same listen backlog, buffered writes with TCP_NODELAY), no routing, no event, no
handler, no store. Run as a script: prints ``Listening on URL`` and serves until SIGTERM.

``--durable-commit FILE``: the same server, plus what any durable store must do per notification at
the least: one row inserted and committed in SQLite with the local store's settings (WAL,
``synchronous=FULL``), one request at a time as local mode's gateway runs events. The floor for a
server that keeps what it acknowledges.
"""

from __future__ import annotations

import argparse
import signal
import sqlite3
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # As the local server's handler: the response in one write, TCP_NODELAY (without them each
    # response waits about 40 ms for the client's delayed ACK, and this floor measures that sleep).
    wbufsize = 64 * 1024
    disable_nagle_algorithm = True

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length)
        if _durable is not None:
            _durable.commit(body)
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", "4")
        self.end_headers()
        self.wfile.write(b"1|OK")

    def log_message(self, format: str, *args: object) -> None:
        """No access log (the local server runs with --quiet in the benchmark too)."""


class _DurableLog:
    """One SQLite row per request, committed before the answer (WAL, synchronous=FULL), one at a time."""

    def __init__(self, path: str) -> None:
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute("CREATE TABLE IF NOT EXISTS received (id INTEGER PRIMARY KEY, body BLOB NOT NULL)")
        self._lock = threading.Lock()

    def commit(self, body: bytes) -> None:
        """Insert ``body`` and commit it durably."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            self._db.execute("INSERT INTO received (body) VALUES (?)", (body,))
            self._db.execute("COMMIT")


_durable: _DurableLog | None = None


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128


def main() -> None:
    """Serve on a free loopback port until SIGTERM."""
    global _durable  # noqa: PLW0603 - set once, before the first request
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--durable-commit", metavar="FILE", help="commit each request to this SQLite file")
    args = parser.parse_args()
    if args.durable_commit:
        _durable = _DurableLog(args.durable_commit)
    server = _Server(("127.0.0.1", 0), _Handler)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    print(f"Listening on http://127.0.0.1:{server.server_address[1]}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
