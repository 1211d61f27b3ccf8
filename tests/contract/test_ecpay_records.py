"""ECPay's records are the truth: the wallet against the real sandbox, in process, on every store.

One clock drives both the wallet and the sandbox (10:00 Asia/Taipei, far from the 20:15 daily close,
whatever the real time), so card capture states and the close window are exact. The sandbox's
notifications are either delivered to the wallet's callback handler or lost, as each test says.
Each test is one of the findings of the ECPay reconciliation issue; all of them failed before.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pytest

from ecpay_lambda.ecpay.client import EcpayClient
from ecpay_lambda.ecpay.credentials import MerchantCredentials
from ecpay_lambda.ecpay.environments import Endpoints
from ecpay_lambda.ecpay.errors import TransportError
from ecpay_lambda.ecpay.timezone import TAIPEI
from ecpay_lambda.ecpay.transport import HttpResponse
from ecpay_lambda.local.sandbox import Sandbox, SandboxApp, SandboxTransport, Trade
from ecpay_lambda.wallet import errors
from ecpay_lambda.wallet.models import AttemptState, PaymentMethod, TransactionStatus, TransactionType
from ecpay_lambda.wallet.port import WalletStore
from ecpay_lambda.wallet.service import CheckoutUrls, EcpayConfig, WalletService

from .conftest import Clock

STAGE = MerchantCredentials.stage_test_merchant()
BASE = "http://sandbox.invalid"
CHECK_CODE = 12345678  # the sandbox's default credit check code
URLS = CheckoutUrls(
    return_url=f"{BASE}/merchant/return",
    payment_info_url=f"{BASE}/merchant/paymentInfo",
    client_back_url=f"{BASE}/merchant/back",
    order_result_url=f"{BASE}/merchant/clientReturn",
)
S = TransactionStatus


@dataclass
class Postman:
    """The sandbox's way to the merchant: delivers notifications to the wallet, or loses them."""

    service: WalletService | None = None
    lose: bool = False
    lost: list[tuple[str, dict[str, str]]] = field(default_factory=list)

    def __call__(self, url: str, fields: dict[str, str], timeout: float) -> tuple[int, bytes]:
        if self.lose or self.service is None:
            self.lost.append((url, dict(fields)))
            return 200, b"1|OK"  # "delivered" somewhere the wallet never sees
        body = urllib.parse.urlencode(fields).encode()
        if url.endswith("/paymentInfo"):
            reply = self.service.handle_payment_info(body)
        else:
            reply = self.service.handle_return(body)
        return 200, reply.body.encode()


class Hanging:
    """A transport to an ECPay that accepts and never answers: each call costs the client's timeout."""

    def __init__(self, clock: Clock, seconds: float) -> None:
        self.clock = clock
        self.seconds = seconds
        self.calls = 0

    def post_form(self, url: str, fields: object, *, timeout: float) -> HttpResponse:
        self.calls += 1
        self.clock.advance(seconds=timeout)
        raise TransportError("timed out")


@dataclass
class World:
    """The wallet, the sandbox and the clock they share."""

    service: WalletService
    sandbox: Sandbox
    clock: Clock
    postman: Postman

    def user(self, name: str = "alice") -> str:
        return self.service.create_user(name, f"{name}@example.com").user_id

    def deposit(self, user_id: str, amount: int, method: PaymentMethod | None = None) -> str:
        txn, _ = self.service.create_transaction(
            user_id, TransactionType.DEPOSIT, amount, payment_method=method
        )
        return txn.transaction_id

    def check_out(self, user_id: str, tid: str, method: PaymentMethod) -> str:
        """Check out and submit the form to the sandbox as the shopper's browser does."""
        form = self.service.checkout(user_id, tid, URLS, payment_method=method)
        assert isinstance(self.sandbox.checkout(form.fields), Trade)
        return form.fields["MerchantTradeNo"]

    def txn(self, user_id: str, tid: str):  # type: ignore[no-untyped-def]
        return self.service.get_transaction(user_id, tid).transaction

    def balance(self, user_id: str) -> int:
        return self.service.get_user(user_id).balance

    def paid_card(self, user_id: str, amount: int) -> tuple[str, str]:
        tid = self.deposit(user_id, amount, PaymentMethod.CREDIT)
        mtn = self.check_out(user_id, tid, PaymentMethod.CREDIT)
        self.sandbox.pay(mtn)
        assert self.txn(user_id, tid).status is S.PAID
        return tid, mtn


