"""Storage adapters of the wallet's port, chosen by one URL (``STORE_URL``).

``open_store`` imports the chosen adapter lazily: the notification Lambda on DynamoDB never imports
SQLAlchemy, and a laptop on SQLite never imports boto3.
"""

from __future__ import annotations

from ..wallet.models import TransactionStatus
from ..wallet.port import WalletStore

SQL_SCHEMES = ("sqlite", "mysql", "mariadb", "postgresql", "postgres")

# Deposits ECPay was paid for, whatever happened since: what ``iter_paid_deposits`` lists (by paid_at).
PAID_DEPOSIT_STATUSES: frozenset[TransactionStatus] = frozenset(
    {TransactionStatus.PAID, TransactionStatus.PARTIALLY_REFUNDED, TransactionStatus.REFUNDED}
)


class StoreNotReady(RuntimeError):
    """The storage the URL names is not there and this process may not create it (e.g. a missing table).

    A configuration fault, not a business outcome: the composition root reports it as a ConfigError
    (HTTP 503, ECPay retries its notification). The message names the resource, never a credential.
    """


def open_store(url: str) -> WalletStore:
    """Open the adapter for ``url``: ``sqlite:///path``, ``mysql+pymysql://``, ``postgresql+psycopg://``, ``dynamodb://``."""
    scheme = url.split("://", 1)[0].split("+", 1)[0].lower() if "://" in url else ""
    if scheme == "dynamodb":
        from .dynamodb import DynamoDBStore  # noqa: PLC0415 - boto3 only when DynamoDB is used

        return DynamoDBStore.from_url(url)
    if scheme in SQL_SCHEMES:
        from .sql import SqlStore  # noqa: PLC0415 - SQLAlchemy only when SQL is used

        return SqlStore.from_url(url)
    raise ValueError(
        "unsupported STORE_URL scheme: use sqlite:///, mysql+pymysql://, postgresql+psycopg:// or dynamodb://"
    )
