"""The DynamoDB adapter's speculative credit: a paid notification applied in ONE ``TransactWriteItems``.

The wallet builds a :class:`~ecpay_lambda.wallet.port.CreditGuess` from the notification alone; this
module turns it into the transaction's items, whose conditions are true exactly when the stored state is
the guess's common state (see its docstring) and whose updates are exactly what
:func:`~ecpay_lambda.wallet.outcomes.decide` would write then:

1. the notification record keyed by its dedupe key, ``attribute_not_exists`` (credited at most once);
2. the deposit: an ``Update`` of the fields decide() changes, conditional on every input it reads
   (type, user, amount, status, the attempt's state, no paid attempt, no e-invoice, the deposit's
   ECPay fields already mirroring the attempt), ``ALL_OLD`` on failure;
3. the user: ``ADD balance, open_transactions -1`` if it exists, is active and has an open transaction;
4. the ledger entry's two items, ``attribute_not_exists``.

When a condition fails nothing is written; the deposit's old image (``ALL_OLD``), when its own condition
failed, is what the wallet then decides on (``DynamoDBStore.run_guessed``): no extra read for a
duplicate, a mismatch or an unknown transaction. Items of the previous layout (attempts as a list) fail
the ``attribute_type`` condition and take that path, whose write stores the new layout.
"""

from __future__ import annotations

from datetime import UTC
from typing import TYPE_CHECKING, Any, Final

from ..wallet.models import AttemptState, TransactionStatus, TransactionType
from ..wallet.port import CreditGuess, UserDelta, VersionConflict
from .dynamodb_commit import RANK_APPEND, RANK_DEDUPE, RANK_VERSION, Op, TableWriter, unexpected
from .dynamodb_items import (
    ATTEMPTS_ATTRIBUTE,
    GSI1PK,
    GSI1SK,
    PAID_ATTEMPT_ATTRIBUTE,
    encode_ledger_entries,
    encode_notification,
    iso,
    n,
    paid_partition,
    s,
    transaction_key,
)

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.type_defs import TransactWriteItemTypeDef

    from .dynamodb_items import StoredItem

__all__ = ["DEPOSIT_OP", "credit_ops"]

DEPOSIT_OP: Final = 1  # the deposit's index among credit_ops' items (after the notification record)

# What decide() reads of the deposit, as one condition; placeholders are filled by _deposit_op.
_CONDITION: Final = " AND ".join(
    (
        "#type = :deposit",
        "#user_id = :user_id",
        "#amount = :amount",
        "#status IN (:awaiting, :awaiting_offline)",
        "attribute_not_exists(#invoice)",  # requested -> pending (and its queue marker) is the slow path
        "attribute_type(#attempts, :map)",  # the previous layout (a list) takes the slow path
        "#attempts.#mtn.#state IN (:attempt_awaiting, :attempt_awaiting_offline)",
        "attribute_not_exists(#paid_attempt)",  # the paid attempt becomes the focus: no other may be
        # The deposit's ECPay fields already mirror this attempt, so decide()'s with_attempts leaves
        # payment_method and expires_at as they are and payment_info gains exactly the guess's fields.
        "#payment_info = #attempts.#mtn.#payment_info",
        "(attribute_not_exists(#attempts.#mtn.#payment_method)"
        " OR #attempts.#mtn.#payment_method = #payment_method)",
        "((attribute_not_exists(#expires_at) AND attribute_not_exists(#attempts.#mtn.#expires_at))"
        " OR #expires_at = #attempts.#mtn.#expires_at)",
    )
)


def credit_ops(writer: TableWriter, credit: CreditGuess) -> list[Op]:
    """The items of ``credit``'s one ``TransactWriteItems``, in the order of the module docstring."""
    if not credit.trade_no:
        raise ValueError("a credit guess needs ECPay's TradeNo")
    notification = credit.notification
    if notification.dedupe_key is None or notification.transaction_id != credit.transaction_id:
        raise ValueError("a credit guess records its notification under its transaction, with a dedupe key")
    dedupe = notification.dedupe_key
    ops = [
        writer.put(
            encode_notification(notification),
            RANK_DEDUPE,
            unexpected(f"notification {dedupe}"),  # run_guessed decides on the deposit instead
            only_new=True,
        ),
        _deposit_op(writer, credit),
        writer.user_op(
            credit.user_id,
            UserDelta(credit.user_id, delta_balance=credit.amount, delta_open=-1, require_active=True),
            0,
            iso(credit.now),
        ),
    ]
    for item in encode_ledger_entries(credit.ledger):
        ops.append(writer.put(item, RANK_APPEND, unexpected("ledger entry"), only_new=True))
    return ops


