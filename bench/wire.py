"""Round trips counted on the wire: a loopback TCP proxy in front of a server (MariaDB, PostgreSQL,
moto's DynamoDB) that counts request/response turns.

A turn starts each time the client sends after the server last spoke (or first): a statement, a
``COMMIT``, a ping, a pool reset, an HTTP request: whatever the process really waits for, including
what a library sends on its own and never reports to SQLAlchemy's or botocore's events.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator
from urllib.parse import urlsplit, urlunsplit

_CHUNK = 65536


class WireCounter:
    """Proxies 127.0.0.1:``port`` to ``target`` and counts the client's turns (all connections)."""

    def __init__(self, host: str, port: int) -> None:
        self._target = (host, port)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self._lock = threading.Lock()
        self.turns = 0
        self._stop = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def reset(self) -> int:
        """The turns counted since the last reset; start counting again from zero."""
        with self._lock:
            turns, self.turns = self.turns, 0
        return turns

    def close(self) -> None:
        """Stop accepting (open connections end with their peers)."""
        self._stop.set()
        self._listener.close()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            server = socket.create_connection(self._target)
            for sock in (client, server):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            # Who spoke last on this connection: a client send after the server spoke is a new turn.
            state = {"client_last": False}
            threading.Thread(target=self._pump, args=(client, server, state, True), daemon=True).start()
            threading.Thread(target=self._pump, args=(server, client, state, False), daemon=True).start()

    def _pump(
        self, src: socket.socket, dst: socket.socket, state: dict[str, bool], from_client: bool
    ) -> None:
        try:
            while data := src.recv(_CHUNK):
                with self._lock:
                    if from_client and not state["client_last"]:
                        self.turns += 1
                    state["client_last"] = from_client
                dst.sendall(data)
        except OSError:
            pass
        finally:
            with contextlib.suppress(OSError):
                dst.shutdown(socket.SHUT_WR)


@contextlib.contextmanager
def proxied(url: str) -> Iterator[tuple[str, WireCounter]]:
    """``url`` (a SQLAlchemy URL or an http:// endpoint) rewritten through a :class:`WireCounter`."""
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port
    if port is None:
        raise ValueError(f"no port in {url!r}")
    counter = WireCounter(host, port)
    auth = parts.netloc.rsplit("@", 1)[0] + "@" if "@" in parts.netloc else ""
    try:
        yield urlunsplit(parts._replace(netloc=f"{auth}127.0.0.1:{counter.port}")), counter
    finally:
        counter.close()
