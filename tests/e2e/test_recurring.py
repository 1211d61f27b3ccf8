"""Recurring top-ups over real HTTP (issue 14): a monthly ECPay periodic order through the local stack.

The sandbox charges the periods on its simulated calendar (``charge-period``) and reports them to
PeriodReturnURL, signed and retried like ReturnURL; the wallet credits each charge as a deposit of
its own, exactly once, whatever is delivered twice or lost.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from ecpay_lambda.ecpay.checkmac import verify_check_mac_value
from ecpay_lambda.ecpay.credentials import MerchantCredentials
from ecpay_lambda.ecpay.timezone import TAIPEI
from ecpay_lambda.local.sandbox.client import SandboxError

from .conftest import Http, Wallet
from .test_ecpay_records import cli

STAGE = MerchantCredentials.stage_test_merchant()
MONTHLY = {"period_type": "M", "frequency": 1, "exec_times": 12}


def _create_plan(wallet: Wallet, user_id: str, amount: int, **plan: Any) -> dict[str, Any]:
    reply = wallet.http.json(
        "POST",
        f"/users/{user_id}/transactions",
        {"transaction_type": "deposit", "amount": amount, "payment_method": "Credit", "recurring": plan},
    )
    assert reply.status == 201, reply.text
    return dict(reply.json())


def _credits(wallet: Wallet, user_id: str) -> list[dict[str, Any]]:
    """Every deposit_paid ledger entry of the user's transactions."""
    reply = wallet.http.json("GET", f"/users/{user_id}/transactions?pageSize=100")
    assert reply.status == 200, reply.text
    entries: list[dict[str, Any]] = []
    for tx in reply.json()["transactions"]:
        detail = wallet.transaction(user_id, tx["transaction_id"])
        entries += [e for e in detail["ledger"] if e["kind"] == "deposit_paid"]
    return entries