def _deposit_op(writer: TableWriter, credit: CreditGuess) -> Op:
    names = {
        "#type": "transaction_type",
        "#user_id": "user_id",
        "#amount": "amount",
        "#status": "status",
        "#invoice": "invoice",
        "#attempts": ATTEMPTS_ATTRIBUTE,
        "#mtn": credit.merchant_trade_no,
        "#state": "state",
        "#paid_attempt": PAID_ATTEMPT_ATTRIBUTE,
        "#payment_info": "payment_info",
        "#payment_method": "payment_method",
        "#expires_at": "expires_at",
        "#version": "version",
        "#updated_at": "updated_at",
        "#paid_at": "paid_at",
        "#check_count": "check_count",
        "#next_check_at": "next_check_at",
        "#merchant_trade_no": "merchant_trade_no",
        "#trade_no": "trade_no",
        "#gsi1pk": GSI1PK,
        "#gsi1sk": GSI1SK,
    }
    values: dict[str, Any] = {
        ":deposit": s(TransactionType.DEPOSIT.value),
        ":user_id": s(credit.user_id),
        ":amount": n(credit.amount),
        ":awaiting": s(TransactionStatus.AWAITING_PAYMENT.value),
        ":awaiting_offline": s(TransactionStatus.AWAITING_OFFLINE_PAYMENT.value),
        ":map": s("M"),
        ":attempt_awaiting": s(AttemptState.AWAITING_PAYMENT.value),
        ":attempt_awaiting_offline": s(AttemptState.AWAITING_OFFLINE_PAYMENT.value),
        ":paid": s(TransactionStatus.PAID.value),
        ":attempt_paid": s(AttemptState.PAID.value),
        ":one": n(1),
        ":zero": n(0),
        ":now": s(iso(credit.now)),
        ":paid_at": s(iso(credit.paid_at)),
        ":mtn": s(credit.merchant_trade_no),
        ":trade_no": s(credit.trade_no),
        # The paid deposit's place in gsi1 (encode_transaction's transaction_index_key for it).
        ":gsi1pk": s(paid_partition(credit.paid_at.astimezone(UTC).date())),
        ":gsi1sk": s(f"{iso(credit.paid_at)}#{credit.transaction_id}"),
    }
    sets = [
        "#status = :paid",
        "#version = #version + :one",
        "#updated_at = :now",
        "#paid_at = :paid_at",
        "#check_count = :zero",
        "#merchant_trade_no = :mtn",
        "#trade_no = :trade_no",
        "#attempts.#mtn.#state = :attempt_paid",
        "#attempts.#mtn.#trade_no = :trade_no",
        "#paid_attempt = :mtn",
        "#gsi1pk = :gsi1pk",
        "#gsi1sk = :gsi1sk",
    ]
    # The attempt's payment_info gains the notification's fields, and the deposit's (equal to it, by
    # the condition) the same: one SET per field keeps what was there (an ATM code's bank fields).
    for index, (field, value) in enumerate(sorted(credit.payment_info.items())):
        names[f"#info{index}"] = field
        values[f":info{index}"] = s(value)
        sets.append(f"#payment_info.#info{index} = :info{index}")
        sets.append(f"#attempts.#mtn.#payment_info.#info{index} = :info{index}")
    request: TransactWriteItemTypeDef = {
        "Update": {
            "TableName": writer.table_name,
            "Key": transaction_key(credit.transaction_id),
            "UpdateExpression": "SET " + ", ".join(sets) + " REMOVE #next_check_at",
            "ConditionExpression": _CONDITION,
            "ExpressionAttributeNames": names,
            "ExpressionAttributeValues": values,
            "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
        }
    }

    def conflict(_old: StoredItem | None) -> Exception:
        return VersionConflict(credit.transaction_id)

    size = 1024 + sum(len(k) + len(v) for k, v in credit.payment_info.items())
    return Op(request, RANK_VERSION, conflict, size)
