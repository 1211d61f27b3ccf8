"""The management API's Powertools resolver: routes, validation, OpenAPI (/openapi.json, /docs), errors.

Every error leaves as ``{"error": {"code", "message"}}`` with its status, mapped here once.
Powertools' OpenAPI models are imported only when /openapi.json or /docs is served (see api/handlers.py).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, CORSConfig, Response, content_types
from aws_lambda_powertools.event_handler.exceptions import NotFoundError
from aws_lambda_powertools.event_handler.openapi.exceptions import (
    RequestUnsupportedContentType,
    RequestValidationError,
)

from .. import __version__
from ..config import load_settings
from ..wallet.errors import WalletError
from . import answers
from .answers import ErrorAnswer, answer_exception, error_answer
from .auth import AuthScheme, auth_scheme
from .errors import ApiError
from .events import stage_prefix
from .routes import events, meta, payments, transactions, users

# The routes' fault log, written by api/answers.py for both request paths.
logger = answers.logger

if TYPE_CHECKING:
    from aws_lambda_powertools.event_handler.openapi.models import SecurityScheme, Server

TITLE = "aws-lambda-ecpay-api"
DESCRIPTION = (
    "A points wallet whose deposits are paid through ECPay (綠界). The ECPay callback routes (`return`, "
    "`paymentInfo`, `clientReturn`) are served by a separate lean function and are not part of this "
    "document.\n\n"
    "Credentials for the management routes depend on how the server runs: `Authorization: Bearer <API "
    "token>` (the default mode), or a JWT checked by the HTTP API's JWT authorizer (`AUTH_MODE=jwt`); "
    "only a local server without `API_TOKEN` leaves them open. This document describes the server that "
    "served it: "
)
_AUTH_SENTENCE: dict[AuthScheme, str] = {
    "token": "its management routes require the API token (`bearerAuth`).",
    "jwt": "its management routes require a JWT from the configured issuer (`bearerAuth`).",
    "none": "a local server without `API_TOKEN`, so no route requires credentials.",
}


def _error(
    status: int,
    code: str,
    message: str,
    details: list[dict[str, Any]] | dict[str, object] | None = None,
    headers: dict[str, str] | None = None,
) -> Response[Any]:
    return _response(error_answer(status, code, message, details, headers))


def _response(answer: ErrorAnswer) -> Response[Any]:
    return Response(
        status_code=answer.status,
        content_type=content_types.APPLICATION_JSON,
        body=answer.body,
        headers=answer.headers,
    )


def _details(errors: Sequence[Any]) -> list[dict[str, Any]]:
    # Location, type and message only: the offending input is the client's own and may be huge.
    out: list[dict[str, Any]] = []
    for err in errors[:20]:
        if isinstance(err, dict):
            out.append({"loc": [str(p) for p in err.get("loc", ())], "type": str(err.get("type", ""))})
            if err.get("msg"):
                out[-1]["msg"] = str(err["msg"])
    return out


def _security_schemes(auth: AuthScheme) -> dict[str, SecurityScheme]:
    from aws_lambda_powertools.event_handler.openapi.models import HTTPBearer  # noqa: PLC0415

    # Routes declare bearerAuth; the scheme must exist even where the document then drops it ("none").
    if auth == "jwt":
        return {"bearerAuth": HTTPBearer(bearerFormat="JWT", description="a JWT from the configured issuer")}
    return {"bearerAuth": HTTPBearer(description="the API token (Secrets Manager on AWS, API_TOKEN locally)")}


def _openapi_kwargs(servers: list[Server], auth: AuthScheme) -> dict[str, Any]:
    return {
        "title": TITLE,
        "version": __version__,
        "description": DESCRIPTION + _AUTH_SENTENCE[auth],
        "security_schemes": _security_schemes(auth),
        "servers": servers,
    }


def openapi_document(app: APIGatewayHttpResolver, server_url: str = "/", auth: AuthScheme = "token") -> str:
    """The OpenAPI 3 document of ``app`` as JSON, served from ``server_url``, for the ``auth`` in force.

    With ``auth="none"`` (local mode without a token) no operation lists a security requirement, so
    clients and fuzzers do not send, or expect to need, an ``Authorization`` header.
    """
    from aws_lambda_powertools.event_handler.openapi.models import Server  # noqa: PLC0415

    document = app.get_openapi_json_schema(**_openapi_kwargs([Server(url=server_url)], auth))
    if auth != "none":
        return document
    spec = json.loads(document)
    for operations in spec.get("paths", {}).values():
        for operation in operations.values():
            operation.pop("security", None)
            operation.get("responses", {}).pop("401", None)
    spec.get("components", {}).pop("securitySchemes", None)
    return json.dumps(spec, ensure_ascii=False, indent=2)


def create_app(cors_origins: Sequence[str] = ()) -> APIGatewayHttpResolver:
    """A resolver with every management route (CORS for ``cors_origins``; ``*`` allows any origin)."""
    cors = None
    if cors_origins:
        cors = CORSConfig(
            allow_origin=cors_origins[0],
            extra_origins=list(cors_origins[1:]),
            allow_headers=["Authorization", "Content-Type", "Idempotency-Key"],
            expose_headers=["Idempotent-Replayed"],
            max_age=600,
        )
    app = APIGatewayHttpResolver(enable_validation=True, cors=cors)
    for module in (users, transactions, payments, events, meta):
        app.include_router(module.router)

    def served_document() -> str:
        # Servers: this stage's base path; security: the auth mode in force.
        return openapi_document(
            app, stage_prefix(app.current_event.raw_event) or "/", auth_scheme(load_settings())
        )

    @app.get("/openapi.json", include_in_schema=False)
    def openapi_json() -> Response[Any]:
        """The OpenAPI 3 document."""
        return Response(status_code=200, content_type=content_types.APPLICATION_JSON, body=served_document())

    @app.get("/docs", include_in_schema=False)
    def docs() -> Response[Any]:
        """Swagger UI on the same document, its script and style inline (Powertools' copies)."""
        return Response(status_code=200, content_type="text/html", body=swagger_page(served_document()))

    # Registered without decorator syntax: Powertools' decorators are unannotated (mypy --strict).
    app.exception_handler(RequestUnsupportedContentType)(_unsupported_content_type)
    app.exception_handler(RequestValidationError)(_invalid_request)
    for raised in (ApiError, WalletError, Exception):
        app.exception_handler(raised)(_answered)  # api/answers.py decides, as on the lean path
    app.not_found(_route_not_found)
    return app


def swagger_page(document: str) -> str:
    """A Swagger UI page showing ``document`` (OpenAPI JSON), with no request to any other host.

    Built here rather than by ``enable_swagger()``, which imports the OpenAPI models when the resolver
    is built: only a request for /docs pays for them.
    """
    from aws_lambda_powertools.event_handler.openapi import swagger_ui  # noqa: PLC0415
    from aws_lambda_powertools.event_handler.openapi.swagger_ui import generate_swagger_html  # noqa: PLC0415

    assets = Path(swagger_ui.__file__).parent
    script = (assets / "swagger-ui-bundle.min.js").read_text(encoding="utf-8")
    style = (assets / "swagger-ui.min.css").read_text(encoding="utf-8")
    # "</" escaped: the document sits inside a <script> element.
    return generate_swagger_html(document.replace("</", "<\\/"), script, style, "", None)


def _unsupported_content_type(exc: RequestUnsupportedContentType) -> Response[Any]:
    return _error(415, "unsupported_media_type", "send the body as application/json")


def _invalid_request(exc: RequestValidationError) -> Response[Any]:
    errors = list(exc.errors())
    if any(isinstance(e, dict) and e.get("type") == "json_invalid" for e in errors):
        return _error(400, "invalid_json", "the request body is not valid JSON")
    return _error(422, "validation_error", "the request does not match the schema", _details(errors))


def _route_not_found(exc: NotFoundError) -> Response[Any]:
    return _error(404, "route_not_found", "no such route")


def _answered(exc: Exception) -> Response[Any]:
    return _response(answer_exception(exc))
