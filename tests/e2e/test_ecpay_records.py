"""ECPay's records are the truth, over real HTTP: `ecpay-lambda serve` with its sandbox, and the CLI.

One test (or more) per finding of the ECPay reconciliation issue; each failed before. The store-level
findings also run on every store in tests/contract/test_ecpay_records.py.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from ecpay_lambda.ecpay.checkmac import check_mac_value
from ecpay_lambda.ecpay.credentials import MerchantCredentials
from ecpay_lambda.ecpay.timezone import TAIPEI
from ecpay_lambda.local.sandbox.client import SandboxClient

from .conftest import Http, Wallet

STAGE = MerchantCredentials.stage_test_merchant()
REPO_ROOT = Path(__file__).resolve().parents[2]


@contextmanager
def callbacks_lost(sandbox: SandboxClient) -> Iterator[None]:
    """Every ReturnURL / PaymentInfoURL delivery is lost while inside."""
    sandbox.settings(drop_callbacks=True)
    try:
        yield
    finally:
        sandbox.settings(drop_callbacks=False)


def cli(env: dict[str, str], *args: str, timeout: float = 120) -> tuple[int, str, str]:
    """Run ``ecpay-lambda`` against the stack's store; (exit status, stdout, stderr)."""
    done = subprocess.run(
        [sys.executable, "-m", "ecpay_lambda.cli", *args],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    return done.returncode, done.stdout, done.stderr


def signed(fields: dict[str, str]) -> dict[str, str]:
    """``fields`` with ECPay's CheckMacValue (the public test merchant's keys)."""
    return {**fields, "CheckMacValue": check_mac_value(fields, STAGE.hash_key, STAGE.hash_iv)}


def submit(wallet: Wallet, user_id: str, transaction_id: str, method: str) -> str:
    """Check out and submit the form to the sandbox as the browser does; the MerchantTradeNo."""
    mtn, _ = wallet.open_payment_page(user_id, transaction_id, method)
    return mtn


# --- 1. a payment on a superseded attempt ----------------------------------------------------------


def test_a_code_paid_after_the_shopper_switched_to_card_is_credited(local_stack: Any, wallet: Wallet) -> None:
    user_id = wallet.create_user()
    tid = wallet.create(user_id, "deposit", 2000)["transaction_id"]
    a = submit(wallet, user_id, tid, "ATM")
    assert wallet.page_action(a, "issue-code").status == 200
    assert wallet.transaction(user_id, tid)["status"] == "awaiting_offline_payment"
    with callbacks_lost(local_stack.sandbox):
        b = submit(wallet, user_id, tid, "Credit")  # the shopper pays again, by card...
        local_stack.sandbox.fail(b)  # ...which fails
        local_stack.sandbox.pay(a)  # and then pays A's code at the bank
    synced = wallet.http.json("POST", f"/users/{user_id}/transactions/{tid}/sync")
    assert synced.status == 200, synced.text
    detail = synced.json()
    assert detail["status"] == "paid" and detail["merchant_trade_no"] == a
    # B reads unpaid at ECPay, but within the grace period the shopper may still be on its page.
    states = [(x["merchant_trade_no"], x["state"]) for x in detail["attempts"]]
    assert states == [(a, "paid"), (b, "awaiting_payment")]
    assert wallet.user(user_id)["balance"] == 2000


# --- 3. a closed user never holds money silently ------------------------------------------------


def test_closing_is_refused_while_a_code_can_still_be_paid(local_stack: Any, wallet: Wallet) -> None:
    user_id = wallet.create_user()
    tid = wallet.create(user_id, "deposit", 2000)["transaction_id"]
    a = submit(wallet, user_id, tid, "ATM")
    wallet.page_action(a, "issue-code")
    b = submit(wallet, user_id, tid, "Credit")
    local_stack.sandbox.fail(b)  # delivered: the card attempt failed
    assert wallet.transaction(user_id, tid)["status"] == "awaiting_offline_payment"
    closing = wallet.http.json("DELETE", f"/users/{user_id}")
    assert closing.status == 409, closing.text
    error = closing.json()["error"]
    assert error["code"] == "user_not_empty" and tid in error["message"]
    assert error["details"]["transactions"] == [tid]
    cancel = wallet.http.json("PATCH", f"/users/{user_id}/transactions/{tid}", {"action": "cancel"})
    assert cancel.status == 409 and cancel.json()["error"]["code"] == "deposit_payable", cancel.text
    assert a in cancel.json()["error"]["message"]
    assert wallet.http.json("POST", f"/users/{user_id}/reopen").status == 409  # not closed


def test_money_reaching_a_closed_user_is_flagged_and_reported(local_stack: Any, wallet: Wallet) -> None:
    user_id = wallet.create_user()
    tid = wallet.create(user_id, "deposit", 1500)["transaction_id"]
    mtn = submit(wallet, user_id, tid, "Credit")
    local_stack.sandbox.fail(mtn)
    assert wallet.transaction(user_id, tid)["status"] == "failed"
    assert wallet.http.json("DELETE", f"/users/{user_id}").status == 200
    # ECPay later reports the attempt paid after all (its own records say so): the money is real.
    fields = signed(
        {
            "CustomField1": "",
            "CustomField2": "",
            "CustomField3": "",
            "CustomField4": "",
            "MerchantID": STAGE.merchant_id,
            "MerchantTradeNo": mtn,
            "PaymentDate": "2026/11/27 10:30:00",
            "PaymentType": "Credit_CreditCard",
            "PaymentTypeChargeFee": "10",
            "RtnCode": "1",
            "RtnMsg": "交易成功",
            "SimulatePaid": "0",
            "StoreID": "",
            "TradeAmt": "1500",
            "TradeDate": "2026/11/27 10:00:00",
            "TradeNo": local_stack.sandbox.trade(mtn)["trade_no"],
        }
    )
    reply = wallet.http.form(f"/users/{user_id}/transactions/{tid}/return", fields)
    assert (reply.status, reply.text) == (200, "1|OK")
    detail = wallet.transaction(user_id, tid)
    assert detail["status"] == "paid" and "closed_user_credit" in detail["flags"]
    assert wallet.user(user_id)["balance"] == 1500 and wallet.user(user_id)["status"] == "closed"
    status, out, _ = cli(local_stack.env, "audit", "--json")
    report = json.loads(out)
    assert status == 1 and any(user_id in line and "closed" in line for line in report["problems"])
    reopened = wallet.http.json("POST", f"/users/{user_id}/reopen")
    assert reopened.status == 200 and reopened.json()["status"] == "active"
    status, out, _ = cli(local_stack.env, "audit", "--json")
    assert not any(user_id in line for line in json.loads(out)["problems"])


# --- 5. a refund whose outcome is unknown ---------------------------------------------------------


@pytest.mark.parametrize(("fault", "settled"), [("unreachable", "failed"), ("answer_lost", "completed")])
def test_a_refund_that_may_not_have_reached_ecpay_is_settled_by_asking(
    local_stack, wallet: Wallet, fault: str, settled: str
) -> None:
    user_id = wallet.create_user()
    tid = wallet.create(user_id, "deposit", 800, "Credit")["transaction_id"]
    mtn = submit(wallet, user_id, tid, "Credit")
    local_stack.sandbox.pay(mtn)
    local_stack.sandbox.settings(do_action_fault=fault)
    try:
        refused = wallet.http.json("POST", f"/users/{user_id}/transactions/{tid}/refund", {})
    finally:
        local_stack.sandbox.settings(do_action_fault=None)
    assert refused.status == 502, refused.text
    assert wallet.user(user_id)["balance"] == 0  # the points are out while ECPay may have refunded
    listing = wallet.http.json("GET", f"/users/{user_id}/transactions").json()["transactions"]
    (refund,) = [t for t in listing if t["transaction_type"] == "refund"]
    assert refund["status"] == "pending"
    synced = wallet.http.json("POST", f"/users/{user_id}/transactions/{refund['transaction_id']}/sync")
    assert synced.status == 200 and synced.json()["status"] == settled, synced.text
    assert wallet.user(user_id)["balance"] == (0 if settled == "completed" else 800)
    assert local_stack.sandbox.trade(mtn)["card_state"] == (
        "cancelled" if settled == "completed" else "authorised"
    )


# --- 6. reconciliation ends on time when ECPay hangs ----------------------------------------------


@contextmanager
def hanging_ecpay() -> Iterator[str]:
    """A server that accepts connections and never answers; its base URL."""
    listener = socket.create_server(("127.0.0.1", 0))
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            held.append(conn)

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        stop.set()
        thread.join(timeout=5)
        for conn in held:
            conn.close()
        listener.close()


def test_a_hanging_ecpay_ends_the_reconciliation_run_with_a_report(local_stack: Any, wallet: Wallet) -> None:
    user_id = wallet.create_user()
    for _ in range(4):
        submit(wallet, user_id, wallet.create(user_id, "deposit", 100)["transaction_id"], "Credit")
    with hanging_ecpay() as url:
        env = {**local_stack.env, "ECPAY_BASE_URL": url, "ECPAY_TIMEOUT": "0.5"}
        status, out, err = cli(env, "reconcile", "--json", "--now", "--deadline-seconds", "60")
    report = json.loads(out)
    assert status == 1, err
    assert report["stopped"] == "ecpay_unreachable" and report["queries"] == 3
    assert report["skipped"] >= 1 and len(report["errors"]) == 3
    assert wallet.user(user_id)["balance"] == 0


# --- 7. amount limits per method ----------------------------------------------------------------


def test_amounts_outside_a_methods_limits_are_refused_everywhere(
    local_stack, wallet: Wallet, http: Http
) -> None:
    user_id = wallet.create_user()
    cvs = http.json(
        "POST",
        f"/users/{user_id}/transactions",
        {"transaction_type": "deposit", "amount": 10, "payment_method": "CVS"},
    )
    assert cvs.status == 400 and cvs.json()["error"]["code"] == "amount_out_of_range", cvs.text
    assert "CVS" in cvs.json()["error"]["message"] and "33" in cvs.json()["error"]["message"]
    tid = wallet.create(user_id, "deposit", 10)["transaction_id"]
    pay = http.json(
        "POST",
        f"/users/{user_id}/transactions/{tid}/requestPayment",
        {"payment_method": "CVS"},
        Accept="application/json",
    )
    assert pay.status == 400 and pay.json()["error"]["code"] == "amount_out_of_range", pay.text
    assert wallet.transaction(user_id, tid)["attempts"] == []
    # The sandbox refuses such an order as ECPay does, even when someone else signed it.
    order = signed(
        {
            "MerchantID": STAGE.merchant_id,
            "MerchantTradeNo": f"lim{int(time.time() * 1000) % 10**12:012d}",
            "MerchantTradeDate": datetime.now(TAIPEI).strftime("%Y/%m/%d %H:%M:%S"),
            "PaymentType": "aio",
            "TotalAmount": "10",
            "TradeDesc": "limits",
            "ItemName": "points",
            "ReturnURL": f"{local_stack.base_url}/nowhere",
            "ChoosePayment": "CVS",
            "EncryptType": "1",
        }
    )
    page = http.form("/Cashier/AioCheckOut/V5", order)
    assert "TotalAmount" in page.text and 'data-status="created"' not in page.text


# --- 8 and 9. the sandbox refuses what ECPay refuses -------------------------------------------------


MONTHLY = {"PeriodAmount": "500", "PeriodType": "M", "Frequency": "1"}


def _order(local_stack: Any, **extra: str) -> dict[str, str]:
    return signed(
        {
            "MerchantID": STAGE.merchant_id,
            "MerchantTradeNo": f"sx{time.time_ns() % 10**15:015d}",
            "MerchantTradeDate": datetime.now(TAIPEI).strftime("%Y/%m/%d %H:%M:%S"),
            "PaymentType": "aio",
            "TotalAmount": "500",
            "TradeDesc": "strict",
            "ItemName": "points",
            "ReturnURL": f"{local_stack.base_url}/nowhere",
            "ChoosePayment": "Credit",
            "EncryptType": "1",
            **extra,
        }
    )


@pytest.mark.parametrize(
    ("extra", "accepted"),
    [
        ({"PeriodAmount": "500", "PeriodType": "M", "Frequency": "1", "ExecTimes": "999"}, True),
        ({"PeriodAmount": "500", "PeriodType": "M", "Frequency": "1", "ExecTimes": "1000"}, False),
        ({"PeriodAmount": "500", "PeriodType": "Y", "Frequency": "1", "ExecTimes": "99"}, True),
        ({"PeriodAmount": "500", "PeriodType": "Y", "Frequency": "1", "ExecTimes": "100"}, False),
        (
            {
                "CreditInstallment": "3",
                "PeriodAmount": "500",
                "PeriodType": "M",
                "Frequency": "1",
                "ExecTimes": "2",
            },
            False,
        ),
        ({"CreditInstallment": "7"}, False),
        ({"Redeem": "maybe"}, False),
        ({"Colour": "blue"}, False),  # not in ECPay's spec
    ],
)
def test_the_sandbox_checks_orders_as_ecpay_does(
    local_stack: Any, http: Http, extra: dict[str, str], accepted: bool
) -> None:
    page = http.form("/Cashier/AioCheckOut/V5", _order(local_stack, **extra))
    assert page.status in (200, 400)
    assert ('data-status="created"' in page.text) is accepted, page.text[:800]


def test_a_millisecond_timestamp_is_a_timestamp_error_not_a_crash(local_stack: Any, http: Http) -> None:
    for path in (
        "/Cashier/QueryTradeInfo/V5",
        "/Cashier/QueryPaymentInfo",
        "/Cashier/QueryCreditCardPeriodInfo",
    ):
        fields = signed(
            {
                "MerchantID": STAGE.merchant_id,
                "MerchantTradeNo": "nosuchtrade1",
                "TimeStamp": str(time.time_ns() // 10**6),
            }
        )
        reply = http.form(path, fields)
        assert reply.status == 200 and "TimeStamp" in reply.text, (path, reply.status, reply.text)


def test_the_card_trade_query_answers(local_stack: Any, wallet: Wallet, http: Http) -> None:
    user_id = wallet.create_user()
    tid = wallet.create(user_id, "deposit", 640, "Credit")["transaction_id"]
    mtn = submit(wallet, user_id, tid, "Credit")
    local_stack.sandbox.pay(mtn)
    gwsr = wallet.transaction(user_id, tid)["payment_info"]["gwsr"]
    fields = signed(
        {
            "MerchantID": STAGE.merchant_id,
            "CreditRefundId": gwsr,
            "CreditAmount": "640",
            "CreditCheckCode": "12345678",
        }
    )
    reply = http.form("/CreditDetail/QueryTrade/V2", fields)
    assert reply.status == 200 and reply.json()["RtnValue"]["status"] == "已授權", reply.text


# --- the trade file: a deliberately lost payment found and credited (the documented drill) ---------


def test_the_trade_file_drill(tmp_path: Path) -> None:
    from tests.support.stack_plugin import start_local_stack, stop_local_stack  # noqa: PLC0415

    stack = start_local_stack(tmp_path / "drill")
    try:
        wallet = Wallet(Http(stack.base_url))
        user_id = wallet.create_user()
        tid = wallet.create(user_id, "deposit", 1200, "CVS")["transaction_id"]
        with callbacks_lost(stack.sandbox):
            mtn = submit(wallet, user_id, tid, "CVS")
            stack.sandbox.issue_code(mtn)
            stack.sandbox.pay(mtn)  # paid at the store; ECPay's notifications never arrive
        assert wallet.user(user_id)["balance"] == 0
        day = stack.clock().astimezone(TAIPEI).date().isoformat()
        status, out, err = cli(stack.env, "audit", "--external", day)
        assert status == 1 and f"paid at ECPay but not credited: {mtn}" in out, out + err
        stack.sandbox.settings(clock_offset_seconds=stack.clock_offset + 61)  # one file a minute
        status, out, err = cli(stack.env, "reconcile", "--statement", day)
        assert status == 0 and "statement: clean" in out and mtn in out, out + err
        assert wallet.user(user_id)["balance"] == 1200
        assert wallet.transaction(user_id, tid)["status"] == "paid"
        stack.sandbox.settings(clock_offset_seconds=stack.clock_offset + 122)
        status, out, err = cli(stack.env, "audit", "--external", day)
        assert status == 0 and "audit: clean" in out, out + err
    finally:
        stop_local_stack(stack.process)
