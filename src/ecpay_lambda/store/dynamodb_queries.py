"""The DynamoDB adapter's reads: key reads, queries, pages with cursors, and consistent batch reads.

Every method is one kind of call (or a loop of them following DynamoDB's pagination); the port's
methods in :mod:`.dynamodb` compose them.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Final

from ..wallet.errors import InvalidRequest
from ..wallet.port import InvalidCursor
from .dynamodb_errors import DynamoDBStoreError
from .dynamodb_items import (
    GSI1,
    GSI1PK,
    PK,
    SK,
    USERS_GSI_PARTITION,
    Item,
    StoredItem,
    decode_cursor,
    encode_cursor,
    get_s,
    key_of,
    s,
)

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_dynamodb.type_defs import KeysAndAttributesUnionTypeDef, QueryInputTypeDef

__all__ = ["BATCH_GET_LIMIT", "TableReader", "key_tuple"]

BATCH_GET_LIMIT: Final = 100
_BASE_DELAY: Final = 0.025


class TableReader:
    """The reads of one table (strongly consistent wherever DynamoDB allows it)."""

    def __init__(self, table_name: str, client: DynamoDBClient) -> None:
        """Read ``table_name`` through ``client`` (a boto3 DynamoDB client, thread-safe)."""
        self._table = table_name
        self._client = client

    def get(self, item_key: Item) -> StoredItem | None:
        """One item by key, strongly consistent; None when missing."""
        response = self._client.get_item(TableName=self._table, Key=item_key, ConsistentRead=True)
        return response.get("Item")

    def users_query(self) -> QueryInputTypeDef:
        """The query of the ``USERS`` partition of ``gsi1``, by creation order."""
        # GSI queries cannot be strongly consistent (DynamoDB refuses ConsistentRead on a GSI).
        return {
            "TableName": self._table,
            "IndexName": GSI1,
            "KeyConditionExpression": "#gpk = :users",
            "ExpressionAttributeNames": {"#gpk": GSI1PK},
            "ExpressionAttributeValues": {":users": s(USERS_GSI_PARTITION)},
        }

    def partition_query(self, pk: str, prefix: str, *, newest_first: bool = False) -> QueryInputTypeDef:
        """A consistent query of the items of partition ``pk`` whose sort key starts with ``prefix``
        (the whole partition when ``prefix`` is empty)."""
        if not prefix:
            return {
                "TableName": self._table,
                "KeyConditionExpression": "#pk = :pk",
                "ExpressionAttributeNames": {"#pk": PK},
                "ExpressionAttributeValues": {":pk": s(pk)},
                "ConsistentRead": True,
                "ScanIndexForward": not newest_first,
            }
        return {
            "TableName": self._table,
            "KeyConditionExpression": "#pk = :pk AND begins_with(#sk, :prefix)",
            "ExpressionAttributeNames": {"#pk": PK, "#sk": SK},
            "ExpressionAttributeValues": {":pk": s(pk), ":prefix": s(prefix)},
            "ConsistentRead": True,
            "ScanIndexForward": not newest_first,
        }

    def query_pages(self, query: QueryInputTypeDef) -> Iterator[Sequence[StoredItem]]:
        """Every page of ``query``, following ``LastEvaluatedKey``."""
        start: StoredItem | None = None
        while True:
            request: QueryInputTypeDef = {**query}
            if start is not None:
                request["ExclusiveStartKey"] = dict(start)
            response = self._client.query(**request)
            yield response["Items"]
            start = response.get("LastEvaluatedKey")
            if start is None:
                return

    def page(
        self,
        query: QueryInputTypeDef,
        key_attributes: tuple[str, ...],
        belongs: Callable[[Item], bool],
        *,
        page: int,
        page_size: int,
        cursor: str | None,
    ) -> tuple[list[StoredItem], str | None]:
        """One page of a query, and the cursor of the next one (None on the last page).

        ``belongs`` tells whether a cursor's key is one of this query's: a cursor may only continue
        the listing it came from (not, say, another user's).
        """
        if page < 1 or page_size < 1:
            raise InvalidRequest("page and page_size must be positive")
        start: Item | None = None
        if cursor is not None:
            start = decode_cursor(cursor, key_attributes)
            if start is None or not belongs(start):
                raise InvalidCursor
        elif page > 1:
            skipped = self._skip(query, key_attributes, (page - 1) * page_size)
            if skipped is None:
                return [], None
            start = skipped
        # One more than a page: a next cursor only when another item really follows.
        wanted = page_size + 1
        items: list[StoredItem] = []
        while len(items) < wanted:
            request: QueryInputTypeDef = {**query, "Limit": wanted - len(items)}
            if start is not None:
                request["ExclusiveStartKey"] = start
            response = self._client.query(**request)
            items.extend(response["Items"])
            last = response.get("LastEvaluatedKey")
            if last is None:
                break
            start = dict(last)
        if len(items) <= page_size:
            return items, None
        return items[:page_size], encode_cursor(key_of(items[page_size - 1], key_attributes))

    def _skip(self, query: QueryInputTypeDef, key_attributes: tuple[str, ...], count: int) -> Item | None:
        """The key after which the ``count``-th item ends, reading keys only; None if there are fewer."""
        names = {**query.get("ExpressionAttributeNames", {})}
        projection = []
        for index, attribute in enumerate(key_attributes):
            names[f"#k{index}"] = attribute
            projection.append(f"#k{index}")
        start: Item | None = None
        remaining = count
        while remaining > 0:
            request: QueryInputTypeDef = {
                **query,
                "ExpressionAttributeNames": names,
                "ProjectionExpression": ", ".join(projection),
                "Limit": remaining,
            }
            if start is not None:
                request["ExclusiveStartKey"] = start
            response = self._client.query(**request)
            items = response["Items"]
            remaining -= len(items)
            if remaining == 0 and items:
                return key_of(items[-1], key_attributes)
            last = response.get("LastEvaluatedKey")
            if last is None:
                return None
            start = dict(last)
        return None  # not reached: count > 0, and the loop returns as soon as it is used up

    def batch_get(self, keys: Sequence[Item]) -> dict[tuple[str, str], StoredItem]:
        """Consistent reads of many keys, following ``UnprocessedKeys`` with backoff."""
        found: dict[tuple[str, str], StoredItem] = {}
        unique = list({key_tuple(item_key): item_key for item_key in keys}.values())
        for offset in range(0, len(unique), BATCH_GET_LIMIT):
            pending: KeysAndAttributesUnionTypeDef | None = {
                "Keys": unique[offset : offset + BATCH_GET_LIMIT],
                "ConsistentRead": True,
            }
            attempt = 0
            while pending is not None:
                response = self._client.batch_get_item(RequestItems={self._table: pending})
                for item in response.get("Responses", {}).get(self._table, []):
                    found[key_tuple(item)] = item
                pending = response.get("UnprocessedKeys", {}).get(self._table) or None
                if pending is not None:
                    attempt += 1
                    if attempt > 8:
                        raise DynamoDBStoreError("BatchGetItem kept returning unprocessed keys")
                    time.sleep(random.uniform(0, _BASE_DELAY * 2**attempt))  # noqa: S311 - jitter
        return found


def key_tuple(item: StoredItem) -> tuple[str, str]:
    """An item's primary key as a hashable pair."""
    return get_s(item, PK), get_s(item, SK)
