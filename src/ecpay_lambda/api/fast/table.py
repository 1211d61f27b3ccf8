"""The hot routes and how a request finds one: exactly as the Powertools resolver routes it.

The resolver strips ``/<stage>`` from ``rawPath`` whenever the stage is not ``$default``, then
matches each rule as a regular expression it builds from the rule (``<name>`` becomes a named group
of URI characters). The same expressions are built here from the same rules, and a test checks them
against the resolver's, so a path reaches the same route, with the same parameters, on either path.
Only routes no earlier registered route of the same method can also match are listed (Powertools
tries its static routes first, then the dynamic ones in registration order).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import NamedTuple

from ..events import Event, request_context

# Powertools' own expression pieces (api_gateway.py: _SAFE_URI, _UNSAFE_URI, _ROUTE_REGEX).
_SAFE_URI = "-._~()'!*:@,;=+&$"
_UNSAFE_URI = r"%<> \[\]{}|^"
_PARAMETER = rf"(?P\1[{_SAFE_URI}{_UNSAFE_URI}\\w]+)"


def rule_regex(rule: str) -> re.Pattern[str]:
    """The expression the resolver matches a rule such as ``/users/<userId>`` with."""
    return re.compile("^{}$".format(re.sub(r"(<\w+>)", _PARAMETER, rule)))


class HotRoute(NamedTuple):
    """One route the lean path serves: the resolver's method and rule, and its function's name there."""

    method: str
    rule: str
    name: str
    regex: re.Pattern[str]


def _route(method: str, rule: str, name: str) -> HotRoute:
    return HotRoute(method, rule, name, rule_regex(rule))


HOT_ROUTES: tuple[HotRoute, ...] = (
    _route("POST", "/users", "create_user"),
    _route("GET", "/users", "list_users"),
    _route("GET", "/healthz", "healthz"),
    _route("GET", "/users/<userId>", "get_user"),
    _route("POST", "/users/<userId>/transactions", "create_transaction"),
    _route("GET", "/users/<userId>/transactions", "list_transactions"),
    _route("GET", "/users/<userId>/transactions/<transactionId>", "get_transaction"),
    _route("PATCH", "/users/<userId>/transactions/<transactionId>", "update_transaction"),
)


def resolver_path(event: Event) -> str | None:
    """The path the resolver routes on, or None when it would not get that far the usual way."""
    raw = event.get("rawPath")
    stage = request_context(event).get("stage")
    if not isinstance(raw, str) or not isinstance(stage, str):
        return None
    return raw if stage == "$default" else raw[len("/" + stage) :]


def find(event: Event) -> tuple[HotRoute, Mapping[str, str]] | None:
    """The hot route ``event`` reaches and its path parameters, or None (another route, or unsure)."""
    http = request_context(event).get("http")
    method = http.get("method") if isinstance(http, Mapping) else None
    path = resolver_path(event)
    if not isinstance(method, str) or path is None:
        return None
    method = method.upper()
    for route in HOT_ROUTES:
        if route.method == method:
            found = route.regex.match(path)
            if found is not None:
                return route, found.groupdict()
    return None
