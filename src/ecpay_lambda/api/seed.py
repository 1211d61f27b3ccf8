"""The seed front end's view of transactions: its status vocabulary, chosen by what the client accepts.

The seed's React front end (hty85123/aws-lambda-ecpay-api) must keep working unchanged. It reads a
transaction's ``status`` and shows its "Payment" button only while ``status === 'pending'``; this API's
lifecycle is finer (a deposit whose ECPay page was left unpaid is ``awaiting_payment``, a refused card
``failed``; both may be checked out again). So the seed would never offer the retry the API accepts.

The representation is negotiated by ``Accept``, as HTTP intends:

- ``Accept: application/json`` (what the dashboard and API clients send) or no ``Accept``: the lifecycle
  as it is (``pending``, ``awaiting_payment``, ``awaiting_offline_payment``, ``failed``, ``paid``...).
- ``Accept: */*`` alone (what a browser's ``fetch()`` sends when the page sets no Accept, as the
  seed does): the seed's vocabulary. A deposit that can be paid again, ``awaiting_payment`` or
  ``failed``, reads ``pending``; every other status is unchanged; ``status_detail`` always carries
  the lifecycle status, so nothing is lost.

Standard library only; applied once, to the management API's JSON answers.
"""

from __future__ import annotations

import json
from typing import Any

from .events import Event, LambdaResponse, header

SEED_ACCEPT = "*/*"
# Deposit statuses from which the API takes a new checkout that the seed knows only as "pending".
SEED_PENDING = frozenset({"awaiting_payment", "failed"})


def wants_seed_vocabulary(event: Event) -> bool:
    """True when the client accepts anything and asked for nothing more specific (the seed's fetch)."""
    accept = header(event, "accept")
    return accept is not None and accept.strip() == SEED_ACCEPT


def _seed_transaction(item: Any) -> None:
    if not isinstance(item, dict) or "status" not in item or "transaction_type" not in item:
        return
    status = item["status"]
    item["status_detail"] = status
    if item["transaction_type"] == "deposit" and status in SEED_PENDING:
        item["status"] = "pending"


def seed_view(response: LambdaResponse) -> LambdaResponse:
    """``response`` with each transaction of its JSON body (one, or a ``transactions`` list) in seed terms."""
    headers = response.get("headers") or {}
    content_type = " ".join(str(v) for k, v in headers.items() if str(k).lower() == "content-type")
    body = response.get("body")
    if response.get("isBase64Encoded") or not isinstance(body, str) or "json" not in content_type:
        return response
    try:
        data = json.loads(body)
    except ValueError:
        return response
    if not isinstance(data, dict):
        return response
    _seed_transaction(data)
    if isinstance(data.get("transactions"), list):
        for item in data["transactions"]:
            _seed_transaction(item)
    return {**response, "body": json.dumps(data, ensure_ascii=False)}
