"""A small structured JSON logger for every entry point (management API, ECPay callbacks, the schedule).

The shape of Powertools' Logger lines (``level``, ``message``, ``service``, ``correlation_id``,
``cold_start``...) written with the standard library: the lean functions cannot afford to import
Powertools (the cold-start rule, docs/performance.md), and the management function, which does,
saves the Logger's per-request work (its ``inject_lambda_context`` decorator) on every request.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from typing import Any

# One service name for every logger of the package (the template sets POWERTOOLS_SERVICE_NAME).
SERVICE = os.environ.get("POWERTOOLS_SERVICE_NAME") or "ecpay-lambda"
_STANDARD_ATTRS = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}


class _State:
    cold_start = True
    correlation_id: str | None = None
    function_request_id: str | None = None


class JsonFormatter(logging.Formatter):
    """One JSON object per line; ``extra={...}`` keys become top-level fields."""

    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        """Render ``record`` as one line of JSON."""
        line: dict[str, Any] = {
            "level": record.levelname,
            "location": f"{record.funcName}:{record.lineno}",
            "message": record.getMessage(),
            "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "service": self.service,
            "cold_start": _State.cold_start,
            "function_name": os.environ.get("AWS_LAMBDA_FUNCTION_NAME"),
            "function_request_id": _State.function_request_id,
            "correlation_id": _State.correlation_id,
        }
        for key, value in vars(record).items():
            if key not in _STANDARD_ATTRS and not key.startswith("_"):
                line[key] = value
        if record.exc_info:
            line["exception_name"] = record.exc_info[0].__name__ if record.exc_info[0] else None
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str, ensure_ascii=False)


def get_logger(name: str) -> logging.Logger:
    """A logger writing JSON lines to stdout (configured once per process)."""
    logger = logging.getLogger(name)
    if not any(isinstance(h.formatter, JsonFormatter) for h in logger.handlers):
        handler = logging.StreamHandler(sys.stdout)
        handler.setFormatter(JsonFormatter(SERVICE))
        logger.addHandler(handler)
        level = os.environ.get("POWERTOOLS_LOG_LEVEL") or os.environ.get("LOG_LEVEL") or "INFO"
        try:
            logger.setLevel(level.upper())
        except ValueError:
            logger.setLevel(logging.INFO)
        # Lambda's runtime puts its own handler on the root logger: do not log every line twice.
        logger.propagate = False
    return logger


def start_invocation(correlation_id: str | None, context: object) -> None:
    """Set the ids every line of this invocation carries."""
    _State.correlation_id = correlation_id
    _State.function_request_id = getattr(context, "aws_request_id", None)


def end_invocation() -> None:
    """After the first invocation, later ones are warm."""
    _State.cold_start = False
    _State.correlation_id = None
    _State.function_request_id = None
