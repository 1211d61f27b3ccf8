"""Superseded attempts: an ATM/CVS code paid after the shopper moved on to a card checkout.

Each deposit gets a code at the bank or store (attempt A, by ATM or CVS; its PaymentInfoURL is
delivered), then the shopper checks out again by card (attempt B) and the card fails — its ReturnURL is
lost (``drop_callbacks``). Later the shopper pays A's code at the bank or store, and that ReturnURL is
lost too. Attempt A is no longer the deposit's newest, but it is still live: one run of
``ecpay-lambda reconcile --now`` asks ECPay about every live attempt and credits every deposit exactly
once, through A. On some deposits the card attempt B was paid as well: that second payment is recorded
on B and the deposit flagged ``duplicate_payment`` (money to give back), never credited.

With callbacks on, A's paid notification credits the deposit directly, though B was the newest attempt.

``make test``: 8 deposits (2 paid twice) + 2 with callbacks; ``make soak``: 40 (10 paid twice) + 10.
"""

from __future__ import annotations

from typing import Any

from .conftest import ServerFactory, audit
from .harness import Api, ServerProcess, run_command, size, wait_until

CODE_METHODS = ("ATM", "CVS")


def _sandbox(server: ServerProcess) -> Api:
    """The server's embedded ECPay sandbox (its control API takes no token)."""
    return Api(server.base_url, scanner=server.scanner)


def _set(ecpay: Api, **settings: Any) -> None:
    reply = ecpay.json("POST", "/sandbox/api/settings", settings)
    assert reply.status == 200, reply.text


def _control(ecpay: Api, mtn: str, action: str, **options: Any) -> dict[str, Any]:
    reply = ecpay.json("POST", f"/sandbox/api/trades/{mtn}/{action}", options)
    assert reply.status == 200, f"{action} {mtn}: {reply.text}"
    return dict(reply.json())


def _start_attempt(api: Api, ecpay: Api, user_id: str, transaction_id: str, method: str) -> str:
    """requestPayment with ``method`` and the browser's POST to ECPay: the new MerchantTradeNo."""
    fields = api.checkout(user_id, transaction_id, method)
    page = ecpay.form("/Cashier/AioCheckOut/V5", fields)
    assert page.status == 200, page.text[:300]
    return fields["MerchantTradeNo"]


def _issue_codes(
    api: Api, ecpay: Api, user_id: str, count: int, first_amount: int
) -> list[tuple[str, str, int]]:
    """``count`` deposits, each with attempt A's code issued and known to the wallet: (id, mtn A, amount)."""
    deposits = []
    for index in range(count):
        amount = first_amount + index
        transaction_id = api.create_deposit(user_id, amount)
        mtn_a = _start_attempt(api, ecpay, user_id, transaction_id, CODE_METHODS[index % 2])
        _control(ecpay, mtn_a, "issue-code")
        deposits.append((transaction_id, mtn_a, amount))

    def codes_known() -> bool:
        return all(
            api.transaction(user_id, t)["status"] == "awaiting_offline_payment" for t, _, _ in deposits
        )

    assert wait_until(codes_known, timeout=60, interval=0.2), "PaymentInfoURL not applied"
    return deposits


def _states(detail: dict[str, Any]) -> dict[str, str]:
    return {a["merchant_trade_no"]: a["state"] for a in detail["attempts"]}


def _credits(detail: dict[str, Any]) -> list[int]:
    return [e["delta_balance"] for e in detail["ledger"] if e["kind"] == "deposit_paid"]


