"""The DynamoDB adapter's own errors, and how it reads botocore's ``ClientError``.

Shared by the adapter's modules (:mod:`.dynamodb` the port, :mod:`.dynamodb_commit` the atomic write,
:mod:`.dynamodb_queries` the reads); api/errors.py maps :class:`DynamoDBStoreError` to an outage.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from botocore.exceptions import ClientError

from . import StoreNotReady

__all__ = ["DynamoDBStoreError", "TableNotFound", "TransactionTooLarge", "client_response", "error_code"]


class DynamoDBStoreError(RuntimeError):
    """A fault, not a business outcome: an unexpected cancellation, or contention that outlived retries."""


class TableNotFound(StoreNotReady):
    """The table does not exist and this store may not create it (``create_table`` is off)."""


class TransactionTooLarge(ValueError):
    """The write exceeds DynamoDB's transaction limits (100 items, 4 MB; 400 KB per item)."""


def error_code(exc: ClientError) -> str:
    """The ``Error.Code`` of a botocore client error (``""`` when absent)."""
    return str(exc.response.get("Error", {}).get("Code", ""))


def client_response(exc: ClientError) -> Mapping[str, Any]:
    """The error's whole response: its modeled fields (``Item``, ``CancellationReasons``) included."""
    # The stubs type ClientError.response narrowly; modeled fields (Item, CancellationReasons) are there.
    response: Mapping[str, Any] = exc.response
    return response