@pytest.fixture
def world(store: WalletStore) -> Iterator[World]:
    clock = Clock(datetime(2026, 11, 27, 10, 0, tzinfo=TAIPEI).astimezone(UTC))
    postman = Postman()
    sandbox = Sandbox(STAGE, clock=clock, send=postman)
    client = EcpayClient(
        STAGE,
        Endpoints(BASE),
        transport=SandboxTransport(SandboxApp(sandbox)),
        clock=lambda: clock().timestamp(),
    )
    config = EcpayConfig(
        credentials=STAGE, client=client, cross_check_paid=False, credit_check_code=CHECK_CODE
    )
    service = WalletService(store, config, clock=clock)
    postman.service = service
    try:
        yield World(service, sandbox, clock, postman)
    finally:
        sandbox.close()


# --- 1. a payment on an earlier checkout attempt -------------------------------------------------


@pytest.mark.parametrize("how", ["sync", "reconcile"])
def test_a_payment_on_a_superseded_attempt_is_found_and_credited(world: World, how: str) -> None:
    uid = world.user()
    tid = world.deposit(uid, 2000)
    a = world.check_out(uid, tid, PaymentMethod.ATM)
    world.sandbox.issue_code(a)  # delivered: the wallet shows A's virtual account
    assert world.txn(uid, tid).status is S.AWAITING_OFFLINE_PAYMENT
    b = world.check_out(uid, tid, PaymentMethod.CREDIT)  # the shopper presses pay again, by card
    world.postman.lose = True  # every notification from here on is lost
    world.sandbox.fail(b)
    world.sandbox.pay(a)  # A's code paid at the bank
    world.clock.advance(minutes=20)
    if how == "sync":
        got = world.service.sync(uid, tid)
    else:
        report = world.service.reconcile()
        assert report.paid == 1 and report.queries == 2  # both attempts asked about
        got = world.txn(uid, tid)
    assert got.status is S.PAID and got.merchant_trade_no == a and world.balance(uid) == 2000
    assert [(x.merchant_trade_no, x.state) for x in got.attempts] == [
        (a, AttemptState.PAID),
        (b, AttemptState.FAILED),
    ]
    assert world.service.audit().clean


def test_a_failed_card_attempt_keeps_an_earlier_code_payable(world: World) -> None:
    uid = world.user()
    tid = world.deposit(uid, 2000)
    a = world.check_out(uid, tid, PaymentMethod.ATM)
    world.sandbox.issue_code(a)
    b = world.check_out(uid, tid, PaymentMethod.CREDIT)
    world.sandbox.fail(b)  # delivered: RtnCode != 1 for B
    got = world.txn(uid, tid)
    assert got.status is S.AWAITING_OFFLINE_PAYMENT and got.merchant_trade_no == a
    assert got.payment_info.get("v_account")
    world.sandbox.pay(a)  # delivered this time
    assert world.txn(uid, tid).status is S.PAID and world.balance(uid) == 2000


def test_a_second_paid_attempt_is_flagged_never_credited(world: World) -> None:
    uid = world.user()
    tid = world.deposit(uid, 700)
    a = world.check_out(uid, tid, PaymentMethod.ATM)
    world.sandbox.issue_code(a)
    b = world.check_out(uid, tid, PaymentMethod.CREDIT)
    world.sandbox.pay(b)
    world.sandbox.pay(a)  # the old code paid too
    got = world.txn(uid, tid)
    assert got.merchant_trade_no == b and "duplicate_payment" in got.flags and world.balance(uid) == 700
    audit = world.service.audit()
    assert audit.clean and any("duplicate_payment" in line for line in audit.flagged)


# --- 2. reconciliation never starves behind abandoned checkouts ----------------------------------


def test_abandoned_checkouts_do_not_starve_a_paid_deposit(world: World) -> None:
    uid = world.user()
    for _ in range(3):
        world.check_out(uid, world.deposit(uid, 100), PaymentMethod.CREDIT)  # never paid
        world.clock.advance(seconds=1)
    world.postman.lose = True
    paid = world.deposit(uid, 500)
    world.sandbox.pay(world.check_out(uid, paid, PaymentMethod.CREDIT))
    world.clock.advance(minutes=20)
    first = world.service.reconcile(limit=3)
    assert (first.checked, first.paid, first.unchanged) == (3, 0, 3)
    second = world.service.reconcile(limit=3)
    assert second.paid == 1 and world.balance(uid) == 500
    # The abandoned ones back off: the next runs ask about them less and less often.
    assert world.service.reconcile(limit=3).checked == 0
    world.clock.advance(minutes=20)
    assert world.service.reconcile(limit=3).checked == 3


