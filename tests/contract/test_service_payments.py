"""ECPay outcomes through the WalletService on every adapter: notifications, checkout, refunds, sync."""

from __future__ import annotations

import base64

import pytest

from ecpay_lambda.ecpay.errors import TransportError
from ecpay_lambda.ecpay.testing import FakeEcpay, Trade
from ecpay_lambda.wallet import errors
from ecpay_lambda.wallet.models import PaymentMethod, Transaction, TransactionStatus, TransactionType
from ecpay_lambda.wallet.port import AtomicWrite, TransactionPut, WalletStore
from ecpay_lambda.wallet.service import WalletService

from .conftest import URLS, Clock, make_service
from .helpers import balance, fund, new_user, start_deposit
from .notices import (
    OTHER_MERCHANT,
    atm_info_body,
    return_body,
    return_fields,
    signed_body,
)


def _outcomes(service: WalletService, user_id: str, tid: str) -> list[str]:
    return [n.outcome for n in service.get_transaction(user_id, tid).notifications]


def test_checkout_gives_a_signed_form_and_a_fresh_attempt_each_time(service: WalletService) -> None:
    user = new_user(service)
    deposit, _ = service.create_transaction(user.user_id, TransactionType.DEPOSIT, 300)
    form1 = service.checkout(user.user_id, deposit.transaction_id, URLS, payment_method=PaymentMethod.CREDIT)
    form2 = service.checkout(user.user_id, deposit.transaction_id, URLS)
    mtn1, mtn2 = form1.fields["MerchantTradeNo"], form2.fields["MerchantTradeNo"]
    assert (
        mtn1 != mtn2 and mtn1.startswith(deposit.transaction_id) and mtn2.startswith(deposit.transaction_id)
    )
    assert form2.fields["TotalAmount"] == "300" and form2.fields["ChoosePayment"] == "Credit"
    assert form2.fields["ReturnURL"] == URLS.return_url and "CheckMacValue" in form2.fields
    got = service.get_transaction(user.user_id, deposit.transaction_id).transaction
    assert (got.status, got.merchant_trade_no) == (TransactionStatus.AWAITING_PAYMENT, mtn2)
    assert service.get_user(user.user_id).open_transactions == 1


def test_offline_checkout_uses_payment_info_and_client_redirect(service: WalletService) -> None:
    user = new_user(service)
    deposit, _ = service.create_transaction(
        user.user_id, TransactionType.DEPOSIT, 300, payment_method=PaymentMethod.ATM
    )
    form = service.checkout(user.user_id, deposit.transaction_id, URLS)
    assert form.fields["ChoosePayment"] == "ATM"
    assert form.fields["PaymentInfoURL"] == URLS.payment_info_url
    assert form.fields["ClientRedirectURL"] == URLS.order_result_url
    assert "OrderResultURL" not in form.fields


def test_a_refused_checkout_changes_nothing(service: WalletService) -> None:
    user = new_user(service)
    deposit, _ = service.create_transaction(user.user_id, TransactionType.DEPOSIT, 100)
    with pytest.raises(errors.InvalidRequest):  # ECPay requires at least 3000 TWD for BNPL
        service.checkout(user.user_id, deposit.transaction_id, URLS, payment_method=PaymentMethod.BNPL)
    got = service.get_transaction(user.user_id, deposit.transaction_id).transaction
    assert got == deposit


def test_duplicate_paid_notifications_credit_once(service: WalletService) -> None:
    user = new_user(service)
    deposit, mtn = start_deposit(service, user.user_id, 400)
    first = service.handle_return(return_body(mtn, 400), route_transaction_id=deposit.transaction_id)
    # ECPay's retries say RtnMsg=paid: a different body with the same meaning.
    again = service.handle_return(
        return_body(mtn, 400, rtn_msg="paid"), route_transaction_id=deposit.transaction_id
    )
    b64 = base64.b64encode(return_body(mtn, 400))
    third = service.handle_return(b64, is_base64=True)
    assert [r.body for r in (first, again, third)] == ["1|OK"] * 3
    assert [r.outcome for r in (first, again, third)] == ["applied", "duplicate", "duplicate"]
    assert balance(service, user.user_id) == (400, 0)
    assert _outcomes(service, user.user_id, deposit.transaction_id) == ["applied", "duplicate", "duplicate"]
    assert service.audit().clean


