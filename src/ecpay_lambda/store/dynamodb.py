"""The DynamoDB adapter of the wallet's storage port: one table, boto3's low-level client.

This module holds the port's methods and the store's construction; the jobs they compose live apart:
the atomic write (one ``TransactWriteItems`` whose conditions are the port's compare-and-set, conflicts
mapped from the cancellation reasons without an extra read) in :mod:`.dynamodb_commit`, the reads
(key reads, queries, cursors, batch reads) in :mod:`.dynamodb_queries`, the errors in
:mod:`.dynamodb_errors`, and the item layout in :mod:`.dynamodb_items` and docs/dynamodb-table.md.
"""

from __future__ import annotations

import functools
import os
import re
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Final, TypeVar
from urllib.parse import parse_qs, urlsplit

import boto3
import botocore.session
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError
from botocore.loaders import Loader

from ..wallet.invoice_state import invoice_due
from ..wallet.models import (
    IdempotencyRecord,
    LedgerEntry,
    NotificationRecord,
    Page,
    Transaction,
    User,
    UserStatus,
)
from ..wallet.port import (
    AtomicWrite,
    Decide,
    Decision,
    Guess,
    IdentityBound,
    Reads,
    Snapshot,
    TransactionRecords,
    UserExists,
    UserHasFunds,
    UserNotActive,
)
from .dynamodb_commit import (
    RANK_APPEND,
    RANK_USER,
    UPDATE_SIZE_ESTIMATE,
    Op,
    TableWriter,
    check_item_size,
    unexpected,
)
from .dynamodb_errors import (
    DynamoDBStoreError,
    TableNotFound,
    TransactionTooLarge,
    client_response,
    error_code,
)
from .dynamodb_guess import DEPOSIT_OP, credit_ops
from .dynamodb_invoices import (
    INVOICE_QUEUE_PK,
    INVOICE_SETTINGS_ATTRIBUTE,
    encode_invoice_settings,
    marker_due,
)
from .dynamodb_items import (
    AWAITING_GSI_PARTITION,
    BASE_KEY_ATTRIBUTES,
    COUNT_ATTRIBUTE,
    GSI1,
    GSI1_KEY_ATTRIBUTES,
    GSI1PK,
    GSI1SK,
    LEDGER_PREFIX,
    NOTIFICATION_PREFIX,
    PENDING_REFUND_GSI_PARTITION,
    PK,
    SK,
    TRANSACTION_COUNT_ATTRIBUTE,
    TTL_ATTRIBUTE,
    TXN_LISTING_PREFIX,
    USERS_COUNTER_KEY,
    USERS_GSI_PARTITION,
    Item,
    StoredItem,
    decode_idempotency,
    decode_ledger_entry,
    decode_notification,
    decode_transaction,
    decode_user,
    due_at,
    encode_identity,
    encode_notification,
    encode_user,
    encode_username,
    get_int,
    get_s,
    idempotency_key,
    identity_key,
    is_paid_deposit,
    iso,
    key,
    key_of,
    n,
    notification_order,
    paid_partition,
    reconcile_partition,
    s,
    time_bound_after,
    transaction_key,
    transaction_pk,
    user_key,
    user_pk,
)
from .dynamodb_queries import BATCH_GET_LIMIT, TableReader, key_tuple

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_dynamodb.type_defs import QueryInputTypeDef, TransactWriteItemTypeDef

__all__ = [
    "TABLE_DEFINITION",
    "TTL_ATTRIBUTE",
    "DynamoDBStore",
    "DynamoDBStoreError",
    "TableNotFound",
    "TransactionTooLarge",
]