# --- 3. a closed user never holds money silently ------------------------------------------------


def test_a_user_with_a_payable_code_cannot_be_closed(world: World) -> None:
    uid = world.user()
    tid = world.deposit(uid, 2000)
    a = world.check_out(uid, tid, PaymentMethod.ATM)
    world.sandbox.issue_code(a)
    world.sandbox.fail(world.check_out(uid, tid, PaymentMethod.CREDIT))
    with pytest.raises(errors.UserNotEmpty) as refused:
        world.service.close_user(uid)
    assert tid in refused.value.message and refused.value.details == {
        "balance": 0,
        "held": 0,
        "transactions": [tid],
    }
    with pytest.raises(errors.DepositPayable) as payable:
        world.service.update_withdraw(uid, tid, "cancel")
    assert a in payable.value.message
    world.sandbox.expire(a)  # ECPay: the code is no longer payable
    world.clock.advance(days=4)
    cancelled = world.service.cancel_deposit(uid, tid)
    assert cancelled.status is S.CANCELLED
    assert world.service.close_user(uid).status == "closed"


def test_money_that_reaches_a_closed_user_is_credited_flagged_and_audited(world: World) -> None:
    uid = world.user()
    tid = world.deposit(uid, 2000)
    a = world.check_out(uid, tid, PaymentMethod.ATM)
    world.postman.lose = True
    world.clock.advance(minutes=20)
    # ECPay has no trade for A yet (the form was just checked out): reconcile ends the attempt...
    world.sandbox.book.clear()
    assert world.service.reconcile().failed == 1
    assert world.service.close_user(uid).status == "closed"
    # ...but the signed form was still submitted and paid (a late ATM transfer): ECPay has the money,
    # and its ReturnURL reaches a closed user.
    reply = world.service.handle_return(urllib.parse.urlencode(_sign(_paid_return_fields(a, 2000))).encode())
    assert reply.accepted and reply.outcome == "flagged:closed_user_credit"
    assert world.balance(uid) == 2000 and "closed_user_credit" in world.txn(uid, tid).flags
    audit = world.service.audit()
    assert not audit.clean and any(uid in line and "closed" in line for line in audit.problems)
    assert world.service.reopen_user(uid).status == "active"
    assert world.service.audit().clean
    with pytest.raises(errors.InvalidState):
        world.service.reopen_user(uid)


def _paid_return_fields(mtn: str, amount: int) -> dict[str, str]:
    return {
        "CustomField1": "",
        "CustomField2": "",
        "CustomField3": "",
        "CustomField4": "",
        "MerchantID": STAGE.merchant_id,
        "MerchantTradeNo": mtn,
        "PaymentDate": "2026/11/27 10:30:00",
        "PaymentType": "ATM_TAISHIN",
        "PaymentTypeChargeFee": "10",
        "RtnCode": "1",
        "RtnMsg": "交易成功",
        "SimulatePaid": "0",
        "StoreID": "",
        "TradeAmt": str(amount),
        "TradeDate": "2026/11/27 10:00:00",
        "TradeNo": "2611271000000099",
    }


def _sign(fields: dict[str, str]) -> dict[str, str]:
    from ecpay_lambda.ecpay.checkmac import check_mac_value  # noqa: PLC0415

    return {**fields, "CheckMacValue": check_mac_value(fields, STAGE.hash_key, STAGE.hash_iv)}


# --- 4. refunds follow the card trade's capture state ------------------------------------------


def _actions(world: World, mtn: str) -> list[tuple[str, int, bool]]:
    return [(a["action"], a["amount"], a["ok"]) for a in world.sandbox.trade(mtn).actions]


def test_a_same_day_refund_abandons_in_full_and_refuses_a_partial(world: World) -> None:
    uid = world.user()
    tid, mtn = world.paid_card(uid, 600)
    with pytest.raises(errors.RefundNotPossible) as partial:
        world.service.refund(uid, tid, 200)
    assert partial.value.code == "refund_partial_before_close" and world.balance(uid) == 600
    refund = world.service.refund(uid, tid)
    assert refund.status is S.COMPLETED and refund.payment_info["plan"] == "N"
    assert _actions(world, mtn) == [("N", 600, True)]
    assert world.sandbox.card_state(world.sandbox.trade(mtn)) == "cancelled"
    assert world.balance(uid) == 0 and world.service.audit().clean


