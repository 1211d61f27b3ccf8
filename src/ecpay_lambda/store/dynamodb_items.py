"""The wallet's DynamoDB item layout: keys, and the exact encoding of each model (docs/dynamodb-table.md).

Kept apart from the adapter so that the layout, which the SAM template and any data migration depend
on, reads in one place. Pure functions over the low-level attribute-value format of the boto3 client.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any, Final, TypeAlias

from ..wallet.attempts import attempts_from_json, attempts_to_json
from ..wallet.invoice_state import dumps_invoice, loads_invoice, settings_dumps, settings_loads
from ..wallet.models import (
    AWAITING_STATUSES,
    Attempt,
    AttemptState,
    IdempotencyRecord,
    LedgerEntry,
    NotificationRecord,
    PaymentMethod,
    Transaction,
    TransactionStatus,
    TransactionType,
    User,
    UserStatus,
)
from ..wallet.periodic import plan_from_json, plan_to_json
from . import PAID_DEPOSIT_STATUSES

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.type_defs import AttributeValueTypeDef as AttributeValue

# The stubs package is a dev dependency only: the alias names it as a string, never at run time.
Item: TypeAlias = dict[str, "AttributeValue"]
# What boto3 hands back (responses, cancellation reasons): read-only, loosely typed by the stubs.
StoredItem: TypeAlias = Mapping[str, Any]

PK: Final = "pk"
SK: Final = "sk"
GSI1: Final = "gsi1"
GSI1PK: Final = "gsi1pk"
GSI1SK: Final = "gsi1sk"
TTL_ATTRIBUTE: Final = "ttl"  # epoch seconds; enable DynamoDB TTL on it to purge expired idempotency records

BASE_KEY_ATTRIBUTES: Final = (PK, SK)
GSI1_KEY_ATTRIBUTES: Final = (PK, SK, GSI1PK, GSI1SK)

USERS_GSI_PARTITION: Final = "USERS"
AWAITING_GSI_PARTITION: Final = "AWAITING"
PENDING_REFUND_GSI_PARTITION: Final = "PENDING_REFUND"
PAID_GSI_PREFIX: Final = "PAID#"  # + the UTC day of paid_at: one partition per day of payments
TXN_LISTING_PREFIX: Final = "TXN#"
LEDGER_PREFIX: Final = "LEDGER#"
NOTIFICATION_PREFIX: Final = "NOTIF#"
IDEMPOTENCY_PREFIX: Final = "IDEMPOTENCY#"
DEDUPED: Final = "~"  # after NOTIFICATION_PREFIX: a state-changing record, keyed by its dedupe key

USERS_COUNTER_KEY: Final[Item] = {PK: {"S": "COUNTER#USERS"}, SK: {"S": "COUNTER"}}
COUNT_ATTRIBUTE: Final = "item_count"
TRANSACTION_COUNT_ATTRIBUTE: Final = "transaction_count"
LISTING_ENTITY: Final = "transaction_listing"
# A deposit's attempts are a map keyed by MerchantTradeNo (one attempt addressable by an update
# expression); each value carries its position, so the order of the list is kept.
ATTEMPTS_ATTRIBUTE: Final = "attempts"
ATTEMPT_SEQ: Final = "seq"
# The MerchantTradeNo of the deposit's first paid attempt, absent when none is paid: derived from the
# attempts on every write, so a condition can say "no attempt is paid" without reading the map.
PAID_ATTEMPT_ATTRIBUTE: Final = "paid_attempt"


# --- scalars -------------------------------------------------------------------------------------


def s(value: str) -> AttributeValue:
    """A string attribute value."""
    return {"S": value}


def n(value: int) -> AttributeValue:
    """A number attribute value from an exact int (money is never a float)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"expected an int, got {type(value).__name__}")
    return {"N": str(value)}


def iso(moment: datetime) -> str:
    """Fixed-width ISO-8601 UTC with microseconds, so that string order is time order."""
    if moment.tzinfo is None:
        raise ValueError("naive datetime: pass an aware datetime (UTC recommended)")
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


def parse_iso(text: str) -> datetime:
    """The aware UTC datetime of a stored ISO-8601 string."""
    return datetime.fromisoformat(text).astimezone(UTC)


def to_int(number: str) -> int:
    """A stored DynamoDB number as an exact int; refuses fractions rather than rounding money."""
    try:
        value = Decimal(number)
    except InvalidOperation as exc:
        raise ValueError(f"not a number: {number!r}") from exc
    if value != value.to_integral_value():
        raise ValueError(f"not an integer: {number!r}")
    return int(value)


