"""GET /events (operators): local mode's wallet events, the ones the deployed stack puts on its bus."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.params import Query

from ...config import load_settings
from ..errors import ApiError
from ..schemas import EventList, WalletEventOut
from .common import SECURITY, json_response, operator_only, responses

router = Router()  # type: ignore[no-untyped-call]  # Powertools' __init__ is unannotated

Limit = Annotated[int, Query(ge=1, le=1000, description="at most this many, the most recent")]


@router.get(
    "/events",
    summary="Wallet events (local mode's outbox; operators)",
    operation_id="listEvents",
    description=(
        "The events the deployed stack publishes on its EventBridge bus (deposit.paid, "
        "withdrawal.requested, refund.completed, ...), as local mode records them, oldest first. "
        "404 `events_on_bus` where events go to the bus instead (AWS), and for end users."
    ),
    responses=responses(200, EventList, "The most recent events", 404),
    security=SECURITY,
    tags=["events"],
)
def list_events(limit: Limit = 100) -> Response[Any]:
    """GET /events?limit -> ``{events, total}``."""
    operator_only(router)
    outbox = load_settings().events_outbox
    if not outbox:
        raise ApiError(404, "events_on_bus", "events are published on the wallet event bus (docs/events.md)")
    # Local mode's file only (on AWS the route answers above): deployed functions never load it.
    from ...store.outbox import read_outbox  # noqa: PLC0415

    events = read_outbox(Path(outbox))
    return json_response(
        200,
        EventList(events=[WalletEventOut.model_validate(e) for e in events[-limit:]], total=len(events)),
    )
