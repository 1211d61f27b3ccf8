"""The DynamoDB adapter's atomic write: a port ``AtomicWrite`` as exactly one ``TransactWriteItems``.

Every item carries its condition (the port's compare-and-set) and what a failure of that condition
means; when DynamoDB cancels the transaction, the cancellation reasons (one per item, with the item's
old image thanks to ``ReturnValuesOnConditionCheckFailure=ALL_OLD``) are mapped to the port's exact
conflict, so a conflict costs no extra read.
"""

from __future__ import annotations

import random
import time
import uuid
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Final, NamedTuple

from botocore.exceptions import ClientError

from ..wallet.models import IdempotencyRecord, Transaction, UserStatus
from ..wallet.port import (
    AtomicWrite,
    DuplicateNotification,
    IdempotencyKeyReused,
    InsufficientFunds,
    UserDelta,
    UserNotActive,
    VersionConflict,
)
from .dynamodb_errors import DynamoDBStoreError, TransactionTooLarge, client_response, error_code
from .dynamodb_invoices import invoice_marker
from .dynamodb_items import (
    PK,
    TRANSACTION_COUNT_ATTRIBUTE,
    Item,
    StoredItem,
    decode_idempotency,
    decode_transaction,
    encode_dedupe,
    encode_idempotency,
    encode_ledger_entries,
    encode_notification,
    encode_transaction,
    encode_transaction_listing,
    get_s,
    iso,
    item_size,
    n,
    s,
    user_key,
)

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_dynamodb.type_defs import TransactWriteItemTypeDef

__all__ = [
    "MAX_ITEM_BYTES",
    "MAX_TRANSACTION_BYTES",
    "MAX_TRANSACTION_ITEMS",
    "RANK_APPEND",
    "RANK_USER",
    "UPDATE_SIZE_ESTIMATE",
    "Op",
    "TableWriter",
    "check_item_size",
    "unexpected",
]

MAX_TRANSACTION_ITEMS: Final = 100  # DynamoDB's TransactWriteItems limits
MAX_TRANSACTION_BYTES: Final = 4 * 1024 * 1024
MAX_ITEM_BYTES: Final = 400 * 1024
UPDATE_SIZE_ESTIMATE: Final = 1024  # an updated user item; its real size is a few hundred bytes
_MAX_ATTEMPTS: Final = 4  # own retries of transactions cancelled by contention (botocore's are separate)
_BASE_DELAY: Final = 0.025
# Cancellation reasons that say "try again", not "your condition is false".
_RETRYABLE_REASONS: Final = frozenset(
    {"TransactionConflict", "ThrottlingError", "ProvisionedThroughputExceeded"}
)

# Which failure wins when several conditions fail at once: the most specific answer first, so that a
# retried notification is "duplicate" (not "version conflict") and a retried request with an
# Idempotency-Key finds its first result (not "insufficient funds" because the first one spent it).
RANK_DEDUPE: Final = 0
RANK_IDEMPOTENCY: Final = 1
RANK_VERSION: Final = 2
RANK_USER: Final = 3
RANK_APPEND: Final = 4


class Op(NamedTuple):
    """One item of a ``TransactWriteItems`` call, and what its failed condition means.

    A NamedTuple, not a dataclass: cheaper to define at the notification Lambda's cold start.
    """

    request: TransactWriteItemTypeDef
    rank: int
    conflict: Callable[[StoredItem | None], Exception]
    size: int


