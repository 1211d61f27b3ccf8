"""API Gateway HTTP API (payload 2.0) event helpers shared by every entry point.

Standard library only: the notification and schedule functions import this module.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from typing import Any

# Larger than any JSON request or ECPay notification we accept, far below Lambda's 6 MB: a
# notification body is stored verbatim, so an unbounded one could not even be recorded.
MAX_BODY_BYTES = 64 * 1024

Event = Mapping[str, Any]
LambdaResponse = dict[str, Any]


class BadEvent(Exception):
    """The request cannot be read at all (bad base64, too large); ``status`` and ``code`` say why."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


def header(event: Event, name: str) -> str | None:
    """A request header by case-insensitive name (HTTP API lower-cases them; tests may not)."""
    headers = event.get("headers") or {}
    wanted = name.lower()
    for key, value in headers.items():
        if isinstance(key, str) and key.lower() == wanted:
            return str(value)
    return None


def path_parameter(event: Event, name: str) -> str | None:
    """A path parameter, or None."""
    value = (event.get("pathParameters") or {}).get(name)
    return value if isinstance(value, str) and value else None


def request_context(event: Event) -> Mapping[str, Any]:
    """``requestContext`` (empty when absent)."""
    context = event.get("requestContext")
    return context if isinstance(context, Mapping) else {}


def http_method(event: Event) -> str:
    """The request's method, upper-case."""
    http = request_context(event).get("http") or {}
    return str(http.get("method") or "").upper()


def request_id(event: Event) -> str | None:
    """API Gateway's request id: the correlation id of every log line about this request."""
    value = request_context(event).get("requestId")
    return str(value) if value else None


def route_path(event: Event) -> str:
    """The route's path template from ``routeKey`` ("POST /users/{userId}") or the stage-less raw path."""
    route_key = event.get("routeKey")
    if isinstance(route_key, str) and " " in route_key:
        return route_key.split(" ", 1)[1]
    raw = str(event.get("rawPath") or "/")
    return raw[len(stage_prefix(event)) :]


def body_bytes(event: Event, *, limit: int = MAX_BODY_BYTES) -> bytes:
    """The request body as bytes, base64-decoded when ``isBase64Encoded`` (raises ``BadEvent``)."""
    body = event.get("body")
    if body is None:
        return b""
    if not isinstance(body, str):
        raise BadEvent(400, "bad_request", "the request body is not text")
    # Check the size before decoding so a huge body costs no memory; base64 is 4/3 of the bytes.
    if len(body) > (limit * 4 // 3 + 4 if event.get("isBase64Encoded") else limit * 4):
        raise BadEvent(413, "payload_too_large", f"the request body exceeds {limit} bytes")
    if event.get("isBase64Encoded"):
        try:
            data = base64.b64decode(body.encode("ascii"), validate=True)
        except (binascii.Error, UnicodeEncodeError):
            raise BadEvent(400, "bad_request", "the request body is not valid base64") from None
    else:
        data = body.encode("utf-8", errors="surrogatepass")
    if len(data) > limit:
        raise BadEvent(413, "payload_too_large", f"the request body exceeds {limit} bytes")
    return data


def stage_prefix(event: Event) -> str:
    """``/<stage>`` when the request path carries a named stage (execute-api URL), else ``""``.

    A custom domain maps the stage away, so the stage is kept only when the raw path starts with it.
    """
    stage = request_context(event).get("stage")
    raw = str(event.get("rawPath") or "")
    if isinstance(stage, str) and stage not in ("", "$default") and raw.startswith(f"/{stage}/"):
        return f"/{stage}"
    return ""


def public_base_url(event: Event, configured: str | None) -> str:
    """Base URL of this API as the outside world reaches it (for ECPay callback and return URLs).

    ``PUBLIC_BASE_URL`` when set; otherwise ``https://`` + the request's domain name + its stage,
    which is right for the default execute-api endpoint (custom domains should set the variable).
    """
    if configured:
        return configured.rstrip("/")
    context = request_context(event)
    domain = str(context.get("domainName") or header(event, "host") or "localhost")
    proto = (header(event, "x-forwarded-proto") or "https").split(",")[0].strip().lower()
    scheme = "http" if proto == "http" else "https"
    return f"{scheme}://{domain}{stage_prefix(event)}"


def text_response(
    status: int, body: str, content_type: str = "text/plain; charset=utf-8", **headers: str
) -> LambdaResponse:
    """A payload-2.0 response with a text body."""
    return {
        "statusCode": status,
        "headers": {"Content-Type": content_type, **headers},
        "body": body,
        "isBase64Encoded": False,
    }


def error_body(code: str, message: str) -> str:
    """The JSON error document every route answers: ``{"error": {"code", "message"}}``."""
    return json.dumps({"error": {"code": code, "message": message}}, ensure_ascii=False)


def json_error(status: int, code: str, message: str, **headers: str) -> LambdaResponse:
    """A JSON error response."""
    return text_response(status, error_body(code, message), "application/json", **headers)
