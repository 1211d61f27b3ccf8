"""Public routes: liveness with store reachability. (/openapi.json and /docs are added by the app.)"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.api_gateway import Router

from ..composition import get_service
from ..logs import SERVICE
from ..schemas import Health
from .common import json_response

router = Router()  # type: ignore[no-untyped-call]  # Powertools' __init__ is unannotated
logger = Logger(service=SERVICE, child=True)


@router.get(
    "/healthz",
    summary="Liveness, with store reachability",
    operation_id="getHealth",
    responses={
        200: {"description": "Up", "content": {"application/json": {"model": Health}}},
        503: {"description": "The store is unreachable", "content": {"application/json": {"model": Health}}},
    },
    tags=["meta"],
)
def healthz() -> Response[Any]:
    """GET /healthz -> 200 ``{status: ok, store: true}`` or 503 when the store is unreachable."""
    try:
        reachable = bool(get_service().store.ping())
    except Exception:
        # Reachability is the answer here, not a fault of this route: a failing ping means "not reachable".
        logger.warning("store ping failed", exc_info=True)
        reachable = False
    return json_response(
        200 if reachable else 503, Health(status="ok" if reachable else "degraded", store=reachable)
    )
