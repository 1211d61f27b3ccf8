"""Serves the dashboard folder: ``index.html`` at ``/`` and every file of the folder under ``/static/``."""

from __future__ import annotations

import mimetypes
from pathlib import Path

from .http import Request, Response, html_response

STATIC_PREFIX = "/static/"

_FALLBACK = """<!doctype html><html lang="en"><meta charset="utf-8"><title>ecpay-lambda</title>
<body><h1>ecpay-lambda local stack</h1><p>The dashboard is not installed in this copy.</p>
<ul><li><a href="/docs">API docs</a></li><li><a href="/sandbox/">ECPay sandbox</a></li></ul></body></html>
"""


def default_dashboard_dir() -> Path:
    """The dashboard folder shipped inside the package."""
    return Path(__file__).resolve().parent / "dashboard"


class StaticFiles:
    """An App for ``GET``/``HEAD`` of ``/`` and ``/static/<path>`` from one folder (no directory listing)."""

    def __init__(self, root: Path | None = None) -> None:
        self.root = (root or default_dashboard_dir()).resolve()

    def handle(self, request: Request) -> Response | None:
        """Serve the file or return None when the path is not ours."""
        path = request.path
        if path != "/" and not path.startswith(STATIC_PREFIX):
            return None
        if request.method not in ("GET", "HEAD"):
            return Response(
                405, [("Allow", "GET, HEAD"), ("Content-Type", "text/plain")], b"Method Not Allowed"
            )
        relative = "index.html" if path == "/" else path[len(STATIC_PREFIX) :]
        target = self._resolve(relative)
        if target is None:
            if path == "/":
                return html_response(200, _FALLBACK)
            return Response(404, [("Content-Type", "text/plain; charset=utf-8")], b"Not Found")
        content_type = mimetypes.guess_type(target.name)[0] or "application/octet-stream"
        if content_type.startswith("text/") or content_type in ("application/javascript", "application/json"):
            content_type += "; charset=utf-8"
        body = target.read_bytes()
        # no-cache: edits to the dashboard show up on reload during development.
        headers = [("Content-Type", content_type), ("Cache-Control", "no-cache")]
        return Response(200, headers, body)

    def _resolve(self, relative: str) -> Path | None:
        if not relative or "\x00" in relative:
            return None
        candidate = (self.root / relative).resolve()
        # Refuse anything outside the folder (../ tricks, symlinks pointing out) and dot-files.
        if not candidate.is_relative_to(self.root) or candidate == self.root:
            return None
        if any(part.startswith(".") for part in candidate.relative_to(self.root).parts):
            return None
        return candidate if candidate.is_file() else None
