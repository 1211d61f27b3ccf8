"""The DynamoDB speculative credit (one TransactWriteItems per applied notification) against moto.

The property test is the proof the brief asks for: for many prior states, the same notification is
applied with the guess to one table and without it (read, decide, write) to an identical table, and the
two tables must end up with the same items, ledger, balances and outcome. Where the guess's conditions
fail, the slow path runs on the returned old image, so "the same" covers that case too.
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, ClassVar

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tests.contract.notices import make_client, return_body
from tests.support.moto_plugin import dynamodb_url

from ecpay_lambda.ecpay.credentials import MerchantCredentials
from ecpay_lambda.ecpay.testing import FakeEcpay, Trade
from ecpay_lambda.store.dynamodb import DynamoDBStore
from ecpay_lambda.store.outbox import OutboxStore, read_outbox
from ecpay_lambda.wallet.attempts import attempt_to_json, with_attempts
from ecpay_lambda.wallet.invoice_state import InvoiceState, InvoiceStatus
from ecpay_lambda.wallet.models import (
    Attempt,
    AttemptState,
    PaymentMethod,
    Transaction,
    TransactionStatus,
    TransactionType,
    User,
    UserStatus,
)
from ecpay_lambda.wallet.notifications import CallbackHandler
from ecpay_lambda.wallet.outcomes import Delivery, EcpayOutcome, OutcomeKind, OutcomeResult, apply_outcome
from ecpay_lambda.wallet.port import (
    AtomicWrite,
    SpeculativeStore,
    StoreConflict,
    TransactionPut,
    UserDelta,
    WalletStore,
)

MERCHANT = "3002607"
T0 = datetime(2026, 1, 1, 4, 0, tzinfo=UTC)
NOW = datetime(2026, 1, 1, 5, 0, tzinfo=UTC)
CARD_INFO = {"gwsr": "12345", "card4no": "2222"}


@pytest.fixture(scope="module")
def tables(moto_endpoint: str) -> Iterator[tuple[DynamoDBStore, DynamoDBStore]]:
    """Two fresh tables: one applies with the guess, the other reads and decides. Every example uses
    new ids, so the tables are shared by the module's tests (moto copies a table per transaction item:
    kept small)."""
    stores = []
    for _ in range(2):
        store = DynamoDBStore.from_url(dynamodb_url(moto_endpoint))
        store.ensure_schema()
        stores.append(store)
    yield stores[0], stores[1]
    for store in stores:
        store.client.delete_table(TableName=store.table_name)


class Calls:
    """The DynamoDB operations a store's client sends while counting (until ``close``; a test's are
    closed after it by ``close_calls``)."""

    open: ClassVar[list[Calls]] = []

    def __init__(self, store: DynamoDBStore) -> None:
        Calls.open.append(self)
        self.names: list[str] = []
        store.client.meta.events.register("before-call.dynamodb.*", self._record)

        self._events = store.client.meta.events

    def _record(self, model: Any, **_: Any) -> None:
        self.names.append(model.name)

    def close(self) -> None:
        """Stop counting."""
        self._events.unregister("before-call.dynamodb.*", self._record)


@pytest.fixture(autouse=True)
def close_calls() -> Iterator[None]:
    yield
    while Calls.open:
        Calls.open.pop().close()


def new_id() -> str:
    return uuid.uuid4().hex[:12]


# --- prior states -----------------------------------------------------------------------------------


def _attempt(mtn: str, state: AttemptState, method: PaymentMethod | None, coded: bool) -> Attempt:
    return Attempt(
        mtn,
        method,
        state,
        T0,
        "2401010000" if state is AttemptState.PAID else None,
        {"BankCode": "812", "vAccount": "9103", "payment_type": "ATM_LAND"} if coded else {},
        T0 + timedelta(days=3) if coded else None,
    )


@st.composite
def prior_states(draw: st.DrawFn) -> tuple[Transaction, UserStatus, int]:
    """A deposit (mostly the wallet's own derivation of its attempts, sometimes fields at odds with
    them), its owner's status, and the owner's open transaction count."""
    user_id = new_id()
    # Half the states are the common one (the guess's): earlier attempts ended, the newest live.
    common = draw(st.booleans())
    count = draw(st.integers(1 if common else 0, 3))
    ended = [AttemptState.FAILED, AttemptState.EXPIRED, AttemptState.AWAITING_OFFLINE_PAYMENT]
    live = [AttemptState.AWAITING_PAYMENT, AttemptState.AWAITING_OFFLINE_PAYMENT]
    attempts = tuple(
        _attempt(
            f"{new_id()}{index:02d}",
            draw(
                st.sampled_from(list(AttemptState) if not common else live if index == count - 1 else ended)
            ),
            draw(st.sampled_from([None, PaymentMethod.CREDIT, PaymentMethod.ATM])),
            draw(st.booleans()),
        )
        for index in range(count)
    )
    base = Transaction(
        new_id(),
        user_id,
        TransactionType.DEPOSIT if common else draw(st.sampled_from(list(TransactionType))),
        500,
        draw(st.sampled_from(list(TransactionStatus))),
        1,
        T0,
        T0,
        payment_method=draw(st.sampled_from([PaymentMethod.CREDIT, PaymentMethod.ATM, None])),
        flags=draw(st.sampled_from([frozenset(), frozenset({"other"})])),
        next_check_at=draw(st.sampled_from([None, T0 + timedelta(minutes=5)])),
        check_count=draw(st.integers(0, 2)),
        invoice=None
        if common
        else draw(
            st.sampled_from([None, InvoiceState(InvoiceStatus.REQUESTED), InvoiceState(InvoiceStatus.ISSUED)])
        ),
    )
    txn = with_attempts(base, attempts)
    if not common and draw(st.booleans()):  # fields at odds with the attempts: the conditions must see it
        txn = draw(
            st.sampled_from(
                [
                    base._replace(attempts=attempts),
                    txn._replace(payment_info={"BankCode": "700"}),
                    txn._replace(expires_at=T0 + timedelta(days=1)),
                    txn._replace(payment_method=PaymentMethod.BARCODE),
                ]
            )
        )
    if common:
        return txn, UserStatus.ACTIVE, 1
    user_status = draw(st.sampled_from([UserStatus.ACTIVE, UserStatus.CLOSED]))
    return txn, user_status, draw(st.integers(0, 2))


@st.composite
def notifications(draw: st.DrawFn, txn: Transaction) -> EcpayOutcome:
    """A verified paid notification for ``txn``: mostly about one of its attempts, for its amount."""
    known = [a.merchant_trade_no for a in txn.attempts]
    # Mostly the newest attempt (the live one of a common state), else any, else one never recorded.
    choices = [*known[-1:] * 6, *known, f"{txn.transaction_id}zz"]
    mtn = draw(st.sampled_from(choices))
    return EcpayOutcome(
        kind=OutcomeKind.PAID,
        transaction_id=txn.transaction_id,
        merchant_trade_no=mtn,
        merchant_id=MERCHANT,
        amount=draw(st.sampled_from([txn.amount] * 9 + [txn.amount + 1])),
        trade_no=draw(st.sampled_from(["2601010500000001", "2601010500000002"])),
        simulate_paid=draw(st.sampled_from([False] * 9 + [True])),
        payment_type=draw(st.sampled_from(["Credit_CreditCard", "ATM_LAND", ""])),
        payment_info=draw(st.sampled_from([CARD_INFO, {}])),
        paid_at=draw(st.sampled_from([None, T0 + timedelta(minutes=30)])),
    )


def seed(store: DynamoDBStore, txn: Transaction, user_status: UserStatus, open_count: int) -> None:
    """Write the prior state: the user (with money and open transactions) and the deposit."""
    user = User(txn.user_id, f"n-{txn.user_id}", "u@example.com", 0, 0, UserStatus.ACTIVE, 0, T0, T0)
    store.create_user(user)
    store.commit(AtomicWrite(user_delta=UserDelta(user.user_id, delta_balance=1000, delta_open=open_count)))
    store.commit(AtomicWrite(transactions=[TransactionPut(txn, 0)]))
    if user_status is UserStatus.CLOSED:
        store.client.update_item(
            TableName=store.table_name,
            Key={"pk": {"S": f"USER#{user.user_id}"}, "sk": {"S": "USER"}},
            UpdateExpression="SET #s = :closed",
            ExpressionAttributeNames={"#s": "status"},
            ExpressionAttributeValues={":closed": {"S": "closed"}},
        )


def apply(store: WalletStore, oc: EcpayOutcome, delivery: Delivery, *, guessing: bool) -> OutcomeResult:
    return apply_outcome(
        store,
        oc,
        delivery,
        merchant_id=MERCHANT,
        clock=lambda: NOW,
        user_id=_USERS[oc.transaction_id] if guessing else None,  # the ReturnURL's user id
    )


# The user id each transaction's ReturnURL carries (set by the tests: usually its owner's).
_USERS: dict[str, str] = {}


def raw(store: DynamoDBStore, pk: str, sk: str) -> dict[str, Any] | None:
    item = store.client.get_item(
        TableName=store.table_name, Key={"pk": {"S": pk}, "sk": {"S": sk}}, ConsistentRead=True
    ).get("Item")
    return None if item is None else dict(item)


def state(store: DynamoDBStore, txn: Transaction) -> tuple[Any, ...]:
    """Everything the notification may have changed, comparable across the two tables."""
    records = store.get_transaction_records(txn.transaction_id)
    ledger = [] if records is None else [e._replace(entry_id="") for e in records.ledger]
    notes = [] if records is None else records.notifications
    return (
        raw(store, f"TXN#{txn.transaction_id}", "TXN"),
        raw(store, f"USER#{txn.user_id}", "USER"),
        ledger,
        notes,
        [e._replace(entry_id="") for e in store.list_ledger(user_id=txn.user_id)],
    )


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data(), prior=prior_states())
def test_the_guess_ends_where_read_decide_write_ends(
    tables: tuple[DynamoDBStore, DynamoDBStore], data: st.DataObject, prior: tuple[Any, ...]
) -> None:
    fast, slow = tables
    txn, user_status, open_count = prior
    missing = data.draw(st.integers(0, 19)) == 0  # a notification for a transaction never stored
    for store in (fast, slow):
        if missing:
            store.create_user(
                User(txn.user_id, "n-" + txn.user_id, "u@x.example", 0, 0, UserStatus.ACTIVE, 0, T0, T0)
            )
        else:
            seed(store, txn, user_status, open_count)
    owner = data.draw(st.sampled_from([txn.user_id] * 9 + ["someone-else"]))
    _USERS[txn.transaction_id] = owner
    oc = data.draw(notifications(txn))
    # The guess's common state, by construction: its one write must apply (the conditions are not
    # stricter than they need to be), where the equality below says it is not looser.
    common = (
        not missing
        and user_status is UserStatus.ACTIVE
        and open_count == 1
        and txn.invoice is None
        and txn.status in (TransactionStatus.AWAITING_PAYMENT, TransactionStatus.AWAITING_OFFLINE_PAYMENT)
        and txn.transaction_type is TransactionType.DEPOSIT
        and txn == with_attempts(txn, txn.attempts)
        and (owner, oc.amount, oc.simulate_paid) == (txn.user_id, txn.amount, False)
        and txn.merchant_trade_no == oc.merchant_trade_no
        and not any(a.state is AttemptState.PAID for a in txn.attempts)
    )
    for round_ in range(2):  # the first delivery, then ECPay's re-delivery of the same notification
        delivery = Delivery(f"n{round_}{new_id()}", "return", "RtnCode=1", NOW)
        calls = Calls(fast)
        try:
            assert outcome(fast, oc, delivery, guessing=True) == outcome(slow, oc, delivery, guessing=False)
        finally:
            calls.close()
        assert state(fast, txn) == state(slow, txn)
        if common and round_ == 0:
            assert calls.names == ["TransactWriteItems"]


def outcome(store: DynamoDBStore, oc: EcpayOutcome, delivery: Delivery, *, guessing: bool) -> tuple[str, str]:
    """(status, label) of applying ``oc``, or the conflict it raised (a prior state at odds with the
    user's counters refuses the credit either way)."""
    try:
        result = apply(store, oc, delivery, guessing=guessing)
    except StoreConflict as exc:
        return "raised", type(exc).__name__
    return result.status, result.outcome


# --- the call budget and the named cases ------------------------------------------------------------


@pytest.fixture
def store(tables: tuple[DynamoDBStore, DynamoDBStore]) -> DynamoDBStore:
    return tables[0]


def awaiting(store: DynamoDBStore, *, coded: bool = False) -> tuple[Transaction, str]:
    """A deposit awaiting payment on one attempt (card; an ATM code when ``coded``), stored."""
    tid = new_id()
    mtn = f"{tid}a0000001"  # the transaction id + an 8-character attempt suffix, as checkout makes it
    attempt = _attempt(
        mtn,
        AttemptState.AWAITING_OFFLINE_PAYMENT if coded else AttemptState.AWAITING_PAYMENT,
        PaymentMethod.ATM if coded else PaymentMethod.CREDIT,
        coded,
    )
    base = Transaction(tid, new_id(), TransactionType.DEPOSIT, 500, TransactionStatus.PENDING, 1, T0, T0)
    txn = with_attempts(base._replace(payment_method=attempt.payment_method), (attempt,))
    seed(store, txn, UserStatus.ACTIVE, 1)
    _USERS[txn.transaction_id] = txn.user_id
    return txn, mtn


def paid(txn: Transaction, mtn: str, **changes: Any) -> EcpayOutcome:
    fields: dict[str, Any] = {
        "kind": OutcomeKind.PAID,
        "transaction_id": txn.transaction_id,
        "merchant_trade_no": mtn,
        "merchant_id": MERCHANT,
        "amount": txn.amount,
        "trade_no": "2601010500000001",
        "payment_type": "Credit_CreditCard",
        "payment_info": CARD_INFO,
    }
    fields.update(changes)
    return EcpayOutcome(**fields)


def delivery() -> Delivery:
    return Delivery(f"n{new_id()}", "return", "RtnCode=1", NOW)


def test_dynamodb_store_is_a_speculative_store(store: DynamoDBStore) -> None:
    speculative: SpeculativeStore = store  # mypy checks the structure; this checks it is callable
    assert callable(speculative.run_guessed)


@pytest.mark.parametrize("coded", [False, True], ids=["card", "atm_code_issued"])
def test_an_applied_notification_is_one_transact_write_items(store: DynamoDBStore, coded: bool) -> None:
    txn, mtn = awaiting(store, coded=coded)
    calls = Calls(store)
    result = apply(store, paid(txn, mtn), delivery(), guessing=True)
    assert (result.status, result.outcome) == ("applied", "applied")
    assert calls.names == ["TransactWriteItems"]
    stored = store.get_transaction(txn.transaction_id)
    assert stored is not None and stored.status is TransactionStatus.PAID
    assert stored.version == txn.version + 1 and stored.paid_at == NOW and stored.updated_at == NOW
    assert stored.trade_no == "2601010500000001" and stored.attempts[0].state is AttemptState.PAID
    expected_info = {**txn.payment_info, **CARD_INFO, "payment_type": "Credit_CreditCard"}
    assert stored.payment_info == stored.attempts[0].payment_info == expected_info
    user = store.get_user(txn.user_id)
    assert user is not None and (user.balance, user.open_transactions) == (1500, 0)
    assert [e.kind for e in store.list_ledger(user_id=txn.user_id)] == ["deposit_paid"]
    assert [n.outcome for n in store.list_notifications(txn.transaction_id)] == ["applied"]
    # It is in the paid-deposit index, out of the reconciliation one, like any write of a paid deposit.
    day = store.iter_paid_deposits(paid_from=NOW, paid_to=NOW + timedelta(microseconds=1))
    assert txn.transaction_id in [t.transaction_id for t in day]
    assert txn.transaction_id not in [t.transaction_id for t in store.list_awaiting_payment(due_before=NOW)]


def test_a_duplicate_decides_on_the_returned_item_without_reading(store: DynamoDBStore) -> None:
    txn, mtn = awaiting(store)
    oc = paid(txn, mtn)
    apply(store, oc, delivery(), guessing=True)
    calls = Calls(store)
    result = apply(store, oc, delivery(), guessing=True)
    assert (result.status, result.outcome) == ("duplicate", "duplicate")
    assert calls.names == ["TransactWriteItems", "PutItem"]  # the cancelled guess, then the record
    user = store.get_user(txn.user_id)
    assert user is not None and user.balance == 1500  # credited once


def test_a_mismatch_and_an_unknown_transaction_cost_no_read(store: DynamoDBStore) -> None:
    txn, mtn = awaiting(store)
    calls = Calls(store)
    result = apply(store, paid(txn, mtn, amount=499), delivery(), guessing=True)
    assert (result.status, result.outcome) == ("rejected", "rejected:amount")
    unknown = paid(txn._replace(transaction_id=new_id()), mtn)
    _USERS[unknown.transaction_id] = txn.user_id
    result = apply(store, unknown, delivery(), guessing=True)
    assert result.outcome == "ignored:unknown_transaction"
    assert calls.names == ["TransactWriteItems", "PutItem"] * 2


def test_an_item_of_the_previous_layout_takes_the_slow_path_and_is_rewritten(store: DynamoDBStore) -> None:
    txn, mtn = awaiting(store)
    item = raw(store, f"TXN#{txn.transaction_id}", "TXN")
    assert item is not None
    item["attempts"] = {
        "L": [
            {
                "M": {
                    k: {"S": v} if isinstance(v, str) else {"M": {a: {"S": b} for a, b in v.items()}}
                    for k, v in attempt_to_json(a).items()
                    if v is not None
                }
            }
            for a in txn.attempts
        ]
    }
    item.pop("paid_attempt", None)
    store.client.put_item(TableName=store.table_name, Item=item)
    assert store.get_transaction(txn.transaction_id) == txn
    calls = Calls(store)
    result = apply(store, paid(txn, mtn), delivery(), guessing=True)
    assert (result.status, result.outcome) == ("applied", "applied")
    assert calls.names == ["TransactWriteItems", "TransactWriteItems"]  # refused guess; decided write
    rewritten = raw(store, f"TXN#{txn.transaction_id}", "TXN")
    assert rewritten is not None and "M" in rewritten["attempts"]
    user = store.get_user(txn.user_id)
    assert user is not None and user.balance == 1500


def test_a_closed_owner_is_credited_and_flagged_as_without_the_guess(store: DynamoDBStore) -> None:
    txn, mtn = awaiting(store)
    store.client.update_item(
        TableName=store.table_name,
        Key={"pk": {"S": f"USER#{txn.user_id}"}, "sk": {"S": "USER"}},
        UpdateExpression="SET #s = :closed",
        ExpressionAttributeNames={"#s": "status"},
        ExpressionAttributeValues={":closed": {"S": "closed"}},
    )
    result = apply(store, paid(txn, mtn), delivery(), guessing=True)
    assert (result.status, result.outcome) == ("flagged", "flagged:closed_user_credit")
    user = store.get_user(txn.user_id)
    assert user is not None and user.balance == 1500


def test_the_return_url_guesses_first_deliveries_and_reads_for_redeliveries(store: DynamoDBStore) -> None:
    """Through the notification handler: the ReturnURL's user id makes the first delivery one call;
    ECPay's re-delivery (RtnMsg=paid) reads first rather than pay for a cancelled transaction."""
    credentials = MerchantCredentials.stage_test_merchant()
    handler = CallbackHandler(store, credentials, make_client(FakeEcpay()), False, lambda: NOW)
    txn, mtn = awaiting(store)
    tid = txn.transaction_id
    calls = Calls(store)
    first = handler.handle_return(return_body(mtn, 500), route_transaction_id=tid, route_user_id=txn.user_id)
    assert (first.outcome, calls.names) == ("applied", ["TransactWriteItems"])
    calls.names.clear()
    again = handler.handle_return(
        return_body(mtn, 500, rtn_msg="paid"), route_transaction_id=tid, route_user_id=txn.user_id
    )
    assert (again.outcome, calls.names) == ("duplicate", ["GetItem", "PutItem"])


def test_through_local_modes_outbox_the_use_case_runs_and_its_event_is_written(
    store: DynamoDBStore, tmp_path: Path
) -> None:
    """The outbox needs the images a speculative write skips: it hides run_guessed, so the guess falls
    back to read-decide-write and deposit.paid is in the outbox."""
    outbox = OutboxStore(store, tmp_path / "events.jsonl")
    assert not hasattr(outbox, "run_guessed") and hasattr(outbox, "list_ledger")
    txn, mtn = awaiting(store)
    result = apply(outbox, paid(txn, mtn), delivery(), guessing=True)
    assert result.outcome == "applied"
    assert [e["name"] for e in read_outbox(outbox.path)] == ["deposit.paid"]


def test_concurrent_deliveries_of_one_payment_credit_once(store: DynamoDBStore) -> None:
    """ECPay's deliveries racing each other, all guessed: one credit, every other one a duplicate."""
    txn, mtn = awaiting(store)
    oc = paid(txn, mtn)

    def deliver(_: int) -> str:
        return apply(store, oc, delivery(), guessing=True).outcome

    with ThreadPoolExecutor(max_workers=6) as pool:
        outcomes = Counter(pool.map(deliver, range(18)))
    assert outcomes == {"applied": 1, "duplicate": 17}
    user = store.get_user(txn.user_id)
    assert user is not None and (user.balance, user.open_transactions) == (1500, 0)
    assert [e.delta_balance for e in store.list_ledger(user_id=txn.user_id)] == [500]
    records = store.list_notifications(txn.transaction_id)
    assert sorted(r.outcome for r in records) == ["applied"] + ["duplicate"] * 17


def test_with_the_cross_check_the_guess_is_the_write_after_the_confirmation(store: DynamoDBStore) -> None:
    """Never credited before ECPay confirms: read, ask ECPay, then the guess (2 calls, 3 before)."""
    fake = FakeEcpay()
    credentials = MerchantCredentials.stage_test_merchant()
    handler = CallbackHandler(store, credentials, make_client(fake), True, lambda: NOW)
    txn, mtn = awaiting(store)
    tid = txn.transaction_id
    fake.trades[mtn] = Trade(amount=500, status="0")  # ECPay: not paid
    calls = Calls(store)
    refused = handler.handle_return(
        return_body(mtn, 500), route_transaction_id=tid, route_user_id=txn.user_id
    )
    assert (refused.outcome, calls.names) == ("rejected:cross_check", ["GetItem", "PutItem"])
    fake.trades[mtn] = Trade(amount=500, status="1")
    calls.names.clear()
    paid_reply = handler.handle_return(
        return_body(mtn, 500), route_transaction_id=tid, route_user_id=txn.user_id
    )
    assert (paid_reply.outcome, calls.names) == ("applied", ["GetItem", "TransactWriteItems"])
    user = store.get_user(txn.user_id)
    assert user is not None and user.balance == 1500
