"""Framework-free HTTP request/response records shared by the local server and its apps."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Protocol
from urllib.parse import parse_qsl, unquote


@dataclass(frozen=True)
class Request:
    """One HTTP request as received: raw path and query, headers in arrival order, body bytes."""

    method: str
    raw_path: str  # percent-encoding kept, no query
    raw_query: str  # without the "?"
    headers: tuple[tuple[str, str], ...]
    body: bytes = b""
    client_ip: str = "127.0.0.1"
    server_port: int = 0
    protocol: str = "HTTP/1.1"

    @property
    def path(self) -> str:
        """The decoded path."""
        return unquote(self.raw_path)

    def header(self, name: str, default: str = "") -> str:
        """The first value of a header, matched case-insensitively."""
        wanted = name.lower()
        for key, value in self.headers:
            if key.lower() == wanted:
                return value
        return default

    def header_values(self, name: str) -> list[str]:
        """Every value of a header, in arrival order."""
        wanted = name.lower()
        return [value for key, value in self.headers if key.lower() == wanted]

    def form(self) -> dict[str, str]:
        """The body as an x-www-form-urlencoded form, blank values kept (last duplicate wins)."""
        text = self.body.decode("utf-8", errors="replace")
        return dict(parse_qsl(text, keep_blank_values=True, encoding="utf-8"))

    def form_pairs(self) -> list[tuple[str, str]]:
        """The body's form fields in order, duplicates kept."""
        text = self.body.decode("utf-8", errors="replace")
        return parse_qsl(text, keep_blank_values=True, encoding="utf-8")

    def query(self) -> dict[str, str]:
        """The query string's fields (last duplicate wins)."""
        return dict(parse_qsl(self.raw_query, keep_blank_values=True, encoding="utf-8"))


@dataclass
class Response:
    """An HTTP response; ``headers`` may repeat a name (e.g. several Set-Cookie)."""

    status: int
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""

    def header(self, name: str, default: str = "") -> str:
        """The first value of a header, matched case-insensitively."""
        wanted = name.lower()
        for key, value in self.headers:
            if key.lower() == wanted:
                return value
        return default


class App(Protocol):
    """Something that answers the requests it owns and returns None for the others."""

    def handle(self, request: Request) -> Response | None:
        """Answer ``request`` or return None to let the next app try."""
        ...


NO_STORE: tuple[str, str] = ("Cache-Control", "no-store")


def json_response(status: int, payload: object, extra: Iterable[tuple[str, str]] = ()) -> Response:
    """A JSON response (UTF-8, not ASCII-escaped)."""
    body = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    return Response(status, [("Content-Type", "application/json; charset=utf-8"), NO_STORE, *extra], body)


def html_response(status: int, html: str, extra: Iterable[tuple[str, str]] = ()) -> Response:
    """An HTML page."""
    return Response(status, [("Content-Type", "text/html; charset=utf-8"), NO_STORE, *extra], html.encode())


def text_response(status: int, text: str, content_type: str = "text/plain; charset=utf-8") -> Response:
    """A plain-text response."""
    return Response(status, [("Content-Type", content_type), NO_STORE], text.encode("utf-8"))


def redirect(location: str, status: int = 303) -> Response:
    """A redirect (303 by default: the browser follows with GET)."""
    return Response(status, [("Location", location), NO_STORE], b"")
