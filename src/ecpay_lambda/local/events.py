"""HTTP request -> API Gateway HTTP API (payload 2.0) event, and a handler's result -> HTTP response.

Mirrors what API Gateway does, so local mode cannot drift from AWS: header names lower-cased and
repeated headers joined with commas, the Cookie header moved to ``cookies``, repeated query
parameters joined with commas, bodies base64-encoded unless their content type is text (which makes
form posts base64, as on AWS), and a missing or malformed handler result turned into a 500.
"""

from __future__ import annotations

import base64
import json
import logging
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl

from .http import Request, Response
from .template_routes import RouteMatch

log = logging.getLogger(__name__)

LOCAL_ACCOUNT_ID = "000000000000"
LOCAL_API_ID = "local"
LOCAL_REGION = "ap-northeast-1"
# Verified against AWS for HTTP APIs: only these are passed as text, everything else (a missing
# Content-Type and application/x-www-form-urlencoded included) arrives base64-encoded.
_TEXT_TYPES = frozenset({"application/json", "application/xml", "application/javascript"})


def _is_text(content_type: str) -> bool:
    media = content_type.split(";", 1)[0].strip().lower()
    return media.startswith("text/") or media in _TEXT_TYPES


def _apigw_time(moment: datetime) -> str:
    return moment.strftime("%d/%b/%Y:%H:%M:%S +0000")


def build_event(
    request: Request,
    match: RouteMatch,
    *,
    request_id: str | None = None,
    now: datetime | None = None,
    stage: str = "$default",
) -> dict[str, Any]:
    """The API Gateway v2 event that AWS would send for ``request`` on ``match``'s route."""
    moment = now or datetime.now(UTC)
    request_id = request_id or str(uuid.uuid4())
    headers: dict[str, str] = {}
    cookies: list[str] = []
    for name, value in request.headers:
        key = name.lower()
        if key == "cookie":
            cookies.extend(part.strip() for part in value.split(";") if part.strip())
            continue
        headers[key] = f"{headers[key]},{value}" if key in headers else value
    host = headers.get("host", f"127.0.0.1:{request.server_port}")
    headers.setdefault("x-forwarded-for", request.client_ip)
    headers.setdefault("x-forwarded-proto", "http")
    headers.setdefault("x-forwarded-port", str(request.server_port))
    headers.setdefault("x-amzn-trace-id", f"Root=1-{int(moment.timestamp()):08x}-{uuid.uuid4().hex[:24]}")

    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": match.route.route_key,
        # HTTP API hands the function the path percent-decoded (UTF-8), in rawPath as in http.path.
        "rawPath": request.path,
        "rawQueryString": request.raw_query,
    }
    if cookies:
        event["cookies"] = cookies
    event["headers"] = headers
    if request.raw_query:
        query: dict[str, str] = {}
        for key, value in parse_qsl(request.raw_query, keep_blank_values=True, encoding="utf-8"):
            query[key] = f"{query[key]},{value}" if key in query else value
        event["queryStringParameters"] = query
    event["requestContext"] = {
        "accountId": LOCAL_ACCOUNT_ID,
        "apiId": LOCAL_API_ID,
        "domainName": host,
        "domainPrefix": host.split(".", 1)[0].split(":", 1)[0],
        "http": {
            "method": request.method.upper(),
            "path": request.path,
            "protocol": request.protocol,
            "sourceIp": request.client_ip,
            "userAgent": headers.get("user-agent", ""),
        },
        "requestId": request_id,
        "routeKey": match.route.route_key,
        "stage": stage,
        "time": _apigw_time(moment),
        "timeEpoch": int(moment.timestamp() * 1000),
    }
    if request.body:
        if _is_text(headers.get("content-type", "")):
            event["body"] = request.body.decode("utf-8", errors="replace")
            event["isBase64Encoded"] = False
        else:
            event["body"] = base64.b64encode(request.body).decode("ascii")
            event["isBase64Encoded"] = True
    else:
        event["isBase64Encoded"] = False
    if match.path_parameters:
        event["pathParameters"] = dict(match.path_parameters)
    return event


@dataclass
class LambdaContext:
    """The attributes of the Lambda context object that handlers (and Powertools) read."""

    function_name: str
    memory_limit_in_mb: int
    timeout_seconds: int
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    function_version: str = "$LATEST"
    log_group_name: str = ""
    log_stream_name: str = "local"
    _deadline: float = field(default=0.0, repr=False)

    def __post_init__(self) -> None:
        self.invoked_function_arn = (
            f"arn:aws:lambda:{LOCAL_REGION}:{LOCAL_ACCOUNT_ID}:function:{self.function_name}"
        )
        self.log_group_name = self.log_group_name or f"/aws/lambda/{self.function_name}"
        self._deadline = time.monotonic() + self.timeout_seconds

    def get_remaining_time_in_millis(self) -> int:
        """Milliseconds left before the function's configured timeout."""
        return max(0, int((self._deadline - time.monotonic()) * 1000))


INTERNAL_ERROR = b'{"message":"Internal Server Error"}'
NOT_FOUND = b'{"message":"Not Found"}'


def gateway_error(status: int, body: bytes) -> Response:
    """A response API Gateway itself produces (JSON ``{"message": ...}``)."""
    return Response(status, [("Content-Type", "application/json")], body)


def to_http_response(result: object, request_id: str) -> Response:
    """Interpret a handler's return value as API Gateway does for payload format 2.0."""
    base = [("apigw-requestid", request_id)]
    if not isinstance(result, Mapping) or "statusCode" not in result:
        # No statusCode: API Gateway answers 200 with the value serialised as JSON.
        try:
            body = json.dumps(result).encode("utf-8")
        except (TypeError, ValueError):
            log.error("handler returned a value that is not JSON-serialisable")
            return gateway_error(500, INTERNAL_ERROR)
        return Response(200, [("Content-Type", "application/json"), *base], body)
    try:
        status = int(result["statusCode"])
        if not 100 <= status <= 599:
            raise ValueError(status)
    except (TypeError, ValueError):
        log.error("handler returned an invalid statusCode")
        return gateway_error(500, INTERNAL_ERROR)
    headers: list[tuple[str, str]] = []
    raw_headers = result.get("headers") or {}
    if not isinstance(raw_headers, Mapping):
        log.error("handler returned headers that are not a mapping")
        return gateway_error(500, INTERNAL_ERROR)
    for name, value in raw_headers.items():
        headers.append((str(name), _header_value(value)))
    if result.get("multiValueHeaders"):
        log.warning("multiValueHeaders is ignored by payload format 2.0 (as on AWS); use cookies/headers")
    cookies = result.get("cookies") or []
    if not isinstance(cookies, list):
        log.error("handler returned cookies that are not a list")
        return gateway_error(500, INTERNAL_ERROR)
    headers.extend(("Set-Cookie", str(cookie)) for cookie in cookies)
    raw_body = result.get("body")
    if raw_body is None:
        body = b""
    elif isinstance(raw_body, str):
        if result.get("isBase64Encoded"):
            try:
                body = base64.b64decode(raw_body, validate=True)
            except ValueError:
                log.error("handler returned isBase64Encoded with a body that is not base64")
                return gateway_error(500, INTERNAL_ERROR)
        else:
            body = raw_body.encode("utf-8")
    else:
        log.error("handler returned a body that is not a string")
        return gateway_error(500, INTERNAL_ERROR)
    return Response(status, [*headers, *base], body)


def _header_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
