"""The DynamoDB adapter of the wallet's storage port: one table, boto3's low-level client.

Every state change is one ``TransactWriteItems`` whose conditions are the port's compare-and-set;
when DynamoDB cancels it, the cancellation reasons (one per item, with the item's old image thanks to
``ReturnValuesOnConditionCheckFailure=ALL_OLD``) are mapped to the port's exact conflict, so a
conflict costs no extra read. The item layout lives in :mod:`.dynamodb_items` and docs/dynamodb-table.md.
"""

from __future__ import annotations

import functools
import os
import random
import re
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Final, NamedTuple
from urllib.parse import parse_qs, urlsplit

import boto3
import botocore.session
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError
from botocore.loaders import Loader

from ..wallet.errors import InvalidRequest
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
    DuplicateNotification,
    IdempotencyKeyReused,
    IdentityBound,
    InsufficientFunds,
    UserDelta,
    UserExists,
    UserHasFunds,
    UserNotActive,
    VersionConflict,
)
from . import StoreNotReady
from .dynamodb_invoices import (
    INVOICE_QUEUE_PK,
    INVOICE_SETTINGS_ATTRIBUTE,
    encode_invoice_settings,
    invoice_marker,
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
    decode_cursor,
    decode_idempotency,
    decode_ledger_entry,
    decode_notification,
    decode_transaction,
    decode_user,
    due_at,
    encode_cursor,
    encode_dedupe,
    encode_idempotency,
    encode_identity,
    encode_ledger_entries,
    encode_notification,
    encode_transaction,
    encode_transaction_listing,
    encode_user,
    encode_username,
    get_int,
    get_s,
    idempotency_key,
    identity_key,
    is_paid_deposit,
    iso,
    item_size,
    key,
    key_of,
    n,
    paid_partition,
    reconcile_partition,
    s,
    time_bound_after,
    transaction_key,
    transaction_pk,
    user_key,
    user_pk,
)

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_dynamodb.type_defs import (
        KeysAndAttributesUnionTypeDef,
        QueryInputTypeDef,
        TransactWriteItemTypeDef,
    )

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

DEFAULT_REGION: Final = "ap-northeast-1"
MAX_TRANSACTION_ITEMS: Final = 100  # DynamoDB's TransactWriteItems limits
MAX_TRANSACTION_BYTES: Final = 4 * 1024 * 1024
MAX_ITEM_BYTES: Final = 400 * 1024
_UPDATE_SIZE_ESTIMATE: Final = 1024  # an updated user item; its real size is a few hundred bytes
_BATCH_GET_LIMIT: Final = 100
_PAID_PAGE: Final = _BATCH_GET_LIMIT  # index keys per page of iter_paid_deposits: one BatchGetItem each
_MAX_ATTEMPTS: Final = 4  # own retries of transactions cancelled by contention (botocore's are separate)
_BASE_DELAY: Final = 0.025
# Cancellation reasons that say "try again", not "your condition is false".
_RETRYABLE_REASONS: Final = frozenset(
    {"TransactionConflict", "ThrottlingError", "ProvisionedThroughputExceeded"}
)
_TABLE_NAME = re.compile(r"[A-Za-z0-9_.-]{3,255}")
_URL_OPTIONS: Final = frozenset({"endpoint_url", "region", "create_table"})
_BOOLEANS: Final = {"true": True, "1": True, "false": False, "0": False}

# Which failure wins when several conditions fail at once: the most specific answer first, so that a
# retried notification is "duplicate" (not "version conflict") and a retried request with an
# Idempotency-Key finds its first result (not "insufficient funds" because the first one spent it).
_RANK_DEDUPE: Final = 0
_RANK_IDEMPOTENCY: Final = 1
_RANK_VERSION: Final = 2
_RANK_USER: Final = 3
_RANK_APPEND: Final = 4


class DynamoDBStoreError(RuntimeError):
    """A fault, not a business outcome: an unexpected cancellation, or contention that outlived retries."""


class TableNotFound(StoreNotReady):
    """The table does not exist and this store may not create it (``create_table`` is off)."""


class TransactionTooLarge(ValueError):
    """The write exceeds DynamoDB's transaction limits (100 items, 4 MB; 400 KB per item)."""