@pytest.mark.parametrize(
    ("body_kwargs", "amount", "outcome"),
    [
        ({}, 399, "rejected:amount"),
        ({"simulate_paid": "1"}, 400, "ignored:simulate_paid"),
    ],
)
def test_amount_mismatch_and_simulated_payments_never_credit(
    service: WalletService, body_kwargs: dict[str, str], amount: int, outcome: str
) -> None:
    user = new_user(service)
    deposit, mtn = start_deposit(service, user.user_id, 400)
    reply = service.handle_return(return_body(mtn, amount, **body_kwargs))
    assert reply.outcome == outcome
    assert reply.accepted is (outcome == "ignored:simulate_paid")
    assert reply.body == ("1|OK" if reply.accepted else "0|amount")
    assert balance(service, user.user_id) == (0, 0)
    got = service.get_transaction(user.user_id, deposit.transaction_id)
    assert got.transaction.status is TransactionStatus.AWAITING_PAYMENT
    assert [n.outcome for n in got.notifications] == [outcome]
    assert got.notifications[0].dedupe_key is None


def test_unverified_bodies_are_recorded_and_answered_with_an_error(service: WalletService) -> None:
    user = new_user(service)
    deposit, mtn = start_deposit(service, user.user_id, 400)
    tampered = return_body(mtn, 400).replace(b"TradeAmt=400", b"TradeAmt=900")
    foreign = signed_body(return_fields(mtn, 400, merchant_id=OTHER_MERCHANT.merchant_id), OTHER_MERCHANT)
    replies = [
        service.handle_return(tampered, route_transaction_id=deposit.transaction_id),
        service.handle_return(foreign, route_transaction_id=deposit.transaction_id),
        service.handle_return(b"%%%not a form", route_transaction_id=deposit.transaction_id),
        service.handle_return(return_body(mtn, 400), route_transaction_id="zzzzzzzzzzzz"),
    ]
    assert all(not r.accepted and r.body.startswith("0|") for r in replies)
    assert replies[0].outcome == "rejected:check_mac_value"
    assert replies[3].outcome == "rejected:route"
    assert balance(service, user.user_id) == (0, 0)
    records = service.get_transaction(user.user_id, deposit.transaction_id).notifications
    assert [r.outcome for r in records][:2] == ["rejected:check_mac_value", replies[1].outcome]
    assert "TradeAmt=900" in records[0].raw_body  # kept as received
    # The genuine notification still applies afterwards.
    assert service.handle_return(return_body(mtn, 400)).outcome == "applied"
    assert balance(service, user.user_id) == (400, 0)


def test_failure_then_new_attempt_then_paid(service: WalletService) -> None:
    user = new_user(service)
    deposit, mtn1 = start_deposit(service, user.user_id, 250)
    failed = service.handle_return(return_body(mtn1, 250, rtn_code="10200058", rtn_msg="auth failed"))
    assert (failed.body, failed.outcome) == ("1|OK", "applied")
    got = service.get_transaction(user.user_id, deposit.transaction_id).transaction
    assert got.status is TransactionStatus.FAILED
    assert service.get_user(user.user_id).open_transactions == 0
    form = service.checkout(user.user_id, deposit.transaction_id, URLS)
    mtn2 = form.fields["MerchantTradeNo"]
    assert service.get_user(user.user_id).open_transactions == 1
    # A late failure of the old attempt is stale: it must not fail the new one.
    stale = service.handle_return(return_body(mtn1, 250, rtn_code="10200058", rtn_msg="again"))
    assert stale.outcome in ("duplicate", "ignored:stale_attempt")
    assert service.handle_return(return_body(mtn2, 250)).outcome == "applied"
    assert balance(service, user.user_id) == (250, 0)
    assert service.get_user(user.user_id).open_transactions == 0


