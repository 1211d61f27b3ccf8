"""Monthly AWS cost of 1 million paid deposits, from the measured round trips and durations.

Prices are AWS list prices for ap-northeast-1 (Tokyo) as assumed on 2026-11-01, without free tier,
savings plans or taxes. They change: recheck them on the AWS pricing pages before relying on the
result. Everything else comes from this run's measurements, or from an assumption stated below.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from .common import Table

REGION = "ap-northeast-1 (Tokyo)"
PRICES_AS_OF = "2026-11-01"
PRICES: dict[str, tuple[float, str]] = {
    "lambda_gb_s": (0.0000133334, "Lambda arm64 duration, per GB-second"),
    "lambda_request": (0.20 / 1e6, "Lambda requests, per request ($0.20 per million)"),
    "http_api_request": (1.29 / 1e6, "API Gateway HTTP API, per request ($1.29 per million, first 300 M)"),
    "ddb_wru": (0.715 / 1e6, "DynamoDB on-demand write request unit ($0.715 per million)"),
    "ddb_rru": (0.1425 / 1e6, "DynamoDB on-demand read request unit ($0.1425 per million)"),
    "ddb_storage_gb_month": (0.285, "DynamoDB standard table storage, per GB-month"),
    "ddb_pitr_gb_month": (0.228, "DynamoDB point-in-time recovery, per GB-month"),
    "logs_ingest_gb": (0.76, "CloudWatch Logs ingestion, per GB"),
    "secret_month": (0.40, "Secrets Manager, per secret per month"),
}

# Assumptions (stated in docs/performance.md next to the table).
MEMORY_GB = 0.5  # template.yaml Globals: MemorySize 512
# A laptop core vs Lambda at 512 MB (about 0.29 of a vCPU: a full vCPU comes at 1,769 MB): the
# handler's own CPU time, measured here, is multiplied by this.
CPU_SCALE = 1769 / 512
# In-region DynamoDB latencies added per call (typical single-digit-millisecond service latency).
DDB_LATENCY_S = {
    "GetItem": 0.005,
    "PutItem": 0.006,
    "Query": 0.006,
    "BatchGetItem": 0.007,
    "TransactWriteItems": 0.015,
}
LOG_BYTES_PER_INVOCATION = 1_000  # our JSON lines + Lambda's START/END/REPORT
SECRETS = 2  # ECPay credentials and the API token

# One paid deposit, as the seed's front end does it: API requests and the measured operation each runs.
FLOW: tuple[tuple[str, str], ...] = (
    ("POST /users/{id}/transactions", "create deposit"),
    ("POST .../requestPayment", "checkout"),
    ("POST .../return (ECPay ReturnURL)", "apply notification"),
    ("GET .../clientReturn (browser back)", "read transaction"),
    ("GET .../transactions/{id} (front end)", "read transaction"),
)


@dataclass
class Line:
    """One line of the bill."""

    item: str
    quantity: float
    unit: str
    usd: float


def estimate(
    dynamodb: dict[str, Any], handler_cpu_s: dict[str, float], deposits: int = 1_000_000
) -> tuple[list[Line], list[list[Any]]]:
    """The bill for ``deposits`` paid deposits in a month, and the per-request duration model.

    ``dynamodb``: round_trips' tallies on DynamoDB by operation; ``handler_cpu_s``: the measured warm
    in-process duration (SQLite store, so almost all CPU) of the handler path behind each operation.
    """
    price = {k: v[0] for k, v in PRICES.items()}
    per_request: list[list[Any]] = []
    gb_seconds = wru = rru = stored = 0.0
    for route, operation in FLOW:
        tally = dynamodb[operation]
        cpu = handler_cpu_s.get(operation, handler_cpu_s["create deposit"]) * CPU_SCALE
        io = sum(DDB_LATENCY_S.get(call, 0.006) * n for call, n in tally.calls.items())
        billed_ms = math.ceil((cpu + io) * 1000)
        per_request.append([route, operation, cpu * 1000, io * 1000, billed_ms, tally.wru, tally.rru])
        gb_seconds += billed_ms / 1000 * MEMORY_GB
        wru += tally.wru
        rru += tally.rru
        stored += tally.stored_bytes
    requests = len(FLOW) * deposits
    stored_gb = stored * deposits / 1e9
    duration = gb_seconds * deposits
    storage_usd = stored_gb * price["ddb_storage_gb_month"]
    pitr_usd = stored_gb * price["ddb_pitr_gb_month"]
    logs_gb = requests * LOG_BYTES_PER_INVOCATION / 1e9
    lines = [
        Line("HTTP API requests", requests, "requests", requests * price["http_api_request"]),
        Line("Lambda requests", requests, "requests", requests * price["lambda_request"]),
        Line("Lambda duration (arm64, 512 MB)", duration, "GB-s", duration * price["lambda_gb_s"]),
        Line("DynamoDB writes", wru * deposits, "WRU", wru * deposits * price["ddb_wru"]),
        Line("DynamoDB reads", rru * deposits, "RRU", rru * deposits * price["ddb_rru"]),
        Line("DynamoDB storage (new items)", stored_gb, "GB-month", storage_usd),
        Line("DynamoDB point-in-time recovery", stored_gb, "GB-month", pitr_usd),
        Line("CloudWatch Logs ingestion", logs_gb, "GB", logs_gb * price["logs_ingest_gb"]),
        Line("Secrets Manager", SECRETS, "secrets", SECRETS * price["secret_month"]),
    ]  # fmt: skip
    return lines, per_request


def tables(lines: list[Line], per_request: list[list[Any]]) -> list[Table]:
    """The duration model and the bill."""
    total = sum(line.usd for line in lines)
    return [
        Table(
            "Per paid deposit: requests, modelled Lambda duration, DynamoDB units",
            ["request", "operation", "CPU ms", "DynamoDB ms", "billed ms", "WRU", "RRU"],
            per_request,
            note=(
                f"CPU ms = measured warm handler time x {CPU_SCALE:.2f} (512 MB of Lambda vs a core); "
                "DynamoDB ms = counted calls x assumed in-region latency."
            ),
        ),
        Table(
            f"Monthly cost of 1,000,000 paid deposits, {REGION}, list prices as of {PRICES_AS_OF}",
            ["item", "quantity", "unit", "USD"],
            [[line.item, line.quantity, line.unit, line.usd] for line in lines] + [["total", "", "", total]],
            note="Assumed prices: "
            + "; ".join(f"{desc}: ${value:g}" for value, desc in PRICES.values())
            + ".",
        ),
    ]