def get_s(item: StoredItem, name: str) -> str:
    """A required string attribute."""
    return str(item[name]["S"])


def get_opt_s(item: StoredItem, name: str) -> str | None:
    """An optional string attribute (absent = None)."""
    value = item.get(name)
    return None if value is None else str(value["S"])


def get_int(item: StoredItem, name: str, default: int | None = None) -> int:
    """A number attribute as an exact int (``default`` when absent, if given)."""
    value = item.get(name)
    if value is None:
        if default is None:
            raise KeyError(name)
        return default
    return to_int(str(value["N"]))


def _put_opt(item: Item, name: str, value: str | None) -> None:
    # DynamoDB has no "null string": an absent attribute is None.
    if value is not None:
        item[name] = s(value)


# --- keys ----------------------------------------------------------------------------------------


def key(pk: str, sk: str) -> Item:
    """A primary key."""
    return {PK: s(pk), SK: s(sk)}


def user_pk(user_id: str) -> str:
    """The partition of one user: the user item, its transaction listing, ledger and idempotency keys."""
    return f"USER#{user_id}"


def user_key(user_id: str) -> Item:
    """The user item."""
    return key(user_pk(user_id), "USER")


def username_key(username: str) -> Item:
    """The item that makes a username unique."""
    return key(f"USERNAME#{username}", "USERNAME")


def transaction_pk(transaction_id: str) -> str:
    """The partition of one transaction: the transaction item, its ledger entries and notifications."""
    return f"TXN#{transaction_id}"


def transaction_key(transaction_id: str) -> Item:
    """The authoritative transaction item (the compare-and-set target)."""
    return key(transaction_pk(transaction_id), "TXN")


def transaction_listing_key(txn: Transaction) -> Item:
    """The copy of a transaction in its user's partition, sorted by creation for listing."""
    return key(user_pk(txn.user_id), f"{TXN_LISTING_PREFIX}{iso(txn.created_at)}#{txn.transaction_id}")


def ledger_sort_key(entry: LedgerEntry) -> str:
    """Ledger entries sort by time, then id."""
    return f"{LEDGER_PREFIX}{iso(entry.created_at)}#{entry.entry_id}"


def idempotency_key(user_id: str, idempotency_key: str) -> Item:
    """An idempotency record, scoped to its user."""
    return key(user_pk(user_id), f"{IDEMPOTENCY_PREFIX}{idempotency_key}")


def dedupe_key(dedupe: str) -> Item:
    """The item that makes a notification's dedupe key unique."""
    return key(f"DEDUPE#{dedupe}", "DEDUPE")


def notification_key(record: NotificationRecord) -> Item:
    """A notification record: under its transaction, else under the UTC day it arrived.

    A record that changed state (it carries a dedupe key) is keyed by that key instead of its time:
    written ``attribute_not_exists``, the record itself is the notification's uniqueness, and no
    separate dedupe item is written (2 WRU less per applied notification). Readers order records by
    ``received_at`` and id, not by sort key.
    """
    if record.transaction_id is not None and record.dedupe_key is not None:
        return key(
            transaction_pk(record.transaction_id), f"{NOTIFICATION_PREFIX}{DEDUPED}{record.dedupe_key}"
        )
    sort = f"{NOTIFICATION_PREFIX}{iso(record.received_at)}#{record.notification_id}"
    if record.transaction_id is not None:
        return key(transaction_pk(record.transaction_id), sort)
    return key(f"NOTIFS#{iso(record.received_at)[:10]}", sort)


def key_of(item: StoredItem, attributes: tuple[str, ...]) -> Item:
    """The key attributes of an item (to continue a query after it)."""
    return {name: s(get_s(item, name)) for name in attributes}


# --- users ---------------------------------------------------------------------------------------


def encode_user(user: User) -> Item:
    """A new user item; it sits in the sparse ``gsi1`` partition ``USERS`` ordered by creation."""
    return {
        **user_key(user.user_id),
        "entity": s("user"),
        "user_id": s(user.user_id),
        "username": s(user.username),
        "email": s(user.email),
        "balance": n(user.balance),
        "held": n(user.held),
        "open_transactions": n(user.open_transactions),
        TRANSACTION_COUNT_ATTRIBUTE: n(0),
        "status": s(user.status.value),
        "created_at": s(iso(user.created_at)),
        "updated_at": s(iso(user.updated_at)),
        GSI1PK: s(USERS_GSI_PARTITION),
        GSI1SK: s(f"{iso(user.created_at)}#{user.user_id}"),
        **({"invoice_settings": s(text)} if (text := settings_dumps(user.invoice_settings)) else {}),
    }