def test_paid_is_final_and_a_second_paid_attempt_is_flagged_not_credited(service: WalletService) -> None:
    user = new_user(service)
    deposit, mtn1 = start_deposit(service, user.user_id, 300)
    mtn2 = service.checkout(user.user_id, deposit.transaction_id, URLS).fields["MerchantTradeNo"]
    assert service.handle_return(return_body(mtn2, 300, trade_no="T2")).outcome == "applied"
    late_failure = service.handle_return(return_body(mtn2, 300, rtn_code="10200043"))
    assert (late_failure.body, late_failure.outcome) == ("1|OK", "ignored:already_paid")
    second = service.handle_return(return_body(mtn1, 300, trade_no="T1"))
    assert (second.body, second.outcome) == ("1|OK", "flagged:duplicate_payment")
    again = service.handle_return(return_body(mtn1, 300, trade_no="T1", rtn_msg="paid"))
    assert again.outcome == "duplicate"
    got = service.get_transaction(user.user_id, deposit.transaction_id).transaction
    assert got.status is TransactionStatus.PAID
    assert got.merchant_trade_no == mtn2 and got.trade_no == "T2"
    assert "duplicate_payment" in got.flags
    assert balance(service, user.user_id) == (300, 0)
    audit = service.audit()
    assert len(audit.flagged) == 1 and deposit.transaction_id in audit.flagged[0]
    with pytest.raises(errors.InvalidState):
        service.checkout(user.user_id, deposit.transaction_id, URLS)
    assert service.audit().clean


def test_atm_code_issued_then_paid(service: WalletService) -> None:
    user = new_user(service)
    deposit, mtn = start_deposit(service, user.user_id, 1200, PaymentMethod.ATM)
    reply = service.handle_payment_info(atm_info_body(mtn, 1200), route_transaction_id=deposit.transaction_id)
    assert (reply.body, reply.outcome) == ("1|OK", "applied")
    assert service.handle_payment_info(atm_info_body(mtn, 1200)).outcome == "duplicate"
    got = service.get_transaction(user.user_id, deposit.transaction_id).transaction
    assert got.status is TransactionStatus.AWAITING_OFFLINE_PAYMENT
    assert got.payment_info["v_account"] == "9103522175887271"
    assert got.payment_info["bank_code"] == "812"
    assert got.expires_at is not None and got.expires_at.tzinfo is not None
    paid = service.handle_return(return_body(mtn, 1200, payment_type="ATM_TAISHIN"))
    assert paid.outcome == "applied"
    assert balance(service, user.user_id) == (1200, 0)


def test_cross_check_confirms_paid_with_query_trade_info(
    store: WalletStore, fake_ecpay: FakeEcpay, clock: Clock
) -> None:
    service = make_service(store, fake_ecpay, clock, cross_check=True)
    user = new_user(service)
    deposit, mtn = start_deposit(service, user.user_id, 500)
    fake_ecpay.trades[mtn] = Trade(amount=500, status="0")
    unpaid = service.handle_return(return_body(mtn, 500))
    assert (unpaid.accepted, unpaid.outcome) == (False, "rejected:cross_check")
    fake_ecpay.query_error = TransportError("ECPay down")
    down = service.handle_return(return_body(mtn, 500))
    assert (down.accepted, down.outcome) == (False, "rejected:cross_check_unavailable")
    assert down.body.startswith("0|")
    assert balance(service, user.user_id) == (0, 0)
    fake_ecpay.query_error = None
    fake_ecpay.trades[mtn] = Trade(amount=500, status="1")
    ok = service.handle_return(return_body(mtn, 500))
    assert (ok.body, ok.outcome) == ("1|OK", "applied")
    assert balance(service, user.user_id) == (500, 0)
    queries = len(fake_ecpay.queries)
    assert service.handle_return(return_body(mtn, 500)).outcome == "duplicate"
    assert len(fake_ecpay.queries) == queries  # a duplicate costs no query
    assert deposit.transaction_id in mtn


def test_full_refund(service: WalletService, fake_ecpay: FakeEcpay) -> None:
    user = new_user(service)
    deposit = fund(service, user.user_id, 600)
    refund = service.refund(user.user_id, deposit.transaction_id)
    assert (refund.transaction_type, refund.status, refund.amount) == (
        TransactionType.REFUND,
        TransactionStatus.COMPLETED,
        600,
    )
    assert refund.related_transaction_id == deposit.transaction_id
    action = fake_ecpay.actions[-1]
    assert (action["Action"], action["TotalAmount"], action["MerchantTradeNo"]) == (
        "R",
        "600",
        deposit.merchant_trade_no,
    )
    got = service.get_transaction(user.user_id, deposit.transaction_id).transaction
    assert (got.status, got.refunded_amount) == (TransactionStatus.REFUNDED, 600)
    assert balance(service, user.user_id) == (0, 0)
    assert service.get_user(user.user_id).open_transactions == 0
    with pytest.raises(errors.InvalidState):
        service.refund(user.user_id, deposit.transaction_id)
    assert service.audit().clean


