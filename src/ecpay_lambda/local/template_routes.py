"""Read a SAM template's HTTP API routes and match requests to them the way API Gateway does.

For each ``AWS::Serverless::Function``: its ``Handler`` (module path relative to ``CodeUri``, e.g.
``ecpay_lambda.api.handlers.users``; ``Globals.Function`` supplies defaults) and each event of
``Type: HttpApi`` with ``Properties.Path``/``Method``. An event without both is the ``$default`` route.
Matching follows API Gateway's priority: the most specific path wins (literal segment over
``{param}`` over a greedy ``{proxy+}``), then an explicit method over ``ANY``, then ``$default``.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import yaml

log = logging.getLogger(__name__)

DEFAULT_ROUTE_KEY = "$default"
_PARAM = re.compile(r"^\{([A-Za-z0-9_.\-]+)(\+?)\}$")


class TemplateError(ValueError):
    """The template cannot be read or has no usable HTTP API route."""


class _CfnLoader(yaml.SafeLoader):
    """SafeLoader that turns CloudFormation short-form tags (!Ref, !Sub, !GetAtt...) into their long form."""


def _construct_cfn_tag(loader: _CfnLoader, tag_suffix: str, node: yaml.Node) -> dict[str, Any]:
    value: Any
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)  # type: ignore[arg-type]
    if tag_suffix == "Ref":
        return {"Ref": value}
    if tag_suffix == "GetAtt" and isinstance(value, str):
        return {"Fn::GetAtt": value.split(".", 1)}
    return {f"Fn::{tag_suffix}": value}


_CfnLoader.add_multi_constructor("!", _construct_cfn_tag)


def load_template(path: str | Path) -> dict[str, Any]:
    """Parse a SAM/CloudFormation template (YAML or JSON), tolerating intrinsic-function tags."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise TemplateError(f"cannot read template {path}: {exc.strerror}") from exc
    try:
        data = yaml.load(text, Loader=_CfnLoader)  # noqa: S506 - SafeLoader subclass
    except yaml.YAMLError as exc:
        raise TemplateError(f"template {path} is not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise TemplateError(f"template {path} is not a mapping")
    return data


@dataclass(frozen=True)
class Route:
    """One HTTP API route and the function that serves it."""

    method: str  # upper-case, or "ANY"
    path: str  # e.g. /users/{userId}; "$default" for the catch-all route
    handler: str  # "module.function"
    function_name: str  # the template's logical id
    timeout: int = 3
    memory_size: int = 128
    segments: tuple[str, ...] = field(default=(), compare=False)

    @property
    def route_key(self) -> str:
        """API Gateway's routeKey, e.g. ``GET /users/{userId}`` or ``$default``."""
        return DEFAULT_ROUTE_KEY if self.path == DEFAULT_ROUTE_KEY else f"{self.method} {self.path}"

    @property
    def handler_module(self) -> str:
        """The module part of ``handler``."""
        return self.handler.rpartition(".")[0]

    @property
    def handler_function(self) -> str:
        """The function part of ``handler``."""
        return self.handler.rpartition(".")[2]


@dataclass(frozen=True)
class RouteMatch:
    """A route chosen for a request, with its decoded path parameters."""

    route: Route
    path_parameters: dict[str, str]


@dataclass(frozen=True)
class CorsConfig:
    """An HTTP API's CorsConfiguration (API Gateway answers preflights and adds headers itself)."""

    allow_origins: tuple[str, ...] = ()
    allow_methods: tuple[str, ...] = ()
    allow_headers: tuple[str, ...] = ()
    expose_headers: tuple[str, ...] = ()
    allow_credentials: bool = False
    max_age: int | None = None


def _split_path(path: str) -> tuple[str, ...]:
    return tuple(path.strip("/").split("/")) if path.strip("/") else ()


def _segment_rank(segment: str) -> int:
    """0 literal, 1 {param}, 2 {proxy+}: lower is more specific."""
    match = _PARAM.match(segment)
    if not match:
        return 0
    return 2 if match.group(2) else 1


def _as_str(value: object) -> str | None:
    if isinstance(value, str):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    return None


def _as_int(value: object, default: int) -> int:
    text = _as_str(value)
    try:
        return int(text) if text is not None else default
    except ValueError:
        return default


def _as_tuple(value: object) -> tuple[str, ...]:
    if isinstance(value, list):
        return tuple(str(v) for v in value if _as_str(v) is not None)
    text = _as_str(value)
    return (text,) if text else ()


def _resolve_refs(value: object, parameters: Mapping[str, Any]) -> object:
    """Replace ``{"Ref": Param}`` by the parameter's Default (what an undeployed template means)."""
    if isinstance(value, Mapping):
        if set(value) == {"Ref"} and isinstance(value["Ref"], str):
            param = parameters.get(value["Ref"])
            return param.get("Default") if isinstance(param, Mapping) else None
        return {k: _resolve_refs(v, parameters) for k, v in value.items()}
    if isinstance(value, list):
        return [_resolve_refs(v, parameters) for v in value]
    return value


def _cors_from(value: object) -> CorsConfig | None:
    if value is True:
        return CorsConfig(allow_origins=("*",), allow_methods=("*",), allow_headers=("*",))
    if not isinstance(value, Mapping):
        return None
    max_age = value.get("MaxAge")
    return CorsConfig(
        allow_origins=_as_tuple(value.get("AllowOrigins")),
        allow_methods=tuple(m.upper() for m in _as_tuple(value.get("AllowMethods"))),
        allow_headers=tuple(h.lower() for h in _as_tuple(value.get("AllowHeaders"))),
        expose_headers=_as_tuple(value.get("ExposeHeaders")),
        allow_credentials=value.get("AllowCredentials") is True,
        max_age=_as_int(max_age, 0) if max_age is not None else None,
    )


def _secured_operations(definition: object) -> set[str]:
    """Route keys (``GET /users``) of the OpenAPI operations in ``definition`` that declare ``security``."""
    paths = definition.get("paths") if isinstance(definition, Mapping) else None
    found: set[str] = set()
    for path, operations in (paths or {}).items() if isinstance(paths, Mapping) else ():
        if not isinstance(operations, Mapping):
            continue
        for method, operation in operations.items():
            if isinstance(operation, Mapping) and "security" in operation:
                found.add(f"{str(method).upper()} {path}")
    return found


class RouteTable:
    """The HTTP API routes of a template, with API Gateway's matching rules."""

    def __init__(
        self,
        routes: list[Route],
        cors: CorsConfig | None = None,
        stage: str | None = None,
        secured: frozenset[str] = frozenset(),
    ) -> None:
        self.routes = routes
        self.cors = cors
        self.stage = stage  # a named stage (e.g. Prod): AWS serves the API under /<stage>/...
        # Route keys whose DefinitionBody operation carries a security requirement: the JWT
        # authorizer guards them when AuthMode=jwt (the template's &management-security).
        self.secured = secured

    @classmethod
    def from_template(
        cls, template: Mapping[str, Any], parameter_overrides: Mapping[str, str] | None = None
    ) -> RouteTable:
        """Collect every HttpApi event of every serverless function in ``template``.

        ``parameter_overrides`` replace parameters' defaults, as ``sam deploy --parameter-overrides``.
        """
        resources = template.get("Resources")
        if not isinstance(resources, Mapping):
            raise TemplateError("template has no Resources")
        globals_ = template.get("Globals") if isinstance(template.get("Globals"), Mapping) else {}
        fn_globals = globals_.get("Function", {}) if isinstance(globals_, Mapping) else {}
        fn_globals = fn_globals if isinstance(fn_globals, Mapping) else {}
        api_globals = globals_.get("HttpApi", {}) if isinstance(globals_, Mapping) else {}
        api_globals = api_globals if isinstance(api_globals, Mapping) else {}

        params = template.get("Parameters")
        parameters: dict[str, Any] = dict(params) if isinstance(params, Mapping) else {}
        for name, value in (parameter_overrides or {}).items():
            parameters[name] = {**(parameters.get(name) or {}), "Default": value}
        routes: list[Route] = []
        seen: dict[str, str] = {}
        cors: CorsConfig | None = _cors_from(_resolve_refs(api_globals.get("CorsConfiguration"), parameters))
        stage = _as_str(_resolve_refs(api_globals.get("StageName"), parameters))
        secured: set[str] = set()
        for logical_id, resource in resources.items():
            if not isinstance(resource, Mapping):
                continue
            props = resource.get("Properties")
            props = props if isinstance(props, Mapping) else {}
            if resource.get("Type") == "AWS::Serverless::HttpApi":
                cors = _cors_from(_resolve_refs(props.get("CorsConfiguration"), parameters)) or cors
                stage = _as_str(_resolve_refs(props.get("StageName"), parameters)) or stage
                secured |= _secured_operations(props.get("DefinitionBody"))
                continue
            if resource.get("Type") != "AWS::Serverless::Function":
                continue
            handler = _as_str(props.get("Handler", fn_globals.get("Handler")))
            events = props.get("Events")
            if not isinstance(events, Mapping):
                continue
            timeout = _as_int(props.get("Timeout", fn_globals.get("Timeout")), 3)
            memory = _as_int(props.get("MemorySize", fn_globals.get("MemorySize")), 128)
            for event_id, event in events.items():
                if not isinstance(event, Mapping) or event.get("Type") != "HttpApi":
                    continue
                if handler is None or "." not in handler:
                    raise TemplateError(f"{logical_id}: Handler must be a literal 'module.function'")
                ev_props = event.get("Properties")
                ev_props = ev_props if isinstance(ev_props, Mapping) else {}
                version = _as_str(ev_props.get("PayloadFormatVersion")) or "2.0"
                if version != "2.0":
                    log.warning(
                        "%s.%s: payload format %s served as 2.0 locally", logical_id, event_id, version
                    )
                path = _as_str(ev_props.get("Path"))
                method = (_as_str(ev_props.get("Method")) or "ANY").upper()
                if path is None:
                    if ev_props.get("Path") is not None:
                        log.warning("%s.%s: non-literal Path skipped", logical_id, event_id)
                        continue
                    path = DEFAULT_ROUTE_KEY
                    method = "ANY"
                elif not path.startswith("/"):
                    raise TemplateError(f"{logical_id}.{event_id}: Path must start with '/'")
                route = Route(
                    method=method,
                    path=path,
                    handler=handler,
                    function_name=str(logical_id),
                    timeout=timeout,
                    memory_size=memory,
                    segments=_split_path(path) if path != DEFAULT_ROUTE_KEY else (),
                )
                if route.route_key in seen:
                    raise TemplateError(
                        f"route {route.route_key} defined twice ({seen[route.route_key]} and {logical_id})"
                    )
                seen[route.route_key] = str(logical_id)
                routes.append(route)
        if not routes:
            raise TemplateError("template has no HttpApi events")
        return cls(routes, cors, None if stage in (None, "", "$default") else stage, frozenset(secured))

    @classmethod
    def from_file(cls, path: str | Path, parameter_overrides: Mapping[str, str] | None = None) -> RouteTable:
        """Load ``path`` and collect its routes."""
        return cls.from_template(load_template(path), parameter_overrides)

    def match(self, method: str, raw_path: str) -> RouteMatch | None:
        """The best route for ``method`` and the raw (percent-encoded) path, or None (API Gateway 404)."""
        request_segments = _split_path(raw_path)
        method = method.upper()
        best: tuple[tuple[int, ...], RouteMatch] | None = None
        default: Route | None = None
        for route in self.routes:
            if route.path == DEFAULT_ROUTE_KEY:
                default = route
                continue
            if route.method not in (method, "ANY"):
                continue
            params = _match_segments(route.segments, request_segments)
            if params is None:
                continue
            # Lexicographic specificity: per-segment rank, then a greedy tail last, then ANY after a method.
            rank = (*(_segment_rank(s) for s in route.segments), 9, 1 if route.method == "ANY" else 0)
            if best is None or rank < best[0]:
                best = (rank, RouteMatch(route, params))
        if best is not None:
            return best[1]
        if default is not None:
            return RouteMatch(default, {})
        return None


def _match_segments(pattern: tuple[str, ...], actual: tuple[str, ...]) -> dict[str, str] | None:
    params: dict[str, str] = {}
    for index, segment in enumerate(pattern):
        match = _PARAM.match(segment)
        if match and match.group(2):  # greedy: at least one more segment, takes the rest
            if index >= len(actual):
                return None
            params[match.group(1)] = unquote("/".join(actual[index:]))
            return params
        if index >= len(actual):
            return None
        if match:
            if actual[index] == "":
                return None
            params[match.group(1)] = unquote(actual[index])
        elif segment != actual[index]:
            return None
    return params if len(pattern) == len(actual) else None
