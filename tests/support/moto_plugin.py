"""pytest plugin: a single-threaded moto DynamoDB server for the session, and a fresh table per test.

- ``moto_endpoint`` (session): the server's URL; fake AWS credentials are in the environment while it
  runs, so no test can reach a real account.
- ``dynamodb_store_url`` (function): ``dynamodb://<unique table>?endpoint_url=...&create_table=true``
  for a new, empty table created through the adapter's ``ensure_schema``; the table is deleted afterwards
  (moto copies a table for every item of a transaction: small tables keep tests fast).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from urllib.parse import quote

import pytest

from ecpay_lambda.store.dynamodb import DynamoDBStore

from .moto_server import FAKE_AWS_ENV, UNSET_AWS_ENV, MotoServer

TEST_REGION = "ap-northeast-1"


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    """The URL of a single-threaded moto server on 127.0.0.1, for the whole session."""
    with pytest.MonkeyPatch.context() as env:
        for name, value in FAKE_AWS_ENV.items():
            env.setenv(name, value)
        for name in UNSET_AWS_ENV:
            env.delenv(name, raising=False)
        server = MotoServer()
        endpoint = server.start()
        try:
            yield endpoint
        finally:
            server.stop()


def dynamodb_url(endpoint: str, table: str | None = None, *, create_table: bool = True) -> str:
    """A ``dynamodb://`` store URL for ``table`` (a new unique name by default) on ``endpoint``.

    ``create_table=true`` lets the adapter's ``ensure_schema`` create the table on moto; without it a
    missing table is an error, as on AWS, where only the template creates tables.
    """
    name = table or f"wallet-test-{uuid.uuid4().hex[:16]}"
    url = f"dynamodb://{name}?endpoint_url={quote(endpoint, safe='')}&region={TEST_REGION}"
    return f"{url}&create_table=true" if create_table else url


@pytest.fixture
def dynamodb_store_url(moto_endpoint: str) -> Iterator[str]:
    """A store URL for a fresh, empty table on the session's moto server (deleted after the test)."""
    url = dynamodb_url(moto_endpoint)
    store = DynamoDBStore.from_url(url)
    store.ensure_schema()
    try:
        yield url
    finally:
        store.client.delete_table(TableName=store.table_name)