def test_refunds_while_the_trade_is_to_be_closed(world: World) -> None:
    uid = world.user("bob")
    tid, mtn = world.paid_card(uid, 900)
    world.sandbox.close_trade(mtn, "to_be_closed")
    world.service.refund(uid, tid, 300)  # partial: R
    with pytest.raises(errors.RefundNotPossible) as rest:  # E+N would undo the first refund
        world.service.refund(uid, tid)
    assert rest.value.code == "refund_rest_after_close"
    world.service.refund(uid, tid, 100)  # another part: R
    world.clock.advance(days=1)  # the next daily close: 已關帳
    world.service.refund(uid, tid)  # the rest: R
    assert _actions(world, mtn) == [("R", 300, True), ("R", 100, True), ("R", 500, True)]
    other, other_mtn = world.paid_card(uid, 400)
    world.sandbox.close_trade(other_mtn, "to_be_closed")
    world.service.refund(uid, other)  # whole: E then N
    assert _actions(world, other_mtn) == [("E", 400, True), ("N", 400, True)]
    assert world.balance(uid) == 0 and world.service.audit().clean


def test_refunds_after_the_close_and_during_it(world: World) -> None:
    uid = world.user()
    tid, mtn = world.paid_card(uid, 800)
    world.clock.advance(days=2)  # two daily closes: 已關帳
    assert world.sandbox.card_state(world.sandbox.trade(mtn)) == "closed"
    world.service.refund(uid, tid, 100)
    assert _actions(world, mtn) == [("R", 100, True)]
    # 20:20 in Taipei: ECPay is closing; nothing is sent, nothing debited.
    world.clock.now = datetime.combine(
        world.clock.now.astimezone(TAIPEI).date(), datetime.min.time(), TAIPEI
    ).replace(hour=20, minute=20)
    with pytest.raises(errors.RefundNotPossible) as window:
        world.service.refund(uid, tid, 100)
    assert window.value.code == "refund_close_window" and world.balance(uid) == 700
    assert len(_actions(world, mtn)) == 1


def test_installment_trades_refund_in_full_only(world: World) -> None:
    uid = world.user()
    tid = world.deposit(uid, 3000, PaymentMethod.CREDIT)
    form = world.service.checkout(uid, tid, URLS, payment_method=PaymentMethod.CREDIT)
    fields = dict(form.fields)
    fields["CreditInstallment"] = "3"
    assert isinstance(world.sandbox.checkout(_resign(fields)), Trade)
    world.sandbox.pay(fields["MerchantTradeNo"])
    assert world.txn(uid, tid).payment_info.get("installments")
    world.clock.advance(days=2)
    with pytest.raises(errors.RefundNotPossible) as partial:
        world.service.refund(uid, tid, 1000)
    assert partial.value.code == "refund_full_only"
    assert world.service.refund(uid, tid).status is S.COMPLETED


def _resign(fields: dict[str, str]) -> dict[str, str]:
    unsigned = {k: v for k, v in fields.items() if k != "CheckMacValue"}
    return _sign(unsigned)


# --- 5. a refund that never reached ECPay is settled by ECPay's answer ---------------------------


@pytest.mark.parametrize(("fault", "completed"), [("unreachable", False), ("answer_lost", True)])
def test_a_refund_whose_outcome_is_unknown_is_settled_by_asking_ecpay(
    world: World, fault: str, completed: bool
) -> None:
    uid = world.user()
    tid, mtn = world.paid_card(uid, 500)
    world.clock.advance(days=2)
    world.sandbox.settings = world.sandbox.settings.updated({"do_action_fault": fault})
    with pytest.raises(errors.PaymentGatewayError):
        world.service.refund(uid, tid, 200)
    world.sandbox.settings = world.sandbox.settings.updated({"do_action_fault": None})
    assert world.balance(uid) == 300  # debited while unknown
    world.clock.advance(minutes=20)
    report = world.service.reconcile()
    assert (report.refunds_settled, report.refunds_reversed) == ((1, 0) if completed else (0, 1))
    assert world.balance(uid) == (300 if completed else 500)
    assert world.sandbox.trade(mtn).refunded_amount == (200 if completed else 0)
    assert world.service.audit().clean


# --- 6. reconciliation has a deadline ---------------------------------------------------------