def test_partial_refunds_then_too_much(service: WalletService) -> None:
    user = new_user(service)
    deposit = fund(service, user.user_id, 600)
    service.refund(user.user_id, deposit.transaction_id, 200)
    got = service.get_transaction(user.user_id, deposit.transaction_id).transaction
    assert (got.status, got.refunded_amount) == (TransactionStatus.PARTIALLY_REFUNDED, 200)
    with pytest.raises(errors.InvalidRequest):
        service.refund(user.user_id, deposit.transaction_id, 401)
    with pytest.raises(errors.InvalidRequest):
        service.refund(user.user_id, deposit.transaction_id, 0)
    service.refund(user.user_id, deposit.transaction_id, 400)
    got = service.get_transaction(user.user_id, deposit.transaction_id).transaction
    assert (got.status, got.refunded_amount) == (TransactionStatus.REFUNDED, 600)
    assert balance(service, user.user_id) == (0, 0)


def test_refund_of_spent_points_is_refused(service: WalletService) -> None:
    user = new_user(service)
    deposit = fund(service, user.user_id, 600)
    service.create_transaction(user.user_id, TransactionType.WITHDRAW, 500)
    with pytest.raises(errors.InsufficientBalance):
        service.refund(user.user_id, deposit.transaction_id)
    got = service.get_transaction(user.user_id, deposit.transaction_id).transaction
    assert (got.status, got.refunded_amount) == (TransactionStatus.PAID, 0)
    assert balance(service, user.user_id) == (100, 500)


def test_refused_refund_gives_the_points_back(service: WalletService, fake_ecpay: FakeEcpay) -> None:
    user = new_user(service)
    deposit = fund(service, user.user_id, 600)
    fake_ecpay.action_rtn_code = "10200050"
    with pytest.raises(errors.PaymentGatewayError):
        service.refund(user.user_id, deposit.transaction_id, 100)
    refunds = [
        t
        for t in service.list_transactions(user.user_id).items
        if t.transaction_type is TransactionType.REFUND
    ]
    assert [r.status for r in refunds] == [TransactionStatus.FAILED]
    got = service.get_transaction(user.user_id, deposit.transaction_id).transaction
    assert (got.status, got.refunded_amount) == (TransactionStatus.PAID, 0)
    assert balance(service, user.user_id) == (600, 0)
    kinds = [e.kind for e in service.get_transaction(user.user_id, refunds[0].transaction_id).ledger]
    assert kinds == ["refund", "refund_reversed"]
    assert service.audit().clean


def _pending_refund(service: WalletService, user_id: str) -> Transaction:
    return next(
        t for t in service.list_transactions(user_id).items if t.transaction_type is TransactionType.REFUND
    )


@pytest.mark.parametrize("reached_ecpay", [False, True], ids=["never-sent", "answer-lost"])
def test_a_refund_without_an_answer_is_settled_by_asking_ecpay(
    service: WalletService, fake_ecpay: FakeEcpay, clock: Clock, reached_ecpay: bool
) -> None:
    """Finding 5: a refund whose DoAction outcome is unknown is settled by ECPay's records, never assumed."""
    user = new_user(service)
    deposit = fund(service, user.user_id, 600)
    if reached_ecpay:
        fake_ecpay.answer_lost = TransportError("timeout")
    else:
        fake_ecpay.action_error = TransportError("connection reset")
    with pytest.raises(errors.PaymentGatewayError):
        service.refund(user.user_id, deposit.transaction_id)
    refund = _pending_refund(service, user.user_id)
    assert refund.status is TransactionStatus.PENDING
    assert balance(service, user.user_id) == (0, 0)  # the points are out while ECPay may have paid
    with pytest.raises(errors.RefundNotPossible) as second:  # one refund of a deposit at a time
        service.refund(user.user_id, deposit.transaction_id)
    assert second.value.code == "refund_pending"
    assert service.reconcile().refunds_checked == 0  # within the grace period: DoAction may be in flight
    clock.advance(minutes=20)
    assert any(refund.transaction_id in line for line in service.audit().stuck)
    report = service.reconcile()
    assert report.refunds_checked == 1 and len(fake_ecpay.card_queries) == 2  # plan + settle
    assert len(fake_ecpay.actions) == 1  # never a second DoAction on a guess
    settled = service.get_transaction(user.user_id, refund.transaction_id).transaction
    got = service.get_transaction(user.user_id, deposit.transaction_id).transaction
    if reached_ecpay:
        assert (report.refunds_settled, report.refunds_reversed) == (1, 0)
        assert settled.status is TransactionStatus.COMPLETED
        assert settled.payment_info["confirmed_by"] == "QueryTrade"
        assert (got.status, got.refunded_amount) == (TransactionStatus.REFUNDED, 600)
        assert balance(service, user.user_id) == (0, 0)
    else:
        assert (report.refunds_settled, report.refunds_reversed) == (0, 1)
        assert settled.status is TransactionStatus.FAILED
        assert (got.status, got.refunded_amount) == (TransactionStatus.PAID, 0)
        assert balance(service, user.user_id) == (600, 0)  # ECPay never refunded: the points come back
    assert got.related_transaction_id is None
    assert service.get_user(user.user_id).open_transactions == 0
    audit = service.audit()
    assert audit.clean and audit.stuck == [] and audit.flagged == []


