"""Public routes: liveness with a store write probe. (/openapi.json and /docs are added by the app.)"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.api_gateway import Router

from .. import operations
from ..errors import RETRY_AFTER_SECONDS
from ..schemas import Health
from .common import json_response

router = Router()  # type: ignore[no-untyped-call]  # Powertools' __init__ is unannotated


@router.get(
    "/healthz",
    summary="Liveness, with a store write probe",
    description="200 when the store accepts a write (one health record is overwritten); "
    "503 with Retry-After when it cannot (unreachable, full disk, read-only, throttled).",
    operation_id="getHealth",
    responses={
        200: {"description": "Up", "content": {"application/json": {"model": Health}}},
        503: {
            "description": "The store cannot write",
            "content": {"application/json": {"model": Health}},
        },
    },
    tags=["meta"],
)
def healthz() -> Response[Any]:
    """GET /healthz -> 200 ``{status: ok, store: true}`` or 503 ``degraded`` when the store cannot write."""
    if operations.store_writable():
        return json_response(200, Health(status="ok", store=True))
    return json_response(
        503, Health(status="degraded", store=False), **{"Retry-After": str(RETRY_AFTER_SECONDS)}
    )
