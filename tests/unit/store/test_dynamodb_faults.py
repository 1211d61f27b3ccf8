"""Cancellation reasons moto never produces (contention, throttling), through botocore's Stubber.

Real DynamoDB cancels a transaction with ``TransactionConflict`` when another transaction holds one of
its items; moto's single-threaded server serializes everything, so these paths are stubbed here.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from ecpay_lambda.store.dynamodb import DynamoDBStore, DynamoDBStoreError
from ecpay_lambda.wallet.models import NotificationRecord, Transaction, TransactionStatus, TransactionType
from ecpay_lambda.wallet.port import (
    AtomicWrite,
    DuplicateNotification,
    TransactionPut,
    UserDelta,
    UserNotActive,
    VersionConflict,
)

T0 = datetime(2024, 5, 1, tzinfo=UTC)
TXN = Transaction("t1", "u1", TransactionType.DEPOSIT, 500, TransactionStatus.PAID, 3, T0, T0)
# Items in commit order: transaction, the user update (a listing pointer is written only with a new
# transaction).
WRITE = AtomicWrite(
    transactions=[TransactionPut(TXN, 2)],
    user_delta=UserDelta("u1", delta_balance=500, delta_open=-1, require_active=True),
)
NONE = {"Code": "None"}


@pytest.fixture
def stubbed() -> Iterator[tuple[DynamoDBStore, Stubber, list[dict[str, Any]]]]:
    client = boto3.session.Session().client(
        "dynamodb",
        region_name="ap-northeast-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",  # a stub: nothing is sent
    )
    sent: list[dict[str, Any]] = []
    client.meta.events.register(
        "before-parameter-build.dynamodb.TransactWriteItems", lambda params, **_: sent.append(dict(params))
    )
    with Stubber(client) as stubber:
        yield DynamoDBStore("wallet", client), stubber, sent
        stubber.assert_no_pending_responses()


def cancel(stubber: Stubber, *reasons: dict[str, Any]) -> None:
    stubber.add_client_error(
        "transact_write_items",
        service_error_code="TransactionCanceledException",
        service_message="Transaction cancelled",
        modeled_fields={"CancellationReasons": list(reasons)},
    )


def test_contention_is_retried_with_a_fresh_token(
    stubbed: tuple[DynamoDBStore, Stubber, list[dict[str, Any]]],
) -> None:
    store, stubber, sent = stubbed
    cancel(stubber, NONE, {"Code": "TransactionConflict", "Message": "conflict"})
    stubber.add_response("transact_write_items", {})
    store.commit(WRITE)
    assert len(sent) == 2
    assert sent[0]["ClientRequestToken"] != sent[1]["ClientRequestToken"]
    assert sent[0]["TransactItems"] == sent[1]["TransactItems"]


def test_endless_contention_is_a_fault_not_a_conflict(
    stubbed: tuple[DynamoDBStore, Stubber, list[dict[str, Any]]],
) -> None:
    store, stubber, sent = stubbed
    for _ in range(4):
        cancel(stubber, {"Code": "TransactionConflict"}, {"Code": "ThrottlingError"})
    with pytest.raises(DynamoDBStoreError, match="TransactionConflict"):
        store.commit(WRITE)
    assert len(sent) == 4


@pytest.mark.parametrize(
    "reasons",
    [
        [NONE, {"Code": "ValidationError", "Message": "bad"}],
        [NONE],  # reasons that do not line up with the items cannot be mapped
    ],
)
def test_unexpected_cancellations_are_faults(
    stubbed: tuple[DynamoDBStore, Stubber, list[dict[str, Any]]], reasons: list[dict[str, Any]]
) -> None:
    store, stubber, sent = stubbed
    cancel(stubber, *reasons)
    with pytest.raises(DynamoDBStoreError):
        store.commit(WRITE)
    assert len(sent) == 1


def test_the_most_specific_failure_wins_whatever_the_order(
    stubbed: tuple[DynamoDBStore, Stubber, list[dict[str, Any]]],
) -> None:
    store, stubber, _ = stubbed
    closed_user = {"pk": {"S": "USER#u1"}, "sk": {"S": "USER"}, "status": {"S": "closed"}}
    cancel(
        stubber,
        {"Code": "ConditionalCheckFailed", "Item": {}},
        {"Code": "ConditionalCheckFailed", "Item": closed_user},
    )
    with pytest.raises(VersionConflict):
        store.commit(WRITE)

    cancel(stubber, NONE, {"Code": "ConditionalCheckFailed", "Item": closed_user})
    with pytest.raises(UserNotActive):
        store.commit(WRITE)

    record = NotificationRecord("n1", T0, "return", "body", "applied", "t1", "m", "m:paid:0")
    # the notification record (keyed by its dedupe key: its own uniqueness), transaction, user
    cancel(
        stubber,
        NONE,
        {"Code": "ConditionalCheckFailed"},
        {"Code": "TransactionConflict"},
    )
    with pytest.raises(VersionConflict):
        store.commit(
            AtomicWrite(transactions=WRITE.transactions, user_delta=WRITE.user_delta, notification=record)
        )
    cancel(
        stubber,
        {"Code": "ConditionalCheckFailed"},
        {"Code": "ConditionalCheckFailed"},
        NONE,
    )
    with pytest.raises(DuplicateNotification):
        store.commit(
            AtomicWrite(transactions=WRITE.transactions, user_delta=WRITE.user_delta, notification=record)
        )