def test_a_pending_refund_ecpay_cannot_explain_is_left_for_an_operator(
    service: WalletService, fake_ecpay: FakeEcpay, clock: Clock
) -> None:
    user = new_user(service)
    deposit = fund(service, user.user_id, 600)
    fake_ecpay.action_error = TransportError("connection reset")
    with pytest.raises(errors.PaymentGatewayError):
        service.refund(user.user_id, deposit.transaction_id, 100)
    fake_ecpay.card_refunded.append(250)  # ECPay shows a refund the wallet never asked for
    clock.advance(minutes=20)
    report = service.reconcile()
    assert report.refunds_settled == report.refunds_reversed == 0
    assert report.review and "250" in report.review[0]
    assert _pending_refund(service, user.user_id).status is TransactionStatus.PENDING


def test_a_completed_refund_without_ecpays_confirmation_fails_the_audit(
    service: WalletService, store: WalletStore
) -> None:
    user = new_user(service)
    deposit = fund(service, user.user_id, 600)
    refund = service.refund(user.user_id, deposit.transaction_id)
    assert refund.payment_info["confirmed_by"] == "DoAction" and service.audit().clean
    # What the first build did on a crash: "completed" on an assumption.
    forged = refund._replace(
        version=refund.version + 1, payment_info={}, flags=frozenset({"refund_unconfirmed"})
    )
    store.commit(AtomicWrite(transactions=(TransactionPut(forged, refund.version),)))
    audit = service.audit()
    assert not audit.clean and any("without ECPay's confirmation" in p for p in audit.problems)


def test_only_paid_credit_card_deposits_refund(service: WalletService) -> None:
    user = new_user(service)
    deposit, mtn = start_deposit(service, user.user_id, 900, PaymentMethod.ATM)
    with pytest.raises(errors.InvalidState):
        service.refund(user.user_id, deposit.transaction_id)
    service.handle_return(return_body(mtn, 900, payment_type="ATM_TAISHIN"))
    with pytest.raises(errors.InvalidState):
        service.refund(user.user_id, deposit.transaction_id)
    withdraw, _ = service.create_transaction(user.user_id, TransactionType.WITHDRAW, 100)
    with pytest.raises(errors.InvalidState):
        service.refund(user.user_id, withdraw.transaction_id)
    assert balance(service, user.user_id) == (800, 100)


def test_sync_applies_what_ecpay_says(service: WalletService, fake_ecpay: FakeEcpay) -> None:
    user = new_user(service)
    deposit, mtn = start_deposit(service, user.user_id, 700)
    fake_ecpay.trades[mtn] = Trade(amount=700, status="0")
    assert service.sync(user.user_id, deposit.transaction_id).status is TransactionStatus.AWAITING_PAYMENT
    fake_ecpay.trades[mtn] = Trade(amount=700, status="1", simulate_paid=True)
    assert service.sync(user.user_id, deposit.transaction_id).status is TransactionStatus.AWAITING_PAYMENT
    assert balance(service, user.user_id) == (0, 0)
    fake_ecpay.trades[mtn] = Trade(amount=700, status="1")
    assert service.sync(user.user_id, deposit.transaction_id).status is TransactionStatus.PAID
    assert balance(service, user.user_id) == (700, 0)
    # The ReturnURL that arrives afterwards is a duplicate of the query's answer.
    assert service.handle_return(return_body(mtn, 700)).outcome == "duplicate"
    assert balance(service, user.user_id) == (700, 0)
    fake_ecpay.query_error = TransportError("down")
    other, _ = start_deposit(service, user.user_id, 5)
    with pytest.raises(errors.PaymentGatewayError):
        service.sync(user.user_id, other.transaction_id)