def decode_user(item: StoredItem) -> User:
    """The user of a user item."""
    return User(
        user_id=get_s(item, "user_id"),
        username=get_s(item, "username"),
        email=get_s(item, "email"),
        balance=get_int(item, "balance"),
        held=get_int(item, "held"),
        status=UserStatus(get_s(item, "status")),
        open_transactions=get_int(item, "open_transactions"),
        created_at=parse_iso(get_s(item, "created_at")),
        updated_at=parse_iso(get_s(item, "updated_at")),
        invoice_settings=settings_loads(get_opt_s(item, "invoice_settings")),
    )


def identity_key(identity: str) -> Item:
    """The item binding a sign-in identity to its one user (uniqueness, like usernames)."""
    return key(f"IDENTITY#{identity}", "IDENTITY")


def encode_identity(identity: str, user_id: str) -> Item:
    """The identity binding item."""
    return {**identity_key(identity), "entity": s("identity"), "user_id": s(user_id)}


def encode_username(user: User) -> Item:
    """The username uniqueness item."""
    return {**username_key(user.username), "entity": s("username"), "user_id": s(user.user_id)}


# --- transactions --------------------------------------------------------------------------------


def reconcile_partition(txn: Transaction) -> str | None:
    """The sparse ``gsi1`` partition that reconciliation reads this transaction from, if any.

    Deposits awaiting payment (to ask ECPay about) and refunds still pending (a crash between the
    wallet debit and ECPay's answer) are the only transactions reconciliation looks for.
    """
    if txn.transaction_type is TransactionType.DEPOSIT and txn.status in AWAITING_STATUSES:
        return AWAITING_GSI_PARTITION
    if txn.transaction_type is TransactionType.REFUND and txn.status is TransactionStatus.PENDING:
        return PENDING_REFUND_GSI_PARTITION
    return None


def due_at(txn: Transaction) -> datetime:
    """When reconciliation should look at ``txn`` next: its ``next_check_at``, else its last update."""
    return txn.updated_at if txn.next_check_at is None else txn.next_check_at


def is_paid_deposit(txn: Transaction) -> bool:
    """A deposit ECPay was paid for, with its payment time: listed by ``iter_paid_deposits``."""
    return (
        txn.transaction_type is TransactionType.DEPOSIT
        and txn.status in PAID_DEPOSIT_STATUSES
        and txn.paid_at is not None
    )


def paid_partition(day: date) -> str:
    """The ``gsi1`` partition of the deposits paid on one UTC day."""
    return f"{PAID_GSI_PREFIX}{day.isoformat()}"


def transaction_index_key(txn: Transaction) -> tuple[str, str] | None:
    """The ``gsi1`` (partition, sort key) of a transaction item, or None when no listing needs it.

    Reconciliation partitions sort by due time, paid partitions by payment time; both end in
    ``#<transaction_id>``, so equal times keep a stable order (the SQL adapter's tie-break).
    """
    partition = reconcile_partition(txn)
    if partition is not None:
        return partition, f"{iso(due_at(txn))}#{txn.transaction_id}"
    if is_paid_deposit(txn):
        assert txn.paid_at is not None  # is_paid_deposit says so
        return paid_partition(txn.paid_at.astimezone(UTC).date()), f"{iso(txn.paid_at)}#{txn.transaction_id}"
    return None


def time_bound_after(moment: datetime) -> str:
    """A ``gsi1sk`` bound above every ``<moment>#<id>`` key and below every key of a later time.

    ``$`` follows ``#`` in ASCII: ``gsi1sk < bound`` is then "time <= moment", inclusive, whatever the id.
    Keys written before the ``#<id>`` suffix (a bare time) compare the same way.
    """
    return f"{iso(moment)}$"