# The table's fixed schema; template.yaml mirrors it (tests/template checks they agree).
TABLE_DEFINITION: Final[dict[str, Any]] = {
    "AttributeDefinitions": [
        {"AttributeName": PK, "AttributeType": "S"},
        {"AttributeName": SK, "AttributeType": "S"},
        {"AttributeName": GSI1PK, "AttributeType": "S"},
        {"AttributeName": GSI1SK, "AttributeType": "S"},
    ],
    "KeySchema": [
        {"AttributeName": PK, "KeyType": "HASH"},
        {"AttributeName": SK, "KeyType": "RANGE"},
    ],
    "GlobalSecondaryIndexes": [
        {
            "IndexName": GSI1,
            "KeySchema": [
                {"AttributeName": GSI1PK, "KeyType": "HASH"},
                {"AttributeName": GSI1SK, "KeyType": "RANGE"},
            ],
            "Projection": {"ProjectionType": "ALL"},
        }
    ],
    "BillingMode": "PAY_PER_REQUEST",
}

T = TypeVar("T")

DEFAULT_REGION: Final = "ap-northeast-1"
_PAID_PAGE: Final = BATCH_GET_LIMIT  # index keys per page of iter_paid_deposits: one BatchGetItem each
_TABLE_NAME = re.compile(r"[A-Za-z0-9_.-]{3,255}")
_URL_OPTIONS: Final = frozenset({"endpoint_url", "region", "create_table"})
_BOOLEANS: Final = {"true": True, "1": True, "false": False, "0": False}