def test_reconcile_recovers_a_lost_notification_and_expires_codes(
    service: WalletService, fake_ecpay: FakeEcpay, clock: Clock
) -> None:
    user = new_user(service)
    lost, lost_mtn = start_deposit(service, user.user_id, 100)
    never, _ = start_deposit(service, user.user_id, 200)  # form never submitted: ECPay has no trade
    atm, atm_mtn = start_deposit(service, user.user_id, 300, PaymentMethod.ATM)
    service.handle_payment_info(atm_info_body(atm_mtn, 300, expire_date="2026/11/28"))
    waiting, waiting_mtn = start_deposit(service, user.user_id, 400)
    fake_ecpay.trades[lost_mtn] = Trade(amount=100, status="1")
    fake_ecpay.trades[atm_mtn] = Trade(amount=300, status="0", payment_type="ATM_TAISHIN")
    fake_ecpay.trades[waiting_mtn] = Trade(amount=400, status="0")
    assert service.reconcile().checked == 0  # all within the grace period
    clock.advance(minutes=20)
    report = service.reconcile()
    assert (report.checked, report.paid, report.failed, report.expired, report.unchanged) == (4, 1, 1, 0, 2)
    assert report.errors == []
    assert balance(service, user.user_id) == (100, 0)
    status = {t.transaction_id: t.status for t in service.list_transactions(user.user_id).items}
    assert status[lost.transaction_id] is TransactionStatus.PAID
    assert status[never.transaction_id] is TransactionStatus.FAILED
    assert status[atm.transaction_id] is TransactionStatus.AWAITING_OFFLINE_PAYMENT
    # A day later the ATM code has expired (ExpireDate is the end of that Taiwan day).
    clock.advance(days=2)
    report = service.reconcile()
    assert report.expired == 1
    assert (
        service.get_transaction(user.user_id, atm.transaction_id).transaction.status
        is TransactionStatus.EXPIRED
    )
    # The lost ReturnURL finally arrives: a duplicate of what reconciliation applied.
    assert service.handle_return(return_body(lost_mtn, 100)).outcome == "duplicate"
    assert balance(service, user.user_id) == (100, 0)
    audit = service.audit()
    assert audit.clean and any(waiting.transaction_id in line for line in audit.stuck)


def test_reconcile_reports_query_failures_and_changes_nothing(
    service: WalletService, fake_ecpay: FakeEcpay, clock: Clock
) -> None:
    user = new_user(service)
    deposit, _ = start_deposit(service, user.user_id, 100)
    fake_ecpay.query_error = TransportError("down")
    clock.advance(minutes=20)
    report = service.reconcile()
    assert report.checked == 1 and report.errors and report.paid == 0
    got = service.get_transaction(user.user_id, deposit.transaction_id).transaction
    assert got.status is TransactionStatus.AWAITING_PAYMENT


def test_audit_finds_a_ledger_mismatch(store: WalletStore, service: WalletService) -> None:
    from ecpay_lambda.wallet.port import AtomicWrite, UserDelta  # noqa: PLC0415

    user = new_user(service)
    fund(service, user.user_id, 100)
    assert service.audit().clean
    store.commit(AtomicWrite(user_delta=UserDelta(user.user_id, delta_balance=5)))  # no ledger entry
    report = service.audit()
    assert not report.clean and report.users_checked == 1
    assert user.user_id in report.mismatches[0]


def test_hostile_route_ids_and_fields_are_recorded_without_failing(service: WalletService) -> None:
    long_route = "x" * 500
    replies = [
        service.handle_return(return_body("A" * 300, 5), route_transaction_id=long_route),
        service.handle_return(
            b"MerchantTradeNo=" + b"b" * 300 + b"&CheckMacValue=00", route_transaction_id=long_route
        ),
        service.handle_payment_info(b"\x00\xff" * 100, route_transaction_id=long_route),
    ]
    assert all(not r.accepted and r.body.startswith("0|") for r in replies)
    assert all(r.transaction_id is None for r in replies)