def _transaction_attributes(txn: Transaction) -> Item:
    item: Item = {
        "entity": s("transaction"),
        "transaction_id": s(txn.transaction_id),
        "user_id": s(txn.user_id),
        "transaction_type": s(txn.transaction_type.value),
        "amount": n(txn.amount),
        "status": s(txn.status.value),
        "version": n(txn.version),
        "created_at": s(iso(txn.created_at)),
        "updated_at": s(iso(txn.updated_at)),
        "payment_info": {"M": {name: s(value) for name, value in txn.payment_info.items()}},
        "refunded_amount": n(txn.refunded_amount),
    }
    _put_opt(item, "payment_method", None if txn.payment_method is None else txn.payment_method.value)
    _put_opt(item, "merchant_trade_no", txn.merchant_trade_no)
    _put_opt(item, "trade_no", txn.trade_no)
    _put_opt(item, "expires_at", None if txn.expires_at is None else iso(txn.expires_at))
    _put_opt(item, "related_transaction_id", txn.related_transaction_id)
    if txn.flags:  # DynamoDB refuses empty sets: no flags = no attribute
        item["flags"] = {"SS": sorted(txn.flags)}
    if txn.attempts:  # no attempts (withdrawals, refunds, records from before attempts) = no attribute
        item[ATTEMPTS_ATTRIBUTE] = encode_attempts(txn.attempts)
        paid = next((a.merchant_trade_no for a in txn.attempts if a.state is AttemptState.PAID), None)
        _put_opt(item, PAID_ATTEMPT_ATTRIBUTE, paid)
    _put_opt(item, "next_check_at", None if txn.next_check_at is None else iso(txn.next_check_at))
    item["check_count"] = n(txn.check_count)
    _put_opt(item, "paid_at", None if txn.paid_at is None else iso(txn.paid_at))
    if txn.plan is not None:  # a recurring deposit's plan, as JSON (wallet.periodic's codec)
        item["plan"] = s(json.dumps(plan_to_json(txn.plan), sort_keys=True))
    _put_opt(item, "invoice", dumps_invoice(txn.invoice))  # JSON text, the SQL column's codec (issue 13)
    # Beside the JSON, for the events Pipe's filter (invoice.issued), which cannot look inside it.
    _put_opt(item, "invoice_status", None if txn.invoice is None else str(txn.invoice.status))
    return item


def encode_transaction(txn: Transaction) -> Item:
    """The authoritative transaction item, in a ``gsi1`` partition while a listing may need it.

    Every write replaces the whole item, so leaving such a status drops the index attributes.
    """
    item = {**transaction_key(txn.transaction_id), **_transaction_attributes(txn)}
    index = transaction_index_key(txn)
    if index is not None:
        item[GSI1PK] = s(index[0])
        item[GSI1SK] = s(index[1])
    return item


def encode_transaction_listing(txn: Transaction) -> Item:
    """The transaction's entry in its user's listing: a pointer (the id), written once with the new
    transaction and never updated, so a state change writes the transaction item alone (never indexed).

    Tables written before this layout hold full copies under the same keys; the listing reads only
    their ``transaction_id`` too and fetches the authoritative items (see ``list_transactions``).
    """
    return {
        **transaction_listing_key(txn),
        "entity": s(LISTING_ENTITY),
        "transaction_id": s(txn.transaction_id),
    }


def decode_transaction(item: StoredItem) -> Transaction:
    """The transaction of a transaction item (or of a full listing copy, written before pointers)."""
    method = get_opt_s(item, "payment_method")
    expires = get_opt_s(item, "expires_at")
    next_check = get_opt_s(item, "next_check_at")
    paid = get_opt_s(item, "paid_at")
    info = item.get("payment_info", {"M": {}})["M"]
    flags = item.get("flags", {"SS": []})["SS"]
    return Transaction(
        transaction_id=get_s(item, "transaction_id"),
        user_id=get_s(item, "user_id"),
        transaction_type=TransactionType(get_s(item, "transaction_type")),
        amount=get_int(item, "amount"),
        status=TransactionStatus(get_s(item, "status")),
        version=get_int(item, "version"),
        created_at=parse_iso(get_s(item, "created_at")),
        updated_at=parse_iso(get_s(item, "updated_at")),
        payment_method=None if method is None else PaymentMethod(method),
        merchant_trade_no=get_opt_s(item, "merchant_trade_no"),
        trade_no=get_opt_s(item, "trade_no"),
        payment_info={name: str(value["S"]) for name, value in info.items()},
        expires_at=None if expires is None else parse_iso(expires),
        refunded_amount=get_int(item, "refunded_amount", 0),
        related_transaction_id=get_opt_s(item, "related_transaction_id"),
        flags=frozenset(str(flag) for flag in flags),
        attempts=decode_attempts(item[ATTEMPTS_ATTRIBUTE]) if ATTEMPTS_ATTRIBUTE in item else (),
        next_check_at=None if next_check is None else parse_iso(next_check),
        check_count=get_int(item, "check_count", 0),
        paid_at=None if paid is None else parse_iso(paid),
        plan=plan_from_json(json.loads(get_s(item, "plan"))) if "plan" in item else None,
        invoice=loads_invoice(get_opt_s(item, "invoice")),
    )