class DynamoDBStore:
    """The wallet's storage port on one DynamoDB table (see docs/dynamodb-table.md)."""

    def __init__(self, table_name: str, client: DynamoDBClient, *, create_table: bool = False) -> None:
        """Use ``client`` (a boto3 DynamoDB client, thread-safe) on the table ``table_name``.

        ``create_table`` lets :meth:`ensure_schema` create a missing table: for moto, tests and the
        benchmarks only. On AWS the SAM template owns the table, and a store must never create one
        (a typo in STORE_URL would otherwise make an empty wallet that looks healthy).
        """
        self._table = table_name
        self._client = client
        self._create_table = create_table
        self._reads = TableReader(table_name, client)
        self._writes = TableWriter(table_name, client)

    @classmethod
    def from_url(cls, url: str) -> DynamoDBStore:
        """``dynamodb://TableName?endpoint_url=http://127.0.0.1:PORT&region=ap-northeast-1&create_table=true``.

        ``create_table`` (``true``/``false``, default false) allows :meth:`ensure_schema` to create the
        table when it is missing.
        """
        parts = urlsplit(url)
        if parts.scheme != "dynamodb":
            raise ValueError(f"not a dynamodb:// URL: {url!r}")
        table = parts.netloc or parts.path.lstrip("/")
        if not _TABLE_NAME.fullmatch(table) or (parts.netloc and parts.path not in ("", "/")):
            raise ValueError(f"invalid DynamoDB table name in {url!r}")
        options = parse_qs(parts.query, keep_blank_values=True)
        unknown = set(options) - _URL_OPTIONS
        if unknown:
            raise ValueError(f"unknown dynamodb:// URL options: {sorted(unknown)}")
        create_table = _BOOLEANS.get(options.get("create_table", ["false"])[-1].lower())
        if create_table is None:
            raise ValueError("dynamodb:// URL option create_table must be true or false")
        endpoint = options.get("endpoint_url", [""])[-1] or None
        region = (
            options.get("region", [""])[-1]
            or os.environ.get("AWS_REGION")
            or os.environ.get("AWS_DEFAULT_REGION")
            or DEFAULT_REGION
        )
        config = Config(
            connect_timeout=3,
            read_timeout=10,
            retries={"mode": "standard", "max_attempts": 4},
            tcp_keepalive=True,
        )
        # A session of its own (boto3's default session is not thread-safe; this client is shared by
        # threads), but the service model parsed once per process: a new client then costs ~20 ms.
        botocore_session = botocore.session.get_session()
        botocore_session.register_component("data_loader", _shared_loader())
        client = boto3.session.Session(botocore_session=botocore_session).client(
            "dynamodb", region_name=region, endpoint_url=endpoint, config=config
        )
        return cls(table, client, create_table=create_table)

    @property
    def table_name(self) -> str:
        """The table this store uses."""
        return self._table

    @property
    def client(self) -> DynamoDBClient:
        """The boto3 client (for tests and tooling)."""
        return self._client

    @property
    def creates_table(self) -> bool:
        """Whether :meth:`ensure_schema` may create a missing table (the URL's ``create_table``)."""
        return self._create_table

    # --- schema and health -----------------------------------------------------------------------

    def ensure_schema(self) -> None:
        """Check that the table exists and wait until it is active; create it only if the URL allows.

        Without ``create_table`` a missing table raises :class:`TableNotFound` (naming the table) and
        nothing is created: on AWS the template creates the table, never the code.
        """
        try:
            status = self._client.describe_table(TableName=self._table)["Table"].get("TableStatus")
        except ClientError as exc:
            if error_code(exc) != "ResourceNotFoundException":
                raise
            status = None
        if status == "ACTIVE":
            return
        if status is None and not self._create_table:
            raise TableNotFound(
                f"STORE_URL: DynamoDB table {self._table!r} does not exist in region "
                f"{self._client.meta.region_name}; deploy the stack that creates it "
                "(local and test tables: add ?create_table=true to the dynamodb:// URL)"
            )
        if status is None:
            try:
                self._client.create_table(TableName=self._table, **TABLE_DEFINITION)
            except ClientError as exc:
                # Another process created it first: just wait for it.
                if error_code(exc) != "ResourceInUseException":
                    raise
        self._client.get_waiter("table_exists").wait(
            TableName=self._table, WaiterConfig={"Delay": 1, "MaxAttempts": 120}
        )

    def ping(self) -> bool:
        """True when the table answers a key read (needs only dynamodb:GetItem)."""
        try:
            self._client.get_item(TableName=self._table, Key=key("PING", "PING"))
        except (ClientError, BotoCoreError):
            return False
        return True

    # --- users -----------------------------------------------------------------------------------

    def create_user(self, user: User, identity: str | None = None) -> None:
        """Insert a user, its username uniqueness item, and count it; ``UserExists`` if taken.

        With ``identity``, also its binding item (``IdentityBound`` when it has a user already), in
        the same transaction, and the identity on the user item.
        """

        def taken(what: str) -> Callable[[StoredItem | None], Exception]:
            return lambda _old: UserExists(f"{what} already exists")

        user_item = encode_user(user)
        if identity is not None:
            user_item["identity"] = s(identity)
        username_item = encode_username(user)
        counter: TransactWriteItemTypeDef = {
            "Update": {
                "TableName": self._table,
                "Key": USERS_COUNTER_KEY,
                "UpdateExpression": "ADD #count :one",
                "ExpressionAttributeNames": {"#count": COUNT_ATTRIBUTE},
                "ExpressionAttributeValues": {":one": n(1)},
            }
        }
        self._writes.transact(
            [
                self._writes.put(
                    username_item, RANK_USER, taken(f"username {user.username!r}"), only_new=True
                ),
                self._writes.put(user_item, RANK_USER, taken(f"user {user.user_id!r}"), only_new=True),
                Op(counter, RANK_APPEND, unexpected("users counter"), UPDATE_SIZE_ESTIMATE),
                *(
                    []
                    if identity is None
                    else [
                        self._writes.put(
                            encode_identity(identity, user.user_id),
                            RANK_USER,
                            lambda _old: IdentityBound("the identity already has a user"),
                            only_new=True,
                        )
                    ]
                ),
            ]
        )

    def get_user_by_identity(self, identity: str) -> User | None:
        """The user bound to ``identity`` (its binding item, then the user), or None."""
        binding = self._reads.get(identity_key(identity))
        return None if binding is None else self.get_user(get_s(binding, "user_id"))

    def get_user(self, user_id: str) -> User | None:
        """One user, or None (strongly consistent)."""
        item = self._reads.get(user_key(user_id))
        return None if item is None else decode_user(item)

    def list_users(self, *, page: int = 1, page_size: int = 20, cursor: str | None = None) -> Page[User]:
        """Users by creation order, from the ``USERS`` partition of ``gsi1``; total from a counter item.

        Global secondary indexes are eventually consistent: a user created a moment ago may be missing
        from a page (never from the total, which is read consistently).
        """
        counter = self._reads.get(USERS_COUNTER_KEY)
        total = 0 if counter is None else get_int(counter, COUNT_ATTRIBUTE, 0)
        items, next_cursor = self._reads.page(
            self._reads.users_query(),
            GSI1_KEY_ATTRIBUTES,
            lambda start: get_s(start, GSI1PK) == USERS_GSI_PARTITION,
            page=page,
            page_size=page_size,
            cursor=cursor,
        )
        return Page([decode_user(item) for item in items], total, next_cursor)

    def iter_users(self) -> Iterator[User]:
        """Every user by creation order, re-read consistently page by page (for the audit)."""
        query = self._reads.users_query()
        query["ProjectionExpression"] = "#pk, #sk"
        query["ExpressionAttributeNames"] = {
            **query.get("ExpressionAttributeNames", {}),
            "#pk": PK,
            "#sk": SK,
        }
        for keys in self._reads.query_pages(query):
            found = self._reads.batch_get([key_of(item, BASE_KEY_ATTRIBUTES) for item in keys])
            for item_key in keys:
                item = found.get(key_tuple(item_key))
                if item is not None:
                    yield decode_user(item)

    def close_user(self, user_id: str, now: datetime) -> User:
        """Active -> closed in one conditional update; ``UserNotActive`` or ``UserHasFunds`` otherwise."""
        try:
            response = self._client.update_item(
                TableName=self._table,
                Key=user_key(user_id),
                UpdateExpression="SET #status = :closed, #updated_at = :now",
                ConditionExpression=(
                    "attribute_exists(#pk) AND #status = :active"
                    " AND #balance = :zero AND #held = :zero AND #open = :zero"
                ),
                ExpressionAttributeNames={
                    "#pk": PK,
                    "#status": "status",
                    "#updated_at": "updated_at",
                    "#balance": "balance",
                    "#held": "held",
                    "#open": "open_transactions",
                },
                ExpressionAttributeValues={
                    ":closed": s(UserStatus.CLOSED.value),
                    ":active": s(UserStatus.ACTIVE.value),
                    ":now": s(iso(now)),
                    ":zero": n(0),
                },
                ReturnValues="ALL_NEW",
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ClientError as exc:
            if error_code(exc) != "ConditionalCheckFailedException":
                raise
            old: StoredItem | None = client_response(exc).get("Item") or None
            if old is None or get_s(old, "status") != UserStatus.ACTIVE.value:
                raise UserNotActive(user_id) from None
            raise UserHasFunds(f"user {user_id} still has money or open transactions") from None
        return decode_user(response["Attributes"])

    def reopen_user(self, user_id: str, now: datetime) -> User | None:
        """Closed -> active in one conditional update; None when the user is missing or not closed."""
        try:
            response = self._client.update_item(
                TableName=self._table,
                Key=user_key(user_id),
                UpdateExpression="SET #status = :active, #updated_at = :now",
                ConditionExpression="attribute_exists(#pk) AND #status = :closed",
                ExpressionAttributeNames={"#pk": PK, "#status": "status", "#updated_at": "updated_at"},
                ExpressionAttributeValues={
                    ":closed": s(UserStatus.CLOSED.value),
                    ":active": s(UserStatus.ACTIVE.value),
                    ":now": s(iso(now)),
                },
                ReturnValues="ALL_NEW",
            )
        except ClientError as exc:
            if error_code(exc) != "ConditionalCheckFailedException":
                raise
            return None
        return decode_user(response["Attributes"])

    # --- the atomic write ------------------------------------------------------------------------
    # --- the atomic write ------------------------------------------------------------------------

    def commit(self, write: AtomicWrite) -> None:
        """Apply ``write`` as exactly one ``TransactWriteItems`` (retried only on contention)."""
        ops = self._writes.commit_ops(write)
        if ops:
            self._writes.transact(ops)

    def run(self, reads: Reads, decide: Decide[T]) -> T:
        """Consistent reads, ``decide``, then one conditional ``TransactWriteItems`` (see the port).

        The write's conditions carry what the decision assumed (each transaction's version, the
        user's funds and status), so a stale read ends in ``VersionConflict`` and nothing written.
        """
        return self._write_decision(decide(self._read(reads)))

    def run_guessed(self, reads: Reads, decide: Decide[T], guess: Guess[T]) -> T:
        """The port's ``SpeculativeStore``: ``guess`` as ONE ``TransactWriteItems`` whose conditions are
        its common state (store/dynamodb_guess.py); when one fails, nothing is written and ``decide``
        runs on the deposit's old image that the failure returned (``ALL_OLD``; an absent image is a
        missing transaction), then its write as in :meth:`run`. Only when the deposit's own condition
        held (another item failed: a closed user, a recorded notification) is it read first.
        """
        credit = guess.credit
        failed = self._writes.try_transact(credit_ops(self._writes, credit))
        if not failed:
            return guess.result
        if DEPOSIT_OP in failed and reads == Reads((credit.transaction_id,)):
            old = failed[DEPOSIT_OP]
            found = {} if old is None else {credit.transaction_id: decode_transaction(old)}
            return self._write_decision(decide(Snapshot(found)))
        return self.run(reads, decide)

    def _read(self, reads: Reads) -> Snapshot:
        found: dict[str, Transaction] = {}
        for transaction_id in dict.fromkeys(reads.transaction_ids):
            txn = self.get_transaction(transaction_id)
            if txn is not None:
                found[transaction_id] = txn
        if reads.related:
            for related in {
                t.related_transaction_id for t in list(found.values()) if t.related_transaction_id
            }:
                if related not in found:
                    txn = self.get_transaction(related)
                    if txn is not None:
                        found[related] = txn
        user = None if reads.user_id is None else self.get_user(reads.user_id)
        return Snapshot(found, user)

    def _write_decision(self, decision: Decision[T]) -> T:
        write = decision.write
        if write is not None:
            if write == AtomicWrite(notification=write.notification):
                if write.notification is not None:
                    self.record_notification(write.notification)  # one PutItem when it has no dedupe key
            else:
                self.commit(write)
        return decision.result

    # --- transactions ----------------------------------------------------------------------------

    def get_transaction(self, transaction_id: str) -> Transaction | None:
        """One transaction, or None (strongly consistent)."""
        item = self._reads.get(transaction_key(transaction_id))
        return None if item is None else decode_transaction(item)

    def get_transaction_records(self, transaction_id: str) -> TransactionRecords | None:
        """The transaction's whole partition in one consistent ``Query``: the transaction item, its
        ledger entries and its notification records share the partition key ``TXN#<id>``."""
        query = self._reads.partition_query(transaction_pk(transaction_id), "")
        txn_sort = get_s(transaction_key(transaction_id), SK)
        txn: Transaction | None = None
        ledger: list[LedgerEntry] = []
        notifications: list[NotificationRecord] = []
        for items in self._reads.query_pages(query):
            for item in items:
                sort = get_s(item, SK)
                if sort.startswith(LEDGER_PREFIX):
                    ledger.append(decode_ledger_entry(item))
                elif sort.startswith(NOTIFICATION_PREFIX):
                    notifications.append(decode_notification(item))
                elif sort == txn_sort:
                    txn = decode_transaction(item)
        if txn is None:
            return None
        return TransactionRecords(txn, ledger, sorted(notifications, key=notification_order))

    def list_transactions(
        self, user_id: str, *, page: int = 1, page_size: int = 20, cursor: str | None = None
    ) -> Page[Transaction]:
        """A user's transactions, newest first: one ``Query`` of the listing pointers in the user's
        partition, then one consistent ``BatchGetItem`` of the user (its ``transaction_count`` is the
        total) and the transactions they point at."""
        partition = user_pk(user_id)
        entries, next_cursor = self._reads.page(
            self._reads.partition_query(partition, TXN_LISTING_PREFIX, newest_first=True),
            BASE_KEY_ATTRIBUTES,
            lambda start: get_s(start, PK) == partition and get_s(start, SK).startswith(TXN_LISTING_PREFIX),
            page=page,
            page_size=page_size,
            cursor=cursor,
        )
        # A pointer, or (tables written before pointers) a full copy: either names its transaction.
        ids = [get_s(entry, "transaction_id") for entry in entries]
        found = self._reads.batch_get([user_key(user_id), *(transaction_key(tid) for tid in ids)])
        user = found.get(key_tuple(user_key(user_id)))
        if user is None:
            return Page([], 0)
        total = get_int(user, TRANSACTION_COUNT_ATTRIBUTE, 0)
        items = [found.get(key_tuple(transaction_key(tid))) for tid in ids]
        return Page([decode_transaction(item) for item in items if item is not None], total, next_cursor)

    def get_idempotency(self, user_id: str, key: str) -> IdempotencyRecord | None:
        """The stored idempotency record, expired or not (DynamoDB's TTL purges it eventually)."""
        item = self._reads.get(idempotency_key(user_id, key))
        return None if item is None else decode_idempotency(item)

    def list_ledger(
        self, *, transaction_id: str | None = None, user_id: str | None = None
    ) -> list[LedgerEntry]:
        """Ledger entries of one transaction or one user, oldest first."""
        if transaction_id is not None:
            query = self._reads.partition_query(transaction_pk(transaction_id), LEDGER_PREFIX)
        elif user_id is not None:
            query = self._reads.partition_query(user_pk(user_id), LEDGER_PREFIX)
        else:
            raise ValueError("list_ledger needs transaction_id or user_id")
        entries = [decode_ledger_entry(item) for items in self._reads.query_pages(query) for item in items]
        if transaction_id is not None and user_id is not None:
            entries = [entry for entry in entries if entry.user_id == user_id]
        return entries

    def record_notification(self, record: NotificationRecord) -> None:
        """Append a notification record; one carrying a dedupe key goes through ``commit`` to stay unique."""
        if record.dedupe_key is not None:
            self.commit(AtomicWrite(notification=record))
            return
        item = encode_notification(record)
        check_item_size(item)
        # Unconditional: the id is unique, and a retry after a lost response rewrites the same record.
        self._client.put_item(TableName=self._table, Item=item)

    def list_notifications(self, transaction_id: str) -> list[NotificationRecord]:
        """Notification records of one transaction, oldest first."""
        query = self._reads.partition_query(transaction_pk(transaction_id), NOTIFICATION_PREFIX)
        records = [decode_notification(item) for items in self._reads.query_pages(query) for item in items]
        return sorted(records, key=notification_order)

    def list_awaiting_payment(self, *, due_before: datetime, limit: int = 100) -> list[Transaction]:
        """Deposits awaiting payment due for a check at ``due_before`` (inclusive), most overdue first."""
        return self._list_reconcilable(AWAITING_GSI_PARTITION, due_before, limit)

    def list_pending_refunds(self, *, due_before: datetime, limit: int = 100) -> list[Transaction]:
        """Refunds still pending due for a check at ``due_before`` (inclusive), most overdue first."""
        return self._list_reconcilable(PENDING_REFUND_GSI_PARTITION, due_before, limit)

    def _list_reconcilable(self, partition: str, due_before: datetime, limit: int) -> list[Transaction]:
        """Transactions of a sparse reconciliation partition of ``gsi1`` due by ``due_before``.

        The partition sorts by due time (``next_check_at``, else ``updated_at``) then id, the SQL
        adapter's order. The index is eventually consistent, so the candidates are re-read
        consistently and those that moved on meanwhile (another status, a later due time) are dropped.
        """
        if limit <= 0:
            return []
        query: QueryInputTypeDef = {
            "TableName": self._table,
            "IndexName": GSI1,
            "KeyConditionExpression": "#gpk = :partition AND #gsk < :bound",
            "ExpressionAttributeNames": {"#gpk": GSI1PK, "#gsk": GSI1SK, "#pk": PK, "#sk": SK},
            "ExpressionAttributeValues": {
                ":partition": s(partition),
                ":bound": s(time_bound_after(due_before)),
            },
            "ProjectionExpression": "#pk, #sk",
            "Limit": limit,
        }
        keys: list[Item] = []
        for items in self._reads.query_pages(query):
            keys.extend(key_of(item, BASE_KEY_ATTRIBUTES) for item in items)
            if len(keys) >= limit:
                break
        found = self._reads.batch_get(keys[:limit])
        result: list[Transaction] = []
        for item_key in keys[:limit]:
            item = found.get(key_tuple(item_key))
            if item is None:
                continue
            txn = decode_transaction(item)
            if reconcile_partition(txn) == partition and due_at(txn) <= due_before:
                result.append(txn)
        return result

    def iter_paid_deposits(self, *, paid_from: datetime, paid_to: datetime) -> Iterator[Transaction]:
        """Paid, partially refunded or refunded deposits with ``paid_at`` in [paid_from, paid_to).

        One ``gsi1`` partition per UTC day of payment (``PAID#<yyyy-mm-dd>``), queried day by day in
        key order (no Scan), keys only; each page is re-read with one consistent ``BatchGetItem`` and
        what moved on meanwhile is dropped. Yields by payment time, then id.
        """
        if paid_from >= paid_to:
            return
        # A BETWEEN bound, inclusive: no key equals iso(paid_to) itself (every key ends in #<id>),
        # and a key of paid_to is above it, so BETWEEN is exactly [paid_from, paid_to).
        low, high = iso(paid_from), iso(paid_to)
        day = paid_from.astimezone(UTC).date()
        last_day = (paid_to.astimezone(UTC) - timedelta(microseconds=1)).date()
        while day <= last_day:
            query: QueryInputTypeDef = {
                "TableName": self._table,
                "IndexName": GSI1,
                "KeyConditionExpression": "#gpk = :partition AND #gsk BETWEEN :low AND :high",
                "ExpressionAttributeNames": {"#gpk": GSI1PK, "#gsk": GSI1SK, "#pk": PK, "#sk": SK},
                "ExpressionAttributeValues": {
                    ":partition": s(paid_partition(day)),
                    ":low": s(low),
                    ":high": s(high),
                },
                "ProjectionExpression": "#pk, #sk",
                "Limit": _PAID_PAGE,
            }
            for page in self._reads.query_pages(query):
                keys = [key_of(item, BASE_KEY_ATTRIBUTES) for item in page]
                found = self._reads.batch_get(keys)
                for item_key in keys:
                    item = found.get(key_tuple(item_key))
                    if item is None:
                        continue
                    txn = decode_transaction(item)
                    paid = txn.paid_at
                    if is_paid_deposit(txn) and paid is not None and paid_from <= paid < paid_to:
                        yield txn
            day += timedelta(days=1)

    # --- health ----------------------------------------------------------------------------------

    def probe_write(self) -> None:
        """Overwrite the one ``HEALTH`` item (PutItem; its IAM grant can be limited to that partition key)."""
        self._client.put_item(
            TableName=self._table,
            Item={**key("HEALTH", "HEALTH"), "written_at": s(iso(datetime.now(UTC)))},
        )

    # --- active users ----------------------------------------------------------------------------

    # --- e-invoices (issue 13) -------------------------------------------------------------------

    def set_invoice_settings(self, user_id: str, settings: Mapping[str, str], now: datetime) -> User | None:
        """Replace a user's e-invoice buyer settings in one conditional update; None when missing."""
        text = encode_invoice_settings(dict(settings))
        names = {"#pk": PK, "#settings": INVOICE_SETTINGS_ATTRIBUTE, "#updated_at": "updated_at"}
        values: dict[str, Any] = {":now": s(iso(now))}
        if text is None:
            expression = "SET #updated_at = :now REMOVE #settings"
        else:
            expression = "SET #settings = :settings, #updated_at = :now"
            values[":settings"] = s(text)
        try:
            response = self._client.update_item(
                TableName=self._table,
                Key=user_key(user_id),
                UpdateExpression=expression,
                ConditionExpression="attribute_exists(#pk)",
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=values,
                ReturnValues="ALL_NEW",
            )
        except ClientError as exc:
            if error_code(exc) != "ConditionalCheckFailedException":
                raise
            return None
        return decode_user(response["Attributes"])

    def list_invoices_due(self, *, due_before: datetime, limit: int = 100) -> list[Transaction]:
        """Deposits with e-invoice work due by ``due_before``, most overdue first (the queue partition).

        The markers are read with a strongly consistent key query, then the deposits themselves; one
        whose work moved on meanwhile is dropped (the deposit, not the marker, is the truth).
        """
        if limit <= 0:
            return []
        query: QueryInputTypeDef = {
            "TableName": self._table,
            "KeyConditionExpression": "#pk = :pk",
            "ExpressionAttributeNames": {"#pk": PK},
            "ExpressionAttributeValues": {":pk": s(INVOICE_QUEUE_PK)},
            "ConsistentRead": True,
        }
        due: list[tuple[datetime, str]] = []
        for items in self._reads.query_pages(query):
            for item in items:
                parsed = marker_due(item)
                if parsed is not None and parsed[0] <= due_before:
                    due.append(parsed)
        due.sort()
        keys = [transaction_key(tid) for _, tid in due[:limit]]
        found = self._reads.batch_get(keys)
        result: list[Transaction] = []
        for item_key in keys:
            stored = found.get(key_tuple(item_key))
            if stored is None:
                continue
            txn = decode_transaction(stored)
            moment = invoice_due(txn)
            if moment is not None and moment <= due_before:
                result.append(txn)
        return result

    def list_active_users(
        self, *, page: int = 1, page_size: int = 20, cursor: str | None = None
    ) -> Page[User]:
        """Users that are not closed, by creation order; ``total`` from a COUNT query of the users index.

        The COUNT reads the whole ``USERS`` partition of ``gsi1`` (keys and status): an operator's
        listing, not a hot path. Cursors are interchangeable with :meth:`list_users`.
        """
        query = self._reads.users_query()
        query["FilterExpression"] = "#status <> :closed"
        query["ExpressionAttributeNames"] = {**query.get("ExpressionAttributeNames", {}), "#status": "status"}
        query["ExpressionAttributeValues"] = {
            **query.get("ExpressionAttributeValues", {}),
            ":closed": s(UserStatus.CLOSED.value),
        }
        items, next_cursor = self._reads.page(
            query,
            GSI1_KEY_ATTRIBUTES,
            lambda start: get_s(start, GSI1PK) == USERS_GSI_PARTITION,
            page=page,
            page_size=page_size,
            cursor=cursor,
        )
        total = 0
        counting: QueryInputTypeDef = {**query, "Select": "COUNT"}
        while True:
            response = self._client.query(**counting)
            total += int(response.get("Count", 0))
            last = response.get("LastEvaluatedKey")
            if last is None:
                break
            counting["ExclusiveStartKey"] = dict(last)
        return Page([decode_user(item) for item in items], total, next_cursor)


# --- module helpers ------------------------------------------------------------------------------


@functools.cache
def _shared_loader() -> Loader:
    # The loader of a default botocore session, so AWS_DATA_PATH and the like are honoured.
    loader: Loader = botocore.session.get_session().get_component("data_loader")
    return loader