class _Op(NamedTuple):
    """One item of a ``TransactWriteItems`` call, and what its failed condition means.

    A NamedTuple, not a dataclass: cheaper to define at the notification Lambda's cold start.
    """

    request: TransactWriteItemTypeDef
    rank: int
    conflict: Callable[[StoredItem | None], Exception]
    size: int


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
            if _error_code(exc) != "ResourceNotFoundException":
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
                if _error_code(exc) != "ResourceInUseException":
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
        self._transact(
            [
                self._put(username_item, _RANK_USER, taken(f"username {user.username!r}"), only_new=True),
                self._put(user_item, _RANK_USER, taken(f"user {user.user_id!r}"), only_new=True),
                _Op(counter, _RANK_APPEND, _unexpected("users counter"), _UPDATE_SIZE_ESTIMATE),
                *(
                    []
                    if identity is None
                    else [
                        self._put(
                            encode_identity(identity, user.user_id),
                            _RANK_USER,
                            lambda _old: IdentityBound("the identity already has a user"),
                            only_new=True,
                        )
                    ]
                ),
            ]
        )

    def get_user_by_identity(self, identity: str) -> User | None:
        """The user bound to ``identity`` (its binding item, then the user), or None."""
        binding = self._get(identity_key(identity))
        return None if binding is None else self.get_user(get_s(binding, "user_id"))

    def get_user(self, user_id: str) -> User | None:
        """One user, or None (strongly consistent)."""
        item = self._get(user_key(user_id))
        return None if item is None else decode_user(item)

    def list_users(self, *, page: int = 1, page_size: int = 20, cursor: str | None = None) -> Page[User]:
        """Users by creation order, from the ``USERS`` partition of ``gsi1``; total from a counter item.

        Global secondary indexes are eventually consistent: a user created a moment ago may be missing
        from a page (never from the total, which is read consistently).
        """
        counter = self._get(USERS_COUNTER_KEY)
        total = 0 if counter is None else get_int(counter, COUNT_ATTRIBUTE, 0)
        items, next_cursor = self._page(
            self._users_query(),
            GSI1_KEY_ATTRIBUTES,
            lambda start: get_s(start, GSI1PK) == USERS_GSI_PARTITION,
            page=page,
            page_size=page_size,
            cursor=cursor,
        )
        return Page([decode_user(item) for item in items], total, next_cursor)

    def iter_users(self) -> Iterator[User]:
        """Every user by creation order, re-read consistently page by page (for the audit)."""
        query = self._users_query()
        query["ProjectionExpression"] = "#pk, #sk"
        query["ExpressionAttributeNames"] = {
            **query.get("ExpressionAttributeNames", {}),
            "#pk": PK,
            "#sk": SK,
        }
        for keys in self._query_pages(query):
            found = self._batch_get([key_of(item, BASE_KEY_ATTRIBUTES) for item in keys])
            for item_key in keys:
                item = found.get(_key_tuple(item_key))
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
            if _error_code(exc) != "ConditionalCheckFailedException":
                raise
            old: StoredItem | None = _response(exc).get("Item") or None
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
            if _error_code(exc) != "ConditionalCheckFailedException":
                raise
            return None
        return decode_user(response["Attributes"])

    # --- the atomic write ------------------------------------------------------------------------

    def commit(self, write: AtomicWrite) -> None:
        """Apply ``write`` as exactly one ``TransactWriteItems`` (retried only on contention)."""
        ops = self._commit_ops(write)
        if ops:
            self._transact(ops)

    def _commit_ops(self, write: AtomicWrite) -> list[_Op]:
        # Items are listed in the order of _RANK_*: should DynamoDB report only the first failed
        # condition, it is then also the most specific one.
        ops: list[_Op] = []
        notification = write.notification
        if notification is not None and notification.dedupe_key is not None:
            dedupe = notification.dedupe_key
            ops.append(
                self._put(
                    encode_dedupe(notification, dedupe),
                    _RANK_DEDUPE,
                    lambda _old: DuplicateNotification(dedupe),
                    only_new=True,
                )
            )
        if write.idempotency is not None:
            ops.append(self._idempotency_op(write.idempotency))
        seen: set[str] = set()
        for put in write.transactions:
            txn = put.new
            if txn.version != put.expected_version + 1:
                raise ValueError(f"transaction {txn.transaction_id}: version must be expected_version + 1")
            if txn.transaction_id in seen:
                raise ValueError(f"transaction {txn.transaction_id} written twice in one commit")
            seen.add(txn.transaction_id)
            ops.append(self._transaction_op(txn, put.expected_version))
            # The listing copy follows the item it copies; the item's condition guards both.
            listing = encode_transaction_listing(txn)
            ops.append(self._put(listing, _RANK_APPEND, _unexpected("transaction listing")))
            ops.extend(self._invoice_marker_ops(txn))
        ops.extend(self._user_ops(write))
        for entry in write.ledger:
            for item in encode_ledger_entries(entry):
                ops.append(self._put(item, _RANK_APPEND, _unexpected("ledger entry"), only_new=True))
        if notification is not None:
            record = encode_notification(notification)
            ops.append(self._put(record, _RANK_APPEND, _unexpected("notification record"), only_new=True))
        return ops

    def _invoice_marker_ops(self, txn: Transaction) -> list[_Op]:
        # The invoice job's queue marker moves with the deposit, in the same transaction (issue 13).
        change = invoice_marker(txn)
        if change is None:
            return []
        action, item = change
        if action == "put":
            return [self._put(item, _RANK_APPEND, _unexpected("invoice queue marker"))]
        request: TransactWriteItemTypeDef = {"Delete": {"TableName": self._table, "Key": item}}
        return [_Op(request, _RANK_APPEND, _unexpected("invoice queue marker"), item_size(item))]

    def _idempotency_op(self, record: IdempotencyRecord) -> _Op:
        item = encode_idempotency(record)

        def reused(old: StoredItem | None) -> Exception:
            return IdempotencyKeyReused(record.key, None if old is None else decode_idempotency(old))

        # An expired record may be replaced: the same key is then a new request (Stripe's rule).
        return self._put(
            item,
            _RANK_IDEMPOTENCY,
            reused,
            condition="attribute_not_exists(#pk) OR #expires_at <= :now",
            names={"#pk": PK, "#expires_at": "expires_at"},
            values={":now": s(iso(record.created_at))},
        )

    def _transaction_op(self, txn: Transaction, expected_version: int) -> _Op:
        def conflict(old: StoredItem | None) -> Exception:
            return VersionConflict(txn.transaction_id, None if old is None else decode_transaction(old))

        item = encode_transaction(txn)
        if expected_version == 0:
            return self._put(item, _RANK_VERSION, conflict, only_new=True)
        return self._put(
            item,
            _RANK_VERSION,
            conflict,
            condition="#version = :expected",
            names={"#version": "version"},
            values={":expected": n(expected_version)},
        )

    def _user_ops(self, write: AtomicWrite) -> list[_Op]:
        # One operation per user (DynamoDB refuses two on one item): the delta, and the count of the
        # user's new transactions that keeps list_transactions' total without a COUNT query.
        new_transactions = Counter(put.new.user_id for put in write.transactions if put.expected_version == 0)
        delta = write.user_delta
        user_ids = dict.fromkeys([*([delta.user_id] if delta else []), *new_transactions])
        moments = [put.new.updated_at for put in write.transactions]
        moments += [entry.created_at for entry in write.ledger]
        updated_at = iso(max(moments)) if moments else None
        return [
            self._user_op(
                user_id,
                delta if delta is not None and delta.user_id == user_id else None,
                new_transactions.get(user_id, 0),
                updated_at,
            )
            for user_id in user_ids
        ]

    def _user_op(
        self, user_id: str, delta: UserDelta | None, new_transactions: int, updated_at: str | None
    ) -> _Op:
        names: dict[str, str] = {"#pk": PK}
        values: dict[str, Any] = {}
        adds: list[str] = []
        conditions = ["attribute_exists(#pk)"]  # ADD would otherwise create a stub user
        changes = (
            []
            if delta is None
            else [
                ("balance", delta.delta_balance),
                ("held", delta.delta_held),
                ("open_transactions", delta.delta_open),
            ]
        )
        for attribute, change in changes:
            if change == 0:
                continue
            names[f"#{attribute}"] = attribute
            values[f":{attribute}"] = n(change)
            adds.append(f"#{attribute} :{attribute}")
            if change < 0:
                # Condition expressions have no arithmetic: "x + d >= 0" is written "x >= -d".
                values[f":min_{attribute}"] = n(-change)
                conditions.append(f"#{attribute} >= :min_{attribute}")
        require_active = delta is not None and delta.require_active
        if require_active:
            names["#status"] = "status"
            values[":active"] = s(UserStatus.ACTIVE.value)
            conditions.append("#status = :active")
        if new_transactions:
            names["#count"] = TRANSACTION_COUNT_ATTRIBUTE
            values[":count"] = n(new_transactions)
            adds.append("#count :count")

        def conflict(old: StoredItem | None) -> Exception:
            if old is None or (require_active and get_s(old, "status") != UserStatus.ACTIVE.value):
                return UserNotActive(user_id)
            return InsufficientFunds(user_id)

        condition = " AND ".join(conditions)
        request: TransactWriteItemTypeDef
        if not adds:
            # Nothing to change, only a precondition (e.g. "the user is active").
            request = {
                "ConditionCheck": {
                    "TableName": self._table,
                    "Key": user_key(user_id),
                    "ConditionExpression": condition,
                    "ExpressionAttributeNames": names,
                    "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
                }
            }
            if values:
                request["ConditionCheck"]["ExpressionAttributeValues"] = values
            return _Op(request, _RANK_USER, conflict, _UPDATE_SIZE_ESTIMATE)
        expression = "ADD " + ", ".join(adds)
        if updated_at is not None:
            names["#updated_at"] = "updated_at"
            values[":updated_at"] = s(updated_at)
            expression += " SET #updated_at = :updated_at"
        request = {
            "Update": {
                "TableName": self._table,
                "Key": user_key(user_id),
                "UpdateExpression": expression,
                "ConditionExpression": condition,
                "ExpressionAttributeNames": names,
                "ExpressionAttributeValues": values,
                "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
            }
        }
        return _Op(request, _RANK_USER, conflict, _UPDATE_SIZE_ESTIMATE)

    def _put(
        self,
        item: Item,
        rank: int,
        conflict: Callable[[StoredItem | None], Exception],
        *,
        only_new: bool = False,
        condition: str | None = None,
        names: Mapping[str, str] | None = None,
        values: Mapping[str, Any] | None = None,
    ) -> _Op:
        if only_new:
            condition, names = "attribute_not_exists(#pk)", {"#pk": PK}
        request: TransactWriteItemTypeDef = {"Put": {"TableName": self._table, "Item": item}}
        if condition is not None:
            request["Put"]["ConditionExpression"] = condition
            request["Put"]["ReturnValuesOnConditionCheckFailure"] = "ALL_OLD"
        if names:
            request["Put"]["ExpressionAttributeNames"] = names
        if values:
            request["Put"]["ExpressionAttributeValues"] = values
        return _Op(request, rank, conflict, item_size(item))

    def _transact(self, ops: Sequence[_Op]) -> None:
        _check_limits(ops)
        items = [op.request for op in ops]
        for attempt in range(1, _MAX_ATTEMPTS + 1):
            try:
                # A token per attempt: botocore's own retries of this call (lost response, 5xx) reuse it,
                # so DynamoDB answers them idempotently instead of failing our own conditions.
                self._client.transact_write_items(TransactItems=items, ClientRequestToken=uuid.uuid4().hex)
                return
            except ClientError as exc:
                if _error_code(exc) != "TransactionCanceledException":
                    raise
                reasons: list[Mapping[str, Any]] = list(_response(exc).get("CancellationReasons") or [])
                if len(reasons) != len(ops):
                    raise DynamoDBStoreError(f"transaction cancelled without item reasons: {exc}") from exc
                failed = [
                    (op, reason)
                    for op, reason in zip(ops, reasons, strict=True)
                    if reason.get("Code") == "ConditionalCheckFailed"
                ]
                if failed:
                    op, reason = min(failed, key=lambda pair: pair[0].rank)
                    raise op.conflict(reason.get("Item") or None) from None
                codes = {str(reason.get("Code")) for reason in reasons} - {"None"}
                if not codes <= _RETRYABLE_REASONS or attempt == _MAX_ATTEMPTS:
                    raise DynamoDBStoreError(f"transaction cancelled: {sorted(codes)}") from exc
            # Full jitter: concurrent writers of one item must not retry in lockstep.
            time.sleep(random.uniform(0, _BASE_DELAY * 2**attempt))  # noqa: S311 - jitter, not security

    # --- transactions ----------------------------------------------------------------------------

    def get_transaction(self, transaction_id: str) -> Transaction | None:
        """One transaction, or None (strongly consistent)."""
        item = self._get(transaction_key(transaction_id))
        return None if item is None else decode_transaction(item)

    def list_transactions(
        self, user_id: str, *, page: int = 1, page_size: int = 20, cursor: str | None = None
    ) -> Page[Transaction]:
        """A user's transactions, newest first, from the copies in the user's partition."""
        user = self._get(user_key(user_id))
        if user is None:
            return Page([], 0)
        total = get_int(user, TRANSACTION_COUNT_ATTRIBUTE, 0)
        partition = user_pk(user_id)
        items, next_cursor = self._page(
            self._partition_query(partition, TXN_LISTING_PREFIX, newest_first=True),
            BASE_KEY_ATTRIBUTES,
            lambda start: get_s(start, PK) == partition and get_s(start, SK).startswith(TXN_LISTING_PREFIX),
            page=page,
            page_size=page_size,
            cursor=cursor,
        )
        return Page([decode_transaction(item) for item in items], total, next_cursor)

    def get_idempotency(self, user_id: str, key: str) -> IdempotencyRecord | None:
        """The stored idempotency record, expired or not (DynamoDB's TTL purges it eventually)."""
        item = self._get(idempotency_key(user_id, key))
        return None if item is None else decode_idempotency(item)

    def list_ledger(
        self, *, transaction_id: str | None = None, user_id: str | None = None
    ) -> list[LedgerEntry]:
        """Ledger entries of one transaction or one user, oldest first."""
        if transaction_id is not None:
            query = self._partition_query(transaction_pk(transaction_id), LEDGER_PREFIX)
        elif user_id is not None:
            query = self._partition_query(user_pk(user_id), LEDGER_PREFIX)
        else:
            raise ValueError("list_ledger needs transaction_id or user_id")
        entries = [decode_ledger_entry(item) for items in self._query_pages(query) for item in items]
        if transaction_id is not None and user_id is not None:
            entries = [entry for entry in entries if entry.user_id == user_id]
        return entries

    def record_notification(self, record: NotificationRecord) -> None:
        """Append a notification record; one carrying a dedupe key goes through ``commit`` to stay unique."""
        if record.dedupe_key is not None:
            self.commit(AtomicWrite(notification=record))
            return
        item = encode_notification(record)
        _check_item_size(item)
        # Unconditional: the id is unique, and a retry after a lost response rewrites the same record.
        self._client.put_item(TableName=self._table, Item=item)

    def list_notifications(self, transaction_id: str) -> list[NotificationRecord]:
        """Notification records of one transaction, oldest first."""
        query = self._partition_query(transaction_pk(transaction_id), NOTIFICATION_PREFIX)
        return [decode_notification(item) for items in self._query_pages(query) for item in items]

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
        for items in self._query_pages(query):
            keys.extend(key_of(item, BASE_KEY_ATTRIBUTES) for item in items)
            if len(keys) >= limit:
                break
        found = self._batch_get(keys[:limit])
        result: list[Transaction] = []
        for item_key in keys[:limit]:
            item = found.get(_key_tuple(item_key))
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
            for page in self._query_pages(query):
                keys = [key_of(item, BASE_KEY_ATTRIBUTES) for item in page]
                found = self._batch_get(keys)
                for item_key in keys:
                    item = found.get(_key_tuple(item_key))
                    if item is None:
                        continue
                    txn = decode_transaction(item)
                    paid = txn.paid_at
                    if is_paid_deposit(txn) and paid is not None and paid_from <= paid < paid_to:
                        yield txn
            day += timedelta(days=1)

    # --- reading helpers -------------------------------------------------------------------------

    def _get(self, item_key: Item) -> StoredItem | None:
        response = self._client.get_item(TableName=self._table, Key=item_key, ConsistentRead=True)
        return response.get("Item")

    def _users_query(self) -> QueryInputTypeDef:
        # GSI queries cannot be strongly consistent (DynamoDB refuses ConsistentRead on a GSI).
        return {
            "TableName": self._table,
            "IndexName": GSI1,
            "KeyConditionExpression": "#gpk = :users",
            "ExpressionAttributeNames": {"#gpk": GSI1PK},
            "ExpressionAttributeValues": {":users": s(USERS_GSI_PARTITION)},
        }

    def _partition_query(self, pk: str, prefix: str, *, newest_first: bool = False) -> QueryInputTypeDef:
        return {
            "TableName": self._table,
            "KeyConditionExpression": "#pk = :pk AND begins_with(#sk, :prefix)",
            "ExpressionAttributeNames": {"#pk": PK, "#sk": SK},
            "ExpressionAttributeValues": {":pk": s(pk), ":prefix": s(prefix)},
            "ConsistentRead": True,
            "ScanIndexForward": not newest_first,
        }

    def _query_pages(self, query: QueryInputTypeDef) -> Iterator[Sequence[StoredItem]]:
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

    def _page(
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
                raise InvalidRequest("invalid cursor")
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

    def _batch_get(self, keys: Sequence[Item]) -> dict[tuple[str, str], StoredItem]:
        """Consistent reads of many keys, following ``UnprocessedKeys`` with backoff."""
        found: dict[tuple[str, str], StoredItem] = {}
        unique = list({_key_tuple(item_key): item_key for item_key in keys}.values())
        for offset in range(0, len(unique), _BATCH_GET_LIMIT):
            pending: KeysAndAttributesUnionTypeDef | None = {
                "Keys": unique[offset : offset + _BATCH_GET_LIMIT],
                "ConsistentRead": True,
            }
            attempt = 0
            while pending is not None:
                response = self._client.batch_get_item(RequestItems={self._table: pending})
                for item in response.get("Responses", {}).get(self._table, []):
                    found[_key_tuple(item)] = item
                pending = response.get("UnprocessedKeys", {}).get(self._table) or None
                if pending is not None:
                    attempt += 1
                    if attempt > 8:
                        raise DynamoDBStoreError("BatchGetItem kept returning unprocessed keys")
                    time.sleep(random.uniform(0, _BASE_DELAY * 2**attempt))  # noqa: S311 - jitter
        return found

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
            if _error_code(exc) != "ConditionalCheckFailedException":
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
        for items in self._query_pages(query):
            for item in items:
                parsed = marker_due(item)
                if parsed is not None and parsed[0] <= due_before:
                    due.append(parsed)
        due.sort()
        keys = [transaction_key(tid) for _, tid in due[:limit]]
        found = self._batch_get(keys)
        result: list[Transaction] = []
        for item_key in keys:
            stored = found.get(_key_tuple(item_key))
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
        query = self._users_query()
        query["FilterExpression"] = "#status <> :closed"
        query["ExpressionAttributeNames"] = {**query.get("ExpressionAttributeNames", {}), "#status": "status"}
        query["ExpressionAttributeValues"] = {
            **query.get("ExpressionAttributeValues", {}),
            ":closed": s(UserStatus.CLOSED.value),
        }
        items, next_cursor = self._page(
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


def _error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _response(exc: ClientError) -> Mapping[str, Any]:
    # The stubs type ClientError.response narrowly; modeled fields (Item, CancellationReasons) are there.
    response: Mapping[str, Any] = exc.response
    return response


def _key_tuple(item: StoredItem) -> tuple[str, str]:
    return get_s(item, PK), get_s(item, SK)


def _unexpected(what: str) -> Callable[[StoredItem | None], Exception]:
    return lambda _old: DynamoDBStoreError(f"{what} already exists: an id was reused")


def _check_item_size(item: Item) -> None:
    size = item_size(item)
    if size > MAX_ITEM_BYTES:
        raise TransactionTooLarge(f"item of about {size} bytes exceeds DynamoDB's 400 KB item limit")


def _check_limits(ops: Sequence[_Op]) -> None:
    if len(ops) > MAX_TRANSACTION_ITEMS:
        raise TransactionTooLarge(
            f"{len(ops)} items exceed DynamoDB's {MAX_TRANSACTION_ITEMS}-item transaction limit"
            " (each transaction and each ledger entry is written twice)"
        )
    for op in ops:
        if op.size > MAX_ITEM_BYTES:
            raise TransactionTooLarge(f"item of about {op.size} bytes exceeds DynamoDB's 400 KB item limit")
    total = sum(op.size for op in ops)
    if total > MAX_TRANSACTION_BYTES:
        raise TransactionTooLarge(f"about {total} bytes exceed DynamoDB's 4 MB transaction limit")