# Attempts are stored as a native map (not a JSON string) so the console, exports and the table's
# stream show them as data, keyed by MerchantTradeNo so that the notification fast path can address
# one attempt (``attempts.<MerchantTradeNo>.state``). Each value has the shared codec's shape
# (wallet.attempts), converted value by value, plus its position ``seq``: the SQL adapter's JSON and
# these items cannot drift apart. A None is an absent key. Items written before this layout hold a
# list of maps (the codec's shape, in order): read as such, rewritten as a map by their next write.


def encode_attempts(attempts: tuple[Attempt, ...]) -> AttributeValue:
    """The ``attempts`` attribute: a map MerchantTradeNo -> the codec's map + ``seq`` (its position)."""
    encoded: dict[str, AttributeValue] = {}
    for seq, data in enumerate(attempts_to_json(attempts)):
        members = {name: _to_attribute(member) for name, member in data.items() if member is not None}
        members[ATTEMPT_SEQ] = n(seq)
        encoded[str(data["merchant_trade_no"])] = {"M": members}
    if len(encoded) != len(attempts):
        raise ValueError("two attempts share a MerchantTradeNo")
    return {"M": encoded}


def decode_attempts(value: StoredItem) -> tuple[Attempt, ...]:
    """Inverse of :func:`encode_attempts`; also reads the previous layout (a list of maps).

    Raises ValueError on a malformed attribute.
    """
    if "M" in value:
        members = value["M"]
        try:
            ordered = sorted(members.values(), key=lambda member: to_int(member["M"][ATTEMPT_SEQ]["N"]))
        except (KeyError, TypeError) as exc:
            raise ValueError(f"malformed attempt: {exc}") from exc
        data = [
            {name: _from_attribute(part) for name, part in member["M"].items() if name != ATTEMPT_SEQ}
            for member in ordered
        ]
        return attempts_from_json(data)
    return attempts_from_json(_from_attribute(value))


def _to_attribute(value: object) -> AttributeValue:
    if isinstance(value, str):
        return s(value)
    if isinstance(value, dict):
        return {"M": {name: _to_attribute(member) for name, member in value.items() if member is not None}}
    raise TypeError(f"attempt value of unexpected type {type(value).__name__}")


def _from_attribute(value: StoredItem) -> object:
    if "S" in value:
        return str(value["S"])
    if "M" in value:
        return {str(name): _from_attribute(member) for name, member in value["M"].items()}
    if "L" in value:
        return [_from_attribute(member) for member in value["L"]]
    raise ValueError(f"attempts attribute of unexpected type {sorted(value)}")


# --- ledger, notifications, idempotency ----------------------------------------------------------


def _ledger_attributes(entry: LedgerEntry) -> Item:
    return {
        "entity": s("ledger"),
        "entry_id": s(entry.entry_id),
        "user_id": s(entry.user_id),
        "transaction_id": s(entry.transaction_id),
        "kind": s(entry.kind),
        "delta_balance": n(entry.delta_balance),
        "delta_held": n(entry.delta_held),
        "created_at": s(iso(entry.created_at)),
    }


def encode_ledger_entries(entry: LedgerEntry) -> tuple[Item, Item]:
    """The two copies of a ledger entry: under its transaction and under its user."""
    attributes = _ledger_attributes(entry)
    sort = ledger_sort_key(entry)
    return (
        {**key(transaction_pk(entry.transaction_id), sort), **attributes},
        {**key(user_pk(entry.user_id), sort), **attributes},
    )


def decode_ledger_entry(item: StoredItem) -> LedgerEntry:
    """The ledger entry of either copy."""
    return LedgerEntry(
        entry_id=get_s(item, "entry_id"),
        user_id=get_s(item, "user_id"),
        transaction_id=get_s(item, "transaction_id"),
        kind=get_s(item, "kind"),
        delta_balance=get_int(item, "delta_balance"),
        delta_held=get_int(item, "delta_held"),
        created_at=parse_iso(get_s(item, "created_at")),
    )


