"""Lambda entry point of the management API (users, transactions, payments, docs, health).

template.yaml points every management function at :func:`handler`; each function receives only the
routes the template gives it, and its IAM policy covers only those. Before routing, the request is
checked once: it must be readable (size, base64, UTF-8) and, outside the public routes, authenticated.
"""

from __future__ import annotations

import functools
import gc
from typing import TYPE_CHECKING, Any

from ..config import ConfigError, Settings, load_settings
from . import auth, logs, metrics
from .auth import PUBLIC_PATHS
from .errors import MISCONFIGURED
from .events import (
    BadEvent,
    Event,
    LambdaResponse,
    body_bytes,
    header,
    http_method,
    json_error,
    request_id,
    route_path,
)
from .fast.serve import serve
from .seed import seed_view, wants_seed_vocabulary

if TYPE_CHECKING:
    from aws_lambda_powertools.event_handler import APIGatewayHttpResolver

# The package's JSON lines (api/logs.py), as the callback function writes them: the same fields
# Powertools' Logger wrote (correlation_id = API Gateway's request id), without its per-request work.
logger = logs.get_logger("ecpay_lambda.api.handlers")


@functools.cache
def get_app(cors_origins: tuple[str, ...] = ()) -> APIGatewayHttpResolver:
    """The resolver, built once per cold start (per CORS configuration), when a request first needs it.

    Imported here, not at the top: Powertools' event_handler and pydantic cost more than boto3 itself,
    and the common requests never need them (api/fast/, the cold-start rule in docs/performance.md).
    """
    from .app import create_app  # noqa: PLC0415

    return create_app(cors_origins)


def _cors_headers(event: Event, settings: Settings | None) -> dict[str, str]:
    # The resolver adds CORS headers to its own answers; errors answered before it need them too.
    origin = header(event, "origin")
    if settings is None or origin is None:
        return {}
    if "*" in settings.cors_origins:
        return {"Access-Control-Allow-Origin": "*"}
    if origin.rstrip("/") in settings.cors_origins:
        return {"Access-Control-Allow-Origin": origin, "Vary": "Origin"}
    return {}


def _gate(event: Event, settings: Settings) -> LambdaResponse | None:
    """An error response when the request must not reach the routes, else None."""
    if http_method(event) != "OPTIONS" and route_path(event) not in PUBLIC_PATHS:
        failure = auth.check(event, settings)
        if failure is not None:
            logger.info("request refused", extra={"reason": failure.code})
            if failure.status >= 500:
                metrics.fault(metrics.CONFIG_ERRORS)  # e.g. no API token configured: fails closed
            extra = {"WWW-Authenticate": "Bearer"} if failure.status == 401 else {}
            return json_error(
                failure.status, failure.code, failure.message, **extra, **_cors_headers(event, settings)
            )
    media = (header(event, "content-type") or "").split(";", 1)[0].strip().lower()
    # No route takes uploads, and only requestPayment takes a form (a shop's own <form> may post
    # there): Powertools would try to parse either and answer a confusing 422.
    form_body = media == "application/x-www-form-urlencoded" and bool(event.get("body"))
    if media.startswith("multipart/") or (form_body and not route_path(event).endswith("/requestPayment")):
        return json_error(
            415,
            "unsupported_media_type",
            "send the body as application/json",
            **_cors_headers(event, settings),
        )
    try:
        data = body_bytes(event)
        data.decode("utf-8")
    except BadEvent as exc:
        return json_error(exc.status, exc.code, exc.message, **_cors_headers(event, settings))
    except UnicodeDecodeError:
        return json_error(
            400, "bad_request", "the request body is not UTF-8", **_cors_headers(event, settings)
        )
    return None


def handler(event: dict[str, Any], context: Any) -> LambdaResponse:
    """Lambda entry point: gate, then the lean path (api/fast/) or the Powertools resolver."""
    logs.start_invocation(request_id(event), context)
    try:
        return _handle(event, context)
    finally:
        logs.end_invocation()


def _handle(event: dict[str, Any], context: Any) -> LambdaResponse:
    try:
        settings = load_settings()
    except ConfigError as exc:
        # The message names the variable, never a value; the client learns only that we are misconfigured.
        logger.error("configuration error", extra={"error": str(exc)})
        metrics.fault(metrics.CONFIG_ERRORS)
        return json_error(MISCONFIGURED.status, MISCONFIGURED.code, MISCONFIGURED.message)
    refused = _gate(event, settings)
    if refused is not None:
        return refused
    # The lean path serves the common, well-formed requests; everything else goes to the resolver.
    response = serve(event, settings)
    if response is None:
        response = get_app(settings.cors_origins).resolve(event, context)
    if wants_seed_vocabulary(event):
        response = seed_view(response)  # the seed front end's status words (see api/seed.py)
    return response


# Last, once this module and everything it imported exist: those objects (modules, classes, the
# resolver's pydantic machinery; some 50,000) live as long as the process, so they are moved out of
# the garbage collector's sight. The collections that the first request's imports (boto3, the store)
# and every later request set off then no longer walk them again: about a tenth of the cold import's
# CPU (the cold-start rule, docs/performance.md).
gc.freeze()