def test_a_hanging_ecpay_ends_the_run_at_its_deadline(world: World, store: WalletStore) -> None:
    uid = world.user()
    for _ in range(4):
        world.check_out(uid, world.deposit(uid, 100), PaymentMethod.CREDIT)
    world.clock.advance(minutes=20)
    hanging = Hanging(world.clock, 10)
    client = EcpayClient(STAGE, Endpoints(BASE), transport=hanging, timeout=10)
    config = EcpayConfig(
        credentials=STAGE, client=client, cross_check_paid=False, credit_check_code=CHECK_CODE
    )
    service = WalletService(store, config, clock=world.clock)
    started = world.clock.now
    report = service.reconcile(budget=timedelta(seconds=25))
    assert world.clock.now - started <= timedelta(seconds=25)  # the fake clock, not the wall clock
    assert (report.stopped, report.queries, report.checked, report.skipped) == ("deadline", 2, 2, 2)
    assert len(report.errors) == 2 and world.balance(uid) == 0
    # Without a deadline, three silent queries in a row are enough to stop asking.
    report = service.reconcile(ignore_schedule=True)
    assert report.stopped == "ecpay_unreachable" and hanging.calls == 5 and report.skipped == 1


# --- 7. amount limits per method --------------------------------------------------------------


def test_a_deposit_outside_the_methods_limits_is_refused(world: World) -> None:
    uid = world.user()
    with pytest.raises(errors.AmountOutOfRange) as refused:
        world.deposit(uid, 10, PaymentMethod.CVS)
    assert "CVS" in refused.value.message and "33" in refused.value.message
    tid = world.deposit(uid, 10)  # no method yet: fine (a card takes 5 and up)
    with pytest.raises(errors.AmountOutOfRange):
        world.service.checkout(uid, tid, URLS, payment_method=PaymentMethod.CVS)
    assert world.txn(uid, tid).attempts == ()
    world.check_out(uid, tid, PaymentMethod.CREDIT)


# --- ECPay's trade file --------------------------------------------------------------------------


def test_the_trade_file_finds_a_lost_payment_and_reports_what_it_cannot_resolve(world: World) -> None:
    uid = world.user()
    world.postman.lose = True
    lost = world.deposit(uid, 1200)
    lost_mtn = world.check_out(uid, lost, PaymentMethod.ATM)
    world.sandbox.issue_code(lost_mtn)
    world.sandbox.pay(lost_mtn)
    world.postman.lose = False
    credited, _ = world.paid_card(uid, 300)
    # A trade ECPay has whose MerchantTradeNo is no deposit of this wallet.
    stranger = _resign(
        {
            "MerchantID": STAGE.merchant_id,
            "MerchantTradeNo": "zzzzzzzzzzzz0a1b2c3d",
            "MerchantTradeDate": "2026/11/27 10:00:00",
            "PaymentType": "aio",
            "TotalAmount": "50",
            "TradeDesc": "x",
            "ItemName": "x",
            "ReturnURL": URLS.return_url,
            "ChoosePayment": "Credit",
            "EncryptType": "1",
        }
    )
    assert isinstance(world.sandbox.checkout(stranger), Trade)
    world.sandbox.pay(stranger["MerchantTradeNo"])
    day = world.clock.now.astimezone(TAIPEI).date()
    before = world.service.audit(external=(day, day))
    assert not before.clean and any(lost_mtn in line for line in before.external)
    world.clock.advance(minutes=2)  # ECPay serves one file a minute
    report = world.service.reconcile_statement(day, day)
    assert report.paid_trades == 3 and report.matched == 1
    assert [line.split(":")[0] for line in report.credited] == [lost_mtn]
    assert len(report.discrepancies) == 1 and "unknown MerchantTradeNo" in report.discrepancies[0]
    assert world.balance(uid) == 1500 and world.txn(uid, lost).status is S.PAID
    assert world.txn(uid, credited).status is S.PAID
    world.clock.advance(minutes=2)  # ECPay serves one file a minute
    again = world.service.reconcile_statement(day, day)
    assert again.credited == [] and again.matched == 2 and len(again.discrepancies) == 1


def test_a_refund_repeated_with_its_idempotency_key_is_made_once(world: World) -> None:
    """A client retrying a refund after a lost answer gets the first refund, never a second one."""
    uid = world.user()
    tid, mtn = world.paid_card(uid, 900)
    world.clock.advance(days=2)  # closed: partial refunds are R
    first = world.service.refund(uid, tid, 200, idempotency_key="refund-1")
    again = world.service.refund(uid, tid, 200, idempotency_key="refund-1")
    assert again.transaction_id == first.transaction_id and again.status is S.COMPLETED
    assert _actions(world, mtn) == [("R", 200, True)] and world.balance(uid) == 700
    with pytest.raises(errors.IdempotencyMismatch):
        world.service.refund(uid, tid, 300, idempotency_key="refund-1")
    second = world.service.refund(uid, tid, 200, idempotency_key="refund-2")
    assert second.transaction_id != first.transaction_id and world.balance(uid) == 500