def encode_notification(record: NotificationRecord) -> Item:
    """A notification record item."""
    item: Item = {
        **notification_key(record),
        "entity": s("notification"),
        "notification_id": s(record.notification_id),
        "received_at": s(iso(record.received_at)),
        "route": s(record.route),
        "raw_body": s(record.raw_body),
        "outcome": s(record.outcome),
    }
    _put_opt(item, "transaction_id", record.transaction_id)
    _put_opt(item, "merchant_trade_no", record.merchant_trade_no)
    _put_opt(item, "dedupe_key", record.dedupe_key)
    return item


def notification_order(record: NotificationRecord) -> tuple[str, str]:
    """Oldest first: records sort by arrival, then id (their sort keys do not, see notification_key)."""
    return iso(record.received_at), record.notification_id


def decode_notification(item: StoredItem) -> NotificationRecord:
    """The notification record of an item."""
    return NotificationRecord(
        notification_id=get_s(item, "notification_id"),
        received_at=parse_iso(get_s(item, "received_at")),
        route=get_s(item, "route"),
        raw_body=get_s(item, "raw_body"),
        outcome=get_s(item, "outcome"),
        transaction_id=get_opt_s(item, "transaction_id"),
        merchant_trade_no=get_opt_s(item, "merchant_trade_no"),
        dedupe_key=get_opt_s(item, "dedupe_key"),
    )


def encode_dedupe(record: NotificationRecord, dedupe: str) -> Item:
    """The dedupe-key item written with a state-changing notification."""
    item: Item = {
        **dedupe_key(dedupe),
        "entity": s("dedupe"),
        "notification_id": s(record.notification_id),
        "received_at": s(iso(record.received_at)),
    }
    _put_opt(item, "transaction_id", record.transaction_id)
    return item


def encode_idempotency(record: IdempotencyRecord) -> Item:
    """An idempotency record item, with a TTL so DynamoDB purges it after it expires."""
    return {
        **idempotency_key(record.user_id, record.key),
        "entity": s("idempotency"),
        "user_id": s(record.user_id),
        "idempotency_key": s(record.key),
        "request_fingerprint": s(record.request_fingerprint),
        "transaction_id": s(record.transaction_id),
        "created_at": s(iso(record.created_at)),
        "expires_at": s(iso(record.expires_at)),
        TTL_ATTRIBUTE: n(int(record.expires_at.timestamp()) + 1),
    }


def decode_idempotency(item: StoredItem) -> IdempotencyRecord:
    """The idempotency record of an item."""
    return IdempotencyRecord(
        user_id=get_s(item, "user_id"),
        key=get_s(item, "idempotency_key"),
        request_fingerprint=get_s(item, "request_fingerprint"),
        transaction_id=get_s(item, "transaction_id"),
        created_at=parse_iso(get_s(item, "created_at")),
        expires_at=parse_iso(get_s(item, "expires_at")),
    )


# --- cursors and sizes ---------------------------------------------------------------------------


def encode_cursor(start_key: StoredItem) -> str:
    """An opaque cursor: URL-safe base64 of the (all-string) key to continue after."""
    flat = {name: get_s(start_key, name) for name in sorted(start_key)}
    raw = json.dumps(flat, separators=(",", ":"), ensure_ascii=False).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str, attributes: tuple[str, ...]) -> Item | None:
    """The key of a cursor made by :func:`encode_cursor`, or None if it is not a well-formed one."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        flat = json.loads(raw)
    except (binascii.Error, ValueError):
        return None
    if not isinstance(flat, dict) or set(flat) != set(attributes):
        return None
    if not all(isinstance(value, str) for value in flat.values()):
        return None
    return {name: s(value) for name, value in flat.items()}


def item_size(item: Mapping[str, Any]) -> int:
    """An upper estimate of an item's size as DynamoDB counts it (names + values, UTF-8)."""
    return sum(len(name.encode()) + _value_size(value) for name, value in item.items())


def _value_size(value: Mapping[str, Any]) -> int:
    kind, inner = next(iter(value.items()))
    if kind == "S":
        return len(str(inner).encode())
    if kind == "N":
        return len(str(inner)) // 2 + 2
    if kind == "SS":
        return sum(len(str(member).encode()) for member in inner)
    if kind == "M":
        return 3 + sum(len(name.encode()) + 1 + _value_size(member) for name, member in inner.items())
    if kind == "L":
        return 3 + sum(1 + _value_size(member) for member in inner)
    return 1