class TableWriter:
    """Builds and runs the conditional ``TransactWriteItems`` calls of one table."""

    def __init__(self, table_name: str, client: DynamoDBClient) -> None:
        """Write to ``table_name`` through ``client`` (a boto3 DynamoDB client, thread-safe)."""
        self._table = table_name
        self._client = client

    @property
    def table_name(self) -> str:
        """The table written to."""
        return self._table

    def commit_ops(self, write: AtomicWrite) -> list[Op]:
        """The items of ``write``'s transaction, each with its condition and its conflict."""
        # Items are listed in the order of RANK_*: should DynamoDB report only the first failed
        # condition, it is then also the most specific one.
        ops: list[Op] = []
        notification = write.notification
        # A record with a dedupe key and a transaction is keyed by that key (see notification_key):
        # written only if new, the record itself is the notification's uniqueness.
        record_first = (
            notification is not None
            and notification.dedupe_key is not None
            and notification.transaction_id is not None
        )
        if notification is not None and notification.dedupe_key is not None:
            dedupe = notification.dedupe_key
            item = encode_notification(notification) if record_first else encode_dedupe(notification, dedupe)
            ops.append(self.put(item, RANK_DEDUPE, lambda _old: DuplicateNotification(dedupe), only_new=True))
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
            if put.expected_version == 0:
                # The user's listing points at the new transaction once (the id never changes); a
                # state change then writes the transaction item alone.
                listing = encode_transaction_listing(txn)
                ops.append(self.put(listing, RANK_APPEND, unexpected("transaction listing")))
            ops.extend(self._invoice_marker_ops(txn))
        ops.extend(self._user_ops(write))
        for entry in write.ledger:
            for item in encode_ledger_entries(entry):
                ops.append(self.put(item, RANK_APPEND, unexpected("ledger entry"), only_new=True))
        if notification is not None and not record_first:
            record = encode_notification(notification)
            ops.append(self.put(record, RANK_APPEND, unexpected("notification record"), only_new=True))
        return ops

    def _invoice_marker_ops(self, txn: Transaction) -> list[Op]:
        # The invoice job's queue marker moves with the deposit, in the same transaction (issue 13).
        change = invoice_marker(txn)
        if change is None:
            return []
        action, item = change
        if action == "put":
            return [self.put(item, RANK_APPEND, unexpected("invoice queue marker"))]
        request: TransactWriteItemTypeDef = {"Delete": {"TableName": self._table, "Key": item}}
        return [Op(request, RANK_APPEND, unexpected("invoice queue marker"), item_size(item))]

    def _idempotency_op(self, record: IdempotencyRecord) -> Op:
        item = encode_idempotency(record)

        def reused(old: StoredItem | None) -> Exception:
            return IdempotencyKeyReused(record.key, None if old is None else decode_idempotency(old))

        # An expired record may be replaced: the same key is then a new request (Stripe's rule).
        return self.put(
            item,
            RANK_IDEMPOTENCY,
            reused,
            condition="attribute_not_exists(#pk) OR #expires_at <= :now",
            names={"#pk": PK, "#expires_at": "expires_at"},
            values={":now": s(iso(record.created_at))},
        )

    def _transaction_op(self, txn: Transaction, expected_version: int) -> Op:
        def conflict(old: StoredItem | None) -> Exception:
            return VersionConflict(txn.transaction_id, None if old is None else decode_transaction(old))

        item = encode_transaction(txn)
        if expected_version == 0:
            return self.put(item, RANK_VERSION, conflict, only_new=True)
        return self.put(
            item,
            RANK_VERSION,
            conflict,
            condition="#version = :expected",
            names={"#version": "version"},
            values={":expected": n(expected_version)},
        )

    def _user_ops(self, write: AtomicWrite) -> list[Op]:
        # One operation per user (DynamoDB refuses two on one item): the delta, and the count of the
        # user's new transactions that keeps list_transactions' total without a COUNT query.
        new_transactions = Counter(put.new.user_id for put in write.transactions if put.expected_version == 0)
        delta = write.user_delta
        user_ids = dict.fromkeys([*([delta.user_id] if delta else []), *new_transactions])
        moments = [put.new.updated_at for put in write.transactions]
        moments += [entry.created_at for entry in write.ledger]
        updated_at = iso(max(moments)) if moments else None
        return [
            self.user_op(
                user_id,
                delta if delta is not None and delta.user_id == user_id else None,
                new_transactions.get(user_id, 0),
                updated_at,
            )
            for user_id in user_ids
        ]

    def user_op(
        self, user_id: str, delta: UserDelta | None, new_transactions: int, updated_at: str | None
    ) -> Op:
        """The one operation on a user item: ``delta`` (None: no change of money) and ``new_transactions``
        more in its ``transaction_count``, conditional as the port says (exists; stays >= 0; active)."""
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
            return Op(request, RANK_USER, conflict, UPDATE_SIZE_ESTIMATE)
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
        return Op(request, RANK_USER, conflict, UPDATE_SIZE_ESTIMATE)

    def put(
        self,
        item: Item,
        rank: int,
        conflict: Callable[[StoredItem | None], Exception],
        *,
        only_new: bool = False,
        condition: str | None = None,
        names: Mapping[str, str] | None = None,
        values: Mapping[str, Any] | None = None,
    ) -> Op:
        """A ``Put`` of ``item``: only if new (``only_new``), or under ``condition``, or unconditional."""
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
        return Op(request, rank, conflict, item_size(item))

    def transact(self, ops: Sequence[Op]) -> None:
        """Run ``ops`` as one ``TransactWriteItems``; a failed condition raises its op's conflict."""
        failed = self.try_transact(ops)
        if failed:
            index, old = min(failed.items(), key=lambda pair: ops[pair[0]].rank)
            raise ops[index].conflict(old)

    def try_transact(self, ops: Sequence[Op]) -> dict[int, StoredItem | None]:
        """Run ``ops`` as one ``TransactWriteItems``: {} when written, else the failed conditions, by
        op index, each with the item's old image (``ALL_OLD``; None when the item does not exist)."""
        _check_limits(ops)
        items = [op.request for op in ops]
        for attempt in range(1, _MAX_ATTEMPTS + 1):
            try:
                # A token per attempt: botocore's own retries of this call (lost response, 5xx) reuse it,
                # so DynamoDB answers them idempotently instead of failing our own conditions.
                self._client.transact_write_items(TransactItems=items, ClientRequestToken=uuid.uuid4().hex)
                return {}
            except ClientError as exc:
                if error_code(exc) != "TransactionCanceledException":
                    raise
                reasons: list[Mapping[str, Any]] = list(client_response(exc).get("CancellationReasons") or [])
                if len(reasons) != len(ops):
                    raise DynamoDBStoreError(f"transaction cancelled without item reasons: {exc}") from exc
                failed = {
                    index: reason.get("Item") or None
                    for index, reason in enumerate(reasons)
                    if reason.get("Code") == "ConditionalCheckFailed"
                }
                if failed:
                    return failed
                codes = {str(reason.get("Code")) for reason in reasons} - {"None"}
                if not codes <= _RETRYABLE_REASONS or attempt == _MAX_ATTEMPTS:
                    raise DynamoDBStoreError(f"transaction cancelled: {sorted(codes)}") from exc
            # Full jitter: concurrent writers of one item must not retry in lockstep.
            time.sleep(random.uniform(0, _BASE_DELAY * 2**attempt))  # noqa: S311 - jitter, not security
        raise AssertionError("unreachable: the last attempt returns or raises")


def unexpected(what: str) -> Callable[[StoredItem | None], Exception]:
    """The conflict of an item whose id must be new: its existence is a fault, not an outcome."""
    return lambda _old: DynamoDBStoreError(f"{what} already exists: an id was reused")


def check_item_size(item: Item) -> None:
    """Refuse an item above DynamoDB's 400 KB item limit before calling."""
    size = item_size(item)
    if size > MAX_ITEM_BYTES:
        raise TransactionTooLarge(f"item of about {size} bytes exceeds DynamoDB's 400 KB item limit")


def _check_limits(ops: Sequence[Op]) -> None:
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