def test_reconcile_pays_superseded_code_attempts(
    sqlite_store_url: str, server_factory: ServerFactory
) -> None:
    count, twice = size(8, 40), size(2, 10)
    server = server_factory(sqlite_store_url, quiet=True)
    api = server.api(server.env["API_TOKEN"])
    ecpay = _sandbox(server)
    user_id = api.create_user()
    deposits = _issue_codes(api, ecpay, user_id, count, 1000)

    # From here ECPay's notifications are lost: the card attempts' results and the codes' payments.
    _set(ecpay, drop_callbacks=True)
    paid_twice = {t for t, _, _ in deposits[:twice]}
    card_attempts: dict[str, str] = {}
    for transaction_id, mtn_a, _amount in deposits:
        mtn_b = _start_attempt(api, ecpay, user_id, transaction_id, "Credit")
        card_attempts[transaction_id] = mtn_b
        if transaction_id in paid_twice:
            assert _control(ecpay, mtn_b, "pay")["status"] == "paid"
        else:
            assert _control(ecpay, mtn_b, "fail")["status"] == "failed"
        assert _control(ecpay, mtn_a, "pay")["status"] == "paid"

    for transaction_id, mtn_a, _amount in deposits:
        for mtn in (mtn_a, card_attempts[transaction_id]):
            returns = [c for c in _control_get(ecpay, mtn)["callbacks"] if c["kind"] == "return"]
            assert returns and all(c["dropped"] for c in returns), (mtn, returns)
        detail = api.transaction(user_id, transaction_id)
        # The wallet heard nothing since A's code: B is its newest live attempt, and A is live too.
        assert detail["status"] == "awaiting_payment", detail
        assert detail["merchant_trade_no"] == card_attempts[transaction_id], detail
        assert _states(detail) == {
            mtn_a: "awaiting_offline_payment",
            card_attempts[transaction_id]: "awaiting_payment",
        }
    assert api.user(user_id)["balance"] == 0

    env = {"STORE_URL": sqlite_store_url, "ECPAY_ENV": "sandbox", "ECPAY_BASE_URL": server.base_url}
    args = ["reconcile", "--json", "--now", "--grace-minutes", "0", "--limit", "1000"]
    first = run_command(args, env=env, scanner=server.scanner)
    assert first.returncode == 0, first.stderr + first.stdout
    report = first.json()
    print(f"reconcile --now over {count} deposits ({twice} paid twice): {report}")
    assert report["errors"] == [] and report["stopped"] is None, report
    assert report["checked"] == count and report["skipped"] == 0, report
    # Every live attempt is asked about: A and B of each deposit.
    assert report["queries"] == 2 * count, report
    # A credits each deposit; a paid B is flagged for review, never credited nor counted as paid.
    assert report["paid"] == count, report
    assert len(report["review"]) == twice, report["review"]

    total = sum(amount for _, _, amount in deposits)
    assert api.user(user_id)["balance"] == total
    for transaction_id, mtn_a, amount in deposits:
        detail = api.transaction(user_id, transaction_id)
        mtn_b = card_attempts[transaction_id]
        assert detail["status"] == "paid", detail
        assert _credits(detail) == [amount], detail["ledger"]
        # The deposit shows the attempt that paid it: the code, not the newer card attempt.
        assert detail["merchant_trade_no"] == mtn_a, detail
        states = _states(detail)
        assert states[mtn_a] == "paid"
        if transaction_id in paid_twice:
            assert states[mtn_b] == "paid" and detail["flags"] == ["duplicate_payment"], detail
        else:
            # ECPay says B failed: its record says so too, on a deposit already paid through A.
            assert states[mtn_b] == "failed" and detail["flags"] == [], detail
    second = run_command(args, env=env, scanner=server.scanner)
    assert second.returncode == 0, second.stderr + second.stdout
    again = second.json()
    assert (again["checked"], again["queries"], again["paid"], again["errors"]) == (0, 0, 0, []), again
    assert api.user(user_id)["balance"] == total

    result = audit(sqlite_store_url)
    assert result.clean, (result.mismatches, result.problems)
    flagged = [line for line in result.flagged if "duplicate_payment" in line]
    assert sorted(line.split()[1] for line in flagged) == sorted(paid_twice), result.flagged


def test_paid_notification_of_superseded_attempt_credits(
    sqlite_store_url: str, server_factory: ServerFactory
) -> None:
    count = size(2, 10)
    server = server_factory(sqlite_store_url, quiet=True)
    api = server.api(server.env["API_TOKEN"])
    ecpay = _sandbox(server)
    user_id = api.create_user()
    deposits = _issue_codes(api, ecpay, user_id, count, 2000)

    card_attempts = {}
    for transaction_id, _mtn_a, _amount in deposits:
        mtn_b = _start_attempt(api, ecpay, user_id, transaction_id, "Credit")
        card_attempts[transaction_id] = mtn_b
        _control(ecpay, mtn_b, "fail")

    def card_failed() -> bool:
        return all(_states(api.transaction(user_id, t))[card_attempts[t]] == "failed" for t, _, _ in deposits)

    assert wait_until(card_failed, timeout=60, interval=0.2), "the card attempts' failures were not applied"
    for transaction_id, mtn_a, _amount in deposits:
        detail = api.transaction(user_id, transaction_id)
        # The newest attempt failed; the code of the older one keeps the deposit open.
        assert detail["status"] == "awaiting_offline_payment", detail
        assert _states(detail)[mtn_a] == "awaiting_offline_payment"
        _control(ecpay, mtn_a, "pay")

    def credited() -> bool:
        return all(api.transaction(user_id, t)["status"] == "paid" for t, _, _ in deposits)

    assert wait_until(credited, timeout=60, interval=0.2), "A's paid notification did not credit"
    assert api.user(user_id)["balance"] == sum(amount for _, _, amount in deposits)
    for transaction_id, mtn_a, amount in deposits:
        detail = api.transaction(user_id, transaction_id)
        assert _credits(detail) == [amount], detail["ledger"]
        assert _states(detail) == {mtn_a: "paid", card_attempts[transaction_id]: "failed"}
        assert detail["merchant_trade_no"] == mtn_a and detail["flags"] == []
        returns = [c for c in _control_get(ecpay, mtn_a)["callbacks"] if c["kind"] == "return"]
        assert any(c["ok"] for c in returns), returns
    result = audit(sqlite_store_url)
    assert result.clean, (result.mismatches, result.problems)


def _control_get(ecpay: Api, mtn: str) -> dict[str, Any]:
    reply = ecpay.request("GET", f"/sandbox/api/trades/{mtn}")
    assert reply.status == 200, reply.text
    return dict(reply.json())