def test_a_monthly_plan_credits_each_charge_exactly_once(local_stack, wallet: Wallet, http: Http) -> None:  # type: ignore[no-untyped-def]
    user_id = wallet.create_user()
    plan_tx = _create_plan(wallet, user_id, 500, **MONTHLY)
    tid = plan_tx["transaction_id"]
    assert plan_tx["payment_method"] == "Credit"
    assert plan_tx["recurring"]["state"] == "active"
    assert (plan_tx["recurring"]["charges_done"], plan_tx["recurring"]["charges_planned"]) == (0, 12)

    action, fields = wallet.checkout(user_id, tid)
    assert (fields["PeriodType"], fields["Frequency"], fields["ExecTimes"]) == ("M", "1", "12")
    assert fields["PeriodAmount"] == fields["TotalAmount"] == "500"
    assert fields["PeriodReturnURL"].endswith(f"/transactions/{tid}/periodReturn")
    page = http.form(action, fields)
    assert page.status == 200
    mtn = fields["MerchantTradeNo"]
    wallet.page_action(mtn, "pay")  # charge #1: ReturnURL, credited as any deposit
    assert wallet.user(user_id)["balance"] == 500

    sandbox = local_stack.sandbox
    sandbox.charge_period(mtn)  # charge #2
    sandbox.resend(mtn, kind="period_return")  # ... delivered twice
    sandbox.charge_period(mtn)  # charge #3
    sandbox.charge_period(mtn, fail=True)  # declined: recorded, credits nothing
    assert wallet.user(user_id)["balance"] == 1500
    sandbox.settings(drop_callbacks=True)
    try:
        sandbox.charge_period(mtn)  # charge #4: its notification is lost
    finally:
        sandbox.settings(drop_callbacks=False)
    sandbox.charge_period(mtn)  # charge #5
    sandbox.resend(mtn, kind="period_return")  # ... delivered twice
    sandbox.resend(mtn, kind="period_return")  # ... and three times
    assert wallet.user(user_id)["balance"] == 2000  # #4 is missing

    deliveries = sandbox.callbacks(mtn, kind="period_return")
    assert all(verify_check_mac_value(a["fields"], STAGE.hash_key, STAGE.hash_iv) for a in deliveries)
    assert [a["body"] for a in deliveries if not a["dropped"]] == ["1|OK"] * 7  # the decline too

    # Reconciliation: QueryCreditCardPeriodInfo finds charge #4 and credits it through the same path.
    synced = http.json("POST", f"/users/{user_id}/transactions/{tid}/sync")
    assert synced.status == 200, synced.text
    again = http.json("POST", f"/users/{user_id}/transactions/{tid}/sync")  # nothing twice
    assert again.status == 200
    plan = again.json()["recurring"]
    assert (plan["state"], plan["charges_done"], plan["charges_planned"]) == ("active", 5, 12)
    assert len(plan["charge_transaction_ids"]) == 4
    [failed] = plan["failed_charges"]
    assert failed["period"] == 4 and failed["rtn_code"] != "1"

    assert wallet.user(user_id)["balance"] == 2500
    credits = _credits(wallet, user_id)
    assert len(credits) == 5 and {e["delta_balance"] for e in credits} == {500}
    for period, charge_id in enumerate(plan["charge_transaction_ids"], start=2):
        charge = wallet.transaction(user_id, charge_id)
        assert (charge["status"], charge["amount"], charge["merchant_trade_no"]) == ("paid", 500, mtn)
        assert charge["payment_info"]["plan_transaction_id"] == tid
        assert charge["payment_info"]["period"] == str(period)

    # Cancel: ECPay stops the schedule; a further charge is refused and nothing more is credited.
    cancelled = http.json("POST", f"/users/{user_id}/transactions/{tid}/recurring", {"action": "cancel"})
    assert cancelled.status == 200, cancelled.text
    assert cancelled.json()["recurring"]["state"] == "cancelled"
    with pytest.raises(SandboxError) as refused:
        sandbox.charge_period(mtn)
    assert refused.value.status == 409
    again_cancel = http.json("POST", f"/users/{user_id}/transactions/{tid}/recurring", {"action": "cancel"})
    assert again_cancel.status == 409
    assert http.json("POST", f"/users/{user_id}/transactions/{tid}/sync").status == 200
    assert wallet.user(user_id)["balance"] == 2500 and len(_credits(wallet, user_id)) == 5

    # Every credit is one deposit.paid event. (The stack's invoice worker may have issued their
    # e-invoices by now, every few seconds: invoice.* events are not the deposits' and left out.)
    events = http.json("GET", "/events?limit=1000")
    assert events.status == 200, events.text
    ours = {tid, *plan["charge_transaction_ids"]}
    paid = [
        e for e in events.json()["events"] if e["transaction_id"] in ours and e["name"].startswith("deposit.")
    ]
    assert sorted(e["name"] for e in paid) == ["deposit.paid"] * 5

    audit = subprocess.run(
        [sys.executable, "-m", "ecpay_lambda.cli", "audit", "--json"],
        env=local_stack.env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    report = json.loads(audit.stdout)
    assert report["mismatches"] == [], report
    assert not [p for p in report["problems"] if user_id in p], report


def test_recurring_plans_are_validated_and_card_only(wallet: Wallet) -> None:
    user_id = wallet.create_user()
    for plan, method in (
        ({"period_type": "M", "frequency": 1, "exec_times": 1000}, "Credit"),
        ({"period_type": "Y", "frequency": 2, "exec_times": 2}, "Credit"),
        ({"period_type": "M", "frequency": 1, "exec_times": 12}, "ATM"),
    ):
        reply = wallet.http.json(
            "POST",
            f"/users/{user_id}/transactions",
            {"transaction_type": "deposit", "amount": 500, "payment_method": method, "recurring": plan},
        )
        assert reply.status == 400, reply.text
        assert reply.json()["error"]["code"] == "invalid_recurring_plan"


def test_a_forged_period_notification_credits_nothing(local_stack, wallet: Wallet, http: Http) -> None:  # type: ignore[no-untyped-def]
    user_id = wallet.create_user()
    tid = _create_plan(wallet, user_id, 700, **MONTHLY)["transaction_id"]
    mtn, _ = wallet.open_payment_page(user_id, tid)
    local_stack.sandbox.pay(mtn)
    local_stack.sandbox.settings(drop_callbacks=True)
    try:
        local_stack.sandbox.charge_period(mtn)
    finally:
        local_stack.sandbox.settings(drop_callbacks=False)
    [delivery] = local_stack.sandbox.callbacks(mtn, kind="period_return")
    forged = dict(delivery["fields"])
    forged["Amount"] = "70000"  # tampered after signing
    reply = http.form(delivery["url"], forged)
    assert reply.status == 200 and reply.text != "1|OK"
    simulated = local_stack.sandbox.sign({**delivery["fields"], "SimulatePaid": "1"})
    assert http.form(delivery["url"], simulated).text == "1|OK"  # recorded, acknowledged, not credited
    assert wallet.user(user_id)["balance"] == 700
    notes = wallet.transaction(user_id, tid)["notifications"]
    outcomes = [n["outcome"] for n in notes if n["route"] == "periodReturn"]
    assert outcomes == ["rejected:check_mac_value", "ignored:simulate_paid"], outcomes


def test_the_statement_run_finds_a_lost_charge(tmp_path: Path) -> None:
    """The daily statement run (TradeNoAio): each charge is a line of the order; a lost one is credited."""
    from tests.support.stack_plugin import start_local_stack, stop_local_stack  # noqa: PLC0415

    stack = start_local_stack(tmp_path / "recurring-statement")
    try:
        wallet = Wallet(Http(stack.base_url))
        user_id = wallet.create_user()
        tid = _create_plan(wallet, user_id, 400, **MONTHLY)["transaction_id"]
        mtn, _ = wallet.open_payment_page(user_id, tid)
        stack.sandbox.pay(mtn)
        stack.sandbox.charge_period(mtn)
        stack.sandbox.settings(drop_callbacks=True)
        try:
            stack.sandbox.charge_period(mtn)  # charge #3: its notification never arrives
        finally:
            stack.sandbox.settings(drop_callbacks=False)
        assert wallet.user(user_id)["balance"] == 800
        day = stack.clock().astimezone(TAIPEI).date().isoformat()
        status, out, err = cli(stack.env, "audit", "--external", day)
        assert status == 1 and f"paid at ECPay but not credited: 1 charge(s) of {mtn}" in out, out + err
        stack.sandbox.settings(clock_offset_seconds=stack.clock_offset + 61)  # one file a minute
        status, out, err = cli(stack.env, "reconcile", "--statement", day)
        assert status == 0 and "statement: clean" in out and "credited charge deposit" in out, out + err
        assert wallet.user(user_id)["balance"] == 1200
        stack.sandbox.settings(clock_offset_seconds=stack.clock_offset + 122)
        status, out, err = cli(stack.env, "audit", "--external", day)
        assert status == 0 and "audit: clean" in out, out + err
    finally:
        stop_local_stack(stack.process)
