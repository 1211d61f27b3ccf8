"""The local API Gateway: route by template.yaml, build the v2 event, call the named handler in-process."""

from __future__ import annotations

import importlib
import logging
import threading
import uuid
from collections.abc import Callable
from typing import Any

from .events import INTERNAL_ERROR, NOT_FOUND, LambdaContext, build_event, gateway_error, to_http_response
from .http import Request, Response
from .issuer import InvalidToken, as_event_claims, bearer, verify
from .template_routes import CorsConfig, Route, RouteMatch, RouteTable

log = logging.getLogger(__name__)

Handler = Callable[[dict[str, Any], Any], Any]
HandlerResolver = Callable[[Route], Handler]
MAX_PAYLOAD_BYTES = 10 * 1024 * 1024  # HTTP API request payload limit
UNAUTHORIZED = b'{"message":"Unauthorized"}'


def import_handler(route: Route) -> Handler:
    """Import ``module.function`` as Lambda does (the module is imported once: a cold start)."""
    module = importlib.import_module(route.handler_module)
    handler = getattr(module, route.handler_function, None)
    if not callable(handler):
        raise ImportError(f"{route.handler} is not a callable in {route.handler_module}")
    return handler  # type: ignore[no-any-return]


class ApiGateway:
    """An App serving the template's HTTP API routes; unmatched requests get API Gateway's 404."""

    def __init__(
        self, routes: RouteTable, *, resolver: HandlerResolver = import_handler, jwt_key: bytes | None = None
    ) -> None:
        self.routes = routes
        self._resolver = resolver
        # AUTH_MODE=jwt: the local issuer's key; the template's secured routes then need its tokens,
        # checked here as the HTTP API's JWT authorizer checks a provider's (see local/issuer.py).
        self._jwt_key = jwt_key
        self._handlers: dict[str, Handler] = {}
        self._lock = threading.Lock()
        # Lambda gives each execution environment one event at a time, and handlers rely on it
        # (Powertools' resolver keeps the current event on a module-level instance). Here one
        # module is one environment, so invocations of the same handler module are serialized.
        self._environment_locks: dict[str, threading.Lock] = {}

    def preload(self) -> list[str]:
        """Import every handler now; returns one message per handler that failed (for start-up logs)."""
        problems: list[str] = []
        for route in self.routes.routes:
            try:
                self._handler_for(route)
            except Exception as exc:
                problems.append(f"{route.route_key} -> {route.handler}: {type(exc).__name__}: {exc}")
        return problems

    def _handler_for(self, route: Route) -> Handler:
        with self._lock:
            handler = self._handlers.get(route.handler)
            if handler is None:
                handler = self._resolver(route)
                self._handlers[route.handler] = handler
            return handler

    def _environment_lock(self, route: Route) -> threading.Lock:
        with self._lock:
            return self._environment_locks.setdefault(route.handler_module, threading.Lock())

    def handle(self, request: Request) -> Response | None:
        """Answer every request it gets (it is the last app): a route's handler, CORS, or 404."""
        cors = self.routes.cors
        origin = request.header("Origin")
        if (
            cors
            and origin
            and request.method == "OPTIONS"
            and request.header("Access-Control-Request-Method")
        ):
            return _preflight(cors, origin, request)
        if len(request.body) > MAX_PAYLOAD_BYTES:
            return gateway_error(413, b'{"message":"Request Entity Too Large"}')
        route_path, stage = request.raw_path, "$default"
        named = self.routes.stage
        if named and (request.raw_path == f"/{named}" or request.raw_path.startswith(f"/{named}/")):
            # As on AWS with a named stage: routed without the prefix, rawPath keeps it.
            route_path, stage = request.raw_path[len(named) + 1 :] or "/", named
        match = self.routes.match(request.method, route_path)
        response = gateway_error(404, NOT_FOUND) if match is None else self._invoke(request, match, stage)
        if cors and origin:
            _add_cors_headers(cors, origin, response)
        return response

    def _invoke(self, request: Request, match: RouteMatch, stage: str) -> Response:
        route = match.route
        request_id = str(uuid.uuid4())
        claims: dict[str, Any] | None = None
        if self._jwt_key is not None and route.route_key in self.routes.secured:
            try:
                claims = verify(self._jwt_key, bearer(request.header("Authorization")) or "")
            except InvalidToken as exc:
                # API Gateway answers itself; the function is never invoked.
                log.info("%s refused by the JWT authorizer: %s", route.route_key, exc)
                response = gateway_error(401, UNAUTHORIZED)
                response.headers.append(("WWW-Authenticate", "Bearer"))
                return response
        event = build_event(request, match, request_id=request_id, stage=stage)
        if claims is not None:
            scope = claims.get("scope")
            event["requestContext"]["authorizer"] = {
                "jwt": {
                    "claims": as_event_claims(claims),
                    "scopes": scope.split() if isinstance(scope, str) and scope.split() else None,
                }
            }
        context = LambdaContext(route.function_name, route.memory_size, route.timeout)
        try:
            handler = self._handler_for(route)
            with self._environment_lock(route):
                result = handler(event, context)
        except Exception:
            # Lambda logs the traceback; the client only sees API Gateway's generic 500.
            log.exception("%s (%s) raised", route.handler, route.route_key)
            return gateway_error(500, INTERNAL_ERROR)
        return to_http_response(result, request_id)


def _origin_allowed(cors: CorsConfig, origin: str) -> bool:
    return "*" in cors.allow_origins or origin in cors.allow_origins


def _preflight(cors: CorsConfig, origin: str, request: Request) -> Response:
    headers: list[tuple[str, str]] = []
    if _origin_allowed(cors, origin):
        headers.append(("Access-Control-Allow-Origin", "*" if "*" in cors.allow_origins else origin))
        if cors.allow_methods:
            headers.append(("Access-Control-Allow-Methods", ",".join(cors.allow_methods)))
        wanted = request.header("Access-Control-Request-Headers")
        if cors.allow_headers and wanted:
            allowed = "*" in cors.allow_headers
            names = [h.strip() for h in wanted.split(",") if h.strip()]
            if allowed or all(h.lower() in cors.allow_headers for h in names):
                headers.append(("Access-Control-Allow-Headers", ",".join(names)))
        if cors.allow_credentials:
            headers.append(("Access-Control-Allow-Credentials", "true"))
        if cors.max_age is not None:
            headers.append(("Access-Control-Max-Age", str(cors.max_age)))
    return Response(204, headers, b"")


def _add_cors_headers(cors: CorsConfig, origin: str, response: Response) -> None:
    # API Gateway replaces the integration's CORS headers with its own configuration.
    response.headers = [(k, v) for k, v in response.headers if not k.lower().startswith("access-control-")]
    if not _origin_allowed(cors, origin):
        return
    response.headers.append(("Access-Control-Allow-Origin", "*" if "*" in cors.allow_origins else origin))
    if cors.expose_headers:
        response.headers.append(("Access-Control-Expose-Headers", ",".join(cors.expose_headers)))
    if cors.allow_credentials:
        response.headers.append(("Access-Control-Allow-Credentials", "true"))
